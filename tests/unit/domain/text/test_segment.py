"""Segmentation: jieba-rs on a private tokenizer, subject terms as words, and the hot-word filter."""

from __future__ import annotations

import threading
import time

import pytest
import regex
import rjieba
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.text import TextError
from pipeline.domain.text.clean import clean
from pipeline.domain.text.segment import (
    _MAY_DIFFER,
    Segmenter,
    distinct_hot_terms,
    hot_terms,
    is_hot_term,
    stopwords,
)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    built = Segmenter()
    built.warm_up()
    return built


def test_chinese_tokens_and_hot_words(segmenter: Segmenter) -> None:
    post = clean("#双十一# 这次物流真的太慢了，2024年最差体验 http://t.cn/x 😡")
    tokens = segmenter.tokens(post)
    assert "物流" in tokens and ("太慢" in tokens or "慢" in tokens)
    hot = segmenter.hot(post)
    assert "物流" in hot
    assert not {"的", "了", "，", "2024", "😡", "http"} & set(hot)


def test_subject_terms_become_single_words_without_rebuilding_jieba() -> None:
    segmenter = Segmenter()
    text = clean("云帆手机这次真的让人失望，极光汽车也一样")
    before = segmenter.tokens(text)
    assert "云帆手机" not in before
    tokenizer = segmenter._jieba
    assert tokenizer is not None
    assert segmenter.add_terms(["云帆手机", "极光汽车", "云帆手机", " "]) == 2
    assert segmenter.add_terms(["云帆手机"]) == 0
    after = segmenter.tokens(text)
    assert "云帆手机" in after and "极光汽车" in after
    assert segmenter._jieba is tokenizer


def test_terms_added_before_jieba_is_built_are_applied_when_it_is() -> None:
    segmenter = Segmenter()
    segmenter.add_terms(["星河乳业", "Model Y", "YunFan"])
    tokens = segmenter.tokens(clean("星河乳业的奶粉和YunFan手机"))
    assert "星河乳业" in tokens and "yunfan" in tokens


def test_private_tokenizer_leaves_the_global_one_alone() -> None:
    segmenter = Segmenter()
    segmenter.add_terms(["茶语奶茶店"])
    segmenter.warm_up()
    assert segmenter._jieba is not None and segmenter._jieba is not rjieba._DEFAULT_JIEBA
    assert segmenter._jieba.has_word("茶语奶茶店")
    assert not rjieba._DEFAULT_JIEBA.has_word("茶语奶茶店")


def test_english_posts_are_split_into_lowercase_words(segmenter: Segmenter) -> None:
    post = clean("I really DON'T like this Phone, it's awful!!! 100% a waste of money :( #fail")
    assert post.lang == "en"
    tokens = segmenter.tokens(post)
    assert "phone" in tokens and "don't" in tokens and "100" in tokens
    assert segmenter.hot(post) == ["phone", "awful", "waste", "money", "fail"]


def test_hot_term_filter() -> None:
    assert is_hot_term("物流") and is_hot_term("iphone15") and is_hot_term("贵")
    for token in ("的", "the", "a", "x", "2024", "3.5", "，", "😡", "http://t.cn/x", "www.a.com", " ", "", "・ω・"):
        assert not is_hot_term(token), token
    assert hot_terms(["物流", "的", "物流"]) == ["物流", "物流"]
    assert {"的", "the", "don't"} <= stopwords()


TOKENS = ["物流", "的", "太慢", "2024", "the", "iphone15", "，", "贵", "x", "快递", "好"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS)), st.integers(0, 6))
def test_distinct_hot_terms_are_the_first_distinct_hot_words(tokens: list[str], limit: int) -> None:
    assert distinct_hot_terms(tokens, limit) == tuple(dict.fromkeys(hot_terms(tokens)))[:limit]


def test_initialisation_is_lazy_and_happens_once_across_threads() -> None:
    segmenter = Segmenter()
    assert segmenter._jieba is None
    results: list[list[str]] = []
    tokenizers: list[object] = []

    def work() -> None:
        results.append(segmenter.tokens(clean("华为手机真好用")))
        tokenizers.append(segmenter._jieba)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(t) for t in tokenizers}) == 1
    assert all(result == results[0] for result in results)


def test_terms_can_be_added_while_another_thread_cuts() -> None:
    # rjieba's add_word raises "Already borrowed" while a cut (which releases the GIL) is in progress.
    segmenter = Segmenter()
    segmenter.warm_up()
    post = clean("华为手机真好用，云帆手机也不错。" * 300)
    failures: list[BaseException] = []
    done = threading.Event()

    def cut() -> None:
        try:
            while not done.is_set():
                segmenter.tokens(post)
        except BaseException as exc:  # reported below, in the test's own thread
            failures.append(exc)

    thread = threading.Thread(target=cut)
    thread.start()
    try:
        for i in range(200):
            segmenter.add_terms([f"新词{i}"])
    finally:
        done.set()
        thread.join()
    assert not failures
    assert "新词7" in segmenter.tokens(clean("这是新词7吗"))


def test_long_posts_are_cut_to_max_chars(segmenter: Segmenter) -> None:
    post = clean("华为手机真好用，" * 15_000)
    started = time.perf_counter()
    tokens = segmenter.tokens(post)
    assert time.perf_counter() - started < 2.0
    assert len("".join(tokens)) <= segmenter.max_chars
    with pytest.raises(TextError):
        Segmenter(max_chars=0)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_and_hot_words_obey_the_filter(segmenter: Segmenter, text: str) -> None:
    post = clean(text)
    tokens = segmenter.tokens(post)
    assert all(token and not token.isspace() for token in tokens)
    assert all(is_hot_term(token) for token in segmenter.hot(post))


def test_the_texts_jieba_rs_may_cut_unlike_python_jieba_hold_a_joiner_or_rare_han() -> None:
    """What sends a text through ``_as_python_jieba``, checked on every code point: ASCII joiners, and Han
    outside U+4E00..U+9FD5 (jieba-rs's blocks take them, Python jieba's do not)."""
    han = regex.compile(r"\p{Han}")
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        rare_han = han.match(char) is not None and not 0x4E00 <= code <= 0x9FD5
        assert (_MAY_DIFFER.search(char) is not None) == (char in "-._+#&%" or rare_han), hex(code)
