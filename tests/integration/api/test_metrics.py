"""The API's /metrics: served without a token, requests counted by route template."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.support.api import READ_TOKEN, TOKENS, ServeFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_metrics_need_no_token_and_count_routes_by_template(serve: ServeFactory) -> None:
    served = serve(tokens=TOKENS)
    labels = {"app": "api", "route": "/api/v1/alerts/{alert_id}", "method": "GET", "status": "404"}
    before = REGISTRY.get_sample_value("yuqing_http_requests_total", labels) or 0.0
    assert served.client.get("/api/v1/alerts/nope").status_code == 401  # no token
    headers = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert served.client.get("/api/v1/alerts/no-such-alert", headers=headers).status_code == 404
    scraped = served.client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert (REGISTRY.get_sample_value("yuqing_http_requests_total", labels) or 0.0) == before + 1
    assert "no-such-alert" not in scraped.text  # paths never become labels
    assert "/metrics" not in served.client.get("/api/v1/openapi.json").text
