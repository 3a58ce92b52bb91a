"""Erasing one author: their posts in history, and those posts in live evidence and stored alerts.

Counts stay: the minute rollups and live counters hold numbers, not people. What this cannot reach is said
by ``ErasureReport.not_reached``: records already delivered (the alerts topic, webhooks, the alert stream's
past events) and Kafka topics, which age out with their retention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.domain.posts import pseudonym
from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive, connect

NOT_REACHED = (
    "Kafka topics (posts.raw, posts.scored, posts.dlq, alerts) until their retention expires",
    "alert events already delivered (webhooks, the alerts topic, past entries of the alert stream)",
)


@dataclass
class ErasureReport:
    author_ids: list[str]
    posts: int = 0
    evidence_entries: int = 0
    alerts: int = 0
    not_reached: list[str] = field(default_factory=lambda: list(NOT_REACHED))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored_ids(settings: Settings, author_id: str) -> list[str]:
    """The ids the stores may hold for this author: as given, and as pseudonymised with the key."""
    return sorted({author_id, pseudonym(author_id, settings.author_key.get_secret_value().encode())})


def erase_author(settings: Settings, author_id: str) -> ErasureReport:
    report = ErasureReport(stored_ids(settings, author_id))
    with ClickHouseHistory.from_url(settings.clickhouse_url.get_secret_value()) as history:
        post_ids = set().union(*(history.post_ids_of_author(a) for a in report.author_ids))
        # Live evidence and alerts first: were the history delete to fail, a rerun still finds the post ids.
        client = connect(settings)
        try:
            report.evidence_entries = RedisLive(settings, client).forget_evidence(post_ids)
            report.alerts = AlertStore(client, settings.redis_prefix).forget_evidence(post_ids)
        finally:
            client.close()
        for author in report.author_ids:
            history.erase_author(author)
    report.posts = len(post_ids)
    return report
