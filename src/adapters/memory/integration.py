"""The in-process integration bus: what would go to RabbitMQ, kept in memory."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["InMemoryIntegrationPublisher"]

_log = logging.getLogger("chatcore.integration")


class InMemoryIntegrationPublisher:
    """Keeps the last ``keep`` published ``(routing_key, payload)`` pairs and logs each.

    Used when no ``RABBITMQ_URL`` is configured (one process, nothing to tell), in the
    demo and in tests.
    """

    def __init__(self, keep: int = 1000) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self._keep = keep

    async def publish(self, routing_key: str, payload: dict[str, Any]) -> None:
        _log.info("published in process: %s", routing_key)
        self.published.append((routing_key, payload))
        if len(self.published) > self._keep:
            del self.published[: len(self.published) - self._keep]
