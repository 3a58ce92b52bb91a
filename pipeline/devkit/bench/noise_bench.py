"""``yuqing bench noise``: how well NoiseFilter catches copy floods and bots, what it costs.

The stream is the synthetic ``bot-flood`` scenario (waves of exact copies, copies with small
edits and emoji-padded copies, each from a fresh account, over organic posts) plus what the feed
lacks, injected here:
- ``disguised``: a wave whose copies carry different links, mentions, tags, full-width letters,
  zero-width and inserted spaces;
- ``slow``: copies from fresh accounts trickling in over ten minutes, not in a burst;
- ``spam-account``: accounts each posting one slogan some 30 times, every 15 s;
and organic look-alikes that must not be flagged:
- ``phrase``: common short phrases (好评, 支持, 转发微博...) from many people at once;
- ``viral-repost``: one post reposted (declared, as platforms mark it) by many people within minutes;
- ``chain``: weibo repost chains (``说得对//@某人:...``) of organic posts.

Flagged means ``suspected_bot``. Cost: microseconds per post of ``NoiseFilter.observe`` on cleaned
text, against a reference measured in the same run on the same posts: cleaning plus segmentation
(``cost_ratio`` = noise / reference; jieba is built before timing).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.domain.noise.filter import NoiseFilter
from pipeline.domain.text.clean import clean
from pipeline.domain.text.segment import Segmenter

DEFAULT_POSTS = 20_000
SHORT_POSTS = 5_000
RATE = 10.0  # organic posts per second; each feed burst adds half as many bot posts for 60 s
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TARGET_FLAGGED, TARGET_FALSE_POSITIVE = 0.95, 0.01
PHRASES = ("好评", "支持", "赞👍", "转发微博", "哈哈哈哈哈哈哈哈哈", "支持国货！", "打卡", "mark一下", "+1", "已阅",
           "求链接", "前排", "沙发", "太真实了😂", "同意！！", "好评！物流很快")  # fmt: skip
SLOGANS = ("极光汽车刹车失灵还不召回，大家千万别买！！", "星河乳业奶粉有问题，转给身边的宝妈看看",
           "茶语奶茶喝出异物，店家态度极其恶劣，避雷")  # fmt: skip
SPAM = ("关注我领取双十一隐藏优惠券，手慢无", "云帆手机官方旗舰店今晚八点直播抽奖送新机",
        "淄博烧烤团购五折起，私信我拿链接", "春运抢票加速包免费领，点我主页")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Item:
    post_id: str
    author: str
    text: str
    t: float  # seconds from START
    variant: str  # feed kind, or the injected variant's name
    bot: bool
    repost: bool = False


def _disguise(text: str, rng: random.Random, n: int) -> str:
    chars = list(text)
    choice = rng.randrange(6)
    if choice == 0:
        return f"{text} http://t.cn/A{rng.randrange(10**6):06d}"
    if choice == 1:
        return f"@用户{rng.randrange(10**5)} {text}"
    if choice == 2:
        return f"#话题{n % 7}# {text} #真相#"
    if choice == 3:  # full-width letters and digits
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    if choice == 4:
        at = rng.randrange(1, len(chars))
        return "".join(chars[:at]) + "\u200b" + "".join(chars[at:])
    return " ".join(chars) if rng.random() < 0.5 else "".join(c + rng.choice(("", " ", "，")) for c in chars)


def _stream(seed: int, posts: int) -> list[_Item]:
    rng = random.Random(seed)
    injected = max(200, posts // 10)
    feed = SyntheticFeed("bot-flood", RATE, seed=seed, run_id=f"nb{seed}", start=START,
                         start_s=60.0, every_s=300.0, burst_s=60.0, intensity=0.5)  # fmt: skip
    labelled = feed.take_labelled(posts - injected)
    items = [
        _Item(
            lp.post.id,
            lp.post.author_id,
            lp.post.text,
            (lp.post.event_time - START).total_seconds(),
            lp.kind,
            lp.kind == "bot",
            lp.post.parent_kind == "repost",
        )
        for lp in labelled
    ]
    end = items[-1].t if items else 600.0
    organic = [item for item in items if item.variant == "organic" and len(item.text) >= 20]
    budget = {"disguised": 0.3, "slow": 0.1, "spam-account": 0.1, "phrase": 0.25, "viral-repost": 0.15, "chain": 0.1}
    count = {name: max(10, int(share * injected)) for name, share in budget.items()}
    extra: list[_Item] = []

    def add(variant: str, author: str, text: str, t: float, bot: bool, repost: bool = False) -> None:
        extra.append(_Item(f"inj-{len(extra)}", author, text, t, variant, bot, repost))

    wave = rng.choice(SLOGANS)
    begin = end * 0.45  # between the feed's bursts: its bursts start every 300 s from 60 s
    for n in range(count["disguised"]):
        add("disguised", f"weibo-dz{n:05d}", _disguise(wave, rng, n), begin + rng.uniform(0, 90), True)
    slow = rng.choice([s for s in SLOGANS if s != wave])
    for n in range(count["slow"]):
        add("slow", f"weibo-sl{n:05d}", slow + rng.choice(("", "😡", "！")), end * 0.2 + n * 600 / count["slow"], True)
    accounts = max(1, count["spam-account"] // 30)  # a spam account posts dozens of times, not a handful
    for n in range(count["spam-account"]):
        author, at = n % accounts, end * 0.7 + (n // accounts) * 15.0
        add("spam-account", f"douyin-sp{author}", SPAM[author % len(SPAM)] + "🔥" * rng.randint(0, 3), at, True)
    for n in range(count["phrase"]):
        add("phrase", f"weibo-ph{n:05d}", rng.choice(PHRASES), end * 0.3 + rng.uniform(0, 60), False)
    if organic:
        source = rng.choice(organic)
        for n in range(count["viral-repost"]):
            add("viral-repost", f"weibo-vr{n:05d}", source.text, source.t + 5 + rng.uniform(0, 120), False, True)
        for n in range(count["chain"]):
            parent = rng.choice(organic)
            own = rng.choice(("说得对", "转发微博", "确实", "", "哈哈哈"))
            add("chain", f"weibo-ch{n:05d}", f"{own}//@{parent.author}:{parent.text}", parent.t + rng.uniform(1, 60),
                False)  # fmt: skip
    return sorted(items + extra, key=lambda item: item.t)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def run(seed: int = 0, posts: int = DEFAULT_POSTS) -> dict[str, Any]:
    """Measure on ``posts`` posts (SHORT_POSTS for a run of a few seconds); returns the report."""
    if posts < 1_000:
        raise ValueError(f"posts must be at least 1000 for the shares to mean anything, not {posts}")
    items = _stream(seed, posts)
    segmenter = Segmenter()
    segmenter.warm_up()

    started = time.perf_counter()
    cleaned = [clean(item.text) for item in items]
    for text in cleaned:
        segmenter.tokens(text)
    reference_s = time.perf_counter() - started

    noise = NoiseFilter()
    started = time.perf_counter()
    verdicts = [
        noise.observe(item.post_id, item.author, text.text, START + timedelta(seconds=item.t), repost=item.repost)
        for item, text in zip(items, cleaned, strict=True)
    ]
    noise_s = time.perf_counter() - started

    flagged: dict[str, Counter[str]] = defaultdict(Counter)
    wrong: Counter[str] = Counter()  # why organic posts were flagged
    for item, verdict in zip(items, verdicts, strict=True):
        tally = flagged[item.variant]
        tally["n"] += 1
        tally["flagged"] += verdict.suspected_bot
        tally["duplicate"] += verdict.is_duplicate
        if not item.bot:
            for reason in verdict.reasons:
                wrong[reason] += 1
    bots = [v for item, v in zip(items, verdicts, strict=True) if item.bot]
    people = [v for item, v in zip(items, verdicts, strict=True) if not item.bot]
    flagged_share = _share(sum(v.suspected_bot for v in bots), len(bots))
    false_positive = _share(sum(v.suspected_bot for v in people), len(people))
    us, reference_us = noise_s / len(items) * 1e6, reference_s / len(items) * 1e6
    return {
        "seed": seed,
        "posts": len(items),
        "injected": len(bots),
        "organic": len(people),
        "flagged_share": flagged_share,
        "false_positive_share": false_positive,
        "false_positive_reasons": dict(wrong),
        "organic_duplicate_share": _share(sum(v.is_duplicate for v in people), len(people)),
        "by_variant": {
            name: {
                "posts": c["n"],
                "flagged": _share(c["flagged"], c["n"]),
                "duplicate": _share(c["duplicate"], c["n"]),
            }
            for name, c in sorted(flagged.items())
        },
        "us_per_post": round(us, 1),
        "reference_us_per_post": round(reference_us, 1),
        "cost_ratio": round(us / reference_us, 3) if reference_us else None,
        "reference": "clean + jieba segmentation of the same posts",
        "state": noise.stats(),
        "targets": {"flagged_share": TARGET_FLAGGED, "false_positive_share": TARGET_FALSE_POSITIVE},
        "ok": flagged_share >= TARGET_FLAGGED and false_positive <= TARGET_FALSE_POSITIVE,
    }
