"""``yuqing health``: can this process reach everything it needs? Each check is independent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.settings import Settings


def _broker(settings: Settings) -> str:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.broker, request_timeout_ms=5000)
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    missing = [t for t in (settings.topic_raw, settings.topic_scored, settings.topic_dlq) if t not in topics]
    return f"missing topics: {', '.join(missing)}" if missing else "ok"


def _redis(settings: Settings) -> str:
    from pipeline.stores.redis.live import connect

    client = connect(settings)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def _clickhouse(settings: Settings) -> str:
    from pipeline.stores.clickhouse.engines import open_engine

    engine = open_engine(settings.clickhouse_url.get_secret_value())
    try:
        engine.select("SELECT 1 AS one")
    finally:
        engine.close()
    return "ok"


def _model(settings: Settings) -> str:
    from workers.scoring.cards import read_card

    card = read_card(settings.model_path)
    return f"ok: {card.get('model_id')} {card.get('version')}"


CHECKS: dict[str, Callable[[Settings], str]] = {
    "broker": _broker,
    "redis": _redis,
    "clickhouse": _clickhouse,
    "model": _model,
}


def check_health(settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Run every check; healthy only when each answers ``ok``. Never raises."""
    report: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            report[name] = check(settings)
        except Exception as exc:  # any failure is the answer, not a crash
            report[name] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    healthy = all(str(v).startswith("ok") for v in report.values())
    return healthy, {"healthy": healthy, **report}
