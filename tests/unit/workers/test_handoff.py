"""A worker's aggregate agent takes back the posts its own score agent serialised, and decodes the rest."""

from __future__ import annotations

from schemas.records import ScoredPost
from tests.support.records import scored
from workers.handoff import ScoredHandoff
from workers.stages import decode_scored


def _records(*ids: str) -> list[tuple[bytes, ScoredPost]]:
    return [(post.model_dump_json().encode(), post) for post in (scored(post_id) for post_id in ids)]


def test_the_exact_bytes_give_back_the_post_once() -> None:
    handoff = ScoredHandoff(capacity=10)
    (value, post), *_ = _records("a")
    handoff.keep([(value, post)])
    assert handoff.take(bytes(value)) is post  # equal bytes read back from the broker, not the same object
    assert handoff.take(value) is None
    assert len(handoff) == 0


def test_the_oldest_leave_first_past_capacity() -> None:
    handoff = ScoredHandoff(capacity=3)
    records = _records("a", "b", "c", "d", "e")
    handoff.keep(records[:2])
    handoff.keep(records[2:])
    assert len(handoff) == 3
    assert [handoff.take(value) for value, _ in records] == [None, None, *(post for _, post in records[2:])]


def test_decoding_with_a_handoff_equals_decoding_without() -> None:
    handoff = ScoredHandoff(capacity=10)
    records = _records("a", "b", "c")
    handoff.keep(records[:2])  # "c" was written by another worker, or evicted
    raws = [value for value, _ in records] + [b'{"not": "a scored post"}']
    decoded, rejections = decode_scored(raws, handoff.take)
    assert decoded == decode_scored(raws)[0] == [post for _, post in records]
    assert decoded[0] is records[0][1] and decoded[2] is not records[2][1]
    assert [r.stage for r in rejections] == ["aggregate"]
    assert len(handoff) == 0
