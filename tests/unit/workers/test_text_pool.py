"""Text processes give what the worker's own thread gives, subject terms and noise signatures included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.domain.noise.filter import NoiseFilter
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from pipeline.settings import STUDENT_MODEL
from workers.scoring.stacking import load_companion
from workers.stages import TextAnalysis, analyse_batch
from workers.text_pool import TextPool

MAX_TERMS = 8


SIGNER = NoiseFilter().signer


def comparable(found: TextAnalysis) -> tuple[object, ...]:
    signature = found.signature
    signed = None if signature is None else (signature.digest, signature.bands, signature.hashvalues.tolist())
    return found.clean, found.tokens, found.terms, signed, found.companion


@pytest.fixture(scope="module")
def pool() -> Iterator[TextPool]:
    """Two processes that also score the default (stacked) model's TF-IDF half."""
    pool = TextPool(2, 5_000, MAX_TERMS, SIGNER, STUDENT_MODEL)
    pool.warm_up()
    yield pool
    pool.close()


def test_the_pool_analyses_as_the_thread_does(pool: TextPool) -> None:
    texts = [post.text for post in SyntheticFeed("baseline", rate=50, seed=3).take(300)]
    segmenter = Segmenter()
    clock = StageClock("unit")
    cpu_before = pool.cpu_s
    in_pool = [comparable(found) for found in pool.analyse(texts, (), clock)]
    assert pool.cpu_s > cpu_before  # the processes' CPU on the chunks, for the stages bench
    companion = load_companion(STUDENT_MODEL)
    in_thread = analyse_batch(texts, segmenter, SIGNER, MAX_TERMS, companion=companion)
    assert in_pool == [comparable(found) for found in in_thread]
    assert sum(signed is not None for *_, signed, _ in in_pool) > len(texts) / 2
    assert all(found.companion is not None for found in in_thread)
    totals = clock.totals()
    assert totals["clean"][1] == totals["segment"][1] == totals["signature"][1] == totals["stack"][1] == len(texts)


def test_subject_terms_reach_every_process(pool: TextPool) -> None:
    texts = ["我们都在讨论瑞星咖啡新品的味道"] * 6
    before = pool.analyse(texts, ())
    assert all("瑞星咖啡" not in found.tokens for found in before)
    after = pool.analyse(texts, ("瑞星咖啡",))
    assert all("瑞星咖啡" in found.tokens for found in after)


def test_an_empty_batch(pool: TextPool) -> None:
    assert pool.analyse([], ()) == []
