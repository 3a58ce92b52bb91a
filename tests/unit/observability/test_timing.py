"""The per-stage clock: sums in the agent, counters once per batch."""

from __future__ import annotations

from prometheus_client import REGISTRY

from pipeline.domain.noise.filter import NoiseFilter
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from tests.support.records import scored
from workers.stages import prepare_post


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_is_summed_then_published_once_and_the_clock_starts_again() -> None:
    labels = {"agent": "unit", "stage": "model"}
    seconds, records = sample("yuqing_stage_seconds_total", labels), sample("yuqing_stage_records_total", labels)
    clock = StageClock("unit")
    clock.add("model", 0.25, 10)
    with clock.timed("model", 5):
        pass
    assert clock.totals()["model"][1] == 15
    clock.publish()
    assert clock.totals() == {}
    assert sample("yuqing_stage_records_total", labels) == records + 15
    assert sample("yuqing_stage_seconds_total", labels) >= seconds + 0.25


def test_preparing_a_post_times_each_text_step() -> None:
    clock = StageClock("unit")
    post = scored("timed").post
    prepare_post(post, Segmenter(), NoiseFilter(), 8, clock)
    totals = clock.totals()
    assert set(totals) == {"clean", "segment", "signature", "stack", "noise"}
    assert all(seconds >= 0 and records == 1 for seconds, records in totals.values())
