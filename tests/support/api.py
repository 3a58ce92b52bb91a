"""What the API tests share besides fixtures: tokens, a served API's handle, alerts as the service writes
them, and the check of a clear 4xx answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx

from pipeline.api.server import ApiServer
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import connect
from schemas.records import Alert
from tests.support.records import now_minute

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOKENS = f"{READ_TOKEN}:read,{ADMIN_TOKEN}:admin"


@dataclass
class Served:
    server: ApiServer
    client: httpx.Client
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url


ServeFactory = Callable[..., Served]


def make_alert(alert_id: str, subject: str = "云帆", *, state: str = "opened", minutes_ago: int = 3) -> Alert:
    started = now_minute() - timedelta(minutes=minutes_ago)
    return Alert.model_validate(
        {
            "id": alert_id,
            "subject": subject,
            "kind": "negative_surge",
            "state": state,
            "severity": "critical",
            "started_at": started,
            "updated_at": started + timedelta(minutes=minutes_ago - 1, seconds=30),
            # The shape the alert service writes (pipeline/alerting/service.py).
            "evidence": {
                "score": 6.2,
                "observed": 42,
                "expected": 3.5,
                "ratio": 12.0,
                "firing": True,
                "counts": [
                    {"minute": (started + timedelta(minutes=i)).isoformat(), "total": 10 + 9 * i, "negative": 2 + 8 * i}
                    for i in range(minutes_ago)
                ],
                "top_posts": [{"post_id": "ev-1", "text": "云帆手机电池爆炸了", "platform": "weibo", "engagement": 99}],
                "hot_words": ["电池", "爆炸"],
                "emerging_words": ["爆炸"],
                "started_at": started.isoformat(),
            },
        }
    )


def save_alert(settings: Settings, alert: Alert) -> None:
    client = connect(settings)
    AlertStore(client, settings.redis_prefix).save(alert)
    client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, fragment: str = "") -> None:
    """A clear 4xx: the status, a JSON body ``{"error": reason}``, and the reason mentions ``fragment``."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert fragment.lower() in body["error"].lower(), body
