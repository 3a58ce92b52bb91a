"""`yuqing erase --author`: the author's posts leave history, live evidence and stored alerts; counts stay."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from pipeline.settings import Settings, settings_env
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive
from tests.support.api import make_alert
from tests.support.records import now_minute, scored, write_history, write_live

pytestmark = pytest.mark.integration


def test_erasing_an_author_removes_their_posts_and_keeps_the_counts(settings: Settings, clickhouse_url: str) -> None:
    settings = settings.model_copy(update={"clickhouse_url": type(settings.clickhouse_url)(clickhouse_url)})
    minute = now_minute()  # every post in one minute, which is read back even after the clock passes it
    mine = [scored(f"mine-{i}", "negative", ("乳业",), at=minute, text=f"我的差评 {i}") for i in range(3)]
    mine = [p.model_copy(update={"post": p.post.model_copy(update={"author_id": "who-me"})}) for p in mine]
    others = [scored(f"other-{i}", "negative", ("乳业",), at=minute, text=f"别人的差评 {i}") for i in range(4)]
    write_live(settings, mine + others)
    write_history(clickhouse_url, mine + others)
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    alerts = AlertStore(client, settings.redis_prefix)
    alert = make_alert("erase-1", "乳业")
    top = [{"post_id": p.post.id, "text": p.post.text} for p in mine + others]
    alerts.save(alert.model_copy(update={"evidence": {**alert.evidence, "top_posts": top}}))
    live = RedisLive(settings)
    before = live.total(5)

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "erase", "--author", "who-me"],
        env={**settings_env(settings)},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)
    assert report["posts"] == 3 and report["evidence_entries"] == 3 and report["alerts"] == 1
    assert report["not_reached"]  # what it cannot reach is said, not hidden

    with ClickHouseHistory.from_url(clickhouse_url) as history:
        assert history.post_ids_of_author("who-me") == set()
        assert history.total_posts() == 4
    evidence = live.negative_posts("乳业", [minute], n=20)
    assert {e["post_id"] for e in evidence} == {f"other-{i}" for i in range(4)}
    assert [p["post_id"] for p in alerts.require("erase-1").evidence["top_posts"]] == [f"other-{i}" for i in range(4)]
    assert live.total(5) == before  # counts hold no person: they stay
