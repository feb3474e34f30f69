"""A complete in-memory chatcore in one call, for tests of chatcore and of other services.

Example:
    >>> system = in_memory_system()
    >>> conversation = await system.conversations.create(user_id, CreateConversation())
    >>> result = await system.messages.send(user_id, conversation.id, "Karier apa yang cocok?")

Everything is real except the storage (in memory) and the model (the offline
advisor, unless another ``ChatModel`` is given); the clock is a :class:`FakeClock`
unless one is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.memory import (
    InMemoryEventPublisher,
    InMemoryNotifier,
    InMemoryRateLimiter,
    InMemorySpendLedger,
    InMemoryStore,
    InMemoryUnitOfWorkFactory,
)
from adapters.offline import OfflineChatModel
from chatcore.clock import FakeClock
from chatcore.fallback import ModelChain, ModelGateway
from chatcore.limits import RateLimits, RatePolicy
from chatcore.ports import ChatModel, Clock
from chatcore.services import ChatSettings, ConversationService, LibraryService, MessageService

__all__ = ["InMemorySystem", "in_memory_system"]


@dataclass(slots=True, kw_only=True)
class InMemorySystem:
    """The services plus the in-memory state behind them, for assertions."""

    clock: Clock
    store: InMemoryStore
    uow: InMemoryUnitOfWorkFactory
    model: ChatModel
    limiter: InMemoryRateLimiter
    events: InMemoryEventPublisher
    notifier: InMemoryNotifier
    """What the students' sockets were sent (``chat_message`` for each new answer)."""
    gateway: ModelGateway
    settings: ChatSettings
    conversations: ConversationService
    messages: MessageService
    library: LibraryService


def in_memory_system(
    *,
    settings: ChatSettings | None = None,
    rate_policy: RatePolicy | None = None,
    model: ChatModel | None = None,
    chain: ModelChain | None = None,
    clock: Clock | None = None,
    in_process: bool | None = None,
) -> InMemorySystem:
    """Build chatcore on in-memory adapters; every argument has a sensible default.

    ``model`` answers for every model of ``chain`` (default: one rung, ``offline``).
    ``in_process``: whether the gateway treats ``model`` as answering in process, so
    that a turn is stored in one unit of work (default: when ``model`` is the offline
    advisor; see ``ModelGateway``).
    """
    settings = settings or ChatSettings()
    clock = clock or FakeClock()
    store = InMemoryStore()
    uow = InMemoryUnitOfWorkFactory(store)
    limiter = InMemoryRateLimiter(clock)
    limits = RateLimits(limiter, rate_policy or RatePolicy())
    events = InMemoryEventPublisher()
    notifier = InMemoryNotifier()
    chat_model: ChatModel = model if model is not None else OfflineChatModel()
    gateway = ModelGateway(
        provider=chat_model,
        chain=chain or ModelChain(primary="offline"),
        clock=clock,
        limiter=limiter,
        spend=InMemorySpendLedger(store),
        events=events,
        in_process=(isinstance(chat_model, OfflineChatModel) if in_process is None else in_process),
    )
    return InMemorySystem(
        clock=clock,
        store=store,
        uow=uow,
        model=chat_model,
        limiter=limiter,
        events=events,
        notifier=notifier,
        gateway=gateway,
        settings=settings,
        conversations=ConversationService(
            uow=uow, clock=clock, limits=limits, events=events, settings=settings
        ),
        messages=MessageService(
            uow=uow,
            clock=clock,
            gateway=gateway,
            limits=limits,
            events=events,
            settings=settings,
            notifier=notifier,
        ),
        library=LibraryService(uow=uow, clock=clock),
    )
