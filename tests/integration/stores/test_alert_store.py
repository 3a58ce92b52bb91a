"""Acknowledging and updating an alert at the same moment loses neither change (compare-and-set)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis

from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertNotFoundError, AlertStore
from tests.support.api import make_alert

pytestmark = pytest.mark.integration
ROUNDS = 60


def race(service: AlertStore, analysts: list[AlertStore], alert_id: str) -> list[str | None]:
    """Two analysts acknowledge while the service resolves the alert, all released at once."""
    opened = make_alert(alert_id, state="opened")
    service.save(opened)
    resolved = opened.model_copy(update={"state": "resolved", "updated_at": opened.updated_at + timedelta(minutes=1)})
    barrier = threading.Barrier(len(analysts) + 1)
    winners: list[str | None] = []

    def acknowledge(store: AlertStore, name: str) -> None:
        barrier.wait()
        winners.append(store.acknowledge(alert_id, name).acknowledged_by)

    def update() -> None:
        barrier.wait()
        service.save(resolved)

    threads = [threading.Thread(target=acknowledge, args=(a, f"analyst-{i}")) for i, a in enumerate(analysts)]
    threads.append(threading.Thread(target=update))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return winners


def test_an_acknowledgement_racing_an_update_keeps_both(settings: Settings) -> None:
    url = settings.redis_url.get_secret_value()
    service = AlertStore(redis.Redis.from_url(url, decode_responses=True), settings.redis_prefix)
    analysts = [AlertStore(redis.Redis.from_url(url, decode_responses=True), settings.redis_prefix) for _ in range(2)]
    for round_ in range(ROUNDS):
        winners = race(service, analysts, f"race-{round_}")
        stored = service.require(f"race-{round_}")
        assert stored.state == "resolved", round_  # the service's update survived the acknowledgements
        assert stored.acknowledged_by in ("analyst-0", "analyst-1"), round_  # an acknowledgement survived it
        assert winners == [stored.acknowledged_by] * 2, round_  # both analysts were told the same winner


def test_acknowledging_an_unknown_alert_says_so(settings: Settings) -> None:
    store = AlertStore(redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True), "yq-none")
    with pytest.raises(AlertNotFoundError):
        store.acknowledge("nope", "analyst")


def test_the_outbox_hands_an_event_out_until_its_channel_confirms_it(settings: Settings) -> None:
    """Each channel reads every event saved after it opened; an unconfirmed one is handed out again,
    also to another process (a new leader), and a confirmed one never."""
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    leader = AlertStore(client, settings.redis_prefix)
    leader.save(make_alert("before", state="opened"))  # no channel was reading yet
    for channel in ("kafka", "hook"):
        leader.open_outbox(channel)
        leader.open_outbox(channel)  # idempotent
    leader.save(make_alert("first", state="opened"))
    leader.save(make_alert("second", state="opened"))

    taken = leader.undelivered("kafka")
    assert [alert.id for _entry, alert in taken] == ["first", "second"]
    leader.confirm("kafka", taken[0][0])
    successor = AlertStore(redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True),
                           settings.redis_prefix)  # fmt: skip
    assert [alert.id for _entry, alert in successor.undelivered("kafka")] == ["second"]
    assert [alert.id for _entry, alert in successor.undelivered("hook")] == ["first", "second"]
    successor.confirm("kafka", taken[1][0])
    assert successor.undelivered("kafka") == []
