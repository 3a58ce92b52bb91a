"""Read raw records from JSON Lines or CSV files (or stdin) without judging them."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

RawRecord = bytes | dict[str, Any]


def _open(path: str) -> BinaryIO:
    return sys.stdin.buffer if path == "-" else Path(path).open("rb")


def read_jsonl(stream: BinaryIO) -> Iterator[RawRecord]:
    """Yield each non-blank line as bytes; decoding and validation happen later, per record."""
    for line in stream:
        if line.strip():
            yield line.rstrip(b"\r\n")


def read_csv(stream: BinaryIO) -> Iterator[RawRecord]:
    """Yield each row as a dict; empty cells count as absent. Undecodable bytes become U+FFFD."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    for row in csv.DictReader(text):
        yield {key: value for key, value in row.items() if key and value not in (None, "")}


def read_records(path: str, fmt: str | None = None) -> Iterator[RawRecord]:
    """Records from ``path`` (``-`` for stdin); the format comes from ``fmt`` or the file's suffix."""
    kind = fmt or ("csv" if path.lower().endswith(".csv") else "jsonl")
    if kind not in ("csv", "jsonl"):
        raise ValueError(f"unknown input format {kind!r}: use jsonl or csv")
    with _open(path) as stream:
        yield from (read_csv(stream) if kind == "csv" else read_jsonl(stream))
