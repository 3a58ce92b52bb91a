"""Matching posts to subjects: substrings and tokens, AND of ORs, vetoes, platforms, embeddings."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.subjects import SubjectError
from pipeline.domain.subjects.match import SubjectMatcher, match_subjects, matcher_for
from pipeline.domain.subjects.model import Subject, SubjectSet
from pipeline.domain.text.clean import clean

SUBJECTS = SubjectSet(
    subjects=(
        Subject(name="华为", include=(("华为", "Huawei"),), exclude=("华为路",)),
        Subject(name="华为手机", include=(("华为手机", "mate 60"),)),
        Subject(name="云帆手机", include=(("云帆", "Yunfan"), ("手机", "phone")), platforms=("weibo", "douyin")),
        Subject(name="AI", include=(("ai", "人工智能"),)),
        Subject(
            name="高考",
            include=(("高考",),),
            exclude=("高考移民",),
            description="全国高等学校招生统一考试",
            similarity_threshold=0.9,
        ),
    )
)


def subjects_of(text: str, tokens: tuple[str, ...] = (), platform: str | None = "weibo", **kw: object) -> set[str]:
    return set(match_subjects(clean(text), list(tokens), SUBJECTS, platform=platform, **kw))  # type: ignore[arg-type]


def test_terms_match_as_substrings_whatever_the_segmentation() -> None:
    assert subjects_of("华为手机真好") == {"华为", "华为手机"}
    assert subjects_of("我用华为") == {"华为"}


def test_and_of_ors() -> None:
    assert subjects_of("云帆的新手机不错") == {"云帆手机"}
    assert subjects_of("YUNFAN phone is great") == {"云帆手机"}
    assert subjects_of("云帆的新电脑") == set()


def test_exclude_vetoes() -> None:
    assert subjects_of("华为路上堵车了") == set()
    assert subjects_of("今年高考移民又多了") == set()


def test_latin_terms_need_word_boundaries_and_ignore_case_and_width() -> None:
    assert subjects_of("I said hello") == set()
    assert subjects_of("AI is everywhere") == {"AI"}
    assert subjects_of("新出的AI手机") == {"AI"}
    assert subjects_of("ＨＵＡＷＥＩ yyds") == {"华为"}
    assert subjects_of("huaweii") == set()
    assert subjects_of("新款Mate 60发布") == {"华为手机"}


def test_platform_filter() -> None:
    assert subjects_of("云帆手机", platform="WEIBO") == {"云帆手机"}
    assert subjects_of("云帆手机", platform="x") == set()
    assert subjects_of("云帆手机", platform=None) == set()
    assert subjects_of("华为", platform=None) == {"华为"}


def test_hashtags_mentions_and_repost_chain_count() -> None:
    assert subjects_of("#华为# 太棒了") == {"华为"}
    assert subjects_of("@华为终端 你们管不管") == {"华为"}
    assert subjects_of("说得对//@某人:华为手机真好") == {"华为", "华为手机"}


def test_tokens_match_exactly() -> None:
    assert subjects_of("人工 智能真好", tokens=("人工智能",)) == {"AI"}
    assert subjects_of("nothing here", tokens=("Huawei",)) == {"华为"}


def test_embeddings_match_subjects_with_a_description() -> None:
    described = {"高考": np.array([1.0, 0.0, 0.0])}
    close = np.array([0.95, 0.1, 0.0])
    far = np.array([0.5, 0.5, 0.5])
    assert subjects_of("今天考试", embedding=close, description_embeddings=described) == {"高考"}
    assert subjects_of("今天考试", embedding=far, description_embeddings=described) == set()
    assert subjects_of("今天考试", embedding=close, description_embeddings=None) == set()
    assert subjects_of("今天考试", embedding=np.zeros(3), description_embeddings=described) == set()
    assert subjects_of("今天考试", embedding=np.full(3, np.nan), description_embeddings=described) == set()
    # The veto still applies to a semantic match.
    assert subjects_of("高考移民", embedding=close, description_embeddings=described) == set()
    with pytest.raises(SubjectError, match="shape"):
        subjects_of("今天考试", embedding=np.ones(4), description_embeddings=described)


def test_several_subjects_in_set_order_and_an_empty_set() -> None:
    post = clean("华为手机和云帆手机，AI 都有")
    assert match_subjects(post, [], SUBJECTS, platform="weibo") == ("华为", "华为手机", "云帆手机", "AI")
    assert match_subjects(post, [], SubjectSet(), platform="weibo") == ()


def test_matchers_are_compiled_once_per_content() -> None:
    assert matcher_for(SUBJECTS) is matcher_for(SUBJECTS.model_copy(update={"version": 9}))
    other = SUBJECTS.revised([*SUBJECTS.subjects, Subject(name="春运", include=(("春运",),))])
    assert matcher_for(other) is not matcher_for(SUBJECTS)


def test_many_terms_and_a_huge_post_stay_fast() -> None:
    rng = np.random.default_rng(0)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    terms = {"".join(rng.choice(han, size=int(rng.integers(2, 5)))) for _ in range(1000)}
    big = SubjectSet(subjects=tuple(Subject(name=f"s{i}", include=((t,),)) for i, t in enumerate(sorted(terms))))
    matcher = SubjectMatcher(big)
    text = clean("".join(rng.choice(han, size=100_000)))
    started = time.perf_counter()
    matcher.match(text, [], platform="weibo")
    assert time.perf_counter() - started < 2.0


# Noise without the characters that legitimately hide a term (markup, links, tags, Latin letters
# that would glue onto "huawei"): with those out, an embedded term must always be found.
NOISE = st.text(
    alphabet=st.characters(blacklist_characters="<>/@#&:", blacklist_categories=("Lu", "Ll", "Lt", "Lm", "Cs")),
    max_size=200,
)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), NOISE, st.sampled_from(["华为", "huawei", "云帆手机"]))
def test_never_raises_and_an_embedded_term_always_matches(anything: str, noise: str, term: str) -> None:
    subjects_of(anything)
    assert subjects_of(f"{noise} {term} {noise}") & {"华为", "云帆手机"}
