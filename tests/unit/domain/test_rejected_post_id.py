"""The post id a dead-lettered record claims, for the logs: read when it can be, never trusted further."""

from __future__ import annotations

from pipeline.domain.posts import reject, rejected_post_id
from tests.support.bad_inputs import BAD_INPUTS
from tests.support.records import scored


def test_a_post_and_a_scored_post_name_their_id() -> None:
    assert rejected_post_id(reject('{"id": "wb-1", "text": ""}', "invalid post")) == "wb-1"
    assert rejected_post_id(reject(scored("wb-2").model_dump_json(), "refused", stage="aggregate")) == "wb-2"


def test_a_record_without_a_readable_id_names_none() -> None:
    for raw in ("{broken", "[1, 2]", '{"id": 42}', '{"text": "no id"}', '"just a string"'):
        assert rejected_post_id(reject(raw, "invalid post")) is None, raw


def test_an_overlong_id_is_cut() -> None:
    assert len(rejected_post_id(reject('{"id": "%s"}' % ("x" * 5000), "invalid post")) or "") == 200


def test_no_bad_input_breaks_the_lookup() -> None:
    """The logs read every dead letter, so no record a producer can write may make the lookup raise."""
    for kind, raw, _reason in BAD_INPUTS:
        rejected_post_id(reject(raw, kind))
    rejected_post_id(reject("[" * 100_000 + "]" * 100_000, "depth bomb"))
