"""Cleaning keeps a post's own words and meaning, pulls out the rest as data, and never fails."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.text.clean import CleanText, RepostHop, clean, extract_emoji, fold_width
from pipeline.domain.text.lang import detect_lang

PROPERTY = settings(max_examples=150, deadline=None)
# Characters that trigger every rule, so hypothesis explores their interactions.
TRICKY = st.lists(
    st.sampled_from(
        [*"#@/:：&;<>ht p.w_-", "&amp;", "&lt;", "http://", "//@", "＃", "云", "帆", "😀", "\u200b", "RT "]
    ),
    max_size=25,
).map("".join)


def test_weibo_post_with_everything() -> None:
    result = clean("#云帆手机# 真的太差了😡😡 http://t.cn/A6abc //@张三:同意！//@李四：#云帆手机#质量问题 @王五 看看")
    assert result.text == "云帆手机 真的太差了😡😡"
    assert result.hashtags == ("云帆手机",)
    assert result.urls == ("http://t.cn/A6abc",)
    assert result.emoji == ("😡", "😡")
    assert result.repost_chain == (RepostHop("张三", "同意！"), RepostHop("李四", "云帆手机 质量问题 看看"))
    assert result.lang == "zh"


def test_pure_repost_keeps_no_words_but_content_falls_back_to_the_chain() -> None:
    result = clean("转发微博//@A:好文章 //@B:原文在此")
    assert result.text == ""
    assert result.content == "好文章"
    assert [hop.user for hop in result.repost_chain] == ["A", "B"]
    assert result.lang == "zh"


def test_retweet_and_reply_prefixes() -> None:
    retweet = clean("RT @bob: I love this phone!")
    assert retweet.text == "" and retweet.repost_chain == (RepostHop("bob", "I love this phone!"),)
    assert retweet.lang == "en"
    reply = clean("回复@小明:谢谢你")
    assert reply.text == "谢谢你" and reply.mentions == ("小明",)


def test_twitter_tags_mentions_and_what_is_not_one() -> None:
    result = clean("I love #apple and #banana-split, #1 fan of C# — mail a@b.com or @bob_1")
    assert result.hashtags == ("apple", "banana-split")
    assert result.mentions == ("bob_1",)
    assert "apple" in result.text and "#1" in result.text and "C#" in result.text and "a@b.com" in result.text


def test_html_entities_tags_and_double_escaping() -> None:
    assert clean("&lt;b&gt;粗体&lt;/b&gt; 与 &amp;amp; 符号").text == "粗体 与 & 符号"
    assert clean("好<br/>评").text == "好 评"


def test_width_folding_keeps_chinese_punctuation() -> None:
    result = clean("ＩＰＨＯＮＥ１５，好！（测试）？：；～ ＃话题＃ ＠某人")
    assert result.text == "IPHONE15，好！（测试）？：；～ 话题"
    assert result.hashtags == ("话题",) and result.mentions == ("某人",)
    assert fold_width("。、《》“”") == "。、《》“”"


def test_invisible_characters_do_not_split_words() -> None:
    assert clean("云帆\u200b手机\ufeff真好\u202e").text == "云帆手机真好"


def test_emoji_sequences_and_kaomoji_are_kept_and_listed() -> None:
    text = "(╯°□°）╯︵ ┻━┻ 气死了 ^_^ T_T 👨\u200d👩\u200d👧 🇨🇳 ❤ :) Apple™ 时间10:30)"
    result = clean(text)
    assert result.emoji == ("(╯°□°）╯︵ ┻━┻", "^_^", "T_T", "👨\u200d👩\u200d👧", "🇨🇳", "❤", ":)")
    assert "(╯°□°）╯︵ ┻━┻" in result.text and "🇨🇳" in result.text
    assert extract_emoji("(´・ω・`)") == ["(´・ω・`)"]


def test_language_by_script() -> None:
    assert detect_lang("iPhone 15 Pro Max 真香") == "zh"
    assert detect_lang("Visited 北京 today and the weather was great, loved it") == "en"
    assert detect_lang("這個手機很好用") == "zh"
    assert detect_lang("こんにちは世界です") == "other"
    assert detect_lang("Привет мир") == "other"
    assert detect_lang("je suis très content de ce produit") == "other"
    assert detect_lang("😀😀 123 !!!") == "other"
    assert detect_lang("") == "other"


def test_other_scripts_and_mojibake_pass_through() -> None:
    for text in ("æ‰‹æœºå¾ˆå¥½", "مرحبا بالعالم", "안녕하세요", "\ud800broken\udfff", "\x00\x1f\x7f", "\ufffd\ufffd"):
        result = clean(text)
        result.text.encode("utf-8")  # lone surrogates would make the record unwritable
        assert isinstance(result, CleanText)


def test_a_huge_post_is_cleaned_in_bounded_time() -> None:
    text = "华为手机真好😀 http://a.com/x #话题# @某人 &amp; (^_^) " * 3_000 + "#" * 20_000 + "@" * 20_000
    started = time.perf_counter()
    result = clean(text)
    assert time.perf_counter() - started < 2.0
    assert result.lang == "zh" and len(result.hashtags) <= 64 and len(result.emoji) <= 64


@PROPERTY
@given(st.text(max_size=300))
def test_never_raises_and_output_is_tidy(text: str) -> None:
    result = clean(text)
    assert result.text == result.text.strip()
    assert "  " not in result.text and "\n" not in result.text and "\u200b" not in result.text
    assert "http://" not in result.text.lower() and "https://" not in result.text.lower()
    result.text.encode("utf-8")
    assert result.lang in ("zh", "en", "other")


@PROPERTY
@given(st.one_of(st.text(max_size=200), TRICKY))
def test_text_is_idempotent(text: str) -> None:
    once = clean(text).text
    assert clean(once).text == once


@PROPERTY
@given(
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=8),
    st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=20),
)
def test_generated_tags_and_mentions_are_found(topic: str, name: str, words: str) -> None:
    result = clean(f"{words} #{topic}# {words}，@{name} 你怎么看 #{name}")
    assert topic in result.hashtags
    assert name in result.mentions and name in result.hashtags
    assert topic in result.text
