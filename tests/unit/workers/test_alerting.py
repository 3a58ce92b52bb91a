"""The detection timer starts over when ticks stop and start again (another worker may have led)."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.settings import Settings
from workers.alerting import LEADERSHIP_GAP_TICKS, Alerting

INTERVAL_S = 0.2


async def _no_io(*_: Any) -> None:
    return None


def test_detection_keeps_its_state_tick_after_tick_and_starts_over_after_a_gap() -> None:
    alerting = Alerting(Settings(alerts_interval_s=INTERVAL_S), topic=None)
    alerting._detect = lambda: None  # type: ignore[method-assign]  # Redis and Kafka are not this test's
    alerting._send_to_kafka = _no_io  # type: ignore[method-assign]

    async def ticks() -> list[object]:
        services: list[object] = []
        for pause_s in (0, 0, (LEADERSHIP_GAP_TICKS + 2) * INTERVAL_S, 0):
            await asyncio.sleep(pause_s)
            await alerting.tick()
            services.append(alerting.service)
        await alerting.stop()
        return services

    first, second, after_gap, next_one = asyncio.run(ticks())
    assert first is second  # the same leader, ticking on
    assert after_gap is not first  # another worker may have led: its state is not this one's
    assert next_one is after_gap
