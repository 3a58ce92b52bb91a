from __future__ import annotations

import pytest

from pipeline.domain.access import is_loopback, parse_tokens, token_allowed


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("api.example", False), ("", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_token_must_be_presented_as_bearer_and_match_one_configured() -> None:
    tokens = parse_tokens(" ingest-token-0123456789 , other-token-0123456789 ,")
    assert tokens == (b"ingest-token-0123456789", b"other-token-0123456789")
    assert token_allowed("Bearer other-token-0123456789", tokens)
    assert token_allowed("bearer  ingest-token-0123456789 ", tokens)
    for header in (
        None,
        "",
        "Bearer",
        "Basic ingest-token-0123456789",
        "Bearer ingest-token-01234567",
        "ingest-token-0123456789",
    ):
        assert not token_allowed(header, tokens), header
