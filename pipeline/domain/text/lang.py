"""Language of a post as ``zh`` / ``en`` / ``other``, from the scripts its letters are written in.

Why script counting and not a library: the pipeline only needs to pick a tokeniser (jieba or an
English word splitter) and a stopword list. langid/langdetect/fasttext-style detectors answer a
question we do not ask (which of ~100 languages), cost 0.1-1 ms a post, and are least reliable
exactly on what social posts are: very short, mixed Chinese with Latin brand names ("iPhone 15
真香"), emoji. Counting Han, kana, hangul and Latin letters is microseconds, deterministic and
explains itself. Its one blind spot, other Latin-script languages, is narrowed by a check for
common English function words on posts long enough for that check to mean something.
"""

from __future__ import annotations

import regex

from schemas.records import Lang

LANGS: tuple[Lang, ...] = ("zh", "en", "other")

# Enough letters to decide; a 100k-char post is decided on its beginning, in bounded time.
SAMPLE_CHARS = 2_000
# Han characters carry about a word each, Latin letters about a fifth of one: "iPhone 15 Pro 真香"
# is Chinese, an English tweet naming one city (北京) is English.
HAN_PER_LATIN_LETTER = 0.15
# Japanese mixes Han with kana; a little kana means Japanese, not Chinese.
KANA_SHARE_FOR_JAPANESE = 0.1
MIN_WORDS_FOR_ENGLISH_CHECK = 5

_HAN_RUNS = regex.compile(r"\p{Han}+")  # runs, not characters: one replacement a run
_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_LATIN = regex.compile(r"\p{Latin}")
_NOT_LETTER = regex.compile(r"\P{L}+")
_LATIN_WORD = regex.compile(r"\p{Latin}+(?:'\p{Latin}+)?")
# The commonest English function words: a Latin-script post of five or more words with none of
# them is taken as another language (French, Indonesian, pinyin...).
_MARKERS = (
    "a an the and or but if of to in on at for with from by as is are was were be been am "
    "i you he she it we they me my your his her its our their this that these those not no "
    "so do does did have has had will would can could just all what when who how there here "
    "im dont its very really about get got like love"
)
_ENGLISH_MARKERS = frozenset(_MARKERS.split())


def _script_counts(sample: str) -> tuple[int, int, int, int]:
    """Han, kana, Latin and all letters of the sample. Most posts are Han with at most some ASCII
    letters besides: for them two deletions answer, without the kana and Latin scans."""
    letters = _NOT_LETTER.sub("", sample)
    others = _HAN_RUNS.sub("", letters)
    if others.isascii():  # ASCII letters are Latin
        return len(letters) - len(others), 0, len(others), len(letters)
    return len(letters) - len(others), len(_KANA.findall(others)), len(_LATIN.findall(others)), len(letters)


def detect_lang(text: str) -> Lang:
    """``zh`` / ``en`` / ``other`` for any string; never raises."""
    sample = text[:SAMPLE_CHARS]
    han, kana, latin, letters = _script_counts(sample)
    if letters == 0:
        return "other"
    if kana and kana >= KANA_SHARE_FOR_JAPANESE * (han + kana):
        return "other"
    if han and han >= HAN_PER_LATIN_LETTER * latin and han + latin >= 0.5 * letters:
        return "zh"
    if latin >= 2 and latin >= 0.5 * letters:
        words = [w.lower() for w in _LATIN_WORD.findall(sample)]
        if len(words) >= MIN_WORDS_FOR_ENGLISH_CHECK and not any(w in _ENGLISH_MARKERS for w in words):
            return "other"
        return "en"
    return "other"
