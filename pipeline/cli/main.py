"""``yuqing <verb>``: a thin command line over the pipeline. Heavy imports happen inside each verb."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from pipeline.cli.alerts import alerts
from pipeline.cli.api import api
from pipeline.cli.db import db
from pipeline.cli.erase import erase
from pipeline.cli.model import model
from pipeline.cli.output import echo_json, json_option
from pipeline.cli.rescore import rescore
from pipeline.cli.subjects import subjects
from pipeline.errors import YuqingError
from pipeline.settings import get_settings


def _print_rows(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else ["(no data)"]:
        table.add_column(column, justify="left" if column in ("subject", "minute") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # piped output is not cut at 80


@click.group()
@click.version_option(package_name="yuqing", prog_name="yuqing")
def main() -> None:
    """yuqing: real-time public-opinion monitoring."""
    from pydantic import ValidationError

    from pipeline.logs import configure_logging

    try:
        settings = get_settings()
    except ValidationError:
        return  # the verb that needs them reports the error; a verb that does not still runs
    configure_logging(settings)


@main.command()
@click.argument("path", required=False)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Input format (default: by suffix).")
@click.option("--http", "http_address", metavar="HOST:PORT", help="Serve POST /posts instead of reading a file.")
@json_option("Print the counts as one line of JSON (the default too; accepted for every verb alike).")
def ingest(path: str | None, fmt: str | None, http_address: str | None, as_json: bool) -> None:
    """Validate posts from PATH (JSON Lines or CSV, - for stdin) and produce them to Kafka."""
    from pipeline.ingest.producer import Ingestor
    from pipeline.ingest.sources import read_records
    from pipeline.kafka import ensure_topics

    settings = get_settings()
    ensure_topics(settings)
    ingestor = Ingestor(settings)
    if http_address:
        from pipeline.ingest.http import serve

        host, _, port = http_address.rpartition(":")
        click.echo(f"yuqing ingest listening on http://{http_address}/posts", err=True)
        serve(ingestor, host or "127.0.0.1", int(port))
        return
    if not path:
        raise click.UsageError("give a PATH (or -) or --http HOST:PORT")
    for record in read_records(path, fmt):
        ingestor.submit(record)
    stats = ingestor.flush()
    ingestor.close()
    click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))


@main.group()
def feed() -> None:
    """Generated feeds."""


@feed.command()
@click.option("--rate", type=float, default=50.0, show_default=True, help="Posts per second.")
@click.option("--scenario", default="crisis", show_default=True, help="baseline, crisis or bot-flood.")
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option("Print the counts as one line of JSON (the default too; accepted for every verb alike).")
def synthetic(rate: float, scenario: str, duration: float | None, seed: int, as_json: bool) -> None:
    """Produce realistic posts drawn from the shipped corpora, in real time."""
    from pipeline.devkit.synthetic import SyntheticFeed
    from pipeline.ingest.producer import Ingestor
    from pipeline.kafka import ensure_topics

    settings = get_settings()
    ensure_topics(settings)
    ingestor = Ingestor(settings)
    try:
        for post in SyntheticFeed(scenario, rate, seed=seed).paced(duration):
            ingestor.submit(post.model_dump(mode="json"))
    except KeyboardInterrupt:
        pass
    finally:
        click.echo(json.dumps(ingestor.flush().as_dict()))
        ingestor.close()


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--api", "with_api", is_flag=True, help="Also serve the API and dashboard from this process "
              "(for chDB, which one process owns; YUQING_API_HOST/PORT say where).")  # fmt: skip
def worker(loglevel: str, with_api: bool) -> None:
    """Run one faust worker process (score and aggregate agents, and detection on the leader)."""
    from pipeline.logs import configure_logging
    from workers.process import run_worker

    settings = get_settings()
    configure_logging(settings, loglevel)  # until faust takes over the handlers, then adopted (run_worker)
    run_worker(settings, loglevel, with_api=with_api)


@main.command()
@click.option("--window", default="5m", show_default=True, help="Rolling window, 1m..24h (live, from Redis).")
@click.option("--subject", default=None, help="Only this subject.")
@click.option("--history", is_flag=True, help="Minute series from ClickHouse instead of live windows.")
@click.option("--since", default="1h", show_default=True, help="History start: ISO time or a span back (90m, 2h).")
@click.option("--until", default=None, help="History end (ISO time; default now).")
@click.option("--hot-words", is_flag=True, help="The subject's top terms (and, live, emerging ones) instead.")
@click.option("--model-version", default=None, help="History of this model version (default: the serving one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def query(
    window: str,
    subject: str | None,
    history: bool,
    since: str,
    until: str | None,
    hot_words: bool,
    model_version: str | None,
    as_json: bool,
) -> None:
    """Rolling aggregates (Redis) or minute history (ClickHouse)."""
    from pipeline.stores.query import history_rows, parse_window, window_rows
    from pipeline.stores.redis.keys import ALL_SUBJECTS

    settings = get_settings()
    if history:
        from pipeline.stores.clickhouse.history import ClickHouseHistory

        start = _parse_time(since)
        end = _parse_time(until) if until else None
        with ClickHouseHistory.from_url(settings.clickhouse_url.get_secret_value()) as store:
            if hot_words:
                words = store.hot_words(subject, start, end, model_version=model_version)
                rows = [{"term": term, "posts": n} for term, n in words]
            else:
                rows = history_rows(store.minute_series(start, end, subject, model_version=model_version))
        _print_rows(rows, as_json, f"minute history since {start.isoformat()}")
        return
    from pipeline.stores.redis.live import RedisLive

    live = RedisLive(settings)
    minutes = parse_window(window)
    if hot_words:
        name = subject or ALL_SUBJECTS
        emerging = dict(live.emerging_words(name))
        rows = [{"term": t, "posts": n, "emerging": emerging.get(t, "")} for t, n in live.hot_words(name, minutes)]
        _print_rows(rows, as_json, f"hot words of {name}, last {window}")
        return
    _print_rows(window_rows(live, minutes, subject), as_json, f"last {window}")


def _parse_time(text: str) -> datetime:
    """An ISO time (UTC if naive), or a span back from now such as 90m or 2h."""
    from pipeline.stores.query import QueryError, parse_window

    try:
        return datetime.now(UTC) - timedelta(minutes=parse_window(text))
    except QueryError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is neither an ISO time nor a span like 2h") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@main.command()
@click.option("--duration", type=float, default=None, help="Stop after N seconds (default: until Ctrl-C).")
@click.option("--rate", type=float, default=10.0, show_default=True, help="Synthetic posts per second.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary instead of the live view.")
def demo(duration: float | None, rate: float, as_json: bool) -> None:
    """Everything local: broker, Redis, ClickHouse engine, model, workers, a crisis feed."""
    from pipeline.devkit.demo import run_demo

    summary = run_demo(get_settings(), duration, rate, live_view=not as_json)
    click.echo(json.dumps(summary, ensure_ascii=False, indent=None if as_json else 2))


@main.command()
@json_option()
def health(as_json: bool) -> None:
    """Check the broker, Redis, ClickHouse and the model; exit 1 when anything is unhealthy."""
    from pipeline.cli.health import check_health

    healthy, report = check_health(get_settings())
    echo_json(report, as_json)
    if not healthy:
        sys.exit(1)


clickhouse_server_option = click.option(
    "--clickhouse-server",
    is_flag=True,
    help="History to YUQING_CLICKHOUSE_URL's server (as in production), not chDB in the worker's process.",
)


@main.group()
def bench() -> None:
    """Benchmarks: JSON, each against a reference measured in the same run."""


@bench.command("pipeline")
@click.option("--posts", type=int, default=20_000, show_default=True, help="Posts to push through.")
@click.option(
    "--latency-s", type=float, default=10.0, show_default=True, help="Seconds of each offered load (latency part)."
)
@click.option(
    "--split-agents", is_flag=True, help="One process scores and another stores (YUQING_WORKER_AGENTS), not one both."
)
@clickhouse_server_option
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_pipeline(posts: int, latency_s: float, split_agents: bool, clickhouse_server: bool, as_json: bool) -> None:
    """Ingest and end-to-end posts/s against the model alone, µs per post by stage, CPU by process, and
    event→Redis latency at 50% and 80% of the measured rate (one worker, embedded services)."""
    from pipeline.devkit.bench.pipeline_bench import run as run_bench

    report = run_bench(
        posts,
        get_settings(),
        progress=not as_json,
        latency_s=latency_s,
        split_agents=split_agents,
        clickhouse_server=clickhouse_server,
    )
    click.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


@bench.command("scale")
@click.option("--posts", type=int, default=20_000, show_default=True, help="Posts to push through each group.")
@click.option("--workers", default="1,2", show_default=True, help="Worker counts; the first is the reference.")
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_scale(posts: int, workers: str, as_json: bool) -> None:
    """The same posts through 1 and more worker processes: posts/s ratio and whether every count is identical
    (use the TF-IDF model, YUQING_MODEL_PATH=.yuqing/models/baseline, so the model is not the bottleneck)."""
    from pipeline.devkit.bench.scale_bench import run as run_scale

    try:
        counts = [int(count) for count in workers.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"{workers!r} is not a comma-separated list of integers") from exc
    report = run_scale(posts, get_settings(), counts)
    click.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


@bench.command("stages")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None, help="[default: served]")
@click.option("--posts", type=int, default=4096, show_default=True)
@click.option("--batch", type=int, default=256, show_default=True, help="Posts per micro-batch.")
@click.option("--processes", type=int, default=None, help="Text processes [default: one per core; 0: none].")
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_stages(model_path: Path | None, posts: int, batch: int, processes: int | None, as_json: bool) -> None:
    """The score agent's stages without broker or stores against the model alone: can the text side keep
    the model (a GPU) fed? Runs on a bare machine: no Kafka, Redis or ClickHouse."""
    from pipeline.devkit.bench.stages_bench import run as run_stages
    from workers.scoring.options import RuntimeOptions

    settings = get_settings()
    options = RuntimeOptions.from_settings(settings)
    report = run_stages(model_path or settings.model_path, posts, batch, processes, options=options)
    click.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


@bench.command("memory")
@click.option("--posts", type=int, default=100_000, show_default=True, help="Posts through one worker.")
@click.option("--chunks", type=int, default=20, show_default=True, help="Samples of the resident set.")
@click.option("--paced-s", type=float, default=None, help="Spread the posts over this many seconds (a soak).")
@clickhouse_server_option
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_memory(posts: int, chunks: int, paced_s: float | None, clickhouse_server: bool, as_json: bool) -> None:
    """The worker's resident memory after each chunk of posts: peak, final, and the spread over the last half."""
    from pipeline.devkit.bench.memory_bench import run as run_memory

    report = run_memory(
        get_settings(), posts, chunks, paced_s, clickhouse_server=clickhouse_server, progress=not as_json
    )
    click.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


@bench.command("model")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path), help="Model folder (repeatable).")
@click.option("--batch-sizes", default=None, help="Comma-separated batch sizes [default: 1,8,32,128,512].")
@click.option("--posts", type=int, default=None, help="Distinct posts per batch size [default: 2048; 192 --short].")
@click.option("--short", is_flag=True, help="A quick run: batch sizes 1,8,32, fewer posts, about 30 s on 2 cores.")
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_model(
    models: tuple[Path, ...], batch_sizes: str | None, posts: int | None, short: bool, as_json: bool
) -> None:
    """Model posts/s per batch size (tokenisation included) against the TF-IDF baseline; default models: teacher
    and student, else the e5 base with a random head (timing only)."""
    from pipeline.devkit.bench.model_bench import run as run_model_bench
    from workers.runtime import CALL_TOKENS_LARGE
    from workers.scoring.options import RuntimeOptions

    try:
        sizes = [int(size) for size in batch_sizes.split(",")] if batch_sizes else None
    except ValueError as exc:
        raise click.BadParameter(f"{batch_sizes!r} is not a comma-separated list of integers") from exc
    settings = get_settings()
    options = RuntimeOptions.from_settings(settings)
    # The sweep's batch sizes are model calls as large as they say, unless a budget is set explicitly.
    max_tokens = settings.batch_max_tokens or CALL_TOKENS_LARGE
    result = run_model_bench(list(models) or None, sizes, posts, short, options, max_tokens, progress=not as_json)
    click.echo(json.dumps(result, ensure_ascii=False, indent=None if as_json else 2))


@bench.command("noise")
@click.option("--short", is_flag=True, help="A few thousand posts, a few seconds.")
@click.option("--posts", type=int, default=None, help="Posts in the stream.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_noise(short: bool, posts: int | None, seed: int, as_json: bool) -> None:
    """Share of injected copies flagged, organic posts wrongly flagged, and µs per post; exit 1 off target."""
    from pipeline.devkit.bench.noise_bench import DEFAULT_POSTS, SHORT_POSTS, run

    report = run(seed=seed, posts=posts or (SHORT_POSTS if short else DEFAULT_POSTS))
    click.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))
    if not report["ok"]:
        sys.exit(1)


@bench.command("alerts")
@click.option("--short", is_flag=True, help="Six scenarios over 32 simulated minutes (CI-sized, about 2 minutes).")
@click.option("--scenarios", "plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A YAML plan of scenarios instead of the built-in one.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON.")
def bench_alerts(short: bool, plan_file: Path | None, as_json: bool) -> None:
    """Precision, recall and detection delay on scripted surges and decoys, against a 5-minute report."""
    from pipeline.devkit.bench.alerts_bench import load_plan, run

    report = run(get_settings(), load_plan(plan_file, short), progress=not as_json)
    click.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


@main.command("schemas")
@click.option("--out", type=click.Path(path_type=Path), default=Path("schemas/json"), show_default=True)
@json_option("Print the written paths as one JSON list.")
def export_schemas(out: Path, as_json: bool) -> None:
    """Write the JSON Schema of every versioned record."""
    from schemas.export import write_json_schemas

    written = write_json_schemas(out)
    if as_json:
        click.echo(json.dumps([str(path) for path in written]))
        return
    for path in written:
        click.echo(path)


main.add_command(model)
main.add_command(subjects)
main.add_command(alerts)
main.add_command(api)
main.add_command(erase)
main.add_command(db)
main.add_command(rescore)


def run() -> None:
    """Entry point: yuqing's own errors print one clear line and exit 1, without a traceback."""
    try:
        main(standalone_mode=True)
    except YuqingError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
