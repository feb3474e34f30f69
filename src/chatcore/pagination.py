"""Keyset pagination: opaque cursors over ``(timestamp, id)`` keys."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from chatcore.errors import ValidationError

__all__ = ["Cursor", "PageRequest", "decode_cursor", "encode_cursor"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(slots=True, frozen=True)
class Cursor:
    """The sort key of the last item of a page; the next page starts after it."""

    at: datetime
    id: UUID


@dataclass(slots=True, frozen=True, kw_only=True)
class PageRequest:
    """Either a cursor (keyset) or an offset (``page`` kept for old clients)."""

    limit: int
    after: Cursor | None = None
    offset: int = 0


def encode_cursor(at: datetime, item_id: UUID) -> str:
    micros = (at - _EPOCH) // _MICRO
    raw = micros.to_bytes(8, "big", signed=True) + item_id.bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """Parse a cursor made by :func:`encode_cursor`; anything else is a validation error."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("cursor is malformed") from exc
    if len(raw) != 24:
        raise ValidationError("cursor is malformed")
    micros = int.from_bytes(raw[:8], "big", signed=True)
    try:
        at = _EPOCH + micros * _MICRO
    except (OverflowError, OSError, ValueError) as exc:
        raise ValidationError("cursor is malformed") from exc
    return Cursor(at=at, id=UUID(bytes=raw[8:]))
