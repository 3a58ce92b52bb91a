"""Process logging: text for a person or one JSON object per line (``YUQING_LOG_FORMAT``), never a secret.

Every process (CLI, ingest, API, worker) calls ``configure_logging``; a faust worker replaces the root
handlers with its own when it starts, so it calls ``adopt_handlers`` afterwards. Redaction sits on the
handlers, not on a logger: a logger's filter does not see records propagated from its children.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from pipeline.settings import Settings

LogFormat = Literal["text", "json"]
REDACTED = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shorter values would blank out ordinary words of every message.
MIN_SECRET_CHARS = 3
# Passwords in any URL (redis://:pw@host, clickhouse://user:pw@host) and bearer tokens, configured or not.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)[\w.~+/=-]{8,}")
# The attributes every LogRecord has; anything else came in through ``extra=``.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_INSTALLED = "_yuqing_handler"


def secrets_of(settings: Settings) -> dict[str, str]:
    """Each secret value the settings hold, with what stands in its place in a log line."""
    found: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            _add_secret(found, value.get_secret_value())
    for url in settings.alert_webhooks.split(","):
        # A webhook URL is often its own credential (a token in the path or query): keep only its host.
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme and parts.hostname and len(url) > len(f"{parts.scheme}://{parts.netloc}/"):
            found[url] = f"{parts.scheme}://{parts.hostname}/{REDACTED}"
    return found


def _add_secret(found: dict[str, str], value: str) -> None:
    # A URL's host and database help whoever reads the log; only its password is kept out.
    if len(value) >= MIN_SECRET_CHARS and "://" not in value:
        found[value] = REDACTED
    for piece in (p.strip() for p in value.split(",")):
        if "://" in piece:
            password = urlsplit(piece).password
            if password and len(password) >= MIN_SECRET_CHARS:
                found[password] = REDACTED
            continue
        token, sep, scope = piece.rpartition(":")
        # token:scope pairs (YUQING_API_TOKENS): the token is the secret, the scope is not.
        secret = token if sep and scope.isalpha() else piece
        if len(secret) >= MIN_SECRET_CHARS:
            found[secret] = REDACTED


class RedactSecrets(logging.Filter):
    """Replaces secret values, URL passwords and bearer tokens in a record's message, exception and extras."""

    def __init__(self, secrets: Mapping[str, str] | Iterable[str] = ()) -> None:
        super().__init__()
        mapping = dict(secrets) if isinstance(secrets, Mapping) else dict.fromkeys(secrets, REDACTED)
        self._replacements = {k: v for k, v in mapping.items() if len(k) >= MIN_SECRET_CHARS}
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._replacements, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(lambda m: self._replacements[m.group(0)], text)
        text = _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", text)
        return _BEARER.sub(rf"\g<head>{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatted once here and the live exception dropped: both formatters then print this text.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class _JsonFormatter(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The time first, as a person reading the raw lines expects it.
        return {"time": log_data.pop("time", None), **log_data}


def json_formatter() -> logging.Formatter:
    """time (UTC, ISO 8601), level, logger, message, every ``extra=`` field, and ``exception`` when there is one."""
    return _JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
        json_ensure_ascii=False,
        # uvicorn's terminal-coloured copy of each message: escape codes, and the message twice.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def formatter(log_format: LogFormat) -> logging.Formatter:
    return json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def _hand_back_library_loggers() -> None:
    """transformers gives its loggers a stderr handler of their own and stops them propagating, which
    would bypass the format and the redaction; once it is imported, its records go to the root again."""
    hf_logging: Any = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()


def adopt_handlers(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Give the handlers someone else installed (faust's) the redaction, and the JSON format when asked."""
    target = logger or logging.getLogger()
    _hand_back_library_loggers()
    redact = RedactSecrets(secrets_of(settings))
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(old)
        handler.addFilter(redact)
        if settings.log_format == "json":
            handler.setFormatter(json_formatter())


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, as logging's last-resort handler does: a
    captured stream (a test's, a click runner's) may be closed after the handler was made."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def configure_logging(settings: Settings, level: str | int = logging.WARNING) -> None:
    """Log to stderr in the configured format. Replaces what an earlier call installed and nothing else,
    so a host that set up logging first (a test runner) keeps its own handlers."""
    root = logging.getLogger()
    _hand_back_library_loggers()
    for old in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(old)
    handler = _Stderr()
    setattr(handler, _INSTALLED, True)
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(RedactSecrets(secrets_of(settings)))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if settings.log_format == "json":
        # Hugging Face's load bars would break the one-object-per-line stream (children inherit this).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
