"""Alerts (list, get, acknowledge) and subjects (list, create, change, delete) over the real Redis."""

from __future__ import annotations

import pytest

from pipeline.stores.redis.live import connect
from pipeline.stores.redis.subjects import SubjectStore
from tests.support.api import ADMIN_TOKEN, TOKENS, ServeFactory, assert_problem, bearer, make_alert, save_alert

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
ADMIN = bearer(ADMIN_TOKEN)


def test_alerts_list_filter_page_get_and_acknowledge(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    for i in range(5):
        save_alert(api.settings, make_alert(f"a{i}", "云帆" if i % 2 == 0 else "星河", minutes_ago=10 - i))
    save_alert(api.settings, make_alert("a0", "云帆", state="resolved", minutes_ago=10))
    client = api.client

    listed = client.get("/api/v1/alerts", headers=ADMIN).json()
    assert [a["id"] for a in listed["alerts"]] == ["a4", "a3", "a2", "a1", "a0"]  # most recently updated first
    assert listed["next_offset"] is None
    page = client.get("/api/v1/alerts", params={"limit": 2, "offset": 2}, headers=ADMIN).json()
    assert [a["id"] for a in page["alerts"]] == ["a2", "a1"] and page["next_offset"] == 4
    mine = client.get("/api/v1/alerts", params={"subject": "云帆", "state": "opened"}, headers=ADMIN).json()
    assert [a["id"] for a in mine["alerts"]] == ["a4", "a2"]
    every = client.get("/api/v1/alerts", params={"subject": "*", "limit": 1}, headers=ADMIN).json()
    assert [a["id"] for a in every["alerts"]] == ["a4"] and every["next_offset"] == 1
    assert client.get("/api/v1/alerts", params={"subject": "星河", "state": "resolved"}, headers=ADMIN).json() == {
        "limit": 50, "offset": 0, "next_offset": None, "alerts": []
    }  # fmt: skip
    assert_problem(client.get("/api/v1/alerts", params={"subject": "没有"}, headers=ADMIN), 404, "unknown subject")

    detail = client.get("/api/v1/alerts/a2", headers=ADMIN).json()
    assert detail["alert"]["evidence"]["top_posts"][0]["text"] == "云帆手机电池爆炸了"
    assert detail["dashboard_url"] == "http://dashboard.test/#/subject/%E4%BA%91%E5%B8%86?alert=a2"
    assert detail["deliveries"] == []
    assert_problem(client.get("/api/v1/alerts/nope", headers=ADMIN), 404, "no alert")

    acked = client.post("/api/v1/alerts/a2/acknowledge", json={"by": "值班 analyst"}, headers=ADMIN).json()
    assert acked["acknowledged_by"] == "值班 analyst" and acked["acknowledged_at"]
    again = client.post("/api/v1/alerts/a2/acknowledge", headers=ADMIN).json()
    assert again["acknowledged_at"] == acked["acknowledged_at"]  # the first acknowledgement stays
    assert client.get("/api/v1/alerts/a2", headers=ADMIN).json()["alert"]["acknowledged_by"] == "值班 analyst"
    assert_problem(client.post("/api/v1/alerts/nope/acknowledge", headers=ADMIN), 404, "no alert")
    assert_problem(client.post("/api/v1/alerts/a2/acknowledge", json={"by": ""}, headers=ADMIN), 422, "body.by")
    assert_problem(client.post("/api/v1/alerts/a2/acknowledge", json={"who": "x"}, headers=ADMIN), 422, "extra")


def test_subjects_create_change_delete(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    client = api.client
    yunfan = {"name": "云帆", "include": [["云帆", "Yunfan"], ["手机", "phone"]], "exclude": ["云帆路"]}

    assert client.get("/api/v1/subjects", headers=ADMIN).json()["subjects"] == []
    created = client.post("/api/v1/subjects", json=yunfan, headers=ADMIN)
    assert created.status_code == 201 and created.json()["version"] == 1
    assert_problem(client.post("/api/v1/subjects", json={**yunfan, "name": "云帆"}, headers=ADMIN), 409, "exists")
    assert client.get("/api/v1/subjects/云帆", headers=ADMIN).json()["exclude"] == ["云帆路"]
    # What the API wrote is what the workers read.
    stored = SubjectStore(connect(api.settings), api.settings.redis_prefix).load()
    assert stored.names == ("云帆",) and stored.version == 1

    changed = client.put("/api/v1/subjects/云帆", json={**yunfan, "exclude": []}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert client.get("/api/v1/subjects/云帆", headers=ADMIN).json()["exclude"] == []
    assert_problem(client.put("/api/v1/subjects/云帆", json={**yunfan, "name": "别的"}, headers=ADMIN), 422, "path")
    assert_problem(client.put("/api/v1/subjects/星河", json={**yunfan, "name": "星河"}, headers=ADMIN), 404, "星河")

    # A subject that now exists is known to the live endpoints, even before it has posts.
    assert client.get("/api/v1/series", params={"subject": "云帆"}, headers=ADMIN).status_code == 200

    assert client.delete("/api/v1/subjects/云帆", headers=ADMIN).status_code == 204
    assert_problem(client.delete("/api/v1/subjects/云帆", headers=ADMIN), 404, "no monitored subject")
    assert_problem(client.get("/api/v1/subjects/云帆", headers=ADMIN), 404, "no monitored subject")
    assert_problem(client.get("/api/v1/series", params={"subject": "云帆"}, headers=ADMIN), 404, "unknown subject")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "x", "include": []}, "at least one group"),
        ({"name": "x", "include": [[]]}, "empty"),
        ({"name": "_x", "include": [["a"]]}, "reserved"),
        ({"name": "*", "include": [["a"]]}, "reserved"),
        ({"name": "x", "include": [["a", "A"]]}, "same term"),
        ({"name": "x", "include": [["a"]], "exclude": ["a"]}, "both included"),
        ({"name": "x", "include": [["a"]], "threshold": 2}, "extra"),
        ({"name": "x", "include": [["a" * 65]]}, "longer than"),
        ({"include": [["a"]]}, "name"),
        ({"name": "x", "include": "a"}, "include"),
    ],
)
def test_invalid_subject_definitions_are_422_with_the_reason(serve: ServeFactory, body: object, fragment: str) -> None:
    api = serve(tokens=TOKENS)
    assert_problem(api.client.post("/api/v1/subjects", json=body, headers=ADMIN), 422, fragment)
    assert api.client.get("/api/v1/subjects", headers=ADMIN).json()["version"] == 0  # nothing was written


def test_a_body_that_is_not_json_is_422(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    response = api.client.post(
        "/api/v1/subjects", content=b"{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "json")
