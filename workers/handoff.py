"""Scored posts handed from a worker's score agent to its own aggregate agent, decoded once.

A worker that runs both agents reads back from posts.scored the very records its score agent
wrote a moment before. Decoding and validating them again was the largest single cost on the
aggregate side. The score agent keeps each record's bytes with the post it serialised; the
aggregate agent takes the post when it reads exactly those bytes, and decodes anything else
(another worker's records, a replay, a record evicted while a store was away) as before. Equal
bytes decode to an equal post, so what is stored does not depend on whether the handoff hit.
"""

from __future__ import annotations

from schemas.records import ScoredPost


class ScoredHandoff:
    """Recently delivered records of this process, by their exact bytes; the oldest leave first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._posts: dict[bytes, ScoredPost] = {}

    def keep(self, records: list[tuple[bytes, ScoredPost]]) -> None:
        self._posts.update(records)
        for _ in range(len(self._posts) - self.capacity):  # insertion order: the oldest first
            del self._posts[next(iter(self._posts))]

    def take(self, value: bytes) -> ScoredPost | None:
        return self._posts.pop(value, None)

    def __len__(self) -> int:
        return len(self._posts)
