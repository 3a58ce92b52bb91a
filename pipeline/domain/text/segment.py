"""Words of a cleaned post: jieba-rs for Chinese, a word splitter for English, and the hot-word filter.

Chinese is cut by jieba-rs (the ``rjieba`` binding, Rust): the same dictionary, DAG and HMM as the
Python jieba this module used before, several times faster and smaller (docs/benchmarks.md). Its HMM
path keeps two kinds of run whole that Python jieba splits: ASCII joined by ``-._`` (``check-in``,
``2008-06-04``, ``qq.com``) and Han characters outside U+4E00..U+9FD5 (extension A and B);
``_as_python_jieba`` splits them as Python jieba did, so tokens and hot words stay what they were
(``tests/unit/domain/text/test_segment_parity.py`` compares the two on the test suite's texts).

One ``Segmenter`` owns a dedicated ``rjieba.Jieba`` (never rjieba's module-level one, which other
code may add words to), built on first use, once, under a lock. Subject terms go into its dictionary
with ``add_terms`` at any time, without rebuilding. Terms are only ever added: a stale subject term
left behind is harmless.

Thread safety: rjieba's ``cut`` releases the GIL, and its ``add_word`` refuses to run while a cut is
in progress (PyO3 raises ``RuntimeError: Already borrowed``), so every use of the tokenizer, cuts
included, holds the segmenter's lock: cuts on one segmenter run one at a time, and ``add_terms``
waits for the cut in progress. The worker cuts from one text thread, so the lock is never contended
there; a caller that wants parallel cuts uses one segmenter per thread (or process).
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from itertools import filterfalse, islice

import regex
import rjieba
import stopwordsiso

from pipeline.domain.text import TextError
from pipeline.domain.text.clean import CleanText
from schemas.records import Lang

DEFAULT_MAX_CHARS = 5_000  # posts are cut to this at ingest (text_max_chars); a bound for the rest

_ENGLISH_WORD = regex.compile(r"[\p{Latin}\d]+(?:['’][\p{Latin}]+)*")
_OTHER_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_HAN = regex.compile(r"\p{Han}")
_LATIN_OR_DIGIT = regex.compile(r"[A-Za-z0-9]")
# A word: letters, digits and marks, with the joiners words carry inside (don't, covid-19, c++).
_WORDLIKE = regex.compile(r"^[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}'’+#.&\-]*[\p{L}\p{M}\p{N}+#])?$")
_URL_LIKE = regex.compile(r"(?i)^(?:https?|ftp|www)\b|://|\.(?:com|cn|net|org)\b")

# Python jieba's blocks: runs of these characters go to its dictionary and HMM; any other character is a
# token of its own. jieba-rs's blocks also take the Han characters outside U+4E00..U+9FD5.
_PY_BLOCK = "\u4e00-\u9fd5a-zA-Z0-9+#&._%\\-"
_PY_PIECES = regex.compile(f"[{_PY_BLOCK}]+|.", regex.DOTALL)
_OUTSIDE_PY_BLOCK = regex.compile(f"[^{_PY_BLOCK}]")
# How Python jieba's HMM splits ASCII it has no word for: letters and digits (with a decimal part and a
# percent sign), and the run of other characters between them.
_ASCII_PIECES = regex.compile(r"[a-zA-Z0-9]+(?:\.\d+)?%?|[^a-zA-Z0-9]+")
# A text in which jieba-rs's HMM may keep whole what Python jieba splits; most Chinese posts have none.
# One character class (a set difference), not a lookahead at every position: three times quicker.
_MAY_DIFFER = regex.compile(r"[-._+#&%]|[\p{Han}--[\u4e00-\u9fd5]]", regex.V1)


def _lower_latin(word: str) -> str:
    """The word lowercased when it holds a Latin letter or a digit (``iPhone`` → ``iphone``, ``Α股`` kept)."""
    lowered = word.lower()
    # Most words are Han, which lower() leaves as they are: the regex runs only when something changed.
    return lowered if lowered == word or word.isascii() or _LATIN_OR_DIGIT.search(word) else word


def _as_python_jieba(words: list[str], known: Callable[[str], bool]) -> list[str]:
    """``words`` of jieba-rs's HMM cut, with the runs Python jieba splits split as it did (a word in the
    dictionary, subject terms included, stays whole)."""
    out: list[str] = []
    for word in words:
        split = len(word) > 1 and (_OUTSIDE_PY_BLOCK.search(word) or (word.isascii() and not word.isalnum()))
        if not split or known(word):
            out.append(word)
            continue
        for piece in _PY_PIECES.findall(word):
            if len(piece) > 1 and piece.isascii() and not piece.isalnum():
                out.extend(_ASCII_PIECES.findall(piece))
            else:
                out.append(piece)
    return out


@cache
def stopwords() -> frozenset[str]:
    """Chinese and English stopwords of stopwordsiso, casefolded, in the same width form as clean text."""
    words = stopwordsiso.stopwords(["zh", "en"])
    folded = {unicodedata.normalize("NFKC", word).casefold() for word in words}
    return frozenset(folded | {word.casefold() for word in words})


def is_hot_term(token: str, stop: frozenset[str] | None = None) -> bool:
    """Whether a token may be a hot word: a word with letters, not a stopword, number, URL or lone letter."""
    token = token.strip()
    if not token or _URL_LIKE.search(token):
        return False
    if not _WORDLIKE.match(token) or not any(unicodedata.category(ch).startswith("L") for ch in token):
        return False  # punctuation, numbers, emoji, kaomoji pieces (・ω・)
    if len(token) == 1 and not _HAN.match(token):
        return False
    return token.casefold() not in (stop if stop is not None else stopwords())


# Tokens repeat (a few thousand make up most of a stream), and the checks above cost several µs each, a
# few dozen times a post: remembering the answer for the commonest tokens removes most of that.
_is_common_hot_term = lru_cache(maxsize=65_536)(is_hot_term)


def hot_terms(tokens: Iterable[str]) -> list[str]:
    """The tokens that count as hot words, in order, repeats kept."""
    return [token for token in tokens if _is_common_hot_term(token)]


def distinct_hot_terms(tokens: Iterable[str], limit: int) -> tuple[str, ...]:
    """The first ``limit`` distinct hot words, in order of first use: each distinct token is checked
    once, and the checks stop at the limit (a post has dozens of tokens, most of them repeats)."""
    return tuple(islice(filter(_is_common_hot_term, dict.fromkeys(tokens)), limit))


class Segmenter:
    """Tokenises cleaned posts; thread-safe; jieba-rs is built lazily on the first Chinese post."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, hmm: bool = True) -> None:
        if max_chars < 1:
            raise TextError(f"max_chars must be >= 1, not {max_chars}")
        self.max_chars = max_chars
        self.hmm = hmm
        self._lock = threading.Lock()  # held by every use of the tokenizer: see the module's notes
        self._jieba: rjieba.Jieba | None = None  # built on first use
        self._terms: set[str] = set()  # every term added, so a re-sync adds only what is new

    def _tokenizer(self) -> rjieba.Jieba:
        """The tokenizer, built if need be; the caller holds the lock."""
        if self._jieba is None:
            built = rjieba.Jieba()
            for term in self._terms:
                self._add_to_jieba(built, term)
            self._jieba = built
        return self._jieba

    @staticmethod
    def _add_to_jieba(tokenizer: rjieba.Jieba, term: str) -> None:
        # jieba splits on anything outside [Han, ASCII letters and digits, +#&._%-], so a term with a
        # space can never be one jieba token; subject matching finds it as a substring instead.
        if " " in term:
            return
        tokenizer.add_word(term, None, None)  # None: jieba's suggested frequency, as Python jieba's add_word
        if term.lower() != term:
            tokenizer.add_word(term.lower(), None, None)  # jieba looks words up as written

    def add_terms(self, terms: Iterable[str]) -> int:
        """Add words to the user dictionary (subject terms); returns how many were new."""
        new = [t for t in dict.fromkeys(unicodedata.normalize("NFC", str(t)).strip() for t in terms) if t]
        with self._lock:
            new = [term for term in new if term not in self._terms]
            self._terms.update(new)
            if self._jieba is not None:
                for term in new:
                    self._add_to_jieba(self._jieba, term)
        return len(new)

    def warm_up(self) -> None:
        """Build jieba-rs now (worker start-up) rather than on the first post."""
        with self._lock:
            self._tokenizer()

    def cut(self, text: str, lang: Lang) -> list[str]:
        """Every word token of ``text``: Latin lowercased, whitespace dropped, punctuation kept."""
        text = text[: self.max_chars]
        if lang == "en" or (lang == "other" and not _HAN.search(text)):
            pattern = _ENGLISH_WORD if lang == "en" else _OTHER_WORD
            return [word.replace("’", "'").lower() for word in pattern.findall(text)]
        with self._lock:
            tokenizer = self._tokenizer()
            words = tokenizer.cut(text, self.hmm)
            if self.hmm and _MAY_DIFFER.search(text):
                words = _as_python_jieba(words, tokenizer.has_word)
        if text.lower() == text:  # nothing to lowercase, as in most Chinese posts: one check, not one a word
            return list(filterfalse(str.isspace, words))
        return [_lower_latin(word) for word in words if not word.isspace()]

    def tokens(self, clean: CleanText) -> list[str]:
        """Word tokens of what the post says (its own words, or what a pure repost passes on)."""
        return self.cut(clean.content, clean.lang)

    def hot(self, clean: CleanText) -> list[str]:
        """Hot-word tokens: ``tokens`` without stopwords, punctuation, numbers, URLs and lone letters."""
        return hot_terms(self.tokens(clean))
