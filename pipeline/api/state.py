"""What the handlers share: one Redis client and the stores over it, and one ClickHouse reader.

FastAPI runs plain ``def`` handlers in a thread pool, so everything here is used from several
threads: redis-py clients are thread-safe, and ClickHouse calls go through one lock because a chDB
session is not known to be (the server driver serialises on its own lock anyway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import redis
from fastapi import Request

from pipeline.api.errors import ApiProblem
from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.keys import ALL_SUBJECTS, RedisKeys
from pipeline.stores.redis.live import RedisLive, connect
from pipeline.stores.redis.subjects import SubjectStore

T = TypeVar("T")
KNOWN_SUBJECTS_TTL_S = 2.0  # how long the monitored names are cached between store reads
# History queries run one at a time (a chDB session is not known to be thread-safe); this many callers
# may run or wait for one, each at most HISTORY_WAIT_S. The rest are told 503 at once, so a slow or
# stalled ClickHouse never takes every server thread, and /healthz and live reads keep answering.
HISTORY_CALLERS = 4
HISTORY_WAIT_S = 10.0


class ApiState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: redis.Redis = connect(settings)
        self.keys = RedisKeys(settings.redis_prefix)
        self.live = RedisLive(settings, self.client)
        self.alerts = AlertStore(self.client, settings.redis_prefix)
        self.subjects = SubjectStore(self.client, settings.redis_prefix)
        self._history: ClickHouseHistory | None = None
        self._history_lock = threading.Lock()
        self._history_callers = threading.BoundedSemaphore(HISTORY_CALLERS)
        self._monitored: tuple[float, frozenset[str]] = (float("-inf"), frozenset())

    def history(self, query: Callable[[ClickHouseHistory], T]) -> T:
        """Run ``query`` on the ClickHouse reader, opened on first use, one query at a time."""
        if not self._history_callers.acquire(blocking=False):
            raise ApiProblem(503, "the history store is busy: try again shortly", headers={"Retry-After": "5"})
        try:
            if not self._history_lock.acquire(timeout=HISTORY_WAIT_S):
                raise ApiProblem(503, "the history store is slow to answer: try again shortly")
            try:
                if self._history is None:
                    self._history = ClickHouseHistory.from_url(self.settings.clickhouse_url.get_secret_value())
                return query(self._history)
            finally:
                self._history_lock.release()
        finally:
            self._history_callers.release()

    def monitored_names(self) -> frozenset[str]:
        checked_at, names = self._monitored
        if time.monotonic() - checked_at > KNOWN_SUBJECTS_TTL_S:
            names = frozenset(self.subjects.load().names)
            self._monitored = (time.monotonic(), names)
        return names

    def forget_monitored(self) -> None:
        self._monitored = (float("-inf"), frozenset())

    def had_posts(self, subject: str, minutes: int) -> bool:
        """Whether ``subject`` counted any post in the last ``minutes`` (one pipelined ZSCORE a minute)."""
        pipe = self.client.pipeline(transaction=False)
        for minute in self.live.window_minutes(minutes, datetime.now(UTC)):
            pipe.zscore(self.keys.top(minute), subject)
        return any(score for score in pipe.execute())

    def is_known(self, subject: str) -> bool:
        """``*`` (every post), a monitored subject, or any subject (a hashtag, ``_all``) that counted
        posts within the live retention."""
        if subject == ALL_SUBJECTS or subject in self.monitored_names():
            return True
        return self.had_posts(subject, min(self.settings.live_retention_s // 60, 24 * 60))

    def require_subject(self, subject: str) -> str:
        """``subject`` if yuqing knows it, else 404: anything else, injection attempts included, is
        refused before any store is asked about its data."""
        if not self.is_known(subject):
            raise ApiProblem(404, f"unknown subject {subject!r}: not monitored and no posts in the last 24 h")
        return subject

    def close(self) -> None:
        with self._history_lock:
            if self._history is not None:
                self._history.close()
                self._history = None
        self.client.close()


def api_state(request: Request) -> ApiState:
    """The app's shared state (stores and clients), as the routes reach it."""
    state: ApiState = request.app.state.api
    return state
