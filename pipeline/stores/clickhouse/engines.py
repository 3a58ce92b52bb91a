"""Two ways to reach ClickHouse behind one tiny interface: a server (clickhouse-driver) or chDB.

Queries are written once, with ClickHouse's own ``{name:Type}`` placeholders. chDB binds them
natively; for the server they become clickhouse-driver's client-side ``%(name)s`` parameters,
because ClickHouse 18.16 (the server CI runs) has no server-side parameters.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pipeline.stores.sink import SinkError

DEFAULT_DATABASE = "yuqing"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^{}]+\}")

Param = str | int
Row = Mapping[str, Any]


class ClickHouseError(SinkError):
    """ClickHouse refused a statement or could not be reached."""


# ClickHouse error codes that blame the values sent (parse, type and range errors), not the server:
# CANNOT_PARSE_TEXT, CANNOT_PARSE_QUOTED_STRING, CANNOT_PARSE_INPUT_ASSERTION_FAILED, CANNOT_PARSE_DATE,
# CANNOT_PARSE_DATETIME, TYPE_MISMATCH, ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, CANNOT_PARSE_NUMBER,
# INCORRECT_DATA, CANNOT_READ_ARRAY_FROM_TEXT, TOO_LARGE_STRING_SIZE, SIZES_OF_ARRAYS_DONT_MATCH,
# VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE.
DATA_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 130, 131, 190, 321})
_CODE = re.compile(r"\bCode:\s*(\d+)")
# Errors Python raises while packing a value the column cannot hold (a 1900 date in a DateTime, say).
_PACKING_ERRORS = (OverflowError, ValueError, TypeError, UnicodeError)


def quote(value: str) -> str:
    """A ClickHouse string literal, for the few statements that take no parameters (mutations, IN lists)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_data_error(exc: BaseException) -> bool:
    """True when ``exc`` (or an error it was raised from) says the rows, not the server, are at fault."""
    cause: BaseException | None = exc
    while cause is not None:
        code = getattr(cause, "code", None)
        match = _CODE.search(str(cause))
        if (isinstance(code, int) and code in DATA_ERROR_CODES) or (match and int(match[1]) in DATA_ERROR_CODES):
            return True
        if isinstance(cause, _PACKING_ERRORS) and cause is not exc:
            return True
        cause = cause.__cause__
    return False


class Engine(Protocol):
    database: str

    def execute(self, sql: str) -> None: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    def select(self, sql: str, params: Mapping[str, Param] | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineUrl:
    """A parsed ``clickhouse://`` or ``chdb://`` URL."""

    kind: str  # "server" or "chdb"
    database: str
    target: str  # the driver URL without its database, or the chDB data folder


def parse_engine_url(url: str) -> EngineUrl:
    """Split a history-store URL into the engine kind, the database and where to connect."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a ClickHouse URL (no scheme): {url!r}")
    if scheme in ("clickhouse", "clickhouses"):
        parts = urlsplit(url)
        database = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
        # Connect to the server's default database: ours may not exist until we create it.
        target = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
        return EngineUrl("server", checked_identifier(database), target)
    if scheme == "chdb":
        # Not urlsplit: in chdb://relative/path the first folder would be taken for a host.
        path, _, query = rest.partition("?")
        if not path:
            raise ValueError(f"chdb URL needs a folder: {url!r}")
        database = parse_qs(query).get("database", [DEFAULT_DATABASE])[-1]
        return EngineUrl("chdb", checked_identifier(database), str(Path(unquote(path)).resolve()))
    raise ValueError(f"unknown ClickHouse URL scheme {scheme!r}: use clickhouse:// or chdb://")


def checked_identifier(name: str) -> str:
    """``name`` if it is a plain identifier, else ValueError."""
    # Database names are spliced into SQL, never bound, so only plain identifiers pass.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"database name must be a plain identifier, got {name!r}")
    return name


def tsv_escape(value: str) -> str:
    """Escape a string the way ClickHouse reads a query parameter's value (TSV escaping)."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace("\0", "\\0")
    )


def to_driver_placeholders(sql: str) -> str:
    """``{name:Type}`` → ``%(name)s``, with literal ``%`` doubled for Python's % formatting."""
    return _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))


MAX_READ_S = 30
_DRIVER_TIMEOUTS = {"connect_timeout": "5", "send_receive_timeout": "60", "sync_request_timeout": "5"}


def _with_default_options(url: str, defaults: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    return urlunsplit(parts._replace(query=urlencode({**defaults, **options})))


class DriverEngine:
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, url: str, database: str) -> None:
        from clickhouse_driver import Client  # imported here so chDB-only installs never need it

        self.database = database
        # clickhouse-driver waits 300 s on a silent socket by default; a vanished server must
        # instead fail the flush soon, so the worker's retry loop reconnects. URL options win.
        self._client = Client.from_url(_with_default_options(url, _DRIVER_TIMEOUTS))
        # A Client is one connection and not thread-safe; API handlers may share this engine.
        self._lock = threading.Lock()

    def execute(self, sql: str) -> None:
        self._run(sql)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # Rows always go as the data argument: inline VALUES make clickhouse-driver hang.
        self._run(f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES", list(rows))

    def select(self, sql: str, params: Mapping[str, Param] | None = None) -> list[dict[str, Any]]:
        # The server gives up on a read after this long: a heavy query cannot hold the reader for ever.
        limit = {"max_execution_time": MAX_READ_S}
        if params:
            data, types = self._run(to_driver_placeholders(sql), dict(params), with_column_types=True, settings=limit)
        else:
            data, types = self._run(sql, None, with_column_types=True, settings=limit)
        names = [name for name, _ in types]
        return [dict(zip(names, row, strict=True)) for row in data]

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()

    def _run(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return self._client.execute(sql, params, **kwargs)
        except Exception as exc:  # network, server and type errors alike; the cause is chained
            raise ClickHouseError(f"ClickHouse server: {_first_line(exc)}") from exc


class ChdbEngine:
    """ClickHouse in this process (chDB), with its data in a folder.

    chDB allows one data folder per process: every engine in a process must use the same one
    until all of them are closed.
    """

    def __init__(self, folder: str, database: str) -> None:
        from chdb import session  # imported here so server-only installs never need chDB

        self.database = database
        Path(folder).mkdir(parents=True, exist_ok=True)
        try:
            self._session = session.Session(folder)
        except Exception as exc:
            raise ClickHouseError(f"chDB at {folder}: {_first_line(exc)}") from exc

    def execute(self, sql: str) -> None:
        self._query(sql, "TabSeparated")

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        # One JSON array per row, by position: half the bytes of JSONEachRow and twice as fast
        # to write and parse; the JSON encoder escapes any text safely.
        lines = "\n".join(json.dumps(row, default=_json_value, ensure_ascii=False) for row in rows)
        self._query(
            f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) FORMAT JSONCompactEachRow\n{lines}",
            "TabSeparated",
        )

    def select(self, sql: str, params: Mapping[str, Param] | None = None) -> list[dict[str, Any]]:
        bound = {name: _chdb_param(value) for name, value in (params or {}).items()}
        text = self._query(sql, "JSONEachRow", bound)
        # split("\n"), not splitlines(): that also splits at U+0085 or U+2028 inside a string value.
        return [json.loads(line) for line in text.split("\n") if line]

    def close(self) -> None:
        self._session.close()

    def _query(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> str:
        try:
            return str(self._session.query(sql, fmt, params=params))
        except Exception as exc:
            raise ClickHouseError(f"chDB: {_first_line(exc)}") from exc


def _chdb_param(value: Param) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"query parameters are str or int, got {type(value).__name__}")
    return tsv_escape(value) if isinstance(value, str) else str(value)


def _json_value(value: object) -> object:
    # DateTime columns take Unix seconds: no time-zone parsing on the way in.
    if isinstance(value, datetime):
        return int(value.timestamp())
    raise TypeError(f"cannot write {type(value).__name__} to ClickHouse")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def open_engine(url: str) -> Engine:
    """``clickhouse://user:pass@host:port/db`` → a server; ``chdb://PATH[?database=name]`` → chDB."""
    parsed = parse_engine_url(url)
    if parsed.kind == "server":
        return DriverEngine(parsed.target, parsed.database)
    return ChdbEngine(parsed.target, parsed.database)
