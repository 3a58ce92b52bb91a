"""Alerts in Redis: the latest state of each alert, a stream of every event, and delivery attempts.

``save`` writes the record, its place in the newest-first index and the stream entry in one
MULTI, so a reader never sees an alert that is missing from the stream or the index. The stream
(``{prefix}:alerts:stream``) is one of the delivery channels: a consumer group on it gets every
opened/updated/resolved event. Webhook attempts go to their own capped stream, so an operator can
see why a receiver did not hear about an alert.

The stream is also the outbox of the other channels (the Kafka topic, each webhook URL): every
channel is a consumer group on it, so an event is persisted with its delivery state, in the same
MULTI as the alert, before anyone sends it. ``undelivered`` hands a channel its events and
``confirm`` settles one; an event a leader took but never confirmed (it died, or the send failed)
stays pending and is handed out again, to whichever worker leads next. That is at-least-once:
receivers deduplicate by the delivery id (alert id, state and update time).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import redis

from pipeline.domain.alerts import AlertError
from pipeline.stores.redis.keys import RedisKeys
from schemas.records import Alert

STREAM_MAX_LEN = 100_000
DELIVERIES_MAX_LEN = 100_000
# One consumer name for whichever worker leads: a new leader inherits its predecessor's pending events.
OUTBOX_CONSUMER = "leader"


class AlertNotFoundError(AlertError, LookupError):
    """No alert has this id."""


class AlertStore:
    """Blocking reads and writes of alerts; one per process, thread-safe like its Redis client."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._keys = RedisKeys(prefix)

    def save(self, alert: Alert) -> None:
        """Store an alert's new state (an acknowledgement survives later updates of the same alert).

        Compare-and-set (WATCH): an acknowledgement that lands between the read and the write makes
        redis-py run the function again, so neither writer's change is lost."""
        key = self._keys.alert(alert.id)

        def write(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            previous = None if raw is None else Alert.model_validate_json(raw)
            merged = alert
            if previous is not None and previous.acknowledged_at is not None and alert.acknowledged_at is None:
                update = {"acknowledged_by": previous.acknowledged_by, "acknowledged_at": previous.acknowledged_at}
                merged = alert.model_copy(update=update)
            body = merged.model_dump_json()
            pipe.multi()
            pipe.set(key, body)
            pipe.zadd(self._keys.alerts, {alert.id: alert.updated_at.timestamp()})
            pipe.xadd(self._keys.alert_stream, {"alert": body}, maxlen=STREAM_MAX_LEN, approximate=True)
            pipe.publish(self._keys.alert_channel, body)  # live dashboards

        self._client.transaction(write, key)

    def open_outbox(self, channel: str) -> None:
        """Make ``channel`` a reader of every event saved from now on (idempotent)."""
        try:
            self._client.xgroup_create(self._keys.alert_stream, _outbox_group(channel), id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def undelivered(self, channel: str, count: int = 100) -> list[tuple[str, Alert]]:
        """Events ``channel`` has not confirmed, oldest first: those handed out before, then new ones."""
        group, found = _outbox_group(channel), []
        for start in ("0", ">"):
            reply = cast(
                list[tuple[str, list[tuple[str, dict[str, str] | None]]]],
                self._client.xreadgroup(group, OUTBOX_CONSUMER, {self._keys.alert_stream: start}, count=count),
            )
            for entry_id, fields in reply[0][1] if reply else []:
                if fields:
                    found.append((entry_id, Alert.model_validate_json(fields["alert"])))
                else:  # trimmed from the stream before it was delivered: nothing left to send
                    self.confirm(channel, entry_id)
        return found

    def confirm(self, channel: str, entry_id: str) -> None:
        """``channel`` is done with this event (delivered, or given up on with the attempts recorded)."""
        self._client.xack(self._keys.alert_stream, _outbox_group(channel), entry_id)

    def get(self, alert_id: str) -> Alert | None:
        raw = self._client.get(self._keys.alert(alert_id))
        return None if raw is None else Alert.model_validate_json(raw)

    def require(self, alert_id: str) -> Alert:
        alert = self.get(alert_id)
        if alert is None:
            raise AlertNotFoundError(f"no alert with id {alert_id!r}")
        return alert

    def find(
        self, subject: str | None = None, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Alert]:
        """Alerts, most recently updated first, optionally of one subject and/or state."""
        ids = cast(list[str], self._client.zrevrange(self._keys.alerts, 0, -1))
        found: list[Alert] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            for raw in cast(list[str | None], self._client.mget([self._keys.alert(i) for i in chunk])):
                if raw is None:
                    continue
                alert = Alert.model_validate_json(raw)
                if (subject is None or alert.subject == subject) and (state is None or alert.state == state):
                    found.append(alert)
            if len(found) >= offset + limit:
                break
        return found[offset : offset + limit]

    def acknowledge(self, alert_id: str, by: str, at: datetime | None = None) -> Alert:
        """Mark an alert as seen by someone; acknowledging twice keeps the first acknowledgement.

        Compare-and-set, like ``save``: of two concurrent acknowledgements exactly one wins, and an update
        the alert service writes meanwhile is kept."""
        key = self._keys.alert(alert_id)

        def write(pipe: redis.client.Pipeline) -> Alert:
            raw = pipe.get(key)
            if raw is None:
                raise AlertNotFoundError(f"no alert with id {alert_id!r}")
            alert = Alert.model_validate_json(raw)
            if alert.acknowledged_at is not None:
                return alert
            acked = alert.model_copy(update={"acknowledged_by": by, "acknowledged_at": at or datetime.now(UTC)})
            pipe.multi()
            pipe.set(key, acked.model_dump_json())
            return acked

        return cast(Alert, self._client.transaction(write, key, value_from_callable=True))  # type: ignore[arg-type]

    def forget_evidence(self, post_ids: set[str]) -> int:
        """Remove these posts from the evidence of every stored alert (compare-and-set); alerts changed."""
        changed = 0
        for alert_id in cast(list[str], self._client.zrange(self._keys.alerts, 0, -1)):
            key = self._keys.alert(alert_id)

            def write(pipe: redis.client.Pipeline, key: str = key) -> bool:
                raw = pipe.get(key)
                if raw is None:
                    return False
                alert = Alert.model_validate_json(raw)
                top = alert.evidence.get("top_posts")
                if not isinstance(top, list) or not any(p.get("post_id") in post_ids for p in top):
                    return False
                kept = [p for p in top if p.get("post_id") not in post_ids]
                pipe.multi()
                pipe.set(
                    key, alert.model_copy(update={"evidence": {**alert.evidence, "top_posts": kept}}).model_dump_json()
                )
                return True

            changed += bool(self._client.transaction(write, key, value_from_callable=True))  # type: ignore[arg-type]
        return changed

    def events(self, count: int = 100) -> list[Alert]:
        """The newest ``count`` events of the stream, oldest first."""
        entries = cast(list[tuple[str, dict[str, str]]], self._client.xrevrange(self._keys.alert_stream, count=count))
        return [Alert.model_validate_json(fields["alert"]) for _id, fields in reversed(entries)]

    def record_delivery(self, alert_id: str, channel: str, attempt: int, outcome: str, detail: str = "") -> None:
        entry = {"alert_id": alert_id, "channel": channel, "attempt": attempt, "outcome": outcome, "detail": detail}
        self._client.xadd(
            self._keys.alert_deliveries,
            {"delivery": json.dumps(entry, ensure_ascii=False)},
            maxlen=DELIVERIES_MAX_LEN,
            approximate=True,
        )

    def deliveries(self, alert_id: str | None = None, count: int = 1000) -> list[dict[str, Any]]:
        """Recorded delivery attempts, oldest first (of one alert, if given)."""
        entries = cast(
            list[tuple[str, dict[str, str]]], self._client.xrevrange(self._keys.alert_deliveries, count=count)
        )
        attempts = [json.loads(fields["delivery"]) for _id, fields in reversed(entries)]
        return [a for a in attempts if alert_id is None or a["alert_id"] == alert_id]


def _outbox_group(channel: str) -> str:
    return f"outbox:{channel}"
