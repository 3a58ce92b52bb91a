"""Who may listen where: a server reachable beyond this machine must ask for a token."""

from __future__ import annotations

import hmac
import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name or a wildcard such as 0.0.0.0: reachable from elsewhere


def parse_tokens(configured: str) -> tuple[bytes, ...]:
    return tuple(token.strip().encode() for token in configured.split(",") if token.strip())


def token_allowed(header: str | None, tokens: tuple[bytes, ...]) -> bool:
    """Whether an ``Authorization: Bearer`` header holds one of ``tokens`` (every one compared, in constant time)."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    candidate = presented.strip().encode()
    return any([hmac.compare_digest(candidate, token) for token in tokens])
