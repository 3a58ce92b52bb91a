"""Where the monitored subjects live while yuqing runs: one versioned ``SubjectSet`` in Redis.

Why Redis: every worker already talks to it, and checking a 64-character content hash every
couple of seconds costs nothing, so a subject added by an analyst is applied by every worker
within seconds and without a restart. The set is one JSON value beside its hash; edits are
compare-and-set (WATCH/MULTI), so two people editing at once never silently lose a change, and an
invalid definition is refused before anything is written. A subjects file seeds an empty store
and is how a set is exported, reviewed and versioned in git.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from pipeline.domain.subjects import SubjectError
from pipeline.domain.subjects.model import Subject, SubjectSet, parse_subjects
from pipeline.stores.redis.keys import RedisKeys

log = logging.getLogger(__name__)
EDIT_ATTEMPTS = 20


class SubjectStore:
    """Reads and edits the subject set in Redis; every method is blocking."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._keys = RedisKeys(prefix)

    def content_hash(self) -> str | None:
        """The stored set's content hash (None when nothing was stored yet): the cheap change check."""
        value = self._client.get(self._keys.subjects_hash)
        return None if value is None else str(value)

    def load(self) -> SubjectSet:
        """The stored set; an empty one (version 0) when nothing was stored yet."""
        raw = self._client.get(self._keys.subjects)
        if raw is None:
            return SubjectSet()
        try:
            return SubjectSet.model_validate_json(raw)
        except ValueError as exc:  # written by something other than this class
            raise SubjectError(f"the subject set in Redis ({self._keys.subjects}) is invalid: {exc}") from None

    def edit(self, change: Callable[[SubjectSet], SubjectSet]) -> SubjectSet:
        """Apply ``change`` to the current set and store the result as the next version, atomically.

        ``change`` may run more than once (when another edit lands in between); a ``SubjectError``
        or ``ValueError`` from it leaves the store untouched.
        """
        for _ in range(EDIT_ATTEMPTS):
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(self._keys.subjects)  # type: ignore[no-untyped-call]
                    current = self.load()
                    updated = current.revised(change(current).subjects)
                    pipe.multi()
                    pipe.set(self._keys.subjects, updated.model_dump_json())
                    pipe.set(self._keys.subjects_hash, updated.content_hash)
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    time.sleep(0.01)
        raise SubjectError(f"the subject set changed {EDIT_ATTEMPTS} times while being edited; try again")

    def replace(self, subjects: SubjectSet) -> SubjectSet:
        """Store ``subjects`` (a whole set, e.g. from a file) as the next version."""
        return self.edit(lambda _current: subjects)

    def put(self, subject: Subject) -> SubjectSet:
        """Add a subject, or change the one of the same name."""

        def change(current: SubjectSet) -> SubjectSet:
            others = [s for s in current.subjects if s.name.casefold() != subject.name.casefold()]
            return current.revised([*others, subject])

        return self.edit(change)

    def remove(self, name: str) -> SubjectSet:
        def change(current: SubjectSet) -> SubjectSet:
            if current.get(name) is None:
                raise SubjectError(f"no subject named {name!r}; known: {', '.join(current.names) or 'none'}")
            return current.revised([s for s in current.subjects if s.name != name])

        return self.edit(change)

    def seed(self, subjects: SubjectSet) -> bool:
        """Store ``subjects`` only if the store is empty (a worker's subjects file); True if it did."""
        if self.content_hash() is not None:
            return False
        self.replace(subjects)
        return True


class SubjectsWatcher:
    """A worker's view of the set: re-reads it when its hash changes, at most every ``reload_s``.

    While Redis is unreachable the worker keeps the set it has, so an outage never unassigns posts.
    """

    def __init__(self, store: SubjectStore, reload_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._reload_s = reload_s
        self._clock = clock
        self._checked_at = float("-inf")
        self.current = SubjectSet()

    def poll(self) -> SubjectSet | None:
        """The new set when it changed since the last poll, else None."""
        now = self._clock()
        if now - self._checked_at < self._reload_s:
            return None
        self._checked_at = now
        try:
            stored_hash = self._store.content_hash()
            if stored_hash is None or stored_hash == self.current.content_hash:
                return None
            loaded = self._store.load()
        except (redis.RedisError, SubjectError) as exc:
            log.warning("cannot read the subject set, keeping version %d: %s", self.current.version, exc)
            return None
        self.current = loaded
        log.info("subject set version %d applied: %s", loaded.version, ", ".join(loaded.names) or "none")
        return loaded


def subject_from_options(
    name: str,
    groups: list[str],
    exclude: list[str] | None = None,
    platforms: list[str] | None = None,
    description: str | None = None,
    threshold: float | None = None,
) -> Subject:
    """A subject from command-line style options: each group a comma-separated list of terms."""
    data: dict[str, object] = {
        "name": name,
        "include": [[term for term in group.split(",") if term.strip()] for group in groups],
        "exclude": exclude or [],
        "platforms": platforms or None,
        "description": description,
    }
    if threshold is not None:
        data["similarity_threshold"] = threshold
    return parse_subjects({"subjects": [data]}, f"subject {name!r}").subjects[0]
