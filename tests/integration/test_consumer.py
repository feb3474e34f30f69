"""The analysis-event consumer against a real RabbitMQ, driving the real AssessmentService.

Every test declares its own exchange and queues (unique names, deleted at the end), so
runs can share a broker. The broker: ``CHATCORE_TEST_RABBITMQ_URL``, else
``RABBITMQ_URL``, else ``amqp://guest:guest@127.0.0.1:5672/``; the tests are skipped
when none answers. Events are published the way the analysis worker publishes them:
persistent, with a timestamp and a ``{jobId}-{eventType}-{epoch ms}`` message id, and no
content type.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import msgspec
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from adapters.archive import ArchiveClient, build_archive_http_client
from adapters.memory import (
    InMemoryEventPublisher,
    InMemoryRateLimiter,
    InMemorySpendLedger,
    InMemoryStore,
    InMemoryUnitOfWorkFactory,
)
from adapters.memory.assessment import InMemoryAssessmentSource
from adapters.offline import OfflineChatModel
from adapters.rabbitmq import (
    ATTEMPTS_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    AnalysisConsumer,
    RabbitMQPublisher,
    Topology,
    declare_topology,
)
from chatcore.assessment import AnalysisEvent, ArchiveResult, AssessmentSource
from chatcore.clock import FakeClock
from chatcore.domain.conversation import Conversation
from chatcore.domain.message import Message as ChatMessage
from chatcore.fallback import ModelChain, ModelGateway
from chatcore.services import ChatSettings
from chatcore.services.assessment import CONVERSATION_READY, AssessmentService
from entrypoints.consumer import ConsumerConfig, run_consumer
from entrypoints.settings import Settings
from tests.conftest import load_fixture
from tests.fakes.archive import FakeArchive

AMQP_URL = (
    os.environ.get("CHATCORE_TEST_RABBITMQ_URL")
    or os.environ.get("RABBITMQ_URL")
    or "amqp://guest:guest@127.0.0.1:5672/"
)
FAST = (0.2,)  # retry delays of the tests, in seconds
WAIT = 10.0


# -- the broker -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def amqp_url() -> str:
    async def answers() -> str | None:
        try:
            connection = await aio_pika.connect(AMQP_URL, timeout=2)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        await connection.close()
        return None

    problem = asyncio.run(answers())
    if problem is not None:
        pytest.skip(
            f"no RabbitMQ answers at {AMQP_URL} ({problem}); set CHATCORE_TEST_RABBITMQ_URL"
        )
    return AMQP_URL


@dataclass(slots=True)
class Broker:
    """The test's own connection, names and helpers."""

    connection: AbstractRobustConnection
    channel: AbstractChannel
    exchange: AbstractExchange
    topology: Topology
    url: str
    extra_queues: list[str] = field(default_factory=list)

    async def publish_event(
        self, body: bytes | dict[str, Any], routing_key: str | None = None
    ) -> str:
        """Publish as the analysis worker does; returns the message id."""
        if isinstance(body, dict):
            routing_key = routing_key or body["eventType"]
            message_id = f"{body['jobId']}-{body['eventType']}-{int(time.time() * 1000)}"
            raw = json.dumps(body).encode()
        else:
            message_id = f"raw-{uuid.uuid4().hex}"
            raw = body
        await self.exchange.publish(
            aio_pika.Message(
                raw,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                timestamp=datetime.now(UTC),
                message_id=message_id,
            ),
            routing_key=routing_key or "analysis.completed",
        )
        return message_id

    async def catch(self, routing_key: str) -> AbstractQueue:
        """A queue bound to the exchange with ``routing_key`` (deleted at the end)."""
        name = f"{self.topology.queue}.catch.{uuid.uuid4().hex[:6]}"
        self.extra_queues.append(name)
        queue = await self.channel.declare_queue(name, durable=False, auto_delete=False)
        await queue.bind(self.exchange, routing_key=routing_key)
        return queue

    async def ready_count(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count

    async def get_all(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        declared = await self.channel.declare_queue(queue, passive=True)
        messages = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    prefix = f"chatcore-test-{uuid.uuid4().hex[:10]}"
    topology = Topology(
        exchange=f"{prefix}.events",
        queue=f"{prefix}.queue",
        routing_keys=("analysis.completed", "analysis.started", "analysis.failed"),
        retry_delays=FAST,
    )
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    state = Broker(connection, channel, exchange, topology, amqp_url)
    try:
        yield state
    finally:
        cleanup = await connection.channel()
        for name in (*topology.queues, *state.extra_queues):
            await cleanup.queue_delete(name)
        await cleanup.exchange_delete(topology.exchange)
        await connection.close()


# -- the system under test ----------------------------------------------------------


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[UUID, str, dict[str, Any]]] = []

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        self.sent.append((user_id, event, data))

    def events(self, user_id: UUID) -> list[tuple[str, Any]]:
        """(event, progress or None) in order."""
        return [(e, d.get("progress")) for u, e, d in self.sent if u == user_id]


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, routing_key: str, payload: dict[str, Any]) -> None:
        self.published.append((routing_key, payload))


@dataclass(slots=True)
class System:
    store: InMemoryStore
    notifier: RecordingNotifier
    service: AssessmentService

    def conversations(self, result_id: str) -> list[Conversation]:
        return [c for c in self.store.conversations.values() if c.result_id == result_id]

    def messages(self, conversation: Conversation) -> list[ChatMessage]:
        return [m for m in self.store.messages.values() if m.conversation_id == conversation.id]


def build_system(source: AssessmentSource, publisher: Any | None = None) -> System:
    clock = FakeClock()
    store = InMemoryStore()
    events = InMemoryEventPublisher()
    limiter = InMemoryRateLimiter(clock)
    gateway = ModelGateway(
        provider=OfflineChatModel(),
        chain=ModelChain(primary="offline"),
        clock=clock,
        limiter=limiter,
        spend=InMemorySpendLedger(store),
        events=events,
    )
    notifier = RecordingNotifier()
    service = AssessmentService(
        uow=InMemoryUnitOfWorkFactory(store),
        clock=clock,
        source=source,
        notifier=notifier,
        publisher=publisher if publisher is not None else RecordingPublisher(),
        gateway=gateway,
        events=events,
        settings=ChatSettings(),
    )
    return System(store, notifier, service)


def result_of(data: dict[str, Any]) -> ArchiveResult:
    return msgspec.convert(data, ArchiveResult)


@pytest.fixture
def completed() -> dict[str, Any]:
    event: dict[str, Any] = load_fixture("event_analysis_completed.json")
    return event


@pytest.fixture
def source(archive_v2: dict[str, Any]) -> InMemoryAssessmentSource:
    return InMemoryAssessmentSource({archive_v2["id"]: result_of(archive_v2)})


Handler = Callable[[AnalysisEvent], Awaitable[object]]


@pytest.fixture
async def consumers(broker: Broker) -> AsyncIterator[Callable[..., Awaitable[AnalysisConsumer]]]:
    """``await start(handler, **options)``: a started consumer, stopped at the end."""
    started: list[AnalysisConsumer] = []

    async def start(handler: Handler, **options: Any) -> AnalysisConsumer:
        topology = broker.topology
        options.setdefault("retry_delays", topology.retry_delays)
        options.setdefault("reconnect_interval", 0.3)
        consumer = AnalysisConsumer(
            url=broker.url,
            exchange=topology.exchange,
            queue=topology.queue,
            routing_keys=topology.routing_keys,
            handler=handler,
            connection_name=f"{topology.queue} consumer {len(started)}",
            **options,
        )
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop(timeout=1)


async def eventually(check: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


# -- the journey ----------------------------------------------------------------------


async def test_completed_event_creates_one_conversation_and_announces_it(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    publisher = RabbitMQPublisher(broker.url, broker.topology.exchange)
    await publisher.start()
    try:
        system = build_system(source, publisher)
        ready_queue = await broker.catch(CONVERSATION_READY)
        consumer = await consumers(system.service.handle)

        await broker.publish_event(completed)
        await eventually(lambda: consumer.stats.handled == 1, what="the event handled")

        user = UUID(completed["userId"])
        [conversation] = system.conversations(archive_v2["id"])
        assert conversation.user_id == user
        assert conversation.context_data["persona_profile"]["archetype"] == (
            "The Analytical Innovator"
        )
        [welcome] = system.messages(conversation)
        assert welcome.metadata["kind"] == "welcome"
        assert welcome.content
        assert system.notifier.events(user) == [
            ("assessment_progress", 75),
            ("assessment_progress", 100),
            ("chatbot_ready", None),
        ]
        ready = await ready_queue.get(timeout=5)
        assert ready.content_type == "application/json"
        assert ready.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert ready.message_id
        assert ready.timestamp is not None
        assert json.loads(ready.body) == {
            "eventType": CONVERSATION_READY,
            "timestamp": json.loads(ready.body)["timestamp"],
            "userId": str(user),
            "resultId": archive_v2["id"],
            "conversationId": str(conversation.id),
        }
        assert await broker.ready_count(broker.topology.queue) == 0
        assert consumer.stats.retried == consumer.stats.dead_lettered == 0
    finally:
        await publisher.close()


async def test_the_same_event_twice_at_once_has_one_effect(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    arrived = 0
    both = asyncio.Event()

    async def together(event: AnalysisEvent) -> object:
        # Both deliveries are in the handler at the same time before either goes on.
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await asyncio.wait_for(both.wait(), WAIT)
        return await system.service.handle(event)

    consumer = await consumers(together, prefetch=4)
    await asyncio.gather(broker.publish_event(completed), broker.publish_event(completed))
    await eventually(lambda: consumer.stats.handled == 2, what="both deliveries handled")
    await broker.publish_event(completed)  # and once more, later
    await eventually(lambda: consumer.stats.handled == 3, what="the third delivery")

    [conversation] = system.conversations(archive_v2["id"])
    assert [m.metadata["kind"] for m in system.messages(conversation)] == ["welcome"]
    assert consumer.stats.retried == 0


async def test_a_consumer_killed_mid_message_loses_nothing(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    applied = asyncio.Event()

    async def dies_before_the_ack(event: AnalysisEvent) -> object:
        result = await system.service.handle(event)  # committed...
        applied.set()
        await asyncio.Event().wait()  # ...but the process dies before the ack
        return result

    doomed = await consumers(dies_before_the_ack)
    await broker.publish_event(completed)
    await asyncio.wait_for(applied.wait(), WAIT)

    # The process dies: its connection goes away without settling the delivery (to the
    # broker, as when the process is killed: the delivery is unacked, so requeued).
    connection = doomed._connection
    assert connection is not None
    await connection.close()
    await eventually(lambda: doomed.in_flight == 0, what="the dead handler to go")

    survivor = await consumers(system.service.handle)
    await eventually(lambda: survivor.stats.handled == 1, what="the redelivery handled")

    [conversation] = system.conversations(archive_v2["id"])
    assert [m.metadata["kind"] for m in system.messages(conversation)] == ["welcome"]
    assert doomed.stats.handled == 0
    assert survivor.stats.retried == 1  # the interrupted run counted as an attempt
    assert await broker.ready_count(broker.topology.queue) == 0
    assert await broker.ready_count(broker.topology.dead_letter_queue) == 0


async def test_a_message_that_kills_every_consumer_ends_in_the_dead_letter_queue(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A poison message: each consumer that takes it dies before settling it (as a
    # process killed by a crash or the OOM killer). Classic queues do not count that.
    system = build_system(source)
    runs = 0
    entered = asyncio.Event()

    async def crashes(event: AnalysisEvent) -> object:
        nonlocal runs
        runs += 1
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    message_id = ""

    async def dies_with_it() -> None:
        nonlocal message_id
        consumer = await consumers(crashes, max_attempts=3)
        message_id = message_id or await broker.publish_event(completed)  # once bound
        await asyncio.wait_for(entered.wait(), WAIT)
        entered.clear()
        connection = consumer._connection
        assert connection is not None
        await connection.close()  # the process dies with the delivery unsettled
        await eventually(lambda: consumer.in_flight == 0, what="the dead handler to go")
        await consumer.stop(timeout=0)

    for _ in range(3):
        await dies_with_it()

    last = await consumers(system.service.handle, max_attempts=3)
    await eventually(lambda: last.stats.dead_lettered == 1, what="the dead letter")
    # Three runs, each interrupted and each counted when the broker redelivered it; the
    # redelivery after the third is dead-lettered without running the handler again.
    assert runs == 3
    assert last.stats.handled == 0
    [dead] = await broker.get_all(broker.topology.dead_letter_queue)
    assert dead.message_id == message_id
    assert json.loads(dead.body) == completed
    assert dead.headers[ATTEMPTS_HEADER] == 3
    reason = str(dead.headers[REASON_HEADER])
    assert reason.startswith("failed 3 attempt(s); last error: InterruptedAttemptError")
    assert "redelivered by the broker" in reason
    assert system.conversations(completed["resultId"]) == []
    assert await broker.ready_count(broker.topology.queue) == 0
    for retry_queue in broker.topology.retry_queues:
        assert await broker.ready_count(retry_queue) == 0


async def test_the_publisher_without_a_broker() -> None:
    publisher = RabbitMQPublisher(
        "amqp://guest:guest@127.0.0.1:1/", "nowhere", connect_timeout=0.3, reconnect_interval=0.1
    )
    with pytest.raises(RuntimeError, match="start"):
        await publisher.publish(CONVERSATION_READY, {"resultId": "r"})
    await publisher.start()  # goes on without it, trying in the background
    try:
        assert not await publisher.ready()
        with pytest.raises(ConnectionError, match="not reached"):
            await publisher.publish(CONVERSATION_READY, {"resultId": "r"})
    finally:
        await publisher.close()


# -- bad messages ---------------------------------------------------------------------


async def test_bad_bodies_are_dead_lettered_with_the_reason_and_the_next_event_is_handled(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    consumer = await consumers(system.service.handle)

    not_json = await broker.publish_event(b"\x00not json{", routing_key="analysis.completed")
    no_user = {k: v for k, v in completed.items() if k != "userId"}
    wrong_shape = await broker.publish_event(no_user)
    unknown = await broker.publish_event(
        {**completed, "eventType": "analysis.exploded"}, routing_key="analysis.completed"
    )
    await broker.publish_event(completed)

    await eventually(lambda: consumer.stats.handled == 1, what="the good event")
    await eventually(lambda: consumer.stats.dead_lettered == 3, what="three dead letters")
    assert len(system.conversations(archive_v2["id"])) == 1
    assert consumer.stats.retried == 0

    dead = {m.message_id: m for m in await broker.get_all(broker.topology.dead_letter_queue)}
    assert set(dead) == {not_json, wrong_shape, unknown}
    assert dead[not_json].body == b"\x00not json{"
    for message in dead.values():
        headers = message.headers
        assert str(headers[REASON_HEADER]).startswith("undecodable analysis event:")
        assert headers[ROUTING_KEY_HEADER] == "analysis.completed"
        assert headers[ATTEMPTS_HEADER] == 0
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.timestamp is not None
        assert message.content_type is None  # the original properties, as they were
    assert "userId" in str(dead[wrong_shape].headers[REASON_HEADER])
    assert await broker.ready_count(broker.topology.queue) == 0


async def test_another_users_result_creates_nothing_and_is_not_retried(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    consumer = await consumers(system.service.handle)
    intruder = {**completed, "userId": str(uuid.uuid4())}

    await broker.publish_event(intruder)
    await eventually(lambda: consumer.stats.handled == 1, what="the event acked")

    assert system.conversations(archive_v2["id"]) == []
    assert consumer.stats.retried == consumer.stats.dead_lettered == 0
    assert source.requests == [archive_v2["id"]]
    assert await broker.ready_count(broker.topology.queue) == 0
    assert await broker.ready_count(broker.topology.dead_letter_queue) == 0


async def test_started_and_failed_events_notify(
    broker: Broker, consumers: Any, source: InMemoryAssessmentSource
) -> None:
    system = build_system(source)
    consumer = await consumers(system.service.handle)
    started = load_fixture("event_analysis_started.json")
    failed = load_fixture("event_analysis_failed.json")

    await broker.publish_event(started)
    await eventually(lambda: consumer.stats.handled == 1, what="analysis.started")
    await broker.publish_event(failed)
    await eventually(lambda: consumer.stats.handled == 2, what="analysis.failed")

    [(user, event, data), (user2, event2, data2)] = system.notifier.sent
    assert (user, event) == (UUID(started["userId"]), "assessment_progress")
    assert (data["stage"], data["progress"], data["resultId"]) == ("analysis_started", 50, None)
    assert (user2, event2) == (UUID(failed["userId"]), "analysis-failed")
    assert data2 == {
        "resultId": None,
        "jobId": failed["jobId"],
        "error": "AI service timeout after 3 retries",
    }
    assert source.requests == []


# -- passing failures -----------------------------------------------------------------


async def test_archive_down_then_up_is_retried_then_handled(
    broker: Broker,
    consumers: Any,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatcore.consumer")
    http = build_archive_http_client()
    try:
        async with FakeArchive(service_key="k") as archive:
            archive.add(archive_v2)
            client = ArchiveClient(
                client=http, base_url=archive.base_url, service_key="k", timeout=2
            )
            system = build_system(client)
            consumer = await consumers(system.service.handle, max_attempts=10)
            await archive.down("503")

            await broker.publish_event(completed)
            await eventually(lambda: archive.request_count >= 2, what="a retry")
            assert system.conversations(archive_v2["id"]) == []
            await archive.up()
            await eventually(lambda: consumer.stats.handled == 1, what="the event handled")

            assert len(system.conversations(archive_v2["id"])) == 1
            assert consumer.stats.retried >= 1
            assert consumer.stats.dead_lettered == 0
    finally:
        await http.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "chatcore.consumer"]
    retry = next(line for line in lines if "outcome=retry" in line)
    assert f"resultId={archive_v2['id']}" in retry
    assert f"jobId={completed['jobId']}" in retry
    assert "messageId=" in retry
    assert "attempt=1/10" in retry
    assert "HTTP 503" in retry
    handled = next(line for line in lines if "outcome=acked" in line)
    assert f"attempt={consumer.stats.retried + 1}/10" in handled


async def test_archive_down_for_good_ends_in_the_dead_letter_queue(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    source.down = True
    consumer = await consumers(system.service.handle, max_attempts=3)

    message_id = await broker.publish_event(completed)
    await eventually(lambda: consumer.stats.dead_lettered == 1, what="the dead letter")

    assert source.requests == [archive_v2["id"]] * 3
    assert consumer.stats.retried == 2
    [dead] = await broker.get_all(broker.topology.dead_letter_queue)
    assert dead.message_id == message_id  # the original, untouched
    assert json.loads(dead.body) == completed
    assert dead.headers[ATTEMPTS_HEADER] == 3
    assert dead.headers[ROUTING_KEY_HEADER] == "analysis.completed"
    reason = str(dead.headers[REASON_HEADER])
    assert reason.startswith("failed 3 attempt(s); last error: ArchiveUnavailableError")
    assert await broker.ready_count(broker.topology.queue) == 0
    for retry_queue in broker.topology.retry_queues:
        assert await broker.ready_count(retry_queue) == 0

    # An operator shovels it back once the archive is up: it is handled.
    source.down = False
    await broker.exchange.publish(
        aio_pika.Message(dead.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key="analysis.completed",
    )
    await eventually(lambda: consumer.stats.handled == 1, what="the shovelled event")
    assert len(system.conversations(archive_v2["id"])) == 1


async def test_any_handler_error_is_retried_with_its_traceback_logged(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    system = build_system(source)
    failures = 0

    async def flaky(event: AnalysisEvent) -> object:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise OSError("database connection reset")
        return await system.service.handle(event)

    consumer = await consumers(flaky)
    await broker.publish_event(completed)
    await eventually(lambda: consumer.stats.handled == 1, what="the event handled")
    assert consumer.stats.retried == 2
    traced = [r for r in caplog.records if r.name == "chatcore.consumer" and r.exc_info]
    assert len(traced) == 2
    assert "OSError: database connection reset" in traced[0].getMessage()


async def test_a_message_is_kept_when_the_dead_letter_queue_cannot_take_it(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    system = build_system(source)
    consumer = await consumers(system.service.handle)
    dlq = broker.topology.dead_letter_queue
    await broker.channel.queue_delete(dlq)  # an operator deleted it by mistake

    message_id = await broker.publish_event(b"garbage", routing_key="analysis.failed")
    await eventually(
        lambda: any("could not publish" in r.getMessage() for r in caplog.records),
        what="the refused dead letter",
    )
    assert consumer.stats.dead_lettered == 0
    await broker.channel.declare_queue(dlq, durable=True)
    await eventually(lambda: consumer.stats.dead_lettered == 1, what="the dead letter")
    [dead] = await broker.get_all(dlq)
    assert dead.message_id == message_id


# -- the broker goes away -------------------------------------------------------------


def _close_server_side(connection_name: str) -> bool:
    """Close a connection from the broker's side (``rabbitmqctl``); False if impossible."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    listed = subprocess.run(  # noqa: S603 - a fixed command
        [ctl, "list_connections", "-q", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    marker = f'{{"connection_name","{connection_name}"}}'
    pids = [line.split("\t", 1)[0] for line in listed.stdout.splitlines() if marker in line]
    if listed.returncode != 0 or not pids:
        return False
    for pid in pids:
        subprocess.run(  # noqa: S603
            [ctl, "close_connection", pid, "chatcore test: connection dropped"],
            capture_output=True,
            timeout=30,
            check=True,
        )
    return True


async def test_the_consumer_reconnects_after_the_broker_drops_it(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatcore.consumer")
    system = build_system(source)
    consumer = await consumers(system.service.handle)
    assert await consumer.ready()

    dropped = await asyncio.to_thread(_close_server_side, consumer.connection_name)
    if not dropped:  # no rabbitmqctl here: drop the socket under the client instead
        connection = consumer._connection
        assert connection is not None
        transport = connection.transport
        assert transport is not None
        await transport.connection.close(ConnectionResetError("dropped by the test"))

    def logged(text: str) -> bool:
        return any(text in r.getMessage() for r in caplog.records if r.name == "chatcore.consumer")

    await eventually(lambda: logged("RabbitMQ reconnected"), what="the reconnection")
    assert logged("RabbitMQ connection lost")

    await broker.publish_event(completed)
    await eventually(lambda: consumer.stats.handled == 1, what="the event after reconnecting")
    assert len(system.conversations(completed["resultId"])) == 1
    assert await consumer.ready()


# -- shutdown -------------------------------------------------------------------------


async def test_graceful_stop_lets_the_message_in_flight_finish(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(event: AnalysisEvent) -> object:
        entered.set()
        await release.wait()
        return await system.service.handle(event)

    consumer = await consumers(slow)
    await broker.publish_event(completed)
    await asyncio.wait_for(entered.wait(), WAIT)

    stopping = asyncio.create_task(consumer.stop(timeout=WAIT))
    await eventually(lambda: consumer._consumer_tag is None, what="the consumer cancelled")
    later = await broker.publish_event(load_fixture("event_analysis_started.json"))
    await asyncio.sleep(0.2)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, WAIT)

    assert consumer.stats.handled == 1
    assert len(system.conversations(archive_v2["id"])) == 1
    # What arrived after the stop waits in the queue for the next consumer.
    [waiting] = await broker.get_all(broker.topology.queue)
    assert waiting.message_id == later


async def test_stop_requeues_what_does_not_finish_in_time(
    broker: Broker,
    consumers: Any,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
) -> None:
    system = build_system(source)
    entered = asyncio.Event()

    async def stuck(event: AnalysisEvent) -> object:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    consumer = await consumers(stuck)
    message_id = await broker.publish_event(completed)
    await asyncio.wait_for(entered.wait(), WAIT)
    await consumer.stop(timeout=0.2)
    assert consumer.stats.requeued == 1

    successor = await consumers(system.service.handle)
    await eventually(lambda: successor.stats.handled == 1, what="the requeued message")
    assert len(system.conversations(archive_v2["id"])) == 1
    assert message_id  # the same message, redelivered (nothing lost, nothing dead-lettered)
    assert await broker.ready_count(broker.topology.dead_letter_queue) == 0


# -- topology -------------------------------------------------------------------------


async def test_an_existing_queue_with_other_arguments_is_used_as_it_is(
    broker: Broker,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
    consumers: Any,
) -> None:
    # As an earlier service may have left it: durable, without dead-letter arguments.
    await broker.channel.declare_queue(
        broker.topology.queue, durable=True, arguments={"x-max-length": 100000}
    )
    system = build_system(source)
    consumer = await consumers(system.service.handle)
    await broker.publish_event(completed)
    await eventually(lambda: consumer.stats.handled == 1, what="the event handled")
    assert len(system.conversations(archive_v2["id"])) == 1


# -- the process ----------------------------------------------------------------------


async def test_run_consumer_wires_the_container_and_stops_cleanly(
    broker: Broker,
    source: InMemoryAssessmentSource,
    completed: dict[str, Any],
    archive_v2: dict[str, Any],
    tmp_path: Path,
) -> None:
    store = InMemoryStore()
    notifier = RecordingNotifier()
    topology = broker.topology
    config = ConsumerConfig(
        url=broker.url,
        exchange=topology.exchange,
        queue=topology.queue,
        routing_keys=topology.routing_keys,
        retry_delays=topology.retry_delays,
        shutdown_timeout=2,
    )
    await declare_topology(broker.channel, topology)  # so that the event is routed at once
    stop = asyncio.Event()
    running = asyncio.create_task(
        run_consumer(
            Settings(rabbitmq_url=broker.url, data_dir=tmp_path, jwt_secret="s" * 32),
            config=config,
            stop=stop,
            uow=InMemoryUnitOfWorkFactory(store),
            notifier=notifier,
            source=source,
            publisher=RecordingPublisher(),
        )
    )
    try:
        await broker.publish_event(completed)
        await eventually(
            lambda: any(c.result_id == archive_v2["id"] for c in store.conversations.values()),
            what="the conversation",
        )
        await eventually(
            lambda: any(e == "chatbot_ready" for _, e, _ in notifier.sent), what="the notice"
        )
    finally:
        stop.set()
        await asyncio.wait_for(running, WAIT)
    assert await broker.ready_count(topology.queue) == 0
