"""Text processes give what the worker's own thread gives, subject terms included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from workers.stages import analyse_text
from workers.text_pool import TextPool

MAX_TERMS = 8


@pytest.fixture(scope="module")
def pool() -> Iterator[TextPool]:
    pool = TextPool(2, 5_000, MAX_TERMS)
    pool.warm_up()
    yield pool
    pool.close()


def test_the_pool_analyses_as_the_thread_does(pool: TextPool) -> None:
    texts = [post.text for post in SyntheticFeed("baseline", rate=50, seed=3).take(300)]
    segmenter = Segmenter()
    clock = StageClock("unit")
    assert pool.analyse(texts, (), clock) == [analyse_text(text, segmenter, MAX_TERMS) for text in texts]
    totals = clock.totals()
    assert totals["clean"][1] == totals["segment"][1] == len(texts)


def test_subject_terms_reach_every_process(pool: TextPool) -> None:
    texts = ["我们都在讨论瑞星咖啡新品的味道"] * 6
    before = pool.analyse(texts, ())
    assert all("瑞星咖啡" not in found.tokens for found in before)
    after = pool.analyse(texts, ("瑞星咖啡",))
    assert all("瑞星咖啡" in found.tokens for found in after)


def test_an_empty_batch(pool: TextPool) -> None:
    assert pool.analyse([], ()) == []
