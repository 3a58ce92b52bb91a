"""The command line as a user runs it: separate processes, settings from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipeline.settings import Settings, settings_env
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisSink, connect
from schemas.records import Alert
from tests.support.records import scored

pytestmark = pytest.mark.integration


def yuqing(settings: Settings, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], input=stdin, env=env, capture_output=True, timeout=120, check=False
    )


def test_ingest_jsonl_from_stdin_and_csv_file(settings: Settings, tmp_path: Path) -> None:
    now = datetime.now(UTC).isoformat()
    lines = [
        json.dumps({"id": f"j{i}", "platform": "weibo", "author_id": "u", "text": "好", "event_time": now})
        for i in range(5)
    ] + ["{broken"]
    result = yuqing(settings, "ingest", "-", stdin="\n".join(lines).encode())
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stdout)["accepted"] == 5 and json.loads(result.stdout)["rejected"] == 1

    csv_path = tmp_path / "posts.csv"
    csv_path.write_text(
        f"id,platform,author_id,text,event_time,likes,hashtags\nc1,douyin,u,不错,{now},4,#华为#\nc2,x,u,,{now},,\n",
        encoding="utf-8",
    )
    stats = json.loads(yuqing(settings, "ingest", str(csv_path)).stdout)
    assert (stats["accepted"], stats["rejected"]) == (1, 1)


def test_query_live_window_and_history(settings: Settings, clickhouse_server_url: str) -> None:
    base = urlsplit(clickhouse_server_url)
    url = urlunsplit((base.scheme, base.netloc, f"/yq_cli_{uuid.uuid4().hex[:8]}", base.query, ""))
    settings = settings.model_copy(update={"clickhouse_url": type(settings.clickhouse_url)(url)})
    posts = [scored(f"p{i}", "negative", ("华为",)) for i in range(3)] + [scored("p9", "positive", ("苹果",))]
    redis_sink = RedisSink(settings)
    redis_sink.add(posts)
    redis_sink.flush()
    with ClickHouseSink(url) as sink:
        sink.add(posts)
        sink.flush()

    live = yuqing(settings, "query", "--window", "5m", "--json")
    assert live.returncode == 0, live.stderr.decode()[-2000:]
    rows = {row["subject"]: row for row in json.loads(live.stdout)}
    assert rows["*"]["total"] == 4 and rows["华为"]["negative"] == 3 and rows["华为"]["negative_share"] == 1.0

    history = yuqing(settings, "query", "--history", "--since", "2h", "--subject", "华为", "--json")
    assert history.returncode == 0, history.stderr.decode()[-2000:]
    assert sum(row["negative"] for row in json.loads(history.stdout)) == 3

    bad = yuqing(settings, "query", "--window", "25h")
    assert bad.returncode == 1 and b"outside 1m..24h" in bad.stderr


def test_subjects_and_alerts_commands(settings: Settings) -> None:
    added = yuqing(settings, "subjects", "add", "星河乳业", "--terms", "星河乳业,星河牛奶", "--exclude", "星河大道")
    assert added.returncode == 0 and "version 1" in added.stdout.decode()
    refused = yuqing(settings, "subjects", "add", "坏", "--terms", "坏", "--exclude", "坏")
    assert refused.returncode == 1 and "both included" in refused.stderr.decode()
    tested = json.loads(yuqing(settings, "subjects", "test", "星河牛奶喝出异味").stdout)
    assert tested["subjects"] == ["星河乳业"] and tested["lang"] == "zh"

    store = AlertStore(connect(settings), settings.redis_prefix)
    now = datetime.now(UTC)
    store.save(Alert(id="a1b2", subject="星河乳业", kind="negative_surge", state="opened", severity="warning",
                     started_at=now, updated_at=now, evidence={"top_posts": []}))  # fmt: skip
    listed = yuqing(settings, "alerts", "list", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.decode().splitlines()] == ["a1b2"]
    assert json.loads(yuqing(settings, "alerts", "show", "a1b2").stdout)["evidence"] == {"top_posts": []}
    acked = yuqing(settings, "alerts", "ack", "a1b2", "--by", "oncall")
    assert acked.returncode == 0 and store.require("a1b2").acknowledged_by == "oncall"
    missing = yuqing(settings, "alerts", "show", "nope")
    assert missing.returncode == 1 and "no alert with id 'nope'" in missing.stderr.decode()
