"""Re-scoring's pure parts: a stored row back to its post, the prepared post the model reads, the windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.stores.clickhouse.sink import COLUMNS, scored_post_row
from schemas.records import SentimentProbabilities
from tests.support.records import scored
from workers.rescoring import prepared_again, rescore_rows, spans, stored_post
from workers.scoring.protocol import Prediction


class Always:
    model_id, model_version = "always", "v9"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def predict(self, texts: list[str]) -> list[Prediction]:
        self.texts += texts
        return [Prediction("positive", SentimentProbabilities(negative=0.1, neutral=0.1, positive=0.8)) for _ in texts]


def row_of(text: str | None = None, cleared: bool = False) -> dict[str, Any]:
    post = scored("p1", "negative", ("云帆", "星河"), text=text, terms=("停电",), duplicate=True, bot=True)
    post = post.model_copy(update={"post": post.post.model_copy(update={"hashtags": ("云帆",), "url": "https://x"})})
    row = dict(zip(COLUMNS, scored_post_row(post), strict=True))
    if cleared:
        row["text"] = ""  # as the retention TTL leaves it
    return row


def test_a_stored_row_gives_back_its_post() -> None:
    row = row_of("转发 //@某人: 停电了 #云帆#")
    post = stored_post(row)
    assert post is not None
    assert (post.id, post.text, post.hashtags, post.url, post.lang) == ("p1", row["text"], ("云帆",), "https://x", None)
    assert post.event_time == row["event_time"]


def test_a_row_whose_text_retention_cleared_is_left_out() -> None:
    row = row_of(cleared=True)
    assert stored_post(row) is None
    assert rescore_rows([row], Always()) == []


def test_only_the_verdict_changes() -> None:
    row = row_of()
    scorer = Always()
    [again] = rescore_rows([row], scorer)
    assert (again.sentiment, again.model_id, again.model_version) == ("positive", "always", "v9")
    assert again.subjects == ("云帆", "星河") and again.terms == ("停电",)
    assert (again.duplicate, again.suspected_bot, again.noise_reasons) == (True, True, ("flood",))
    post = stored_post(row)
    assert post is not None
    assert scorer.texts == [prepared_again(post, row).model_text]


def test_windows_are_cut_into_spans() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cut = list(spans(start, start + timedelta(minutes=150), timedelta(hours=1)))
    assert cut == [
        (start, start + timedelta(hours=1)),
        (start + timedelta(hours=1), start + timedelta(hours=2)),
        (start + timedelta(hours=2), start + timedelta(minutes=150)),
    ]
    assert list(spans(start, start)) == []


def test_a_row_that_no_longer_makes_a_valid_post_is_left_out() -> None:
    row = row_of()
    row["event_time"] = datetime(1900, 1, 1, tzinfo=UTC)
    assert stored_post(row) is None
