"""Settings refuse combinations that would silently break exactness or durability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings


def test_a_dedup_marker_ttl_below_the_live_retention_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"dedup_marker_ttl_s \(3600\) must be at least live_retention_s"):
        Settings(live_retention_s=7200, dedup_marker_ttl_s=3600)
    assert Settings(live_retention_s=7200, dedup_marker_ttl_s=7200).dedup_marker_ttl_s == 7200


def test_more_insync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ValidationError, match="no write could ever succeed"):
        Settings(topic_replication_factor=1, topic_min_insync_replicas=2)
    production = Settings(topic_replication_factor=3, topic_min_insync_replicas=2)
    assert (production.topic_replication_factor, production.topic_min_insync_replicas) == (3, 2)


def test_webhooks_without_a_secret_are_refused() -> None:
    with pytest.raises(ValidationError, match="alert_webhook_secret is empty"):
        Settings(alert_webhooks="https://hooks.test/T0/secret-path")
    assert Settings(alert_webhooks="https://hooks.test/x", alert_webhook_secret="k" * 16).alert_webhooks
