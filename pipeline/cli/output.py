"""What every verb that prints data shares: one ``--json`` flag, and JSON for people or for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
JSON_HELP = "Print compact JSON, one document on one line, for scripts."


def json_option(help: str = JSON_HELP) -> Callable[[F], F]:
    """The ``--json`` flag, passed to the verb as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def echo_json(data: Any, as_json: bool) -> None:
    """Indented for a person; one line with ``--json``, so a script can read line by line."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=None if as_json else 2, default=str))
