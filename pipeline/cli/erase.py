"""`yuqing erase --author ID`: remove one author's posts from history, live evidence and stored alerts."""

from __future__ import annotations

import click

from pipeline.cli.output import echo_json, json_option
from pipeline.settings import get_settings


@click.command()
@click.option("--author", "author_id", required=True, help="The author id, as the feed gave it (pseudonymised here).")
@json_option()
def erase(author_id: str, as_json: bool) -> None:
    """Erase an author's posts (a data-protection request); prints what was removed and what was not reached."""
    from pipeline.stores.erasure import erase_author

    echo_json(erase_author(get_settings(), author_id).as_dict(), as_json)
