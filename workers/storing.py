"""Storing an aggregate batch: retried through store outages, bisected around posts a store refuses.

An outage (``SinkError``) is waited out: the batch is acked only after every sink stored it, so waiting
loses nothing and giving up would. A refusal (``SinkRefused``: the data is at fault) is split in halves
until each refused post stands alone; it goes to the dead-letter topic with the store's error and the
rest is stored, so one poison post never stalls a partition. Rewriting the halves a store already took
is harmless: every sink counts a post id once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential
from tenacity.wait import wait_base

from pipeline.observability import metrics
from pipeline.observability.timing import StageClock
from pipeline.stores.sink import Sink, SinkError, SinkRefused
from schemas.records import ScoredPost

log = logging.getLogger(__name__)
SINK_BACKOFF = wait_exponential(multiplier=0.2, max=30.0)
# Runs a blocking sink call off the event loop (the worker's sink thread).
Run = Callable[[Callable[[], None]], Awaitable[None]]
Refusal = tuple[ScoredPost, str]


def _outage(exc: BaseException) -> bool:
    return isinstance(exc, SinkError) and not isinstance(exc, SinkRefused)


async def flush_until_stored(
    name: str,
    flush: Callable[[], Awaitable[None]],
    *,
    wait: wait_base = SINK_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Retry ``flush`` for as long as the store is down. A refusal, cancellation (shutdown) and
    anything else are not retried and propagate."""

    def warn(state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        error = state.outcome.exception() if state.outcome else None
        metrics.SINK_RETRIES.labels(sink=name).inc()
        extra = {"sink": name, "attempt": state.attempt_number, "retry_in_s": round(delay, 3)}
        log.warning("%s sink unavailable, retrying in %.1fs: %s", name, delay, error, extra=extra)

    # Attempts in the loop body, not ``retrying(flush)``: tenacity would not await what a plain callable
    # such as ``partial(loop.run_in_executor, …)`` returns, and a failed flush would pass for done.
    retrying = AsyncRetrying(retry=retry_if_exception(_outage), wait=wait, sleep=sleep, before_sleep=warn)
    async for attempt in retrying:
        with attempt:
            await flush()


async def store(
    sink: Sink,
    posts: Sequence[ScoredPost],
    run: Run,
    *,
    wait: wait_base = SINK_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[Refusal]:
    """Write ``posts`` to ``sink``; return the posts it refused, each with the store's error."""
    if not posts:
        return []
    try:
        sink.add(posts)
        started = time.perf_counter()
        await flush_until_stored(sink.name, lambda: run(sink.flush), wait=wait, sleep=sleep)
        metrics.observe_stored(sink.name, (p.post.event_time for p in posts), time.perf_counter() - started)
        return []
    except SinkRefused as exc:
        sink.discard()
        if len(posts) == 1:
            metrics.SINK_REFUSALS.labels(sink=sink.name).inc()
            post_id = posts[0].post.id
            log.warning(
                "%s refused post %s: %s", sink.name, post_id, exc, extra={"sink": sink.name, "post_id": post_id}
            )
            return [(posts[0], f"{sink.name} refused the post: {exc}")]
        log.warning(
            "%s refused a batch of %d posts, isolating the offending ones: %s",
            sink.name,
            len(posts),
            exc,
            extra={"sink": sink.name, "batch_size": len(posts)},
        )
        middle = len(posts) // 2
        first = await store(sink, posts[:middle], run, wait=wait, sleep=sleep)
        return first + await store(sink, posts[middle:], run, wait=wait, sleep=sleep)


async def store_all(
    sinks: Sequence[Sink], posts: Sequence[ScoredPost], run: Run, clock: StageClock | None = None
) -> list[Refusal]:
    """Every sink in turn; a post one sink refused is not offered to the next ones. ``clock`` gets each
    sink's time as ``<sink>_flush``: add and flush, retries and isolating refused posts included."""
    refusals: list[Refusal] = []
    remaining = list(posts)
    for sink in sinks:
        started = time.perf_counter()
        refused = await store(sink, remaining, run)
        if clock is not None and remaining:
            clock.add(f"{sink.name}_flush", time.perf_counter() - started, len(remaining))
        if refused:
            ids = {post.post.id for post, _ in refused}
            remaining = [post for post in remaining if post.post.id not in ids]
            refusals += refused
    return refusals
