"""The noise filter's state shared by every worker, in Redis: one Lua call per batch.

Posts reach the workers partitioned by post id, so a worker with its own state (``NoiseFilter``)
sees 1/N of every flood: each of N workers counts a cluster's first copy, and bot detection sees
1/N of a flood's authors. ``RedisNoiseFilter`` keeps the near-duplicate index, the flood and repeat
tracker and the author bursts in a handful of Redis keys (``RedisKeys.noise``, schemas/redis.md),
so the verdicts are the same whatever the number of workers: those of one ``NoiseFilter`` seeing
the batches in the order Redis ran them.

The costly part, signing texts (``Signer``: dedup key, MinHash, LSH band keys), runs here in
Python; ``noise.lua`` then runs the in-memory rules post by post, atomically for the whole batch:
one EVALSHA per batch. It stores each verdict under the post id for a window, so a batch replayed
after a crash gets the verdicts it got the first time and counts nothing twice. Every key expires
(wall clock) a margin after its window; within a run, state older than the event-time window is
evicted, and entries, clusters and authors are capped at ``max_entries`` each.

Thread-safe: the object holds no mutable state, and a ``redis.Redis`` client (a connection pool)
may be shared by threads. Batches sent by several threads or workers at once are each atomic; their
order among themselves is the order Redis runs them in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from importlib import resources
from typing import cast

import orjson
import redis

from pipeline.domain.noise import NoiseError
from pipeline.domain.noise.bursts import flood_memory
from pipeline.domain.noise.dedup import MAX_BUCKET, MAX_EXACT_PER_ENTRY, MAX_VARIANTS, NEAR_IDENTICAL
from pipeline.domain.noise.filter import (
    NoiseFilter,
    NoiseInput,
    NoiseLimits,
    NoiseVerdict,
    ObservesNoise,
    signatures_of,
)
from pipeline.domain.noise.signature import NUM_PERM, Signature, Signer
from pipeline.errors import YuqingError
from pipeline.settings import Settings
from pipeline.stores.redis.keys import RedisKeys
from pipeline.stores.redis.live import compact_json, connect, is_data_error
from schemas.records import NoiseReason

_SCRIPT = resources.files("pipeline.stores.redis").joinpath("noise.lua").read_text(encoding="utf-8")
TTL_MARGIN_S = 600  # keys outlive their window by this much of wall-clock idleness: a worker restart
VERDICT_BUCKET_S = 60  # stored verdicts are grouped by event minute: one hash per minute, not a key per post
_REASONS: frozenset[str] = frozenset(("flood", "repeat", "burst"))


class NoiseStoreError(YuqingError):
    """Redis did not give the batch its verdicts; ``transient``: retrying the same batch may work
    (it is safe: verdicts already given are returned again, nothing counts twice)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _verdict(raw: str | bytes) -> NoiseVerdict:
    cluster_id, duplicate, similarity, size, reasons, burst = orjson.loads(raw)
    named = tuple(reasons.split(",")) if reasons else ()
    if not set(named) <= _REASONS:
        raise NoiseStoreError(f"unknown noise reasons in a stored verdict: {reasons!r}", transient=False)
    return NoiseVerdict(
        cluster_id=str(cluster_id),
        is_duplicate=bool(duplicate),
        suspected_bot=bool(named),
        cluster_size=int(size),
        similarity=float(similarity),
        reasons=cast(tuple[NoiseReason, ...], named),
        author_burst=bool(burst),
    )


class RedisNoiseFilter:
    """``NoiseFilter``'s verdicts from state every worker shares; ``limits``: its thresholds, as
    ``NoiseFilter``'s keyword arguments give them."""

    def __init__(self, client: redis.Redis, prefix: str, limits: NoiseLimits | None = None) -> None:
        self.limits = limits = limits or NoiseLimits()
        self.signer = Signer(limits.similarity, NUM_PERM, limits.min_chars, limits.min_shingles)
        self.keys = RedisKeys(prefix).noise
        self._client = client
        self._script = client.register_script(_SCRIPT)
        ttl_index = math.ceil(limits.window_s) + TTL_MARGIN_S
        ttl_flood = math.ceil(max(limits.flood_window_s, limits.flood_sticky_s)) + TTL_MARGIN_S
        ttl_burst = math.ceil(limits.burst_window_s) + TTL_MARGIN_S
        header = {
            "keys": dataclasses.asdict(self.keys),
            "num_perm": NUM_PERM,
            "window_s": limits.window_s,
            "max_entries": limits.max_entries,
            "threshold": limits.similarity,
            "near_identical": NEAR_IDENTICAL,
            "max_variants": MAX_VARIANTS,
            "max_exact": MAX_EXACT_PER_ENTRY,
            "max_bucket": MAX_BUCKET,
            "flood_window_s": limits.flood_window_s,
            "flood_min_authors": limits.flood_min_authors,
            "flood_sticky_s": limits.flood_sticky_s,
            "flood_keep": flood_memory(limits.flood_min_authors, limits.repeat_min),
            "repeat_min": limits.repeat_min,
            "burst_window_s": limits.burst_window_s,
            "burst_max_posts": limits.burst_max_posts,
            "ttl_index": ttl_index,
            "ttl_flood": ttl_flood,
            "ttl_burst": ttl_burst,
            # The entry counter must outlive every entry, or a new entry could reuse a live seq.
            "ttl_meta": max(ttl_index, ttl_flood, ttl_burst),
            "ttl_verdict": ttl_index,
        }
        self._header = compact_json(header)

    def _document(self, item: NoiseInput, signature: Signature | None, packed: list[bytes]) -> bytes:
        if not math.isfinite(item.t):
            raise NoiseError(f"post {item.post_id!r}: event time {item.t!r} is not a finite number")
        doc: dict[str, object] = {
            "id": item.post_id,
            "author": item.author_id,
            "t": float(item.t),
            "repost": bool(item.repost),
            "bucket": str(math.floor(item.t / VERDICT_BUCKET_S)),
        }
        if signature is not None:  # absent keys, never null: cjson's null is truthy in Lua
            doc.update(digest=signature.digest, bands=list(signature.bands), sig=len(packed))
            packed.append(signature.packed())
        return compact_json(doc)

    def observe_batch(self, items: Sequence[NoiseInput]) -> list[NoiseVerdict]:
        """The verdicts on a batch, in order: one EVALSHA, atomic; safe to replay."""
        if not items:
            return []
        packed: list[bytes] = []
        signed = zip(items, signatures_of(items, self.signer), strict=True)
        documents = [self._document(item, signature, packed) for item, signature in signed]
        try:
            replies = self._script(args=[self._header, b"".join(packed), *documents])
        except redis.RedisError as exc:
            transient = not is_data_error(exc)
            raise NoiseStoreError(f"noise verdicts of {len(items)} posts failed: {exc}", transient=transient) from exc
        return [_verdict(reply) for reply in cast(list[str | bytes], replies)]

    def stats(self) -> dict[str, int]:
        """Sizes of the shared state (not this worker's share), in one round trip of O(1) reads."""
        pipe = self._client.pipeline(transaction=False)
        for key in (self.keys.seen, self.keys.cluster_times, self.keys.author_times):
            pipe.zcard(key)
        entries, clusters, authors = (int(n) for n in pipe.execute())
        return {"entries": entries, "clusters": clusters, "authors": authors}


def build_noise_filter(settings: Settings, client: redis.Redis | None = None) -> ObservesNoise:
    """The noise filter ``settings.noise_state`` asks for: shared in Redis (``client``, or a new
    connection), or this process's own."""
    limits = NoiseLimits(
        window_s=settings.noise_window_s,
        max_entries=settings.noise_max_entries,
        similarity=settings.noise_similarity,
        flood_min_authors=settings.noise_flood_min_authors,
        burst_max_posts=settings.noise_burst_max_posts,
    )
    if settings.noise_state == "memory":
        return NoiseFilter(**dataclasses.asdict(limits))
    return RedisNoiseFilter(client if client is not None else connect(settings), settings.redis_prefix, limits)
