"""Ten minutes of steady posts through one worker: its memory levels off (the soak runs beside the suite)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.soak import SOAK_CHUNKS, SOAK_GRACE_S, SOAK_POSTS, SOAK_S

pytestmark = [pytest.mark.e2e, pytest.mark.soak]


@pytest.mark.timeout(SOAK_S + 3 * SOAK_GRACE_S)
def test_worker_memory_is_flat_through_a_ten_minute_soak(soak_report: dict[str, Any]) -> None:
    """The short version of `yuqing bench memory` (100,000 posts, in docs/benchmarks.md): every post counted,
    the posts spread over ten minutes, and the worker's resident set within 10% over the second half."""
    assert soak_report["counted"] == SOAK_POSTS
    assert [point["posts"] for point in soak_report["curve"]][-1] == SOAK_POSTS
    assert len(soak_report["curve"]) == SOAK_CHUNKS
    assert soak_report["seconds"] >= SOAK_S * (SOAK_CHUNKS - 1) / SOAK_CHUNKS  # paced: the last chunk's time
    assert soak_report["last_half_spread"] <= 0.10, soak_report["curve"]
