"""``yuqing subjects …``: read and edit the monitored subjects while the pipeline runs.

Edits go to the subject store (Redis); every worker applies them within ``YUQING_SUBJECTS_RELOAD_S``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.output import json_option
from pipeline.domain.subjects.model import SubjectSet
from pipeline.settings import get_settings
from pipeline.stores.redis.subjects import SubjectStore


def _store() -> SubjectStore:
    from pipeline.stores.redis.live import connect

    settings = get_settings()
    return SubjectStore(connect(settings), settings.redis_prefix)


def _echo_set(subjects: SubjectSet, as_json: bool) -> None:
    click.echo(subjects.model_dump_json(exclude_none=True) if as_json else _describe(subjects))


def _describe(subjects: SubjectSet) -> str:
    return f"subject set version {subjects.version}: {', '.join(subjects.names) or 'no subjects'}"


@click.group()
def subjects() -> None:
    """List, add, change, remove and test monitored subjects."""


@subjects.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the whole set as JSON.")
def list_subjects(as_json: bool) -> None:
    """The current subject set."""
    current = _store().load()
    if as_json:
        click.echo(current.model_dump_json(indent=2, exclude_none=True))
        return
    click.echo(_describe(current))
    for item in current.subjects:
        groups = " AND ".join("(" + " | ".join(group) + ")" for group in item.include)
        extras = [f"not {', '.join(item.exclude)}" if item.exclude else ""]
        extras.append(f"on {', '.join(item.platforms)}" if item.platforms else "")
        extras.append(f"~ {item.description!r} ≥ {item.similarity_threshold}" if item.description else "")
        click.echo(f"  {item.name}: {groups} {' '.join(e for e in extras if e)}".rstrip())


@subjects.command("add")
@click.argument("name")
@click.option("--terms", "groups", multiple=True, required=True, help="Comma-separated terms, any of which match; "
              "repeat for AND: --terms 云帆,Yunfan --terms 手机,phone.")  # fmt: skip
@click.option("--exclude", multiple=True, help="A term that rules a post out (repeatable).")
@click.option("--platform", "platforms", multiple=True, help="Only posts from this platform (repeatable).")
@click.option("--description", default=None, help="Also match posts whose embedding is close to this text.")
@click.option("--threshold", type=float, default=None, help="Cosine similarity for --description (default 0.83).")
@json_option("Print the resulting subject set as one line of JSON.")
def add_subject(
    name: str,
    groups: tuple[str, ...],
    exclude: tuple[str, ...],
    platforms: tuple[str, ...],
    description: str | None,
    threshold: float | None,
    as_json: bool,
) -> None:
    """Add a subject, or replace the one called NAME."""
    from pipeline.stores.redis.subjects import subject_from_options

    subject = subject_from_options(name, list(groups), list(exclude), list(platforms), description, threshold)
    _echo_set(_store().put(subject), as_json)


@subjects.command("remove")
@click.argument("name")
@json_option("Print the resulting subject set as one line of JSON.")
def remove_subject(name: str, as_json: bool) -> None:
    """Stop monitoring the subject called NAME."""
    _echo_set(_store().remove(name), as_json)


@subjects.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option("Print the resulting subject set as one line of JSON.")
def load_file(path: Path, as_json: bool) -> None:
    """Replace the whole set with a YAML/JSON subjects file (checked before anything is written)."""
    from pipeline.domain.subjects.model import load_subjects

    _echo_set(_store().replace(load_subjects(path)), as_json)


@subjects.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option("Print the resulting subject set as one line of JSON.")
def export_file(path: Path, as_json: bool) -> None:
    """Write the current set to a YAML/JSON file (the format follows the suffix)."""
    from pipeline.domain.subjects.model import save_subjects

    current = _store().load()
    save_subjects(current, path)
    if as_json:
        _echo_set(current, as_json)
        return
    click.echo(f"{_describe(current)} → {path}")


@subjects.command("test")
@click.argument("text")
@click.option("--platform", default=None, help="The post's platform, for subjects limited to some.")
@click.option("--hashtag", "hashtags", multiple=True, help="A hashtag the feed gave with the post (repeatable).")
@json_option("Print JSON (it always is one line; accepted for every verb alike).")
def test_text(text: str, platform: str | None, hashtags: tuple[str, ...], as_json: bool) -> None:
    """Which subjects a post with TEXT would count under (by terms; descriptions need the model)."""
    from pipeline.domain.subjects.match import match_subjects
    from pipeline.domain.text.clean import clean
    from pipeline.domain.text.segment import Segmenter

    current = _store().load()
    segmenter = Segmenter()
    segmenter.add_terms(current.all_terms())
    cleaned = clean(text)
    tokens = segmenter.tokens(cleaned)
    matched = match_subjects(cleaned, [*tokens, *hashtags], current, platform=platform)
    result = {"subjects": list(matched), "lang": cleaned.lang, "tokens": tokens, "hashtags": list(cleaned.hashtags)}
    click.echo(json.dumps(result, ensure_ascii=False))
