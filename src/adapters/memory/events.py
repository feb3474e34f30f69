"""An in-process event publisher that keeps what it published and calls subscribers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from chatcore.events import DomainEvent

__all__ = ["InMemoryEventPublisher"]

_log = logging.getLogger(__name__)

Subscriber = Callable[[DomainEvent], Awaitable[None]]


class InMemoryEventPublisher:
    """Keeps the last ``keep`` events (for tests and the demo) and fans out to subscribers."""

    def __init__(self, keep: int = 1000) -> None:
        self.published: list[DomainEvent] = []
        self._keep = keep
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: DomainEvent) -> None:
        if self._keep:
            self.published.append(event)
            if len(self.published) > self._keep:
                del self.published[: len(self.published) - self._keep]
        for subscriber in self._subscribers:
            try:
                await subscriber(event)
            except Exception:
                # A failing subscriber must not fail the use case that already committed.
                _log.exception("event subscriber failed: %s", type(event).__name__)
