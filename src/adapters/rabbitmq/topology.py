"""The consumer's exchanges and queues, declared (and re-declared on every reconnect).

For ``RABBITMQ_QUEUE=q`` bound to ``RABBITMQ_EXCHANGE=x``:

``x``
    the analysis worker's durable topic exchange (declared if missing, so the consumer
    may start before the worker).
``q``
    durable, bound to ``x`` with each of ``RABBITMQ_ROUTING_KEYS``; dead-lettered by the
    broker to ``q.dlq`` (``x-dead-letter-exchange: ""``, ``x-dead-letter-routing-key:
    q.dlq``), a safety net: the consumer itself puts what it gives up on into ``q.dlq``
    with the reason.
``q.dlq``
    durable, no consumer: messages that could not be parsed or failed on every attempt,
    with ``x-chatcore-reason``, for an operator to inspect and shovel back.
``q.retry.<ms>ms``
    one durable queue per retry delay, without consumers, with ``x-message-ttl: <ms>``
    and dead-lettered to ``q`` through the default exchange. A failed message published
    there comes back to ``q`` (only ``q``: not through ``x``, so no other service sees it
    twice) after the delay. One queue per delay rather than one queue with per-message
    expirations: RabbitMQ expires messages only at the head of a queue, so a 10-minute
    retry at the head would hold back every 1-second retry behind it.

A queue or exchange that already exists with other arguments (say ``q`` declared by an
earlier service without the dead-letter arguments) is used as it is, with a warning,
instead of failing: declaring it with different arguments is refused by the broker
(``PRECONDITION_FAILED``), and the consumer does not depend on those arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aio_pika import ExchangeType
from aiormq.exceptions import ChannelPreconditionFailed

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

__all__ = ["DeclaredTopology", "Topology", "declare_topology", "delete_topology", "split_keys"]

_log = logging.getLogger("chatcore.consumer")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass(slots=True, frozen=True, kw_only=True)
class Topology:
    """The names the consumer uses.

    Args:
        exchange: the topic exchange events arrive on (``RABBITMQ_EXCHANGE``).
        queue: this service's queue (``RABBITMQ_QUEUE``).
        routing_keys: the bindings of ``queue`` to ``exchange`` (``RABBITMQ_ROUTING_KEYS``).
        retry_delays: seconds before each retry; one retry queue per distinct delay.
    """

    exchange: str
    queue: str
    routing_keys: tuple[str, ...]
    retry_delays: tuple[float, ...] = (1, 5, 30, 120, 600)

    def __post_init__(self) -> None:
        if not self.exchange or not self.queue:
            raise ValueError("the exchange and the queue need names")
        if not self.routing_keys:
            raise ValueError("at least one routing key is needed")
        if not self.retry_delays or any(d <= 0 for d in self.retry_delays):
            raise ValueError("retry delays must be positive seconds")

    @property
    def dead_letter_queue(self) -> str:
        """``<queue>.dlq``."""
        return f"{self.queue}.dlq"

    def retry_queue(self, delay: float) -> str:
        """``<queue>.retry.<ms>ms``: where a message waits ``delay`` seconds."""
        return f"{self.queue}.retry.{_ms(delay)}ms"

    @property
    def retry_queues(self) -> tuple[str, ...]:
        """Every retry queue, once, in the order of the delays."""
        return tuple(dict.fromkeys(self.retry_queue(d) for d in self.retry_delays))

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue of the topology (main, dead-letter, retries)."""
        return (self.queue, self.dead_letter_queue, *self.retry_queues)

    def describe(self) -> str:
        """One line for the logs."""
        return (
            f"exchange {self.exchange!r} (topic) → queue {self.queue!r} with keys "
            f"{', '.join(self.routing_keys)}; dead letters in {self.dead_letter_queue!r}; "
            f"retries after {', '.join(f'{d:g}s' for d in self.retry_delays)}"
        )


@dataclass(slots=True, kw_only=True)
class DeclaredTopology:
    """The declared objects (bound to the channel they were declared on)."""

    exchange: AbstractExchange
    queue: AbstractQueue
    dead_letter_queue: AbstractQueue
    retry_queues: dict[str, AbstractQueue] = field(default_factory=dict)


async def _accepts(channel: AbstractChannel, kind: str, name: str, **params: Any) -> bool:
    """Whether the broker accepts this declaration as given (on a throwaway channel,
    since a refusal closes the channel it was made on)."""
    underlay = await channel.get_underlay_channel()
    probe = await underlay.connection.channel(publisher_confirms=False)
    try:
        if kind == "exchange":
            await probe.exchange_declare(name, **params)
        else:
            await probe.queue_declare(name, **params)
    except ChannelPreconditionFailed as exc:
        _log.warning(
            "%s %r exists with other settings than chatcore's (%s); using it as it is",
            kind,
            name,
            exc,
        )
        return False
    finally:
        if not probe.is_closed:
            await probe.close()
    return True


async def declare_topology(channel: AbstractChannel, topology: Topology) -> DeclaredTopology:
    """Declare everything on ``channel`` (a robust channel re-declares it on reconnect).

    Raises whatever the broker answers besides ``PRECONDITION_FAILED`` (access refused,
    a missing vhost...): the consumer cannot work then.
    """
    passive_exchange = not await _accepts(
        channel, "exchange", topology.exchange, exchange_type="topic", durable=True
    )
    exchange = await channel.declare_exchange(
        topology.exchange, ExchangeType.TOPIC, durable=True, passive=passive_exchange
    )
    dead_letter = await channel.declare_queue(topology.dead_letter_queue, durable=True)
    retries: dict[str, AbstractQueue] = {}
    for delay in topology.retry_delays:
        name = topology.retry_queue(delay)
        if name in retries:
            continue
        arguments: dict[str, Any] = {
            "x-message-ttl": _ms(delay),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.queue,
        }
        passive = not await _accepts(channel, "queue", name, durable=True, arguments=arguments)
        retries[name] = await channel.declare_queue(
            name, durable=True, arguments=None if passive else arguments, passive=passive
        )
    main_arguments: dict[str, Any] = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.dead_letter_queue,
    }
    passive = not await _accepts(
        channel, "queue", topology.queue, durable=True, arguments=main_arguments
    )
    queue = await channel.declare_queue(
        topology.queue,
        durable=True,
        arguments=None if passive else main_arguments,
        passive=passive,
    )
    for key in topology.routing_keys:
        await queue.bind(exchange, routing_key=key)
    return DeclaredTopology(
        exchange=exchange, queue=queue, dead_letter_queue=dead_letter, retry_queues=retries
    )


async def delete_topology(
    channel: AbstractChannel, topology: Topology, *, exchange: bool = True
) -> None:
    """Delete every queue (and the exchange): for tests and tear-downs, never in service."""
    for name in topology.queues:
        await channel.queue_delete(name)
    if exchange:
        await channel.exchange_delete(topology.exchange)


def split_keys(raw: str | Sequence[str]) -> tuple[str, ...]:
    """``"a, b,,c"`` (or a sequence) → ``("a", "b", "c")``, duplicates dropped."""
    items = raw.split(",") if isinstance(raw, str) else raw
    return tuple(dict.fromkeys(k.strip() for k in items if k.strip()))
