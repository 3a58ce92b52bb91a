"""A running worker's HTTP port: Prometheus metrics per stage and sink, consumer lag, and the probes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.observability.metrics import ALERTED_METRICS, exposed_names
from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisLive
from tests.support.feeds import produce
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import WorkerFactory, wait_until

pytestmark = pytest.mark.e2e
POSTS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:  # not listening yet
        return 0, str(error)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name``, by its sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text, name).get(tuple(sorted(labels.items())), 0.0)


def test_a_worker_exports_its_metrics_and_probes(e2e_settings: Settings, workers: WorkerFactory) -> None:
    port = free_port()
    redis_port = urlsplit(e2e_settings.redis_url.get_secret_value()).port or 6379
    base = f"http://127.0.0.1:{port}"
    with TcpProxy(redis_port) as redis_proxy:
        settings = e2e_settings.model_copy(
            update={
                "worker_http_port": port,
                "redis_url": type(e2e_settings.redis_url)(f"redis://127.0.0.1:{redis_proxy.port}/0"),
            }
        )
        posts = produce(settings, POSTS)
        workers(settings)
        live = RedisLive(e2e_settings)  # past the proxy
        wait_until(lambda: live.total(30) >= len(posts), 180, "the posts counted in Redis")
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, 60, "the worker ready")
        assert get(f"{base}/healthz") == (200, json.dumps({"status": "ok"}))

        def scrape() -> str:
            status, text = get(f"{base}/metrics")
            assert status == 200
            return text

        topics = {settings.topic_raw, settings.topic_scored}

        # Offsets are committed after the flush and the lag is sampled every few seconds.
        def caught_up() -> bool:
            lags = samples(scrape(), "yuqing_consumer_lag")
            ours = [lag for labels, lag in lags.items() if dict(labels)["topic"] in topics]
            return len(ours) == len(topics) * settings.partitions and sum(lags.values()) == 0

        wait_until(caught_up, 60, "the lag of every partition to reach 0")
        # The only worker leads its group, so it runs the detectors.
        wait_until(lambda: value(scrape(), "yuqing_detector_ticks_total") > 0, 30, "a detection pass")
        text = scrape()
        for stage in ("score", "aggregate"):
            assert value(text, "yuqing_posts_in_total", stage=stage) == POSTS, stage
            assert value(text, "yuqing_posts_out_total", stage=stage) == POSTS, stage
        for sink in ("redis", "clickhouse"):
            assert value(text, "yuqing_sink_flush_seconds_count", sink=sink) > 0, sink
            assert value(text, "yuqing_event_to_sink_seconds_count", sink=sink) == POSTS, sink
        assert value(text, "yuqing_batch_size_count", agent="score") > 0
        assert value(text, "yuqing_model_calls_total") > 0
        assert value(text, "process_resident_memory_bytes") > 0
        assert {labels for labels in samples(text, "yuqing_consumer_lag")} >= {
            (("partition", "0"), ("topic", settings.topic_raw)),
            (("partition", "1"), ("topic", settings.topic_scored)),
        }
        assert set(ALERTED_METRICS) - exposed_names(text) == set()

        redis_proxy.cut()
        status, body = get(f"{base}/readyz")
        assert status == 503
        report = json.loads(body)
        assert report["ready"] is False and report["checks"]["redis"].startswith("unreachable")
        assert report["checks"]["model"] == report["checks"]["clickhouse"] == "ok"
        redis_proxy.restore()
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, 30, "ready again with Redis back")
