"""A subject added while a worker runs counts the next posts without a restart; copies count once."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.live import RedisLive, connect
from pipeline.stores.redis.subjects import SubjectStore, subject_from_options
from tests.support.waiting import WorkerFactory, wait_until

pytestmark = pytest.mark.e2e

ORGANIC = [
    "月光饼干的新口味太甜了，吃两块就腻",
    "今天在超市看到月光饼干打折，买了三盒",
    "月光饼干包装换了，比以前好看多了",
    "有人知道月光饼干哪里能买到无糖的吗",
    "小时候最爱吃月光饼干，现在味道变了",
    "月光饼干配牛奶是我的早餐标配",
    "月光饼干客服态度很差，投诉没人理",
    "孩子说月光饼干的巧克力味最好吃",
    "月光饼干价格又涨了，一盒要二十多块",
    "加班到深夜，一包月光饼干撑过去了",
]
FLOOD = "月光饼干致癌！大家千万别买，转发告诉身边的人！！"


def post(n: int, text: str, author: str, at: datetime) -> dict[str, object]:
    return {"id": f"live-{n}", "platform": "weibo", "author_id": author, "text": text, "event_time": at.isoformat()}


def send(settings: Settings, posts: list[dict[str, object]]) -> None:
    ingestor = Ingestor(settings)
    for item in posts:
        ingestor.submit(item)
    assert ingestor.flush().accepted == len(posts)
    ingestor.close()


def test_a_subject_added_at_run_time_counts_the_next_posts(e2e_settings: Settings, workers: WorkerFactory) -> None:
    settings = e2e_settings.model_copy(update={"subjects_reload_s": 0.5})
    ensure_topics(settings)
    live = RedisLive(settings)
    workers(settings)
    now = datetime.now(UTC) - timedelta(seconds=30)

    before = [post(i, text, f"fan{i}", now) for i, text in enumerate(ORGANIC[:3])]
    send(settings, before)
    wait_until(lambda: live.total(5) >= len(before), 120, "the first posts counted")
    assert not live.window_counts(5, "月光饼干")

    store = SubjectStore(connect(settings), settings.redis_prefix)
    store.put(subject_from_options("月光饼干", ["月光饼干,月光"]))
    time.sleep(1.5)  # past the workers' reload interval

    after = [post(100 + i, text, f"fan{i}", now) for i, text in enumerate(ORGANIC[3:])]
    copies = [post(200 + i, FLOOD, f"bot{i}", now + timedelta(seconds=i)) for i in range(12)]
    send(settings, after + copies)
    total = len(before) + len(after) + len(copies)
    wait_until(lambda: live.total(5) >= total, 120, "every post counted")

    raw = sum(live.window_counts(5, "月光饼干").values())
    deduplicated = sum(live.window_counts(5, "月光饼干", deduplicated=True).values())
    assert raw == len(after) + len(copies)  # the posts before the change stay where they were counted
    assert deduplicated == len(after) + 1  # the flood counts once, by its first copy
    assert live.total(5) == total and live.total(5, deduplicated=True) == len(before) + len(after) + 1
    words = dict(live.hot_words("月光饼干", 5, n=100))
    assert "月光饼干" in words and words.get("致癌") == 1

    history = ClickHouseHistory(settings.clickhouse_url.get_secret_value())
    try:
        wait_until(lambda: history.total_posts() >= total, 60, "posts in ClickHouse")
        by_subject: Counter[str] = Counter()
        for (subject, _sentiment), count in history.subject_sentiment_counts(deduplicated=True).items():
            by_subject[subject] += count
        assert by_subject["月光饼干"] == len(after) + 1
        rows = history._select(
            "SELECT post_id, monitored, is_duplicate, suspected_bot, cluster_id FROM {db}.scored_posts FINAL"
            " WHERE has(subjects, '月光饼干') ORDER BY post_id"
        )
    finally:
        history.close()
    flagged = [row for row in rows if row["post_id"].startswith("live-2")]
    assert all(row["monitored"] == 1 for row in rows)
    assert sum(row["is_duplicate"] for row in flagged) == len(copies) - 1
    assert len({row["cluster_id"] for row in flagged}) == 1
    assert sum(row["suspected_bot"] for row in flagged) >= len(copies) - 8, json.dumps(flagged)
