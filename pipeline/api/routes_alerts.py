"""Alerts from the Redis alert store: list, get (with delivery attempts), acknowledge (admin)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Request

from pipeline.api.auth import AdminAccess, ReadAccess
from pipeline.api.errors import ApiProblem
from pipeline.api.guard import WRITE_RESPONSES
from pipeline.api.models import Acknowledgement, AlertDetail, Alerts
from pipeline.api.params import AlertId, AlertState, Limit, Offset, SubjectName
from pipeline.api.state import api_state
from pipeline.stores.redis.keys import ALL_SUBJECTS
from schemas.records import Alert

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=Alerts, summary="Alerts, most recently updated first")
def list_alerts(
    request: Request,
    _who: ReadAccess,
    subject: SubjectName | None = None,
    state: AlertState = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Alerts:
    """A known subject without alerts gives an empty list; an unknown one (not monitored, no recent
    posts and no alerts) is 404. ``*`` or no subject: alerts of every subject."""
    api = api_state(request)
    name = None if subject in (None, ALL_SUBJECTS) else subject
    found = api.alerts.find(name, state, limit + 1, offset)
    if name is not None and not found and not api.is_known(name) and not api.alerts.find(name, None, 1, 0):
        raise ApiProblem(404, f"unknown subject {name!r}: not monitored, no posts in the last 24 h and no alerts")
    return Alerts(
        limit=limit, offset=offset, next_offset=offset + limit if len(found) > limit else None, alerts=found[:limit]
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="One alert with its evidence")
def get_alert(request: Request, _who: ReadAccess, alert_id: AlertId) -> AlertDetail:
    api = api_state(request)
    alert = api.alerts.require(alert_id)  # AlertNotFoundError → 404
    base = api.settings.dashboard_url.rstrip("/")
    return AlertDetail(
        alert=alert,
        deliveries=api.alerts.deliveries(alert_id),
        # The same link form the alert service puts in the evidence; the dashboard opens both.
        dashboard_url=f"{base}/#/subject/{quote(alert.subject, safe='')}?alert={quote(alert_id, safe='')}",
    )


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=Alert,
    responses=WRITE_RESPONSES,
    summary="Acknowledge an alert (admin)",
)
def acknowledge(
    request: Request, _who: AdminAccess, alert_id: AlertId, body: Annotated[Acknowledgement | None, Body()] = None
) -> Alert:
    """Marks the alert as seen; acknowledging again keeps the first acknowledgement."""
    by = body.by if body is not None else "api"
    return api_state(request).alerts.acknowledge(alert_id, by)
