"""RabbitMQ adapters: the analysis-event consumer, its topology, and the publisher of
chatcore's integration events."""

from adapters.rabbitmq.consumer import (
    ATTEMPTS_HEADER,
    EXCHANGE_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    AnalysisConsumer,
    ConsumerStats,
    Handler,
)
from adapters.rabbitmq.publisher import RabbitMQPublisher
from adapters.rabbitmq.topology import (
    DeclaredTopology,
    Topology,
    declare_topology,
    delete_topology,
    split_keys,
)

__all__ = [
    "ATTEMPTS_HEADER",
    "EXCHANGE_HEADER",
    "REASON_HEADER",
    "ROUTING_KEY_HEADER",
    "AnalysisConsumer",
    "ConsumerStats",
    "DeclaredTopology",
    "Handler",
    "RabbitMQPublisher",
    "Topology",
    "declare_topology",
    "delete_topology",
    "split_keys",
]
