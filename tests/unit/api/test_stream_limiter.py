"""Stream slots are reserved atomically: a burst of callers never gets more than the limits allow."""

from __future__ import annotations

import threading

from pipeline.api.sse import StreamLimiter


def test_a_burst_of_reservations_respects_both_limits() -> None:
    limiter = StreamLimiter(limit=20, heartbeat_s=1.0, per_caller=3)
    granted: list[str] = []
    barrier = threading.Barrier(60)

    def ask(caller: str) -> None:
        barrier.wait()
        if limiter.reserve(caller) is not None:
            granted.append(caller)

    threads = [threading.Thread(target=ask, args=(f"c{i % 10}",)) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 20 and max(granted.count(f"c{i}") for i in range(10)) <= 3


def test_freeing_twice_gives_back_one_slot() -> None:
    limiter = StreamLimiter(limit=2, heartbeat_s=1.0, per_caller=2)
    free = limiter.reserve("a")
    assert free is not None and limiter.reserve("a") is not None and limiter.reserve("a") is None
    free()
    free()  # the stream's end and the background task may both free it
    assert limiter.open["a"] == 1 and limiter.reserve("a") is not None and limiter.reserve("b") is None
