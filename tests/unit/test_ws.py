"""``GET /ws`` over the in-memory app, the connection hub, and the in-process notifiers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing.websocket_test_session import WebSocketTestSession

from adapters.websocket.hub import ConnectionHub, encode_frame, iso_timestamp
from adapters.websocket.notifier import HttpForwardNotifier, LocalNotifier
from tests.unit.conftest import MakeApi
from tests.unit.http_support import Api, token_for

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
AUTH_TIMEOUT = 0.3


@pytest.fixture
def ws_api(make_api: MakeApi) -> Api:
    return make_api(env={"WS_PING_INTERVAL": "0"})


def _frame(session: WebSocketTestSession, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame, checked against the contract's shape."""
    frame: dict[str, Any] = session.receive_json(timeout=timeout)
    assert set(frame) == {"event", "data", "timestamp"}, frame
    assert isinstance(frame["data"], dict)
    assert ISO.match(frame["timestamp"]), frame["timestamp"]
    return frame


def _closed(session: WebSocketTestSession) -> int:
    """The close code the server sent next."""
    with pytest.raises(WebSocketDisconnect) as closed:
        session.receive(timeout=5.0)
    code: int = closed.value.code
    return code


def _nothing(session: WebSocketTestSession, seconds: float = 0.3) -> None:
    with pytest.raises(queue.Empty):
        session.receive(timeout=seconds)


@contextlib.contextmanager
def _authenticated(api: Api, user_id: uuid.UUID) -> Iterator[WebSocketTestSession]:
    with api.client.websocket_connect("/ws") as session:
        session.send_json(
            {"event": "authenticate", "data": {"token": token_for(api.settings, user_id)}}
        )
        frame = _frame(session)
        assert frame["event"] == "authenticated"
        assert frame["data"] == {"userId": str(user_id)}
        yield session


def _notify(api: Api, user_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
    api.client.blocking_portal.call(api.container.notifier.notify, user_id, event, data)


def _wait_for(predicate: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- the socket -----------------------------------------------------------------------


def test_authenticated_socket_gets_the_users_notifications(ws_api: Api) -> None:
    user = uuid.uuid4()
    with _authenticated(ws_api, user) as session:
        hub = ws_api.container.hub
        assert hub is not None
        assert hub.count() == 1
        assert hub.users() == {user}
        data = {"conversationId": str(uuid.uuid4()), "resultId": "result-1"}
        _notify(ws_api, user, "chatbot_ready", data)
        frame = _frame(session)
        assert frame == {"event": "chatbot_ready", "data": data, "timestamp": frame["timestamp"]}
        # The client's ping is answered; anything else is ignored.
        session.send_json({"event": "ping", "data": {}})
        assert _frame(session)["event"] == "pong"
        session.send_text("not json")
        session.send_json({"event": "whatever"})
        session.send_json({"event": "ping"})
        assert _frame(session)["event"] == "pong"
    _wait_for(lambda: hub.count() == 0)
    assert hub.users() == set()


def test_another_users_socket_does_not_get_it(ws_api: Api) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    with _authenticated(ws_api, alice) as alice_ws, _authenticated(ws_api, bob) as bob_ws:
        _notify(ws_api, alice, "chat_message", {"conversationId": "c", "messageId": "m"})
        assert _frame(alice_ws)["event"] == "chat_message"
        _nothing(bob_ws)


def test_every_socket_of_the_user_gets_it(ws_api: Api) -> None:
    user = uuid.uuid4()
    with _authenticated(ws_api, user) as first, _authenticated(ws_api, user) as second:
        assert ws_api.container.hub is not None
        assert ws_api.container.hub.count() == 2
        progress = {"stage": "analysis_started", "progress": 50, "resultId": "r"}
        _notify(ws_api, user, "assessment_progress", progress)
        assert _frame(first)["data"] == progress
        assert _frame(second)["data"] == progress


def test_a_notification_for_a_user_without_sockets_is_dropped(ws_api: Api) -> None:
    _notify(ws_api, uuid.uuid4(), "chatbot_ready", {"conversationId": "c", "resultId": "r"})


def _rejected(api: Api, first: str | None) -> tuple[dict[str, Any], int]:
    with api.client.websocket_connect("/ws") as session:
        if first is not None:
            session.send_text(first)
        frame = _frame(session)
        assert frame["event"] == "auth_error"
        return frame["data"], _closed(session)


def test_no_authenticate_frame_in_time(make_api: MakeApi) -> None:
    api = make_api(env={"WS_AUTH_TIMEOUT": str(AUTH_TIMEOUT), "WS_PING_INTERVAL": "0"})
    started = time.monotonic()
    data, code = _rejected(api, None)
    assert time.monotonic() - started >= AUTH_TIMEOUT
    assert code == 1008
    assert "timeout" in data["message"]


def test_bad_token(ws_api: Api) -> None:
    frame = json.dumps({"event": "authenticate", "data": {"token": "not.a.jwt"}})
    data, code = _rejected(ws_api, frame)
    assert code == 1008
    assert data["code"] == "INVALID_TOKEN"
    assert data["message"]


def test_token_signed_with_another_secret(ws_api: Api) -> None:
    from tests.unit.http_support import claims_for, sign  # noqa: PLC0415

    token = sign(
        claims_for(ws_api.settings, uuid.uuid4()), key="another-secret-0123456789abcdef-xyz"
    )
    data, code = _rejected(ws_api, json.dumps({"event": "authenticate", "data": {"token": token}}))
    assert (code, data["code"]) == (1008, "INVALID_TOKEN")


def test_expired_token(ws_api: Api) -> None:
    token = token_for(ws_api.settings, uuid.uuid4(), ttl_seconds=-60)
    data, code = _rejected(ws_api, json.dumps({"event": "authenticate", "data": {"token": token}}))
    assert code == 1008
    assert data["code"] == "TOKEN_EXPIRED"
    assert "expired" in data["message"]


@pytest.mark.parametrize(
    "first",
    [
        json.dumps({"event": "subscribe", "data": {"token": "x"}}),
        json.dumps({"event": "authenticate", "data": {}}),
        json.dumps({"event": "authenticate", "data": {"token": 42}}),
        json.dumps({"event": "authenticate"}),
        json.dumps(["authenticate"]),
        "not json at all",
        "[" * 100_000,
    ],
    ids=["wrong-event", "no-token", "token-not-text", "no-data", "array", "non-json", "deep"],
)
def test_a_malformed_first_frame(ws_api: Api, first: str) -> None:
    data, code = _rejected(ws_api, first)
    assert code == 1008
    assert data["message"]
    assert ws_api.container.hub is not None
    assert ws_api.container.hub.count() == 0


def test_a_client_that_leaves_before_authenticating(ws_api: Api) -> None:
    with ws_api.client.websocket_connect("/ws"):
        pass
    assert ws_api.container.hub is not None
    assert ws_api.container.hub.count() == 0


# -- the hub --------------------------------------------------------------------------


class FakeSocket:
    """Records what it is sent; ``gate`` (when given) holds every send until set."""

    def __init__(self, gate: asyncio.Event | None = None, fail: bool = False) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.gate = gate
        self.fail = fail

    async def send_text(self, data: str) -> None:
        if self.fail:
            raise ConnectionResetError("gone")
        if self.gate is not None:
            await self.gate.wait()
        self.frames.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = code


def _at() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_frames_are_the_contracts_shape() -> None:
    frame = json.loads(encode_frame("chatbot_ready", {"id": uuid.UUID(int=1)}, _at()))
    assert frame == {
        "event": "chatbot_ready",
        "data": {"id": "00000000-0000-0000-0000-000000000001"},
        "timestamp": "2026-01-02T03:04:05.678Z",
    }
    assert iso_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"


async def test_a_slow_client_blocks_no_one_and_is_dropped_when_its_queue_is_full() -> None:
    hub = ConnectionHub(queue_size=8, ping_interval=0, send_timeout=30)
    stuck = FakeSocket(gate=asyncio.Event())  # never reads
    fast, sibling = FakeSocket(), FakeSocket()
    slow_user, fast_user = uuid.uuid4(), uuid.uuid4()
    stuck_connection = hub.register(slow_user, stuck)
    hub.register(slow_user, sibling)  # the same user's healthy socket
    hub.register(fast_user, fast)
    async with asyncio.timeout(1):  # delivery never waits on a client
        for i in range(20):
            await hub.deliver(slow_user, encode_frame("chat_message", {"i": i}, _at()))
            await hub.deliver(fast_user, encode_frame("chat_message", {"i": i}, _at()))
            await asyncio.sleep(0)
    await _settle()
    assert [f["data"]["i"] for f in fast.frames] == list(range(20))
    assert [f["data"]["i"] for f in sibling.frames] == list(range(20))
    assert stuck_connection.closed
    assert stuck.closed_with == 1013
    assert hub.count() == 2
    assert hub.dropped == 1
    assert stuck.frames == []


async def test_a_send_that_hangs_drops_the_connection() -> None:
    hub = ConnectionHub(ping_interval=0, send_timeout=0.05)
    stuck = FakeSocket(gate=asyncio.Event())
    hub.register(uuid.uuid4(), stuck)
    await hub.deliver(next(iter(hub.users())), b'{"event":"x","data":{},"timestamp":""}')
    await asyncio.sleep(0.2)
    assert hub.count() == 0
    assert stuck.closed_with == 1013


async def test_a_dead_socket_is_cleaned_up() -> None:
    hub = ConnectionHub(ping_interval=0)
    user = uuid.uuid4()
    dead, alive = FakeSocket(fail=True), FakeSocket()
    hub.register(user, dead)
    hub.register(user, alive)
    assert await hub.deliver(user, encode_frame("chat_message", {}, _at())) == 2
    await _settle()
    assert hub.count() == 1
    assert dead.closed_with is None  # no close attempted on a dead transport
    assert len(alive.frames) == 1
    # The next frame reaches the live one only.
    assert await hub.deliver(user, encode_frame("chat_message", {}, _at())) == 1


async def test_unregister_is_idempotent_and_forgets_the_user() -> None:
    hub = ConnectionHub(ping_interval=0)
    user = uuid.uuid4()
    connection = hub.register(user, FakeSocket())
    hub.unregister(connection)
    hub.unregister(connection)
    assert (hub.count(), hub.users(), hub.has(user)) == (0, set(), False)
    assert await hub.deliver(user, b"{}") == 0
    assert not hub.send(connection, b"{}")


async def test_a_dropped_connection_is_closed_by_its_holder() -> None:
    hub = ConnectionHub(queue_size=1, ping_interval=0)
    socket = FakeSocket(gate=asyncio.Event())
    user = uuid.uuid4()
    connection = hub.register(user, socket)
    reading = asyncio.get_running_loop().create_future()

    async def read() -> None:
        await reading  # a pending receive, as in the /ws handler

    holder = asyncio.create_task(hub.hold(connection, read))
    await _settle()
    await hub.deliver(user, b"{}")
    await hub.deliver(user, b"{}")  # over the queue's size
    await asyncio.wait_for(holder, 1)  # returns, does not raise
    assert socket.closed_with == 1013
    assert hub.count() == 0


async def test_a_holder_cancelled_by_the_server_stays_cancelled() -> None:
    hub = ConnectionHub(ping_interval=0)
    connection = hub.register(uuid.uuid4(), FakeSocket())

    async def read() -> None:
        await asyncio.Event().wait()

    holder = asyncio.create_task(hub.hold(connection, read))
    await _settle()
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert hub.count() == 0


async def test_heartbeat_pings_idle_sockets() -> None:
    hub = ConnectionHub(ping_interval=0.02)
    socket = FakeSocket()
    hub.register(uuid.uuid4(), socket)  # starts the heartbeat
    await asyncio.sleep(0.1)
    await hub.aclose()
    pings = [f for f in socket.frames if f["event"] == "ping"]
    assert len(pings) >= 2
    assert all(ISO.match(p["timestamp"]) for p in pings)
    assert socket.closed_with == 1001


async def test_aclose_closes_every_socket() -> None:
    hub = ConnectionHub(ping_interval=0)
    sockets = [FakeSocket() for _ in range(3)]
    for socket in sockets:
        hub.register(uuid.uuid4(), socket)
    await hub.aclose()
    assert [s.closed_with for s in sockets] == [1001, 1001, 1001]
    assert hub.count() == 0


# -- notifiers --------------------------------------------------------------------------


async def test_local_notifier_encodes_once_per_listener() -> None:
    hub = ConnectionHub(ping_interval=0)
    user = uuid.uuid4()
    socket = FakeSocket()
    hub.register(user, socket)
    notifier = LocalNotifier(hub)
    await notifier.notify(user, "analysis-failed", {"jobId": "j", "error": "boom"})
    await notifier.notify(uuid.uuid4(), "analysis-failed", {"jobId": "j", "error": "boom"})
    await _settle()
    assert [f["event"] for f in socket.frames] == ["analysis-failed"]
    assert socket.frames[0]["data"] == {"jobId": "j", "error": "boom"}


async def test_http_forward_posts_with_the_internal_headers() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True})

    hub = ConnectionHub(ping_interval=0)
    user = uuid.uuid4()
    socket = FakeSocket()
    hub.register(user, socket)
    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    notifier = HttpForwardNotifier(
        LocalNotifier(hub), "http://notify.test/", service_key="k3y", client=client
    )
    await notifier.start()
    await notifier.notify(user, "chatbot_ready", {"conversationId": uuid.UUID(int=7)})
    await notifier.stop()
    await client.aclose()
    assert len(socket.frames) == 1
    (request,) = seen
    assert str(request.url) == "http://notify.test/notifications"
    assert request.headers["x-internal-service"] == "true"
    assert request.headers["x-service-key"] == "k3y"
    assert json.loads(request.content) == {
        "userId": str(user),
        "event": "chatbot_ready",
        "data": {"conversationId": str(uuid.UUID(int=7))},
    }


async def test_http_forward_never_raises() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    notifier = HttpForwardNotifier(
        LocalNotifier(ConnectionHub(ping_interval=0)),
        "http://down.test",
        service_key=None,
        client=client,
    )
    await notifier.notify(uuid.uuid4(), "chatbot_ready", {})
    await notifier.stop()
    await client.aclose()


async def test_the_heartbeat_sweep_pings_every_idle_socket_in_batches() -> None:
    class Sock:
        def __init__(self) -> None:
            self.frames: list[str] = []

        async def send_text(self, data: str) -> None:
            self.frames.append(data)

        async def close(self, code: int = 1000, reason: str | None = None) -> None:
            return None

    hub = ConnectionHub(ping_interval=1.0)
    sockets = [Sock() for _ in range(600)]
    for sock in sockets:
        hub.register(uuid.uuid4(), sock)
    sent = await hub._sweep(batch=100)
    await asyncio.sleep(0.05)
    assert sent == 600
    assert all(len(s.frames) == 1 and '"ping"' in s.frames[0] for s in sockets)
    await hub.aclose()
