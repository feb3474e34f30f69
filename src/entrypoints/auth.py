"""Authentication: JWTs from the auth service, and internal service calls.

Tokens are HS256 only, signed with ``JWT_SECRET``; ``exp``, ``iss``, ``aud`` and a UUID
``id`` are required. Internal calls present ``X-Internal-Service: true`` and the
right ``X-Service-Key`` and act for ``X-User-ID``; without the right key those
headers are ignored.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt

__all__ = [
    "AuthError",
    "Authenticator",
    "Principal",
    "issue_token",
    "resolve_jwt_secret",
]

_ALGORITHM = "HS256"
VERIFIED_TOKENS_KEPT = 10_000
"""How many verified tokens :class:`Authenticator` remembers (a few MB at most)."""


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: the user, whether an admin, and whether via an internal service."""

    user_id: UUID
    is_admin: bool = False
    email: str | None = None
    internal: bool = False


class AuthError(Exception):
    """Authentication failed.

    ``code`` is ``UNAUTHORIZED``, ``TOKEN_EXPIRED`` or ``INVALID_TOKEN``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Authenticator:
    """Turns request headers into a :class:`Principal` or an :class:`AuthError`.

    A client sends the same token with every request until it expires, so a token that
    verified is remembered (the exact string, signature included) with its ``exp``: the
    next request with it skips the signature and claim checks, but not the expiry,
    which is checked against ``clock`` every time. Only tokens that verified are kept,
    at most :data:`VERIFIED_TOKENS_KEPT`, the oldest forgotten first.
    """

    def __init__(
        self,
        *,
        secret: str,
        issuer: str,
        audience: str,
        internal_service_key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._service_key = internal_service_key.encode() if internal_service_key else None
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float]] = {}

    def authenticate(
        self,
        authorization: str | None,
        *,
        internal_service: str | None = None,
        service_key: str | None = None,
        acting_user: str | None = None,
    ) -> Principal:
        internal = self._internal(internal_service, service_key, acting_user)
        if internal is not None:
            return internal
        if not authorization:
            raise AuthError("UNAUTHORIZED", "authentication required: send a Bearer token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("INVALID_TOKEN", "the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if self._clock() < expires:
                return principal
            raise AuthError("TOKEN_EXPIRED", "the token has expired")
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest (insertion order)
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("TOKEN_EXPIRED", "the token has expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError("INVALID_TOKEN", f"invalid token: {exc}") from None
        raw_id = claims.get("id")
        try:
            user_id = UUID(str(raw_id)) if raw_id is not None else None
        except ValueError:
            user_id = None
        if user_id is None:
            raise AuthError("INVALID_TOKEN", "invalid token: the id claim must be a user UUID")
        email = claims.get("email")
        principal = Principal(
            user_id=user_id,
            is_admin=claims.get("type") == "admin",
            email=email if isinstance(email, str) else None,
        )
        return principal, float(claims["exp"])

    def _internal(
        self, flag: str | None, key: str | None, acting_user: str | None
    ) -> Principal | None:
        if self._service_key is None or flag is None or flag.lower() != "true" or not key:
            return None
        if not hmac.compare_digest(key.encode(), self._service_key):
            return None  # a wrong key makes these headers count for nothing
        if not acting_user:
            raise AuthError("UNAUTHORIZED", "internal calls must name the user in X-User-ID")
        try:
            return Principal(user_id=UUID(acting_user), internal=True)
        except ValueError:
            raise AuthError("UNAUTHORIZED", "X-User-ID must be a UUID") from None


def issue_token(
    *,
    secret: str,
    user_id: UUID,
    issuer: str,
    audience: str,
    ttl_seconds: int = 3600,
    admin: bool = False,
    email: str | None = None,
    now: float | None = None,
) -> str:
    """A token in the auth service's shape, for development and tests."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "id": str(user_id),
        "type": "admin" if admin else "user",
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def resolve_jwt_secret(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The configured secret, or a development secret generated once into ``data_dir``.

    Returns the secret and whether it is the generated one.
    """
    if configured:
        return configured, False
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip(), True
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        # Exclusive and owner-only from the first byte: the data dir may be world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), True
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret, True
