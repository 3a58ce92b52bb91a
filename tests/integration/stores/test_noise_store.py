"""The noise filter's state shared in Redis: the in-memory verdicts, whatever the number of workers."""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.domain.noise.filter import NoiseFilter, NoiseInput, NoiseLimits, NoiseVerdict
from pipeline.settings import Settings
from pipeline.stores.redis.live import delete_prefix
from pipeline.stores.redis.noise import RedisNoiseFilter, build_noise_filter

pytestmark = pytest.mark.integration

SLOGAN = "云帆手机这次真的让人失望透了，大家千万别买！"
RUMOUR = "星河乳业的酸奶被查出质量问题，赶紧转告家人朋友"
VIRAL = "淄博烧烤真的名不虚传，排队两小时也值得，强烈推荐大家去"
# Small windows, so that a stream of a few hundred seconds evicts entries, clusters and authors.
LIMITS: dict[str, Any] = {
    "window_s": 300.0,
    "flood_window_s": 60.0,
    "flood_sticky_s": 120.0,
    "burst_window_s": 30.0,
    "burst_max_posts": 5,
}


@pytest.fixture
def prefix(redis_url: str, test_id: str) -> Iterator[str]:
    """A Redis prefix of this test alone, deleted afterwards."""
    made = f"yqtest-noise-{test_id}"
    yield made
    delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), made)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url, decode_responses=True)
    yield made
    made.close()


def _organic(rng: random.Random, length: int = 18) -> str:
    """A text of its own: random Han characters share no shingles with anything else."""
    return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(length))


def _stream(seed: int = 7) -> list[NoiseInput]:
    """Posts one second apart: organic posts, exact and edited copies, a flood of 12 fresh accounts
    (each posting twice, the second time well after the flood began), a repeating author, a
    bursting copier, a fast news account, reposts of a viral post and short texts; and at the end
    the first slogan again, after its entries left the window."""
    rng = random.Random(seed)
    padding = ["", "🔥🔥", "👍", "！！！", "#云帆手机# ", " @某人 "]
    organic = iter(range(1000))

    def mixed(block: list[tuple[str, int]], others: int) -> list[tuple[str, int]]:
        block = block + [("organic", next(organic)) for _ in range(others)]
        rng.shuffle(block)
        return block

    kinds = [
        ("origin", 0),
        *mixed([("viral", k) for k in range(20)] + [("short", k) for k in range(12)], 30),
        *mixed([("flood", k) for k in range(12)], 8),
        *mixed([("repeat", k) for k in range(4)], 40),  # a round of posts between the flood's halves
        *mixed([("flood", k) for k in range(12, 24)], 8),
        *mixed([("copier", k) for k in range(8)] + [("news", k) for k in range(7)], 0),
        *mixed([], 30),
        ("late", 0),
        ("late", 1),
    ]
    posts = []
    for n, (kind, k) in enumerate(kinds):
        t = 1_700_000_000.0 + n + (600.0 if kind == "late" else 0.0)
        if kind == "origin":
            post = NoiseInput("origin", "first", SLOGAN, t)
        elif kind == "organic":
            post = NoiseInput(f"o{k}", f"person{k % 40}", _organic(rng), t)
        elif kind == "flood":
            text = padding[k % len(padding)] + (SLOGAN.replace("透", "") if k % 4 == 3 else SLOGAN)
            post = NoiseInput(f"f{k}", f"bot{k % 12}", text, t)
        elif kind == "repeat":
            post = NoiseInput(f"r{k}", "spammer", RUMOUR + "！" * k, t)
        elif kind == "copier":
            post = NoiseInput(f"c{k}", "copier", [RUMOUR, VIRAL][k % 2] + padding[k % 3], t)
        elif kind == "news":
            post = NoiseInput(f"n{k}", "newsdesk", "快讯：" + _organic(rng, 24), t)
        elif kind == "viral":
            post = NoiseInput(f"v{k}", f"fan{k}", VIRAL, t, repost=True)
        elif kind == "short":
            post = NoiseInput(f"s{k}", f"user{k}", ["好评", "+1", "转发微博", "哈哈哈哈哈哈哈哈哈"][k % 4], t)
        else:
            post = NoiseInput(f"late{k}", f"later{k}", SLOGAN + "👍" * k, t)
        posts.append(post)
    return posts


def _batches(posts: Sequence[NoiseInput], size: int) -> Iterator[Sequence[NoiseInput]]:
    for start in range(0, len(posts), size):
        yield posts[start : start + size]


def _run(noise: Any, posts: Sequence[NoiseInput], size: int) -> list[NoiseVerdict]:
    return [verdict for batch in _batches(posts, size) for verdict in noise.observe_batch(batch)]


def _workers(make: Any, posts: Sequence[NoiseInput], workers: int) -> dict[str, NoiseVerdict]:
    """``workers`` filters, each given its partitions' posts (crc32 of the post id, as Kafka keys
    them) round after round, interleaved; the verdicts by post id."""
    filters = [make() for _ in range(workers)]
    verdicts: dict[str, NoiseVerdict] = {}
    for round_ in _batches(posts, 32):
        for w, noise in enumerate(filters):
            mine = [p for p in round_ if zlib.crc32(p.post_id.encode()) % workers == w]
            if mine:
                verdicts.update(zip((p.post_id for p in mine), noise.observe_batch(mine), strict=True))
    return verdicts


def _bots(posts: Sequence[NoiseInput], verdicts: dict[str, NoiseVerdict]) -> set[str]:
    return {p.author_id for p in posts if verdicts[p.post_id].suspected_bot}


def _snapshot(redis_url: str, prefix: str) -> dict[bytes, Any]:
    """Every noise key's content (not its expiry), as bytes: entries hold packed signatures."""
    raw = redis.Redis.from_url(redis_url)
    state: dict[bytes, Any] = {}
    for key in raw.scan_iter(match=f"{prefix}:noise:*"):
        kind = raw.type(key)
        state[key] = raw.hgetall(key) if kind == b"hash" else raw.zrange(key, 0, -1, withscores=True)
    raw.close()
    assert state
    return state


def test_the_same_verdicts_as_the_in_memory_filter(client: redis.Redis, prefix: str) -> None:
    posts = _stream()
    expected = _run(NoiseFilter(**LIMITS), posts, 50)
    got = _run(RedisNoiseFilter(client, prefix, NoiseLimits(**LIMITS)), posts, 37)
    assert got == expected
    # The stream exercises every rule, so the equality above says something about each.
    reasons = {reason for verdict in expected for reason in verdict.reasons}
    assert reasons == {"flood", "repeat", "burst"}
    by_id = dict(zip((p.post_id for p in posts), expected, strict=True))
    assert by_id["f0"].cluster_id == "origin" and 0 < min(v.similarity for v in expected if v.is_duplicate) < 1
    assert by_id["late1"].cluster_id == "late0"  # the origin's entries were evicted with the window
    assert not any(by_id[f"v{k}"].suspected_bot for k in range(20))  # reposts never make a flood
    assert any(by_id[f"n{k}"].author_burst for k in range(7))
    assert not any(by_id[f"n{k}"].suspected_bot for k in range(7))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([SLOGAN, RUMOUR, VIRAL, SLOGAN[3:], "🔥" + RUMOUR, "好评"]),
            st.integers(0, 5),  # the author; 5 reposts
            st.sampled_from([0, 0, 0, 30, 400]),  # how late the post is: events arrive out of order
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 9),
    st.sampled_from([2, 20_000]),
)
def test_the_same_verdicts_for_any_sequence(
    client: redis.Redis, prefix: str, posts: list[tuple[str, int, int]], batch: int, cap: int
) -> None:
    key = f"{prefix}-{zlib.crc32(repr((posts, batch, cap)).encode())}"
    items = [NoiseInput(f"p{n}", f"a{a}", text, n * 7.0 - late, a == 5) for n, (text, a, late) in enumerate(posts)]
    limits = {**LIMITS, "max_entries": cap, "flood_min_authors": 3, "burst_max_posts": 2, "repeat_min": 2}
    try:
        shared = _run(RedisNoiseFilter(client, key, NoiseLimits(**limits)), items, batch)
        assert shared == _run(NoiseFilter(**limits), items, 50)
    finally:
        delete_prefix(client, key)


@pytest.mark.parametrize("seed", range(12))
def test_the_same_verdicts_for_random_streams(client: redis.Redis, prefix: str, seed: int) -> None:
    """Longer streams with time jumps, late posts, caps and batch sizes that put many evictions
    in one batch."""
    rng = random.Random(seed)
    texts = [SLOGAN, RUMOUR, VIRAL, "好评"]
    limits = {
        **LIMITS,
        "window_s": rng.choice([20.0, 100.0]),
        "max_entries": rng.choice([3, 10, 50, 20_000]),
        "similarity": rng.choice([0.5, 0.6, 0.8]),
        "flood_min_authors": 3,
        "repeat_min": 2,
        "burst_max_posts": 3,
    }
    t, items = 0.0, []
    for n in range(rng.randrange(50, 300)):
        t += rng.choice([0.0, 0.0, 1.0, 3.0, 10.0, 100.0])
        base = rng.choice(texts)
        cut = rng.randrange(len(base))
        text = rng.choice(
            [base, base[:cut] + base[cut + 1 :], "🔥" + base + "三" * rng.randrange(3), _organic(rng, 14)]
        )
        late = rng.choice([0, 0, 0, 5, 40])
        items.append(NoiseInput(f"p{n}", f"a{rng.randrange(8)}", text, t - late, rng.random() < 0.1))
    expected = _run(NoiseFilter(**limits), items, 50)
    assert _run(RedisNoiseFilter(client, prefix, NoiseLimits(**limits)), items, rng.randrange(1, 120)) == expected


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_the_counts_and_the_bots(client: redis.Redis, prefix: str, workers: int) -> None:
    posts = _stream()
    alone = _workers(lambda: RedisNoiseFilter(client, f"{prefix}-1", NoiseLimits(**LIMITS)), posts, 1)
    shared = _workers(lambda: RedisNoiseFilter(client, f"{prefix}-{workers}", NoiseLimits(**LIMITS)), posts, workers)
    separate = _workers(lambda: NoiseFilter(**LIMITS), posts, workers)
    delete_prefix(client, f"{prefix}-1")
    delete_prefix(client, f"{prefix}-{workers}")

    def kept(verdicts: dict[str, NoiseVerdict]) -> int:
        return sum(not v.is_duplicate for v in verdicts.values())

    assert kept(shared) == kept(alone)
    assert _bots(posts, shared) == _bots(posts, alone) == {f"bot{k}" for k in range(12)} | {"spammer", "copier"}
    # What sharing fixes: workers with their own state each count a cluster's first copy.
    assert kept(separate) > kept(alone)


def test_a_replayed_batch_gets_its_verdicts_again_and_changes_nothing(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    noise = RedisNoiseFilter(client, prefix, NoiseLimits(**LIMITS))
    posts = _stream()[:120]
    first = noise.observe_batch(posts)
    before = _snapshot(redis_url, prefix)
    assert noise.observe_batch(posts) == first
    assert _snapshot(redis_url, prefix) == before
    # A batch half replayed: old posts keep their verdicts, the new ones count once.
    size = max(v.cluster_size for v in first if v.cluster_id == "origin")
    again = noise.observe_batch([*posts[-3:], NoiseInput("new", "someone", SLOGAN, posts[-1].t + 1)])
    assert again[:3] == first[-3:]
    assert (again[3].cluster_id, again[3].cluster_size) == ("origin", size + 1)
    # A restarted worker (a new object) replays too.
    assert RedisNoiseFilter(client, prefix, NoiseLimits(**LIMITS)).observe_batch(posts[:10]) == first[:10]


def test_every_key_expires_and_state_stays_bounded(client: redis.Redis, prefix: str) -> None:
    noise = RedisNoiseFilter(client, prefix, NoiseLimits(**{**LIMITS, "max_entries": 50}))
    rng = random.Random(3)
    for round_ in range(4):
        batch = [NoiseInput(f"p{round_}-{n}", f"u{n}", _organic(rng), 100.0 * round_ + n / 10) for n in range(80)]
        noise.observe_batch(batch)
        stats = noise.stats()
        assert max(stats.values()) <= 50 and min(stats.values()) > 0, stats
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    assert keys and all(0 < client.ttl(key) <= 300 + 600 + 600 for key in keys)
    # State older than the event-time window goes once time moves on.
    noise.observe_batch([NoiseInput("later", "v", _organic(rng), 100.0 * 3 + 10_000)])
    assert noise.stats() == {"entries": 1, "clusters": 1, "authors": 1}


class _CountingRedis(redis.Redis):
    """A client that notes the name of every command it sends."""

    commands: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]).upper())
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def test_a_batch_of_256_posts_is_one_evalsha(redis_url: str, prefix: str) -> None:
    counting = _CountingRedis(connection_pool=redis.ConnectionPool.from_url(redis_url, decode_responses=True))
    counting.commands = []
    noise = RedisNoiseFilter(counting, prefix)
    posts = [NoiseInput(f"{n}-{p.post_id}", p.author_id, p.text, p.t, p.repost) for n in range(2) for p in _stream()]
    noise.observe_batch(posts[:1])  # loads the script if Redis does not have it yet
    counting.commands.clear()
    assert len(noise.observe_batch(posts[:256])) == 256
    assert counting.commands == ["EVALSHA"]
    counting.close()


def test_threads_may_share_one_filter(client: redis.Redis, prefix: str) -> None:
    noise = RedisNoiseFilter(client, prefix)
    results: dict[int, list[NoiseVerdict]] = {}

    def work(thread: int) -> None:
        results[thread] = noise.observe_batch(
            [NoiseInput(f"t{thread}-{n}", f"a{thread}-{n}", SLOGAN, float(n)) for n in range(50)]
        )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verdicts = [v for batch in results.values() for v in batch]
    assert len(verdicts) == 200 and sum(not v.is_duplicate for v in verdicts) == 1
    assert sorted(v.cluster_size for v in verdicts) == list(range(1, 201))


def test_the_setting_picks_the_state(client: redis.Redis, prefix: str) -> None:
    assert isinstance(build_noise_filter(Settings(noise_state="memory"), client), NoiseFilter)
    shared = build_noise_filter(Settings(noise_state="redis", redis_prefix=prefix), client)
    assert isinstance(shared, RedisNoiseFilter) and shared.keys.meta == f"{prefix}:noise:meta"
    assert Settings().noise_state == "redis"
