"""Time-ordered identifiers.

Ids are UUIDv7 (RFC 9562): the first 48 bits are the Unix time in milliseconds, so
ids sort by creation time and keyset pagination on ``(created_at, id)`` is stable.
"""

from __future__ import annotations

import os
from datetime import datetime
from uuid import UUID

__all__ = ["new_id"]


def new_id(now: datetime, rand: bytes | None = None) -> UUID:
    """Return a UUIDv7 for ``now``; ``rand`` (10 bytes) makes it deterministic in tests."""
    ms = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    tail = rand if rand is not None else os.urandom(10)
    if len(tail) != 10:
        raise ValueError("rand must be 10 bytes")
    rnd = int.from_bytes(tail, "big")
    rand_a = (rnd >> 68) & 0xFFF
    rand_b = rnd & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)
