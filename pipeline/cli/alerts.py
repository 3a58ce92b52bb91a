"""``yuqing alerts …``: what the detectors raised, with its evidence, and acknowledging it."""

from __future__ import annotations

import getpass

import click

from pipeline.cli.output import echo_json, json_option
from pipeline.settings import get_settings
from pipeline.stores.redis.alerts import AlertStore


def _store() -> AlertStore:
    from pipeline.stores.redis.live import connect

    settings = get_settings()
    return AlertStore(connect(settings), settings.redis_prefix)


@click.group()
def alerts() -> None:
    """List, show and acknowledge alerts."""


@alerts.command("list")
@click.option("--subject", default=None, help="Only this subject's alerts.")
@click.option("--state", type=click.Choice(["opened", "updated", "resolved"]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines (one alert each) instead of a table.")
def list_alerts(subject: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """Alerts, most recently updated first."""
    found = _store().find(subject, state, limit)
    if as_json:
        for alert in found:
            click.echo(alert.model_dump_json())
        return
    if not found:
        click.echo("no alerts")
    for alert in found:
        ack = f"  acked by {alert.acknowledged_by}" if alert.acknowledged_by else ""
        click.echo(
            f"{alert.id}  {alert.updated_at:%Y-%m-%d %H:%M:%S}  {alert.state:<8} {alert.severity:<8} "
            f"{alert.kind:<15} {alert.subject}  since {alert.started_at:%H:%M}{ack}"
        )


@alerts.command("show")
@click.argument("alert_id")
@json_option()
def show_alert(alert_id: str, as_json: bool) -> None:
    """One alert with its evidence and every delivery attempt, as JSON."""
    store = _store()
    alert = store.require(alert_id)
    body = alert.model_dump(mode="json")
    body["deliveries"] = store.deliveries(alert_id)
    echo_json(body, as_json)


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--by", default=None, help="Who acknowledges it (default: the login name).")
@json_option("Print the acknowledged alert as one line of JSON.")
def ack_alert(alert_id: str, by: str | None, as_json: bool) -> None:
    """Acknowledge an alert: someone is on it."""
    alert = _store().acknowledge(alert_id, by or getpass.getuser())
    if as_json:
        click.echo(alert.model_dump_json())
        return
    click.echo(f"{alert.id} acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%Y-%m-%d %H:%M:%S}")
