"""Cleaning that keeps meaning: a post's own words, with what was around them pulled out as data.

``clean(text)`` never raises, runs in time linear in the text, and is idempotent on its output text
(``clean(clean(s).text).text == clean(s).text``): every removal leaves a space, so no removal joins
two fragments into a new URL, mention, entity or tag; a removal can still expose one (``@0#A``:
``#A`` follows a space once ``@0`` is gone), so words that still hold a trigger character are
cleaned again, to a fixed point (a few rounds at most, and most posts need none).

Unicode forms, decided: not NFKC. NFKC turns the full-width Chinese punctuation ，！？：；（）
into ASCII (texts the model was trained on use the full-width forms, and jieba splits on them
just as well), and it breaks kaomoji (´ becomes a space and a combining accent, ﾟ a combining
mark), ™ becomes TM and ① becomes 1. Instead: NFC (canonical only; it does merge the CJK
compatibility ideographs into the unified ones), then full-width ASCII letters, digits and
symbols are folded to half-width (so ＃话题＃, ＠某人 and ｉＰｈｏｎｅ１５ are found), keeping
，！？：；（）～ full-width. Matching and dedup keys use NFKC + casefold internally, where looks do
not matter. Traditional characters are not converted to simplified.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

import regex

from pipeline.domain.text.lang import detect_lang
from schemas.records import Lang

MAX_UNESCAPE_PASSES = 4  # &amp;amp;lt; (double-escaped) needs two; more is an attack, not a feed
MAX_TAG_ROUNDS = 4
MAX_LISTED = 64  # per list, so a pathological post cannot make a huge record

# Chinese full-width punctuation that stays full-width; every other FF01-FF5E form is folded.
KEEP_FULL_WIDTH = "！（），：；？～"
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F) if chr(cp) not in KEEP_FULL_WIDTH}
_FOLD[0x3000] = 0x20  # ideographic space
_FOLDABLE = re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(_FOLD)) + "]")
# Invisible characters used to defeat matching and dedup (云帆\u200b手机), controls, lone
# surrogates (they cannot be encoded to UTF-8 later) and U+FFFD (a decoding scar, no meaning).
# ZWJ (200D) and variation selectors stay: they are part of emoji sequences.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\ufffd\ud800-\udfff]"
)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]{0,500})?/?>")
_URL = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:https?|ftp)://|www\.|t\.cn/)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE
)
_URL_TRAILING = ".,;:!?)]'\""
_RT = re.compile(r"^\s*RT\s?@([\w\-]{1,30})\s?:\s*", re.IGNORECASE)
_REPLY = re.compile(r"^\s*回复\s?@([\w\-]{1,30})\s?[:：]")
_CHAIN = re.compile(r"//\s?@([^\s:：/@]{1,30})\s?[:：]")
_WEIBO_TAG = re.compile(r"#([^#\s](?:[^#\n]{0,48}[^#\s])?)#")
_TAG = re.compile(r"(?<![\w&@#/.])#(\w[\w\-]{0,49})")
_MENTION = re.compile(r"(?<![\w@.])@([\w\-]{1,30})")
_WORD = re.compile(r"\w")
_TRIGGER = re.compile(r"[#@<&/]|^(?:RT|回复)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
# What a pure repost says instead of words of its own.
REPOST_PLACEHOLDERS = frozenset({"转发微博", "轉發微博", "转发", "轉發", "repost", "retweet", "rt"})

_EMOJI = regex.compile(
    r"\p{RI}\p{RI}|[0-9#*]\uFE0F?\u20E3"
    r"|(?![\u00a9\u00ae\u2122\u2139])\p{Extended_Pictographic}[\uFE0F\p{EMod}]*"
    r"(?:\u200D\p{Extended_Pictographic}[\uFE0F\p{EMod}]*)*"
)
_FACE = "・･ω´`°□▽∀ﾟ゜^＾≧≦╥﹏ಥ益皿⊙๑•‿ᴗ◕∇Д〃｀≖눈ㅂ︶︿ε﹃≡╬⌒"
_KAOMOJI = regex.compile(
    r"[ヽ\\ノ╯┌٩~＼]?[(（](?=[^()（）\n]{0,12}[" + _FACE + r"])"
    r"[^()（）\n\p{Han}\p{N}]{1,12}[)）][ノﾉ/╯┐۶~／]*(?:\s?︵\s?┻━┻)?"
    r"|(?<![A-Za-z0-9])(?:[:;=][\-^']?[)(DPpO3\]\[|]|\^[_\-.ω]?\^|T[_\-.^A]T|QAQ|QwQ|orz|OTZ|<3)(?![A-Za-z0-9])"
)


@dataclass(frozen=True, slots=True)
class RepostHop:
    """One ``//@user: words`` step of a repost chain, nearest first; ``text`` cleaned like a post's."""

    user: str
    text: str


@dataclass(frozen=True, slots=True)
class CleanText:
    text: str  # the poster's own words; empty for a pure repost
    hashtags: tuple[str, ...]
    mentions: tuple[str, ...]
    urls: tuple[str, ...]
    emoji: tuple[str, ...]  # emoji and kaomoji, in order, still present in ``text``
    repost_chain: tuple[RepostHop, ...]
    lang: Lang

    @property
    def content(self) -> str:
        """What the post says: its own words, or for a pure repost the words it passes on."""
        if self.text:
            return self.text
        return next((hop.text for hop in self.repost_chain if hop.text), "")


def fold_width(text: str) -> str:
    """NFC, then full-width ASCII forms to half-width except Chinese punctuation (see module doc)."""
    text = unicodedata.normalize("NFC", text)
    # translate() looks every character up; a search finds the few posts that need it far sooner.
    return text.translate(_FOLD) if _FOLDABLE.search(text) else text


def _prepare(text: str) -> str:
    """Invisible characters out, forms folded and HTML entities decoded, to a fixed point.

    Folding runs before decoding (＆ｌｔ；) and again after it (&#65313; is Ａ), so the loop.
    """
    for _ in range(MAX_UNESCAPE_PASSES):
        before = text
        text = fold_width(_INVISIBLE.sub("", text))
        if "&" in text:
            text = html.unescape(text)
        if text == before:
            break
    return _INVISIBLE.sub("", _HTML_TAG.sub(" ", text))


def _take_urls(text: str) -> tuple[str, list[str]]:
    urls: list[str] = []

    def cut(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(_URL_TRAILING)
        urls.append(url)
        return " " + match.group(0)[len(url) :]

    return _URL.sub(cut, text), urls


def _weibo_tags(text: str, tags: list[str] | None) -> str:
    """``#话题#`` becomes `` 话题 ``. A rejected candidate is skipped by one character, not consumed,
    so its closing # can still open the next topic (``#a b#c#``: c is a topic)."""
    parts: list[str] = []
    done = start = 0
    while match := _WEIBO_TAG.search(text, start):
        inner = _SPACE.sub(" ", match.group(1)).strip()
        # "#a and #b#" is two twitter tags, not one weibo topic: spaces only in non-ASCII topics.
        if not _WORD.search(inner) or (" " in inner and inner.isascii()):
            start = match.start() + 1
            continue
        if tags is not None:
            tags.append(inner)
        parts += [text[done : match.start()], f" {inner} "]
        done = start = match.end()
    parts.append(text[done:])
    return "".join(parts)


def _inline_tags(text: str, tags: list[str] | None) -> str:
    """Topic words stay in the text (they carry meaning); only the # marks go."""

    def twitter(match: re.Match[str]) -> str:
        tag = match.group(1).rstrip("-")
        if tag.isdigit():  # "#1" is a rank, not a topic
            return match.group(0)
        if tags is not None:
            tags.append(tag)
        return " " + match.group(0)[1:]

    return _TAG.sub(twitter, _weibo_tags(text, tags)) if "#" in text else text


def _drop_mentions(text: str, mentions: list[str] | None) -> str:
    def cut(match: re.Match[str]) -> str:
        name = match.group(1).rstrip("-")
        if mentions is not None:
            mentions.append(name)
        return " " + match.group(1)[len(name) :]

    return _MENTION.sub(cut, text) if "@" in text else text


def _finish(text: str, tags: list[str] | None, mentions: list[str] | None) -> str:
    # Taking out one tag or mention can expose another ("@0#A": #A follows a space once @0 is
    # gone; "#<A#>" leaves "<A >", which reads as HTML), so repeat to a fixed point; each round
    # that changes anything removes a #, an @ or a <.
    for _ in range(MAX_TAG_ROUNDS):
        before = text
        text = _drop_mentions(_inline_tags(text, tags), mentions)
        text = _HTML_TAG.sub(" ", text) if "<" in text else text
        if text == before:
            break
    text = _SPACE.sub(" ", text).strip()
    return "" if text.casefold() in REPOST_PLACEHOLDERS else text


def extract_emoji(text: str) -> list[str]:
    """Emoji sequences and kaomoji, in order of appearance; an emoji inside a kaomoji is not repeated."""
    found: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    for match in _KAOMOJI.finditer(text):
        found.append((match.start(), match.group(0)))
        spans.append(match.span())
    for match in _EMOJI.finditer(text):
        if not any(start <= match.start() < end for start, end in spans):
            found.append((match.start(), match.group(0)))
        if len(found) >= 4 * MAX_LISTED:
            break
    return [item for _, item in sorted(found)[:MAX_LISTED]]


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))[:MAX_LISTED]


def _own_words(text: str, urls: list[str], tags: list[str], mentions: list[str], chain: list[RepostHop]) -> str:
    """One round: the post's own words, appending what it pulls out to the lists."""
    text, found = _take_urls(_prepare(text))
    urls += found
    retweet = _RT.match(text)
    if retweet:  # "RT @user: words": all of it is someone else's
        chain.append(RepostHop(retweet.group(1), _finish(text[retweet.end() :], None, None)))
        text = ""
    reply = _REPLY.match(text)
    if reply:
        mentions.append(reply.group(1))
        text = text[reply.end() :]
    hops = list(_CHAIN.finditer(text))
    if hops:
        ends = [hop.start() for hop in hops[1:]] + [len(text)]
        for hop, end in zip(hops, ends, strict=True):
            chain.append(RepostHop(hop.group(1), _finish(text[hop.end() : end], None, None)))
        text = text[: hops[0].start()]
    return _finish(text, tags, mentions)


def clean(text: str) -> CleanText:
    """Clean one post's text; see the module docstring for what is kept and why. Never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    urls: list[str] = []
    tags: list[str] = []
    mentions: list[str] = []
    chain: list[RepostHop] = []
    own = _own_words(text, urls, tags, mentions, chain)
    # Removing one thing can expose another at a new start ("#回复@0:" leaves "回复@0:", a reply).
    # Only words still holding a trigger can change, so most posts skip the second round.
    for _ in range(MAX_TAG_ROUNDS):
        if not _TRIGGER.search(own):
            break
        again = _own_words(own, urls, tags, mentions, chain)
        if again == own:
            break
        own = again
    hop_text = next((hop.text for hop in chain if hop.text), "")
    return CleanText(
        text=own,
        hashtags=_unique(tags),
        mentions=_unique(mentions),
        urls=_unique(urls),
        emoji=tuple(extract_emoji(own)),
        repost_chain=tuple(chain[:MAX_LISTED]),
        lang=detect_lang(own if _WORD.search(own) else hop_text),
    )
