"""Process logging: one JSON object per line when asked, and never a secret in either format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from pipeline.logs import REDACTED, RedactSecrets, adopt_handlers, configure_logging, json_formatter, secrets_of
from pipeline.settings import Settings

SECRETS = {
    "redis_url": SecretStr("redis://:redis-pass-1@cache:6379/0"),
    "clickhouse_url": SecretStr("clickhouse://yuqing:ch-pass-2@history:9000/yuqing"),
    "author_key": SecretStr("author-key-3"),
    "alert_webhook_secret": SecretStr("webhook-secret-4"),
    "api_tokens": SecretStr("reader-token-5555555:read,admin-token-666666:admin"),
    "ingest_tokens": SecretStr("ingest-token-77777777,ingest-token-88888888"),
    "alert_webhooks": "https://hooks.example.com/services/T0/B0/hook-token-9",
}


@pytest.fixture
def settings() -> Settings:
    return Settings(**SECRETS)  # type: ignore[arg-type]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own with one handler on a buffer: the test runner's root handlers stay out of it."""
    stream = io.StringIO()
    log = logging.getLogger(f"tests.logs.{id(stream)}")
    log.propagate, log.level = False, logging.DEBUG
    log.addHandler(logging.StreamHandler(stream))
    yield log, stream
    log.handlers.clear()


def test_every_secret_setting_is_known_and_scopes_and_hosts_are_not(settings: Settings) -> None:
    found = secrets_of(settings)
    for secret in (
        "redis-pass-1",
        "ch-pass-2",
        "author-key-3",
        "webhook-secret-4",
        "reader-token-5555555",
        "admin-token-666666",
        "ingest-token-77777777",
        "ingest-token-88888888",
    ):
        assert found.get(secret) == REDACTED, secret
    assert "read" not in found and "admin" not in found
    assert found[SECRETS["alert_webhooks"]] == f"https://hooks.example.com/{REDACTED}"  # type: ignore[index]


def test_secrets_are_redacted_from_messages_arguments_exceptions_and_extras(
    settings: Settings, logger: tuple[logging.Logger, io.StringIO]
) -> None:
    log, stream = logger
    log.handlers[0].addFilter(RedactSecrets(secrets_of(settings)))
    log.handlers[0].setFormatter(json_formatter())
    log.warning("connecting with %s and key %s", "redis://:redis-pass-1@cache:6379/0", "author-key-3")
    log.warning("token", extra={"header": "reader-token-5555555"})
    try:
        raise ConnectionError("clickhouse://yuqing:ch-pass-2@history:9000 refused")
    except ConnectionError:
        log.exception("history store away")
    log.warning("delivering to %s", SECRETS["alert_webhooks"])
    text = stream.getvalue()
    for secret in ("redis-pass-1", "author-key-3", "ch-pass-2", "hook-token-9"):
        assert secret not in text, secret
    assert "redis://:***@cache:6379/0" in text and "clickhouse://yuqing:***@history" in text
    assert "Traceback" in text and "ConnectionError" in text  # the exception is kept, only redacted
    assert "https://hooks.example.com/***" in text
    assert '"header": "***"' in text


def test_passwords_in_any_url_and_bearer_tokens_are_redacted_even_when_not_configured() -> None:
    redact = RedactSecrets().redact
    assert (
        redact("redis://:p4ss@h:6379/0 and clickhouse://u:p@h/db")
        == "redis://:***@h:6379/0 and clickhouse://u:***@h/db"
    )
    assert redact("Authorization: Bearer abcdef123, then") == "Authorization: Bearer ***, then"
    assert redact("the bearer of the news") == "the bearer of the news"
    assert redact("http://host:8300/api/v1/aggregates?window=5") == "http://host:8300/api/v1/aggregates?window=5"


def test_short_values_are_not_taken_for_secrets() -> None:
    assert RedactSecrets(["ab", ""]).redact("a table of abc") == "a table of abc"


def test_json_lines_carry_time_level_logger_message_extras_and_the_exception(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.handlers[0].setFormatter(json_formatter())
    log.info("stored %d posts", 3, extra={"post_id": "wb-1", "batch_size": 3})
    try:
        raise ValueError("坏了")
    except ValueError:
        log.exception("refused", extra={"post_ids": ["a", "b"]})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:4] == ["time", "level", "logger", "message"]
    assert first["level"] == "INFO" and first["logger"] == log.name and first["message"] == "stored 3 posts"
    assert first["post_id"] == "wb-1" and first["batch_size"] == 3
    assert first["time"].endswith("+00:00")
    assert second["post_ids"] == ["a", "b"] and "ValueError: 坏了" in second["exception"]
    assert "坏了" in lines[1]  # Chinese stays readable, not \\u-escaped


def test_configure_logging_installs_one_handler_and_replaces_only_its_own(settings: Settings) -> None:
    root = logging.getLogger()
    # The handlers a host installed; not one an earlier in-process CLI call configured (it is replaced too).
    before = [h for h in root.handlers if not getattr(h, "_yuqing_handler", False)]
    level = root.level
    try:
        configure_logging(settings.model_copy(update={"log_format": "json"}), "INFO")
        configure_logging(settings, "WARNING")
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 1 and root.level == logging.WARNING
        assert not isinstance(ours[0].formatter, type(json_formatter()))
        assert any(isinstance(f, RedactSecrets) for f in ours[0].filters)
        assert all(h in root.handlers for h in before)
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_handlers_someone_else_installed_get_the_format_and_the_redaction(settings: Settings) -> None:
    stream = io.StringIO()
    log = logging.getLogger("tests.logs.adopted")
    log.propagate = False
    log.addHandler(logging.StreamHandler(stream))
    try:
        json_settings = settings.model_copy(update={"log_format": "json"})
        adopt_handlers(json_settings, log)
        adopt_handlers(json_settings, log)  # faust may set logging up again: still one filter
        log.warning("author key is %s", "author-key-3")
        assert json.loads(stream.getvalue())["message"] == f"author key is {REDACTED}"
        assert len(log.handlers[0].filters) == 1
    finally:
        log.handlers.clear()


def test_uvicorns_coloured_copy_of_the_message_is_left_out(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    log.handlers[0].setFormatter(json_formatter())
    log.info("Started server process [%d]", 7, extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    assert json.loads(stream.getvalue()) == {
        "time": json.loads(stream.getvalue())["time"],
        "level": "INFO",
        "logger": log.name,
        "message": "Started server process [7]",
    }
