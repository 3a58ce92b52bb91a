"""Near-duplicate clusters, flood/repeat/burst detection, and bounded memory."""

from __future__ import annotations

import time
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.noise import NoiseError, signature
from pipeline.domain.noise.bursts import AuthorBursts, FloodTracker
from pipeline.domain.noise.dedup import NearDuplicateIndex, dedup_key
from pipeline.domain.noise.filter import NoiseFilter

SLOGAN = "云帆手机这次真的让人失望透了，大家千万别买！"
OTHERS = [
    "今天天气很好，我们去公园散步了，心情不错",
    "星河乳业的新品酸奶口感一般，价格偏贵",
    "极光汽车的售后服务态度很好，点赞",
    "淄博烧烤真的名不虚传，排队两小时也值得",
    "The battery life of this phone is amazing, really happy with it",
]


def test_key_ignores_what_copies_vary() -> None:
    assert dedup_key("云帆手机，真的😡😡 http://t.cn/abc @某人") == dedup_key("云 帆 手 机 真的！！ @别人")
    assert dedup_key("ＡＢＣ abc") == "abcabc"


URL_PIECES = [
    "http",
    "HTTPS",
    "ftp",
    "://",
    "www.",
    "ＷＷＷ．",
    "t.cn/",
    "T.CN/",
    "ſ",
    "@",
    "x",
    " ",
    "汉字",
    "１",
    "_",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(URL_PIECES) | st.text(max_size=3)).map("".join))
def test_key_takes_urls_out_as_a_full_scan_would(text: str) -> None:
    """The URL scan runs only on keys holding ``://``, ``www.`` or ``t.cn/``: it must never miss one."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    assert dedup_key(text) == signature._NOT_ALNUM.sub("", signature._MENTION.sub(" ", signature._URL.sub(" ", folded)))


def test_copies_edits_and_padding_join_the_first_posts_cluster() -> None:
    index = NearDuplicateIndex()
    first = index.assign("p0", SLOGAN, 0.0)
    assert first.cluster_id == "p0" and not first.is_duplicate and first.indexed
    variants = [
        SLOGAN,
        "🔥🔥" + SLOGAN + "👍",
        SLOGAN.replace("透", ""),
        SLOGAN.replace("失望", "失失望"),
        "#云帆手机# " + SLOGAN,
    ]
    for n, text in enumerate(variants, 1):
        match = index.assign(f"p{n}", text, float(n))
        assert match.cluster_id == "p0" and match.is_duplicate, text
    for n, text in enumerate(OTHERS, 10):
        match = index.assign(f"p{n}", text, float(n))
        assert match.cluster_id == f"p{n}" and not match.is_duplicate, text


def test_short_common_phrases_never_cluster() -> None:
    index = NearDuplicateIndex()
    for n in range(20):
        for phrase in ("好评", "支持", "哈哈哈哈哈哈哈哈哈哈哈哈", "转发微博", "+1"):
            match = index.assign(f"{phrase}{n}", phrase, float(n))
            assert not match.is_duplicate and not match.indexed
    assert len(index) == 0


def test_entries_expire_with_the_window_and_the_cluster_id_is_stable_until_then() -> None:
    index = NearDuplicateIndex(window_s=60)
    assert index.assign("a", SLOGAN, 0.0).cluster_id == "a"
    assert index.assign("b", SLOGAN, 50.0).cluster_id == "a"  # refreshes the entry
    assert index.assign("c", SLOGAN, 100.0).cluster_id == "a"  # within 60 s of the refresh
    index.assign("d", OTHERS[0], 500.0)  # time moves on
    assert index.assign("e", SLOGAN, 501.0).cluster_id == "e"


def test_memory_is_bounded_by_max_entries() -> None:
    index = NearDuplicateIndex(window_s=10**9, max_entries=100)
    for n in range(1_000):
        index.assign(f"p{n}", f"第{n}条完全不同的帖子内容编号{n * 7919}号码{n * 104729}", float(n))
        assert len(index) <= 100


def test_edited_floods_do_not_grow_a_cluster_without_limit() -> None:
    index = NearDuplicateIndex(max_variants=5)
    for n in range(200):
        index.assign(f"p{n}", SLOGAN + f"编号{n}", float(n))
    assert len(index) <= 5 + 1


def test_author_bursts() -> None:
    bursts = AuthorBursts(window_s=60, max_posts=3, max_authors=10)
    assert [bursts.observe("a", t) for t in (0, 10, 20, 30)] == [False, False, False, True]
    assert not bursts.observe("a", 200)
    for n in range(50):
        bursts.observe(f"u{n}", 300.0)
    assert len(bursts) <= 10


def test_flood_needs_many_authors_within_a_short_time() -> None:
    floods = FloodTracker(window_s=60, min_authors=3, repeat_min=3, sticky_s=100)
    assert not floods.observe("c", "a1", 0).flood
    assert not floods.observe("c", "a2", 1).flood
    assert floods.observe("c", "a3", 2).flood
    assert floods.observe("c", "a4", 90).flood  # sticky
    assert not floods.observe("c", "a5", 500).flood
    slow = FloodTracker(window_s=60, min_authors=3)
    assert not any(slow.observe("s", f"a{n}", n * 100.0).flood for n in range(10))
    reposts = FloodTracker(window_s=60, min_authors=3)
    assert not any(reposts.observe("r", f"a{n}", float(n), countable=False).flood for n in range(10))


def test_noise_filter_flags_a_flood_from_fresh_accounts() -> None:
    noise = NoiseFilter(flood_min_authors=5)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    verdicts = [
        noise.observe(f"b{n}", f"bot{n}", SLOGAN + "🔥" * (n % 3), start + timedelta(seconds=n)) for n in range(30)
    ]
    assert {v.cluster_id for v in verdicts} == {"b0"}
    assert [v.suspected_bot for v in verdicts[:4]] == [False] * 4
    assert all(v.suspected_bot and "flood" in v.reasons for v in verdicts[4:])
    assert verdicts[-1].cluster_size == 30 and verdicts[1].similarity == 1.0


def test_noise_filter_does_not_flag_organic_patterns() -> None:
    noise = NoiseFilter(flood_min_authors=5)
    viral = [noise.observe(f"r{n}", f"fan{n}", OTHERS[1], float(n), repost=True) for n in range(40)]
    assert all(v.is_duplicate for v in viral[1:]) and not any(v.suspected_bot for v in viral)
    phrases = [noise.observe(f"p{n}", f"user{n}", "好评", 100.0 + n) for n in range(40)]
    assert not any(v.suspected_bot or v.is_duplicate for v in phrases)
    mixed = [noise.observe(f"o{n}", f"person{n}", OTHERS[n % len(OTHERS)] + f"第{n}天", 200.0 + n) for n in range(5)]
    assert not any(v.suspected_bot for v in mixed)


def test_repeat_and_burst_reasons() -> None:
    noise = NoiseFilter(repeat_min=3, burst_max_posts=5)
    repeats = [noise.observe(f"s{n}", "spammer", SLOGAN, float(n)) for n in range(4)]
    assert [v.suspected_bot for v in repeats] == [False, False, True, True]
    assert "repeat" in repeats[2].reasons
    # A fast account with texts of its own is reported, not suspected.
    news = [
        *OTHERS,
        "高考今天开始，祝考生们一切顺利",
        "春运首日铁路发送旅客超过一千万人次",
        "双十一预售今晚八点正式开启",
    ]
    fast = [noise.observe(f"f{n}", "newsdesk", f"快讯：{text}", 100.0 + n) for n, text in enumerate(news)]
    assert fast[-1].author_burst and not any(v.suspected_bot for v in fast)
    copier = [noise.observe(f"c{n}", "copier", OTHERS[n % 2], 200.0 + n) for n in range(8)]
    assert copier[-1].author_burst and "burst" in copier[-1].reasons


def test_noise_filter_state_is_bounded_and_long_posts_are_cheap() -> None:
    noise = NoiseFilter(window_s=60, max_entries=50)
    for n in range(500):
        noise.observe(f"p{n}", f"u{n}", f"完全不同的内容{n * 7919}号{n * 104729}", float(n))
    stats = noise.stats()
    assert stats["entries"] <= 50 and stats["clusters"] <= 50 and stats["authors"] <= 50
    started = time.perf_counter()
    noise.observe("huge", "u", "华为手机真好用😀 " * 20_000, 1000.0)
    assert time.perf_counter() - started < 1.0


def test_invalid_settings() -> None:
    with pytest.raises(NoiseError):
        NoiseFilter(window_s=0)
    with pytest.raises(NoiseError):
        NoiseFilter(flood_min_authors=1)
    with pytest.raises(NoiseError):
        AuthorBursts(max_posts=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=80), st.sampled_from(["a", "b", "c"])), max_size=30))
def test_never_raises_and_cluster_ids_are_earlier_posts(posts: list[tuple[str, str]]) -> None:
    noise = NoiseFilter(window_s=30, max_entries=10)
    seen: list[str] = []
    for n, (text, author) in enumerate(posts):
        verdict = noise.observe(f"p{n}", author, text, float(n))
        assert verdict.cluster_id in seen or verdict.cluster_id == f"p{n}"
        assert verdict.is_duplicate == (verdict.cluster_id != f"p{n}")
        seen.append(f"p{n}")
