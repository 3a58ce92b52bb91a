"""A faust consumer that hands fetched records to the streams without four asyncio tasks per record.

faust's ``Consumer._drain_messages`` passes every record to the streams inside
``Service.wait_first(callback(message), suspend_flow.wait())``, so that a callback blocked on a
full stream buffer is abandoned when a rebalance suspends the flow. ``wait_first`` starts four
tasks (the callback, the suspension, stop and crash) and cancels three, for each record: in our
workers that was the largest single cost of the event loop, more than a post's JSON, and it is
paid twice a post (posts.raw, then posts.scored).

``DrainingConsumer`` keeps the race but runs it once per fetch: the records that one ``getmany``
fetched are handed over by one task, raced against the same three events. What a suspension
leaves undelivered was never acked, so faust's commits cannot pass it, and faust seeks back to the
committed offsets before the flow resumes (``getmany`` with the flow inactive; ``perform_seek`` on
assignment): it is fetched again, as a record whose callback faust abandoned is.

It also sets how long a fetch may wait on the broker for records (``fetch_max_wait_ms``), which faust
fixes at 1.5 s. Kafka answers a fetch as soon as records arrive, whatever the wait; a broker without
long polling (tansu, in tests and the demo) holds every fetch for the whole wait, which added up to
1.5 s of latency on each topic a post passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP, Message


class _ConsumerThread(AIOKafkaConsumerThread):  # type: ignore[misc]  # faust's aiokafka driver is untyped
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust passes a constant; aiokafka hands this attribute to its fetcher when the consumer starts.
        consumer._fetch_max_wait_ms = self.consumer.fetch_max_wait_ms
        return consumer


class DrainingConsumer(Consumer):  # type: ignore[misc]  # faust's aiokafka driver is untyped
    """faust's aiokafka consumer, racing a suspension once per fetch instead of once per record."""

    fetch_max_wait_ms = 1500  # faust's

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        # faust's loop (faust.transport.consumer.Consumer._drain_messages), its error handling
        # included, with the hand-over of a fetch's records moved to _hand_over.
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = self.getmany(timeout=1.0).__aiter__()
                await self.sleep(0)  # as faust does: getmany may return at once, again and again
                if not self.should_stop:
                    first = await anext(fetched, None)  # the fetch itself, outside the race
                    if first is not None:
                        await self.wait_first(self._hand_over(first, fetched), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, first: tuple[TP, Message], rest: AsyncIterator[tuple[TP, Message]]) -> None:
        """Each record to the streams, in fetch order, as faust's loop body does for one record."""
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        since_yield = 0
        record: tuple[TP, Message] | None = first
        while record is not None:
            tp, message = record
            since_yield += 1
            if since_yield > 100:  # let the event loop breathe on a long fetch, as faust does
                await asyncio.sleep(0)
                since_yield = 0
            offset, last_read = message.offset, read_offset.get(tp)
            if last_read is None or offset >= last_read:
                if last_read and offset - last_read > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, last_read + 1, offset)  # offsets a compaction removed
                acked: int = getattr(self, "_n_acked")  # noqa: B009  # faust types it nowhere mypy can see
                if self._commit_every is not None and acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                await self.callback(message)
                read_offset[tp] = offset
            record = await anext(rest, None)


def use_draining_consumer(app: faust.App, fetch_max_wait_s: float) -> None:
    """Make ``app`` create a ``DrainingConsumer`` whose fetches wait at most ``fetch_max_wait_s`` on the
    broker; before the app first asks for its consumer."""
    wait = {"fetch_max_wait_ms": round(fetch_max_wait_s * 1000)}
    app.transport.Consumer = type(DrainingConsumer.__name__, (DrainingConsumer,), wait)
