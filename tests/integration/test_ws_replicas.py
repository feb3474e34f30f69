"""Notifications reach a user's sockets on every replica, through a real RabbitMQ.

Two apps (two replicas: each its own container, hub and RabbitMQNotifier) and a
publish-only notifier standing in for the consumer process share one exchange, named
uniquely per test so that runs never see each other's notifications. Skipped when no
broker answers at ``CHATCORE_TEST_RABBITMQ_URL``, ``RABBITMQ_URL`` or
``amqp://guest:guest@127.0.0.1:5672/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing.websocket_test_session import WebSocketTestSession

from adapters.websocket.hub import ConnectionHub
from adapters.websocket.notifier import RabbitMQNotifier
from tests.unit.http_support import Api, running_api, token_for

RABBITMQ_URL = (
    os.environ.get("CHATCORE_TEST_RABBITMQ_URL")
    or os.environ.get("RABBITMQ_URL")
    or "amqp://guest:guest@127.0.0.1:5672/"
)


async def _broker_answers(url: str) -> str | None:
    import aio_pika  # noqa: PLC0415

    try:
        connection = await aio_pika.connect(url, timeout=2)
    except Exception as exc:
        return repr(exc)
    await connection.close()
    return None


async def _delete_exchanges(url: str, *names: str) -> None:
    import aio_pika  # noqa: PLC0415

    connection = await aio_pika.connect(url, timeout=5)
    try:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def broker() -> str:
    problem = asyncio.run(_broker_answers(RABBITMQ_URL))
    if problem is not None:
        pytest.skip(
            f"no RabbitMQ answers at {RABBITMQ_URL} ({problem}); set CHATCORE_TEST_RABBITMQ_URL"
        )
    return RABBITMQ_URL


@pytest.fixture
def exchange(broker: str) -> Iterator[str]:
    name = f"chatcore-test.notifications.{uuid.uuid4().hex}"
    yield name
    asyncio.run(_delete_exchanges(broker, name))


@pytest.fixture
def replicas(broker: str, exchange: str, tmp_path: Path) -> Iterator[tuple[Api, Api]]:
    suffix = uuid.uuid4().hex
    env = {
        "RABBITMQ_URL": broker,
        "NOTIFICATIONS_EXCHANGE": exchange,
        # Whatever else of the app uses the broker keeps to names of its own too.
        "RABBITMQ_EXCHANGE": f"chatcore-test.events.{suffix}",
        "RABBITMQ_QUEUE": f"chatcore-test.queue.{suffix}",
        "WS_PING_INTERVAL": "0",
    }
    with contextlib.ExitStack() as stack:
        apps = [
            stack.enter_context(contextlib.contextmanager(running_api)(tmp_path / n, env=env))
            for n in ("a", "b")
        ]
        yield apps[0], apps[1]
    asyncio.run(_delete_exchanges(broker, env["RABBITMQ_EXCHANGE"]))


@contextlib.contextmanager
def _socket(api: Api, user_id: uuid.UUID) -> Iterator[WebSocketTestSession]:
    with api.client.websocket_connect("/ws") as session:
        token = token_for(api.settings, user_id)
        session.send_json({"event": "authenticate", "data": {"token": token}})
        assert session.receive_json(timeout=5)["event"] == "authenticated"
        yield session


async def _publish_from_elsewhere(
    url: str, exchange: str, user_id: uuid.UUID, event: str, data: dict[str, Any]
) -> None:
    """The consumer process: no sockets, it only publishes."""
    notifier = RabbitMQNotifier(url, hub=None, exchange=exchange)
    await notifier.start()
    try:
        assert await notifier.ready()
        assert notifier.queue_name is None
        await notifier.notify(user_id, event, data)
    finally:
        await notifier.stop()


def test_a_notification_from_the_consumer_reaches_every_replica(
    replicas: tuple[Api, Api], broker: str, exchange: str
) -> None:
    a, b = replicas
    for api in replicas:
        checks = api.client.blocking_portal.call(api.container.check_ready)
        assert checks["notifications"] is True
    user, stranger = uuid.uuid4(), uuid.uuid4()
    with _socket(a, user) as on_a, _socket(b, user) as on_b, _socket(b, stranger) as other:
        data = {"conversationId": str(uuid.uuid4()), "resultId": "result-42"}
        asyncio.run(_publish_from_elsewhere(broker, exchange, user, "chatbot_ready", data))
        frames = [on_a.receive_json(timeout=10), on_b.receive_json(timeout=10)]
        assert frames[0] == frames[1]  # the same frame, the same timestamp
        assert frames[0]["event"] == "chatbot_ready"
        assert frames[0]["data"] == data
        assert frames[0]["timestamp"].endswith("Z")
        with pytest.raises(queue.Empty):
            other.receive(timeout=0.5)


def test_a_notification_raised_on_one_replica_reaches_the_other(
    replicas: tuple[Api, Api],
) -> None:
    a, b = replicas
    user = uuid.uuid4()
    with _socket(a, user) as on_a, _socket(b, user) as on_b:
        data = {"stage": "analysis_started", "progress": 50, "resultId": "r"}
        a.client.blocking_portal.call(
            a.container.notifier.notify, user, "assessment_progress", data
        )
        # Exactly once on each: the raising replica hears it back through its own queue.
        for session in (on_a, on_b):
            assert session.receive_json(timeout=10)["data"] == data
            with pytest.raises(queue.Empty):
                session.receive(timeout=0.3)


async def test_without_a_broker_only_local_sockets_hear_it() -> None:
    """A broker that does not answer at start: the replica goes on, not ready, and its
    own sockets still get notifications."""
    hub = ConnectionHub(ping_interval=0)
    frames: list[str] = []

    class Socket:
        async def send_text(self, data: str) -> None:
            frames.append(data)

        async def close(self, code: int = 1000, reason: str | None = None) -> None:
            return None

    user = uuid.uuid4()
    hub.register(user, Socket())
    notifier = RabbitMQNotifier(
        "amqp://guest:guest@127.0.0.1:1/", hub=hub, exchange="unused", start_timeout=0.3
    )
    await notifier.start()
    try:
        assert not await notifier.ready()
        await notifier.notify(user, "chatbot_ready", {"resultId": "r"})
        await asyncio.sleep(0.05)
        assert len(frames) == 1
        assert '"chatbot_ready"' in frames[0]
    finally:
        await notifier.stop()
        await hub.aclose()
