"""Time-ordered identifiers.

Ids are UUIDv7 (RFC 9562): the first 48 bits are the Unix time in milliseconds, so
ids sort by creation time and keyset pagination on ``(created_at, id)`` is stable.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from uuid import UUID

__all__ = ["new_id"]


_RANDOM_BATCH = 4096
"""Bytes read from the OS at a time: one ``getrandom`` call makes 409 ids, where one
call per id was a visible share of the message route's system time."""


class _RandomBytes:
    """The OS's random bytes, read in batches and handed out ten at a time; never the
    same bytes twice, from any thread."""

    def __init__(self) -> None:
        self._buffer = b""
        self._at = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bytes:
        with self._lock:
            at = self._at
            if at + count > len(self._buffer):
                self._buffer, at = os.urandom(_RANDOM_BATCH), 0
            self._at = at + count
            return self._buffer[at : at + count]

    def forget(self) -> None:
        """Drop what is left: a forked child must not hand out its parent's bytes."""
        self._buffer, self._at = b"", 0
        self._lock = threading.Lock()  # the parent's may have been held at the fork


_random = _RandomBytes()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.forget)


def new_id(now: datetime, rand: bytes | None = None) -> UUID:
    """Return a UUIDv7 for ``now``; ``rand`` (10 bytes) makes it deterministic in tests."""
    ms = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    tail = rand if rand is not None else _random.take(10)
    if len(tail) != 10:
        raise ValueError("rand must be 10 bytes")
    rnd = int.from_bytes(tail, "big")
    rand_a = (rnd >> 68) & 0xFFF
    rand_b = rnd & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)
