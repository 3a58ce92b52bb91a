"""Lexicon-guided phrases (training.augment): frames, negation, the agreement filter and what is held out."""

from __future__ import annotations

from training.augment import CORPUS, _normalised, confirmed_words, evaluation_keys, lexicon, lexicon_phrases, phrases
from training.corpora import Example
from training.folders import split_examples


def _train(*rows: tuple[str, str]) -> list[Example]:
    return [Example(text, label, "social", "train") for text, label in rows]  # type: ignore[arg-type]


def test_negation_frames_turn_positive_adjectives_negative_and_skip_negative_ones() -> None:
    made = {(e.text, e.label) for e in phrases({"舒适": "positive", "糟糕": "negative"})}
    assert {
        ("舒适", "positive"),
        ("太舒适了", "positive"),
        ("不舒适", "negative"),
        ("一点也不舒适", "negative"),
    } <= made
    assert {("糟糕", "negative"), ("太糟糕了", "negative")} <= made
    assert not any(text in {"不糟糕", "一点也不糟糕"} for text, _ in made)  # faint praise at most: not guessed


def test_only_adjectives_take_degree_and_negation_frames() -> None:
    made = {e.text for e in phrases({"英雄": "positive"})}
    assert made == {"英雄", "英雄！"}


def test_a_word_is_kept_only_where_the_training_texts_agree_with_the_lexicon() -> None:
    words = {"满意": "positive", "照理": "positive", "罕见": "negative"}
    train = _train(
        *[("很满意这次购物", "positive")] * 3,
        ("不满意", "negative"),
        *[("照理说应该退款", "negative")] * 3,
        ("罕见的好天气", "positive"),  # one occurrence: too few to judge
        *[("照理说", "neutral")] * 9,  # neutral texts do not vote
    )
    assert confirmed_words(words, train) == {"满意": "positive"}  # type: ignore[arg-type]


def test_phrases_are_balanced_labelled_training_texts_and_never_an_evaluation_text() -> None:
    added, counts = lexicon_phrases(400, split_examples("train"), seed=13)
    assert counts["lexicon_words"] == len(lexicon()) > counts["confirmed_words"] > 0
    assert counts["used"] == len(added) == 400
    assert {e.corpus for e in added} == {CORPUS} and {e.split for e in added} == {"train"}
    assert sum(e.label == "positive" for e in added) == sum(e.label == "negative" for e in added) == 200
    held_out = evaluation_keys()
    assert "太好了" in held_out  # a probe
    assert not any(_normalised(e.text) in held_out for e in added)
    assert added == lexicon_phrases(400, split_examples("train"), seed=13)[0]  # seeded
