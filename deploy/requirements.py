"""Print pyproject.toml's dependencies one per line, for the image's dependency layers (deploy/Dockerfile).

    python requirements.py pyproject.toml --exclude torch,transformers,safetensors   # the slim image's
    python requirements.py pyproject.toml --only torch,transformers,safetensors      # what the full one adds

Standard library only: it runs before anything is installed, and pyproject.toml stays the one list.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = _NAME.match(spec)
    if match is None:
        raise ValueError(f"not a requirement: {spec!r}")
    return canonical(match.group(1))


def dependencies(pyproject: Path, only: set[str] | None = None, exclude: frozenset[str] = frozenset()) -> list[str]:
    """The project's dependencies (no extras), filtered by distribution name."""
    specs: list[str] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    wanted = {canonical(name) for name in only} if only is not None else None
    excluded = {canonical(name) for name in exclude}
    return [
        spec
        for spec in specs
        if requirement_name(spec) not in excluded and (wanted is None or requirement_name(spec) in wanted)
    ]


def _names(text: str) -> set[str]:
    return {name.strip() for name in text.split(",") if name.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--only", type=_names, default=None, help="comma-separated names to keep")
    group.add_argument("--exclude", type=_names, default=set(), help="comma-separated names to leave out")
    args = parser.parse_args(argv)
    specs = dependencies(args.pyproject, args.only, frozenset(args.exclude))
    if args.only is not None:
        missing = {canonical(name) for name in args.only} - {requirement_name(spec) for spec in specs}
        if missing:  # a renamed dependency must not silently drop out of the image
            parser.error(f"not among the dependencies: {', '.join(sorted(missing))}")
    sys.stdout.write("".join(f"{spec}\n" for spec in specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
