"""`yuqing rescore`: score a window of stored history again with another model, as that model's version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from pipeline.cli.output import echo_json, json_option
from pipeline.settings import get_settings


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.command()
@click.option("--since", required=True, help="Window start, an ISO time (UTC if no zone): minutes from it on.")
@click.option("--until", required=True, help="Window end, an ISO time (UTC if no zone): minutes before it.")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The model folder to score with (its card gives the model id and version).",
)
@json_option()
def rescore(since: str, until: str, model_path: Path, as_json: bool) -> None:
    """Re-score stored posts with another model; its verdicts go to ClickHouse beside the serving model's
    (the live counts in Redis are not touched). Running it again over the same window writes nothing."""
    from pipeline.devkit.progress import progress_bar
    from pipeline.stores.clickhouse.engines import open_engine
    from pipeline.stores.clickhouse.history import ClickHouseHistory
    from pipeline.stores.clickhouse.sink import ClickHouseSink
    from workers.rescoring import rescore as run_rescore
    from workers.scoring.loading import load_scorer

    start, end = _moment(since), _moment(until)
    if end <= start:
        raise click.BadParameter("--until must be after --since")
    settings = get_settings()
    scorer = load_scorer(model_path)
    engine = open_engine(settings.clickhouse_url.get_secret_value())
    redis_url = settings.redis_url.get_secret_value()
    try:
        history = ClickHouseHistory(engine=engine, redis_url=redis_url)
        sink = ClickHouseSink(engine=engine, redis_url=redis_url)
        total = history.stored_post_count(start, end)
        label = f"re-scoring with {scorer.model_id} {scorer.model_version}"
        with progress_bar(label, total, enabled=not as_json) as report:
            result = run_rescore(history, sink, scorer, start, end, on_progress=report)
    finally:
        engine.close()
    if as_json:
        echo_json(result.as_dict(), as_json)
    else:
        click.echo(
            f"{result.read} posts read, {result.written} verdicts of {result.model_id} {result.model_version} "
            f"stored ({result.read - result.skipped - result.written} already there, "
            f"{result.skipped} skipped: text gone or invalid)"
        )
