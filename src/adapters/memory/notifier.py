"""A notifier that keeps what it was asked to deliver (tests, and services built on
:func:`chatcore.testing.in_memory_system`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

__all__ = ["InMemoryNotifier"]


class InMemoryNotifier:
    """Keeps the last ``keep`` notifications as ``(user_id, event, data)``."""

    def __init__(self, keep: int = 1000) -> None:
        self.sent: list[tuple[UUID, str, dict[str, Any]]] = []
        self._keep = keep

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        self.sent.append((user_id, event, data))
        if len(self.sent) > self._keep:
            del self.sent[: len(self.sent) - self._keep]

    def events(self, user_id: UUID, event: str | None = None) -> list[dict[str, Any]]:
        """The data of what ``user_id`` was sent (only ``event``, when given), in order."""
        return [d for u, e, d in self.sent if u == user_id and event in (None, e)]
