"""Re-scoring 1,000 stored posts with a second model, on both ClickHouse engines: each model version's
counts are exactly what its model says, the serving version's are untouched, and a second run changes
nothing (no post counted twice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipeline.domain.noise.filter import NoiseFilter
from pipeline.domain.text.clean import clean
from pipeline.domain.text.segment import Segmenter
from pipeline.stores.clickhouse.engines import open_engine
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.clickhouse.sink import ClickHouseSink
from schemas.records import Post, ScoredPost
from tests.support.paths import REPO
from tests.support.records import now_minute, scored
from training.baseline import train_baseline
from workers.rescoring import rescore
from workers.scoring.baseline import BASELINE_MODEL_ID
from workers.scoring.loading import load_scorer
from workers.scoring.protocol import Scorer
from workers.stages import build_scored, prepare_post, subjects_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

POSTS = 1000
PHRASES = (
    "服务太差了，再也不买",
    "物流很快包装完好，很满意",
    "今天天气晴",
    "新能源汽车补贴政策公布",
    "股市暴跌，损失惨重",
    "医院夜间门诊点赞，医生很耐心",
    "客服态度恶劣，气死了",
)
TAGS = (("云帆",), ("星河",), ("云帆", "星河"), ())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF-IDF baseline trained here on a small sample of the corpora."""
    folder: Path = tmp_path_factory.mktemp("baseline")
    train_baseline(folder, limit_per_corpus=400)
    return folder


@pytest.fixture(scope="module")
def scorers(baseline: Path) -> tuple[Scorer, Scorer]:
    """The serving model, the committed student, and the one history is re-scored with, the baseline."""
    serving, second = load_scorer(REPO / "models" / "student"), load_scorer(baseline)
    assert serving.model_version != second.model_version
    return serving, second


def stream(scorer: Scorer) -> list[ScoredPost]:
    """1,000 posts over 20 minutes, scored as the worker scores them; every tenth is a copy-paste."""
    start = now_minute() - timedelta(minutes=40)
    posts = []
    for i in range(POSTS):
        copy = i % 10 == 9
        text = f"{PHRASES[i % len(PHRASES)]}{'' if copy else f' 第{i}次'} {PHRASES[(i * 7) % len(PHRASES)]}"
        posts.append(
            Post(
                id=f"p-{i:04d}",
                platform=("weibo", "douyin")[i % 2],
                author_id=f"a-{i % 300}",
                text=text,
                event_time=start + timedelta(seconds=1.2 * i),
                hashtags=TAGS[i % len(TAGS)],
            )
        )
    segmenter, noise = Segmenter(), NoiseFilter()
    prepared = [prepare_post(post, segmenter, noise, 8) for post in posts]
    predictions = scorer.predict([item.model_text for item in prepared])
    model = (scorer.model_id, scorer.model_version)
    return [
        build_scored(item, prediction, (subjects_of(item.post), False), model, item.post.event_time, 1.0)
        for item, prediction in zip(prepared, predictions, strict=True)
    ]


def expected(scored: list[ScoredPost], deduplicated: bool = False) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for post in scored:
        if deduplicated and (post.duplicate or post.suspected_bot):
            continue
        for subject in post.subjects:
            counts[(subject, post.sentiment)] += 1
    return dict(counts)


def rows_per_version(history: ClickHouseHistory) -> dict[str, int]:
    """Rows (not distinct posts) stored per version: a double write would show here."""
    engine = history._engine
    rows = engine.select(
        f"SELECT model_version, count() AS n FROM {engine.database}.scored_posts GROUP BY model_version"
    )
    return {str(row["model_version"]): int(row["n"]) for row in rows}


def test_rescoring_history_keeps_both_versions_exact_and_twice_changes_nothing(
    clickhouse_url: str, scorers: tuple[Scorer, Scorer]
) -> None:
    serving, second = scorers
    live = stream(serving)
    since, until = now_minute() - timedelta(minutes=45), now_minute()
    engine = open_engine(clickhouse_url)
    try:
        sink, history = ClickHouseSink(engine=engine), ClickHouseHistory(engine=engine)
        sink.add(live)
        sink.flush()
        before = history.subject_sentiment_counts()
        assert history.serving_version() == serving.model_version
        assert before == expected(live)

        progress: list[int] = []
        first = rescore(history, sink, second, since, until, batch=128, on_progress=progress.append)

        assert (first.read, first.written, first.skipped) == (POSTS, POSTS, 0)
        assert progress[-1] == POSTS and progress == sorted(progress)
        # What the second model says of each post, scored here on its own: the store must agree exactly.
        again = [
            post.model_copy(update={"sentiment": prediction.label, "model_version": second.model_version})
            for post, prediction in zip(
                live, second.predict([clean(p.post.text).content or p.post.text for p in live]), strict=True
            )
        ]
        counts = {
            serving.model_version: history.subject_sentiment_counts(model_version=serving.model_version),
            second.model_version: history.subject_sentiment_counts(model_version=second.model_version),
        }
        shown = {version: dict(sorted(by_key.items())) for version, by_key in counts.items()}
        print(f"\nre-score of {POSTS} posts, (subject, sentiment) counts per model version: {shown}")
        assert counts[serving.model_version] == expected(live)
        assert counts[second.model_version] == expected(again)
        assert history.subject_sentiment_counts(deduplicated=True, model_version=second.model_version) == expected(
            again, deduplicated=True
        )
        assert history.subject_sentiment_counts() == before  # default reads: still the serving version
        assert history.serving_version() == serving.model_version
        assert history.total_posts(model_version=second.model_version) == POSTS
        assert history.model_versions() == {serving.model_version: POSTS, second.model_version: POSTS}
        series = history.minute_series(since, until, model_version=second.model_version)
        assert sum(agg.count for agg in series) == sum(expected(again).values())
        assert rows_per_version(history) == {serving.model_version: POSTS, second.model_version: POSTS}

        second_run = rescore(history, sink, second, since, until)

        assert (second_run.read, second_run.written) == (POSTS, 0)
        assert history.subject_sentiment_counts(model_version=second.model_version) == counts[second.model_version]
        assert history.subject_sentiment_counts(model_version=serving.model_version) == before
        assert rows_per_version(history) == {serving.model_version: POSTS, second.model_version: POSTS}
    finally:
        engine.close()


def test_yuqing_rescore_stores_the_new_version_once(
    clickhouse_server_url: str, redis_url: str, baseline: Path, tmp_path: Path
) -> None:
    database = f"yq_test_{uuid.uuid4().hex[:12]}"
    base = urlsplit(clickhouse_server_url)
    url = urlunsplit((base.scheme, base.netloc, f"/{database}", base.query, ""))
    start = now_minute() - timedelta(minutes=10)
    with ClickHouseSink(url, redis_url=redis_url) as sink:
        sink.add([scored(f"cli-{i}", "neutral", at=start + timedelta(seconds=i)) for i in range(50)])
        sink.flush()
    env = {**os.environ, "YUQING_CLICKHOUSE_URL": url, "YUQING_REDIS_URL": redis_url}
    window = ["--since", (start - timedelta(minutes=1)).isoformat(), "--until", now_minute().isoformat()]

    def yuqing(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pipeline", "rescore", *window, "--model", str(baseline), *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    try:
        first = yuqing("--json")
        assert first.returncode == 0, first.stderr[-2000:]
        report = json.loads(first.stdout)
        assert (report["read"], report["written"], report["model_id"]) == (50, 50, BASELINE_MODEL_ID)
        again = yuqing()
        assert again.returncode == 0, again.stderr[-2000:]
        assert "50 posts read, 0 verdicts" in again.stdout
        with ClickHouseHistory(url, redis_url=redis_url) as history:
            assert history.model_versions() == {"1": 50, report["model_version"]: 50}
            assert history.serving_version() == "1"
    finally:
        engine = open_engine(url)
        engine.execute(f"DROP DATABASE IF EXISTS {database}")
        engine.close()
