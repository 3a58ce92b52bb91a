"""`yuqing db …`: the ClickHouse history store's schema. `yuqing db migrate` is also the Kubernetes Job."""

from __future__ import annotations

import json

import click

from pipeline.cli.output import json_option
from pipeline.settings import get_settings


@click.group()
def db() -> None:
    """The ClickHouse history store's schema."""


@db.command()
@json_option()
def migrate(as_json: bool) -> None:
    """Apply the schema migrations not yet applied (safe while workers start; exits 1 on an error)."""
    from pipeline.stores.clickhouse.engines import open_engine
    from pipeline.stores.clickhouse.migrations import Applied
    from pipeline.stores.clickhouse.migrations import migrate as run_migrations

    settings = get_settings()

    def progress(done: Applied) -> None:
        if not as_json:
            click.echo(f"applied {done.version:04d}_{done.name} ({done.statements} statements)")

    engine = open_engine(settings.clickhouse_url.get_secret_value())
    try:
        applied = run_migrations(engine, redis_url=settings.redis_url.get_secret_value(), on_applied=progress)
        database = engine.database
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps({"database": database, "applied": [done.as_dict() for done in applied]}))
    elif not applied:
        click.echo(f"{database}: schema up to date, nothing applied")
    else:
        click.echo(f"{database}: {len(applied)} migration(s) applied")
