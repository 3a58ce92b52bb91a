"""A post a real store refuses goes back with the store's error; the rest of its batch is stored exactly."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipeline.settings import Settings
from pipeline.stores.clickhouse.engines import is_data_error, open_engine
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.redis.live import RedisLive, RedisSink
from pipeline.stores.sink import SinkError, SinkRefused
from schemas.records import ScoredPost
from tests.support.records import scored
from workers.storing import store_all

pytestmark = pytest.mark.integration


def from_1900(post: ScoredPost) -> ScoredPost:
    """What an older or foreign producer of posts.scored could write: validation never saw it."""
    return post.model_copy(
        update={"post": post.post.model_copy(update={"event_time": datetime(1900, 1, 1, tzinfo=UTC)})}
    )


async def run_here(call: Callable[[], None]) -> None:
    call()


async def test_a_poison_post_is_isolated_and_the_batch_stored(settings: Settings, clickhouse_server_url: str) -> None:
    base = urlsplit(clickhouse_server_url)
    url = urlunsplit((base.scheme, base.netloc, f"/yq_poison_{uuid.uuid4().hex[:8]}", base.query, ""))
    posts = [scored(f"ok-{i}", "negative", ("乳业",)) for i in range(30)]
    posts[11] = from_1900(posts[11])
    posts[25] = from_1900(posts[25])
    sinks = [RedisSink(settings), ClickHouseSink.from_url(url)]
    try:
        refusals = await store_all(sinks, posts, run_here)
        assert sorted(post.post.id for post, _ in refusals) == ["ok-11", "ok-25"]
        assert all(reason.startswith("clickhouse refused the post") for _, reason in refusals)
        with ClickHouseHistory.from_url(url) as history:
            assert history.total_posts() == 28
        assert RedisLive(settings).total(5) == 28  # the 1900 posts never count in a live window
    finally:
        for sink in sinks:
            sink.close()
        engine = open_engine(url)
        engine.execute(f"DROP DATABASE IF EXISTS {urlsplit(url).path.strip('/')}")
        engine.close()


def test_an_unreachable_server_is_an_outage_not_a_refusal() -> None:
    sink = ClickHouseSink.from_url("clickhouse://default@127.0.0.1:1/yq_nowhere?connect_timeout=1")
    sink.add([scored("ok-1")])
    with pytest.raises(SinkError) as raised:
        sink.flush()
    assert not isinstance(raised.value, SinkRefused) and not is_data_error(raised.value)
