"""WebSocket adapters: the per-process connection hub and the notifiers that feed it
(in-process, or fanned out to every replica through RabbitMQ)."""

from adapters.websocket.hub import ConnectionHub, encode_frame
from adapters.websocket.notifier import HttpForwardNotifier, LocalNotifier, RabbitMQNotifier

__all__ = [
    "ConnectionHub",
    "HttpForwardNotifier",
    "LocalNotifier",
    "RabbitMQNotifier",
    "encode_frame",
]
