from __future__ import annotations

import io

import pytest

from pipeline.ingest.sources import read_csv, read_jsonl, read_records


def test_jsonl_skips_blank_lines() -> None:
    stream = io.BytesIO(b'{"a": 1}\n\n  \n{"b": 2}\r\n')
    assert list(read_jsonl(stream)) == [b'{"a": 1}', b'{"b": 2}']


def test_csv_rows_drop_empty_cells_and_survive_bad_bytes() -> None:
    stream = io.BytesIO(
        "id,text,likes,url\np1,好评,3,\np2,bad \xff\n".encode("utf-8", "surrogateescape")[:-2] + b"\xff\n"
    )
    rows = list(read_csv(stream))
    assert rows[0] == {"id": "p1", "text": "好评", "likes": "3"}
    assert "\ufffd" in rows[1]["text"]


def test_unknown_format_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="unknown input format"):
        list(read_records(str(tmp_path / "x.txt"), "xml"))
