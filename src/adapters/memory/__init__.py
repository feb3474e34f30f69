"""In-memory implementations of every port: real, shipped, and fast.

They keep the same semantics as the PostgreSQL adapter (per-user isolation,
transactions that roll back unless committed, keyset ordering), which one
contract test suite checks against both.
"""

from adapters.memory.assessment import InMemoryAssessmentSource
from adapters.memory.events import InMemoryEventPublisher
from adapters.memory.integration import InMemoryIntegrationPublisher
from adapters.memory.notifier import InMemoryNotifier
from adapters.memory.ratelimit import InMemoryRateLimiter
from adapters.memory.spend import InMemorySpendLedger, InMemorySystemUsageReader
from adapters.memory.store import (
    InMemoryConversationRepository,
    InMemoryMessageRepository,
    InMemoryReactionRepository,
    InMemoryStore,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
    InMemoryUsageRepository,
)

__all__ = [
    "InMemoryAssessmentSource",
    "InMemoryConversationRepository",
    "InMemoryEventPublisher",
    "InMemoryIntegrationPublisher",
    "InMemoryMessageRepository",
    "InMemoryNotifier",
    "InMemoryRateLimiter",
    "InMemoryReactionRepository",
    "InMemorySpendLedger",
    "InMemoryStore",
    "InMemorySystemUsageReader",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "InMemoryUsageRepository",
]
