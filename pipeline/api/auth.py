"""Bearer tokens with two scopes: ``read`` (every GET) and ``admin`` (also acknowledging alerts and
editing subjects).

Tokens come from ``YUQING_API_TOKENS`` as ``token:scope`` pairs. A presented token is compared with
every configured one using ``hmac.compare_digest`` and without stopping at the first match, so the
time an answer takes says nothing about how close a guess was. With no tokens configured (the local
demo) anyone may read without a token and nobody may change anything.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.api import ApiError
from pipeline.api.errors import ApiProblem

# Printable, header-safe characters only; longer tokens than this are refused before comparing.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")
MIN_TOKEN_CHARS = 16


class Scope(IntEnum):
    """Ordered: a higher scope includes the lower ones."""

    READ = 1
    ADMIN = 2


@dataclass(frozen=True)
class Caller:
    scope: Scope
    anonymous: bool  # True in open mode: no tokens configured and none presented


@dataclass(frozen=True)
class TokenTable:
    """The configured tokens; empty means open read-only access."""

    tokens: tuple[tuple[bytes, Scope], ...]

    @classmethod
    def parse(cls, spec: str) -> TokenTable:
        """``tok1:read,tok2:admin`` → a table; an invalid entry raises ApiError naming its position."""
        entries: list[tuple[bytes, Scope]] = []
        for index, item in enumerate(part.strip() for part in spec.split(",")):
            if not item:
                continue
            token, sep, scope = item.rpartition(":")
            # Never put the token itself into the message: it would end up in logs.
            if not sep or scope not in ("read", "admin"):
                raise ApiError(f"YUQING_API_TOKENS entry {index + 1}: expected token:read or token:admin")
            if not TOKEN_PATTERN.match(token):
                raise ApiError(
                    f"YUQING_API_TOKENS entry {index + 1}: a token is {MIN_TOKEN_CHARS}-256 characters "
                    "of A-Z a-z 0-9 . _ ~ + / = -"
                )
            entries.append((token.encode(), Scope.ADMIN if scope == "admin" else Scope.READ))
        return cls(tuple(entries))

    @property
    def open(self) -> bool:
        return not self.tokens

    def scope_of(self, presented: str) -> Scope | None:
        """The scope of a presented token, or None; every configured token is compared."""
        candidate = presented.encode()
        found: Scope | None = None
        for token, scope in self.tokens:
            if hmac.compare_digest(candidate, token) and (found is None or scope > found):
                found = scope
        return found


# auto_error=False: a missing or malformed header gets our own JSON reason, not FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`.")


def _unauthorized(reason: str) -> ApiProblem:
    return ApiProblem(401, reason, headers={"WWW-Authenticate": 'Bearer realm="yuqing"'})


def identify(header: str | None, table: TokenTable) -> Caller:
    """Who is calling, from the Authorization header; ApiProblem 401 when it is missing, malformed or unknown."""
    if header is None:
        if table.open:
            return Caller(Scope.READ, anonymous=True)
        raise _unauthorized("missing token: send Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not TOKEN_PATTERN.match(token.strip()):
        raise _unauthorized("malformed Authorization header: expected Bearer and a token of 16-256 characters")
    scope = table.scope_of(token.strip())
    if scope is None:
        raise _unauthorized("unknown token")
    return Caller(scope, anonymous=False)


def admit_admin(who: Caller) -> Caller:
    """``who``, if it may change things; ApiProblem 403 otherwise."""
    if who.scope < Scope.ADMIN:
        reason = (
            "this needs an admin token; no tokens are configured (YUQING_API_TOKENS), so the API is read-only"
            if who.anonymous
            else "this needs a token with the admin scope"
        )
        raise ApiProblem(403, reason)
    return who


def caller(request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    """The caller of a request (``_credentials`` declares the bearer scheme in the OpenAPI description)."""
    return identify(request.headers.get("authorization"), request.app.state.tokens)


def require_read(who: Annotated[Caller, Depends(caller)]) -> Caller:
    return who


def require_admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    return admit_admin(who)


ReadAccess = Annotated[Caller, Depends(require_read)]
AdminAccess = Annotated[Caller, Depends(require_admin)]
