"""Scripted alert scenarios with known ground truth, as a timeline of posts in simulated time.

Each scenario is one subject with its own baseline (posts per minute, negative share) and at most one
event at ``start_minute`` of the test phase (after ``warmup_minutes`` of history):
- ``surge``: negative posts at ``magnitude`` times their baseline rate for ``duration_minutes``;
  the only kind that should raise a negative-surge alert (and, if it is large, a volume burst).
- ``steady``: the baseline alone; ``diurnal``: the baseline rate following a daily rhythm, compressed
  eightfold (a 3-hour cycle of ±50%): over the bench it rises by half, as on a busy morning.
- decoys: ``bot_flood`` (negative copies of one message, with small edits and emoji padding, from
  fresh accounts, at ``magnitude`` times the baseline rate), ``positive_burst`` (positive posts at
  ``magnitude`` times the baseline volume: a volume burst, not a negative surge), and ``late_posts``
  (``magnitude`` minutes' worth of negative posts arriving at once, stamped 20 minutes earlier).
Post texts are drawn from pools the served model reads as each sentiment, two at a time, so the
test is of detection, not of the model, and organic posts are not copies of each other.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.errors import YuqingError
from training.corpora import Label

Kind = Literal["surge", "steady", "diurnal", "bot_flood", "positive_burst", "late_posts"]
EVENT_KINDS = ("surge", "bot_flood", "positive_burst", "late_posts")
LATE_BY = timedelta(minutes=20)
DIURNAL_PERIOD_S = 3 * 3600
FLOOD_EDITS = ("", "！", "!!", " 😡", " 😡😡", "，转发", "。。。", " 大家注意")


class ScenarioError(YuqingError, ValueError):
    """A scenario or plan with impossible values."""


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(min_length=1, max_length=64)
    kind: Kind
    rate: float = Field(gt=0, le=5_000, description="Baseline posts per minute.")
    negative_share: float = Field(0.15, ge=0, lt=1)
    diurnal: bool = Field(False, description="The baseline rate swings ±50% over a 3-hour cycle.")
    start_minute: float | None = Field(None, ge=0, description="When the event starts, in test-phase minutes.")
    duration_minutes: float = Field(5, gt=0, le=600)
    magnitude: float = Field(3, ge=1, le=1_000, description="Surge: x negatives; decoys: x the baseline rate.")

    @model_validator(mode="after")
    def _event_needs_a_start(self) -> Scenario:
        if self.kind in EVENT_KINDS and self.start_minute is None:
            raise ValueError(f"a {self.kind} scenario needs start_minute")
        if self.kind in ("steady", "diurnal") and self.start_minute is not None:
            raise ValueError(f"a {self.kind} scenario has no event, so no start_minute")
        return self


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup_minutes: int = Field(18, ge=16, le=240, description="History before the test (detectors need 15).")
    test_minutes: int = Field(30, ge=1, le=600)
    slice_s: int = Field(15, ge=1, le=60, description="Simulated seconds between two detection ticks.")
    seed: int = 0
    scenarios: tuple[Scenario, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _fits(self) -> Plan:
        names = [s.subject for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError("each scenario needs its own subject")
        for s in self.scenarios:
            if s.start_minute is not None and s.start_minute + s.duration_minutes > self.test_minutes:
                raise ValueError(f"{s.subject}: the event ends after the test's {self.test_minutes} minutes")
        return self


def default_plan(short: bool) -> Plan:
    def quiet(name: str, kind: Kind, **kw: float) -> Scenario:
        return Scenario(subject=name, kind=kind, rate=60, **kw)

    core = [
        quiet("surge-3x-quiet", "surge", start_minute=4, duration_minutes=5, magnitude=3),
        quiet("surge-5x-quiet", "surge", start_minute=7, duration_minutes=3, magnitude=5),
        quiet("steady-quiet", "steady"),
        quiet("bot-flood", "bot_flood", start_minute=3, duration_minutes=2, magnitude=5),
        quiet("positive-burst", "positive_burst", start_minute=5, duration_minutes=4, magnitude=5),
        quiet("late-posts", "late_posts", start_minute=6, duration_minutes=1, magnitude=5),
    ]
    if short:
        return Plan(test_minutes=14, scenarios=tuple(core))
    # No subject name may contain another one: subjects match by their names as terms.
    busy = dict(rate=300.0)
    more = [
        quiet("surge-3x-long", "surge", start_minute=12, duration_minutes=10, magnitude=3),
        quiet("surge-10x-short", "surge", start_minute=20, duration_minutes=2, magnitude=10),
        Scenario(subject="surge-3x-busy", kind="surge", start_minute=9, duration_minutes=3, magnitude=3, **busy),
        Scenario(subject="surge-5x-busy", kind="surge", start_minute=16, duration_minutes=5, magnitude=5, **busy),
        Scenario(subject="surge-3x-diurnal", kind="surge", rate=120, diurnal=True, start_minute=18, magnitude=3),
        Scenario(subject="steady-busy", kind="steady", **busy),
        Scenario(subject="daily-rhythm", kind="diurnal", rate=120, diurnal=True),
    ]
    return Plan(test_minutes=30, scenarios=(*core, *more))


@dataclass(frozen=True, slots=True)
class TimedPost:
    arrival: datetime  # simulated time the post reaches the pipeline
    record: dict[str, object]


@dataclass(frozen=True, slots=True)
class Truth:
    subject: str
    kind: Kind
    onset: datetime
    end: datetime


def _text(rng: random.Random, pools: dict[Label, list[str]], label: Label, subject: str) -> str:
    first, second = rng.sample(pools[label], 2)
    return f"{subject}：{first}。{second}"


def timeline(plan: Plan, pools: dict[Label, list[str]], start: datetime) -> tuple[list[TimedPost], list[Truth]]:
    """Every post of the plan, by arrival, from ``start`` (a whole minute: the beginning of the warm-up)."""
    rng = random.Random(plan.seed)
    test_start = start + timedelta(minutes=plan.warmup_minutes)
    end = test_start + timedelta(minutes=plan.test_minutes)
    posts: list[TimedPost] = []
    truths: list[Truth] = []
    for index, scenario in enumerate(plan.scenarios):
        onset = test_start + timedelta(minutes=scenario.start_minute or 0)
        if scenario.kind in EVENT_KINDS:
            truths.append(
                Truth(scenario.subject, scenario.kind, onset, onset + timedelta(minutes=scenario.duration_minutes))
            )
        posts += _ScenarioPosts(f"b{index}", scenario, pools, rng).between(start, end, onset)
    posts.sort(key=lambda p: p.arrival)
    return posts, truths


class _ScenarioPosts:
    """The posts of one scenario, one minute at a time: Poisson arrivals at that minute's rates."""

    def __init__(self, prefix: str, scenario: Scenario, pools: dict[Label, list[str]], rng: random.Random) -> None:
        self.prefix, self.s, self.pools, self.rng = prefix, scenario, pools, rng
        self.posts: list[TimedPost] = []
        self.flood_message = _text(rng, pools, "negative", scenario.subject)

    def add(
        self, at: datetime, label: Label, text: str = "", author: str = "", stamped: datetime | None = None
    ) -> None:
        record: dict[str, object] = {
            "id": f"{self.prefix}-{len(self.posts)}",
            "platform": "weibo",
            "author_id": author or f"u{self.rng.randrange(10**6)}",
            "text": text or _text(self.rng, self.pools, label, self.s.subject),
            "event_time": (stamped or at).isoformat(),
        }
        self.posts.append(TimedPost(at, record))

    def between(self, start: datetime, end: datetime, onset: datetime) -> list[TimedPost]:
        s, rng = self.s, self.rng
        event_end = onset + timedelta(minutes=s.duration_minutes)
        t = start
        while t < end:
            phase = 2 * math.pi * (t - start).total_seconds() / DIURNAL_PERIOD_S
            swing = 1 + 0.5 * math.sin(phase) if s.diurnal else 1.0
            in_event = s.kind in EVENT_KINDS and onset <= t < event_end
            rates: dict[Label, float] = {
                "negative": s.rate * swing * s.negative_share,
                "neutral": s.rate * swing * (1 - s.negative_share) * 0.6,
                "positive": s.rate * swing * (1 - s.negative_share) * 0.4,
            }
            if in_event and s.kind == "surge":
                rates["negative"] *= s.magnitude
            if in_event and s.kind == "positive_burst":
                rates["positive"] += s.rate * (s.magnitude - 1)
            for label, rate in rates.items():
                for _ in range(_poisson(rng, rate)):
                    self.add(t + timedelta(seconds=rng.uniform(0, 60)), label)
            if in_event and s.kind == "bot_flood":
                for i in range(_poisson(rng, s.rate * s.magnitude)):
                    text = f"{self.flood_message}{rng.choice(FLOOD_EDITS)}"
                    self.add(
                        t + timedelta(seconds=rng.uniform(0, 60)), "negative", text, f"{self.prefix}-bot{t:%H%M}-{i}"
                    )
            if s.kind == "late_posts" and t == onset:
                for _ in range(int(s.rate * s.magnitude)):
                    stamped = t - LATE_BY + timedelta(seconds=rng.uniform(0, 60))
                    self.add(t + timedelta(seconds=rng.uniform(0, 5)), "negative", stamped=stamped)
            t += timedelta(minutes=1)
        return self.posts


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones (plenty for a benchmark)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
