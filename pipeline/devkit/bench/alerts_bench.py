"""``yuqing bench alerts``: scripted surges and decoys through the real pipeline, scored against truth.

Posts go through the embedded broker, a real worker (model, noise filter, subject matching) and
Redis, in simulated time: the warm-up history is sent at once, then the test phase advances in
slices of ``slice_s`` simulated seconds. After each slice the runner waits until Redis has counted
every post sent so far, then runs one detection tick at the slice's end, so a delay measured in
simulated time is what a live deployment ticking every ``slice_s`` seconds would see.

The reference, measured on the same Redis counts in the same run, is how today's products work: a
5-minute report, alerting when its negatives exceed twice the mean of the four reports before.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from pipeline.alerting.service import AlertService
from pipeline.devkit.bench.alert_scenarios import Plan, ScenarioError, Truth, default_plan, timeline
from pipeline.devkit.bench.environment import bench_environment
from pipeline.devkit.demo import start_worker, stop_worker
from pipeline.devkit.progress import progress_bar
from pipeline.domain.subjects.model import SubjectSet, parse_subjects
from pipeline.ingest.producer import Ingestor
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive, connect
from pipeline.stores.redis.subjects import SubjectStore
from schemas.records import Alert
from training.corpora import LABELS, Label, text_pools
from workers.scoring.loading import load_scorer

MATCH_AFTER_END = timedelta(minutes=5)  # an alert this long after its event ends still belongs to it
REFERENCE_WINDOW = 5


def load_plan(path: Path | None, short: bool) -> Plan:
    if path is None:
        return default_plan(short)
    try:
        return Plan.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ScenarioError(f"{path}: invalid alert scenarios: {exc}") from exc


def model_pools(model_path: Path, per_label: int = 800) -> dict[Label, list[str]]:
    """Texts the served model reads as each sentiment (short ones, to keep posts post-sized)."""
    pools = text_pools(splits=("train",))
    scorer = load_scorer(model_path)
    chosen: dict[Label, list[str]] = {}
    for label in LABELS:
        candidates = [t for key, texts in pools.items() if key[1] == label for t in texts if 8 <= len(t) <= 80]
        candidates = candidates[: per_label * 3]
        predicted = scorer.predict(candidates)
        chosen[label] = [t for t, p in zip(candidates, predicted, strict=True) if p.label == label][:per_label]
    return chosen


@dataclass(frozen=True, slots=True)
class Detection:
    subject: str
    kind: str
    at: datetime  # simulated time of the tick that announced it


def _subjects(plan: Plan) -> SubjectSet:
    return parse_subjects({"subjects": [{"name": s.subject, "include": [[s.subject]]} for s in plan.scenarios]})


def _wait_counted(live: RedisLive, expected: int, minutes: int, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while live.total(minutes) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pipeline counted {live.total(minutes)} of {expected} posts in {timeout_s:.0f}s")
        time.sleep(0.05)


def reference_tick(live: RedisLive, subjects: list[str], now: datetime) -> list[Detection]:
    """The 5-minute report: at each report boundary, negatives of the closed window vs the four before."""
    if now.minute % REFERENCE_WINDOW or now.second:
        return []
    minutes = [now - timedelta(minutes=back) for back in range(REFERENCE_WINDOW * 5, 0, -1)]
    counts = live.subject_minutes(minutes)
    found = []
    for subject in subjects:
        negatives = [per.get(subject, Counter())["negative"] for per in counts]
        windows = [sum(negatives[i : i + REFERENCE_WINDOW]) for i in range(0, len(negatives), REFERENCE_WINDOW)]
        last, before = windows[-1], windows[:-1]
        if last >= 10 and last > 2 * statistics.mean(before):
            found.append(Detection(subject, "negative_surge", now))
    return found


def score(detections: list[Detection], truths: list[Truth]) -> dict[str, Any]:
    """Precision over every announced alert, recall and delay over the surges."""
    by_subject = {t.subject: t for t in truths}
    surges = [t for t in truths if t.kind == "surge"]
    true_positive, false_positive = 0, []
    first: dict[str, datetime] = {}
    for d in detections:
        truth = by_subject.get(d.subject)
        in_window = truth is not None and truth.onset <= d.at <= truth.end + MATCH_AFTER_END
        right_kind = truth is not None and (
            truth.kind == "surge" or (truth.kind == "positive_burst" and d.kind == "volume_burst")
        )
        if in_window and right_kind:
            true_positive += 1
            if truth is not None and truth.kind == "surge" and d.kind == "negative_surge":
                first.setdefault(d.subject, d.at)
        else:
            false_positive.append(f"{d.subject}:{d.kind}@{d.at:%H:%M:%S}")
    delays = sorted((first[t.subject] - t.onset).total_seconds() for t in surges if t.subject in first)
    return {
        "alerts": len(detections),
        "precision": round(true_positive / len(detections), 3) if detections else 1.0,
        "recall": round(len(delays) / len(surges), 3) if surges else 1.0,
        "median_delay_s": statistics.median(delays) if delays else None,
        "p95_delay_s": delays[min(len(delays) - 1, int(0.95 * len(delays)))] if delays else None,
        "missed": sorted(t.subject for t in surges if t.subject not in first),
        "false_alerts": false_positive,
    }


def run(base: Settings, plan: Plan, *, progress: bool = False) -> dict[str, Any]:
    """``progress``: a bar on stderr over the simulated test slices (a terminal only)."""
    started = time.monotonic()
    pools = model_pools(base.model_path)
    # The runner ticks the detectors itself, in simulated time.
    with bench_environment(base, "alerts", alerts_enabled=False, batch_max_wait_s=0.1) as (settings, workdir):
        client = connect(settings)
        subjects = SubjectStore(client, settings.redis_prefix)
        subjects.replace(_subjects(plan))
        live = RedisLive(settings, client)
        service = AlertService(live, subjects, AlertStore(client, settings.redis_prefix), lag_s=0)
        total_minutes = plan.warmup_minutes + plan.test_minutes
        start = (datetime.now(UTC) - timedelta(minutes=total_minutes + 2)).replace(second=0, microsecond=0)
        posts, truths = timeline(plan, pools, start)
        window = total_minutes + 30  # every simulated minute is inside the live window
        ours: list[Alert] = []
        reference: list[Detection] = []
        ingestor = Ingestor(settings)
        worker = start_worker(settings, workdir / "worker.log")
        try:
            test_start = start + timedelta(minutes=plan.warmup_minutes)
            sent = 0
            clock = test_start
            ends = [test_start] + [
                test_start + timedelta(seconds=plan.slice_s * (i + 1))
                for i in range(plan.test_minutes * 60 // plan.slice_s)
            ]
            with progress_bar("simulated slices", len(ends), unit="slices", enabled=progress) as advance:
                for done, end in enumerate(ends, 1):
                    while sent < len(posts) and posts[sent].arrival < end:
                        ingestor.submit(posts[sent].record)
                        sent += 1
                    ingestor.flush()
                    _wait_counted(live, sent, window)
                    clock = end
                    ours += service.tick(clock)
                    reference += reference_tick(live, [s.subject for s in plan.scenarios], clock)
                    advance(done)
        finally:
            ingestor.close()
            stop_worker(worker)
    first_opened = {a.id: a for a in reversed(ours) if a.state == "opened"}  # a reopening is the same alert
    detections = sorted((Detection(a.subject, a.kind, a.updated_at) for a in first_opened.values()), key=lambda d: d.at)
    decoys = {t.subject for t in truths if t.kind in ("bot_flood", "late_posts")}
    report: dict[str, Any] = {
        "bench": "alerts",
        "posts": len(posts),
        "scenarios": len(plan.scenarios),
        "simulated_minutes": total_minutes,
        "slice_s": plan.slice_s,
        "ours": score(detections, truths),
        "decoy_alerts": sorted(f"{d.subject}:{d.kind}" for d in detections if d.subject in decoys),
        "reference": score(reference, truths),
        "seconds": round(time.monotonic() - started, 1),
        "model_path": str(base.model_path),
    }
    ours_delay, reference_delay = report["ours"]["median_delay_s"], report["reference"]["median_delay_s"]
    # Our median detection delay over the reference's: below 1, we tell people sooner.
    report["delay_ratio"] = (
        round(ours_delay / reference_delay, 3) if ours_delay is not None and reference_delay else None
    )
    return report
