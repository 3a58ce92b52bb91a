"""Words of a cleaned post: jieba for Chinese, a word splitter for English, and the hot-word filter.

One ``Segmenter`` owns a dedicated ``jieba.Tokenizer`` (never jieba's global one, which other code
may load its own dictionaries into). Building jieba's prefix dictionary takes about a second, so it
happens on first use, once, under a lock; the worker calls ``tokens`` from a thread off the event
loop. Subject terms go into the user dictionary with ``add_terms`` at any time: jieba's
``add_word`` is a couple of dict writes, so there is no re-initialisation. Terms are only ever
added: removing one would need jieba's ``del_word``, which forbids the word outright instead of
restoring its dictionary frequency; a stale subject term left behind is harmless.

Cutting reads jieba's dictionaries while ``add_terms`` writes them; under the GIL a reader sees a
term either entirely or not yet, which is all a segmentation needs, so only writers take the lock.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Any

import jieba
import regex
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


def hot_terms(tokens: Iterable[str]) -> list[str]:
    """The tokens that count as hot words, in order, repeats kept."""
    stop = stopwords()
    return [token for token in tokens if is_hot_term(token, stop)]


class Segmenter:
    """Tokenises cleaned posts; thread-safe; jieba is built lazily on the first Chinese post."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, hmm: bool = True) -> None:
        if max_chars < 1:
            raise TextError(f"max_chars must be >= 1, not {max_chars}")
        self.max_chars = max_chars
        self.hmm = hmm
        self._lock = threading.Lock()
        self._jieba: Any = None  # jieba.Tokenizer, built on first use
        self._terms: set[str] = set()  # every term added, so a re-sync adds only what is new

    def _tokenizer(self) -> Any:
        tokenizer = self._jieba
        if tokenizer is not None:
            return tokenizer
        with self._lock:
            if self._jieba is None:
                jieba.setLogLevel(logging.WARNING)  # jieba logs its dictionary build at DEBUG on stderr
                built = jieba.Tokenizer()
                built.initialize()
                for term in self._terms:
                    self._add_to_jieba(built, term)
                self._jieba = built
            return self._jieba

    @staticmethod
    def _add_to_jieba(tokenizer: Any, term: str) -> None:
        # jieba splits on anything outside [Han, ASCII letters and digits, +#&._%-], so a term with a
        # space can never be one jieba token; subject matching finds it as a substring instead.
        if " " in term:
            return
        tokenizer.add_word(term)
        if term.lower() != term:
            tokenizer.add_word(term.lower())  # jieba looks words up as written

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
        """Build jieba now (worker start-up) rather than on the first post."""
        self._tokenizer()

    def cut(self, text: str, lang: Lang) -> list[str]:
        """Every word token of ``text``: Latin lowercased, whitespace dropped, punctuation kept."""
        text = text[: self.max_chars]
        if lang == "en" or (lang == "other" and not _HAN.search(text)):
            pattern = _ENGLISH_WORD if lang == "en" else _OTHER_WORD
            return [word.replace("’", "'").lower() for word in pattern.findall(text)]
        words = self._tokenizer().cut(text, HMM=self.hmm)
        return [word.lower() if _LATIN_OR_DIGIT.search(word) else word for word in words if not word.isspace()]

    def tokens(self, clean: CleanText) -> list[str]:
        """Word tokens of what the post says (its own words, or what a pure repost passes on)."""
        return self.cut(clean.content, clean.lang)

    def hot(self, clean: CleanText) -> list[str]:
        """Hot-word tokens: ``tokens`` without stopwords, punctuation, numbers, URLs and lone letters."""
        return hot_terms(self.tokens(clean))
