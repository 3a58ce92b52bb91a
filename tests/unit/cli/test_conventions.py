"""What every verb of the command line shares: a version, ``--json`` wherever data is printed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.cli.main import main

# Verbs that serve until stopped and print no data of their own.
SERVERS = {"worker", "api"}


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Each invocation sets up the process's logging; the test runner's own must come back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def leaf_commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from leaf_commands(command, path)
        else:
            yield path, command


def test_version_is_the_installed_distributions() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"yuqing, version {metadata.version('yuqing')}"


def test_every_verb_that_prints_data_takes_json() -> None:
    missing = [
        path
        for path, command in leaf_commands(main)
        if path not in SERVERS and not any("--json" in getattr(p, "opts", ()) for p in command.params)
    ]
    assert missing == []


def test_schemas_json_lists_the_written_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    assert result.output.count("\n") == 1 and len(written) >= 5
    assert all(Path(path).is_file() and Path(path).parent == tmp_path for path in written)
