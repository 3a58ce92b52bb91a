"""The Redis sink's flush announcements, for benches that watch what a worker has counted.

The sink publishes on the live channel right after each flush, so a bench that reads Redis once per
announcement sees each flush within a millisecond or so, without a busy poll that would take CPU from
the worker it measures on the same cores.
"""

from __future__ import annotations

from types import TracebackType

from pipeline.settings import Settings
from pipeline.stores.redis.keys import RedisKeys
from pipeline.stores.redis.live import connect

SAFETY_POLL_S = 0.5  # a look even without an announcement (one lost, or sent before subscribing)


class FlushAnnouncements:
    def __init__(self, settings: Settings) -> None:
        self._client = connect(settings)
        # redis-py's sync pubsub() has no annotations (its asyncio twin, used by the API, has).
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(RedisKeys(settings.redis_prefix).live_channel)

    def wait(self, timeout_s: float = SAFETY_POLL_S) -> None:
        """Until the next announcement, with those queued meanwhile taken too, or ``timeout_s``."""
        if self._pubsub.get_message(timeout=timeout_s) is not None:
            while self._pubsub.get_message(timeout=0) is not None:
                pass

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()

    def __enter__(self) -> FlushAnnouncements:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
