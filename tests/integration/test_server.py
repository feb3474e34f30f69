"""The app under the server ``chatcore serve`` runs (uvicorn with ``entrypoints.server``'s
settings), over real sockets.

The first tests serve the app in the test's event loop (``tests.integration.served``),
with in-memory storage, and speak to ``/ws`` with the ``websockets`` client: the
authenticate handshake, notifications, the hub dropping a slow client, the heartbeat,
and a shutdown with sockets open. The last ones run ``chatcore serve`` itself as a
process on a PostgreSQL database of their own: the lifespan opens and closes the
pool, and a shutdown signal with a socket open closes it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.postgres import migrate, to_async_url
from entrypoints.auth import issue_token
from entrypoints.bootstrap import Container
from entrypoints.http.app import ChatcoreApp, create_app
from entrypoints.settings import Settings, load_settings
from tests.integration.served import serving

SECRET = "server-test-jwt-secret-0123456789abcdef"


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"JWT_SECRET": SECRET, "CHATCORE_DATA_DIR": str(tmp_path), **env})


def _token(settings: Settings, user_id: uuid.UUID) -> str:
    return issue_token(
        secret=SECRET, user_id=user_id, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


async def _frame(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
    raw = await asyncio.wait_for(ws.recv(), timeout)
    frame: dict[str, Any] = json.loads(raw)
    return frame


async def _close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:  # noqa: ASYNC109
    """Read until the server closes; the code of its close frame (None: no frame)."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    received = ws.protocol.close_rcvd
    return received.code if received is not None else None


@contextlib.asynccontextmanager
async def _authenticated(
    base: str, settings: Settings, user_id: uuid.UUID
) -> AsyncIterator[ClientConnection]:
    """A socket to ``base``/ws (``ws://host:port``) past the authenticate handshake."""
    async with connect(f"{base}/ws", open_timeout=5) as ws:
        await ws.send(
            json.dumps({"event": "authenticate", "data": {"token": _token(settings, user_id)}})
        )
        frame = await _frame(ws)
        assert frame["event"] == "authenticated", frame
        assert frame["data"] == {"userId": str(user_id)}
        yield ws


@pytest.fixture
async def app_and_settings(tmp_path: Path) -> tuple[ChatcoreApp, Settings]:
    settings = _settings(tmp_path, WS_PING_INTERVAL="0")
    return create_app(settings, log_defaults=False, uow=InMemoryUnitOfWorkFactory()), settings


def _container(app: ChatcoreApp) -> Container:
    container: Container = app.state.container
    return container


# -- /ws under uvicorn ------------------------------------------------------------------


async def test_an_authenticated_socket_gets_the_users_notifications(
    app_and_settings: tuple[ChatcoreApp, Settings],
) -> None:
    app, settings = app_and_settings
    user, other = uuid.uuid4(), uuid.uuid4()
    async with (
        serving(app) as served,
        _authenticated(served.ws_url, settings, user) as first,
        _authenticated(served.ws_url, settings, user) as second,
        _authenticated(served.ws_url, settings, other) as bystander,
    ):
        # The deflate extension is offered by the client and refused by the server.
        assert first.response is not None
        assert "Sec-WebSocket-Extensions" not in first.response.headers
        await _container(app).notifier.notify(user, "chatbot_ready", {"conversationId": "c1"})
        for ws in (first, second):
            frame = await _frame(ws)
            assert (frame["event"], frame["data"]) == ("chatbot_ready", {"conversationId": "c1"})
        with pytest.raises(TimeoutError):
            await _frame(bystander, timeout=0.3)
        # The client's ping is answered through the same queue.
        await first.send(json.dumps({"event": "ping"}))
        assert (await _frame(first))["event"] == "pong"


async def test_a_new_answer_reaches_the_students_other_sockets_as_chat_message(
    app_and_settings: tuple[ChatcoreApp, Settings],
) -> None:
    app, settings = app_and_settings
    user, other = uuid.uuid4(), uuid.uuid4()
    headers = {"Authorization": f"Bearer {_token(settings, user)}"}
    async with (
        serving(app) as served,
        _authenticated(served.ws_url, settings, user) as tab,
        _authenticated(served.ws_url, settings, other) as bystander,
        httpx.AsyncClient(base_url=served.url, headers=headers, timeout=10) as http,
    ):
        created = await http.post("/conversations", json={})
        cid = created.json()["data"]["id"]
        sent = await http.post(f"/conversations/{cid}/messages", json={"content": "Karier apa?"})
        answer = sent.json()["data"]["assistant_message"]
        frame = await _frame(tab)
        assert frame["event"] == "chat_message"
        assert frame["data"]["conversationId"] == cid
        assert frame["data"]["messageId"] == answer["id"]
        one_line = " ".join(answer["content"].split())
        assert one_line.startswith(frame["data"]["preview"].rstrip("…"))
        with pytest.raises(TimeoutError):
            await _frame(bystander, timeout=0.3)


async def test_a_bad_token_gets_auth_error_and_a_policy_violation_close(
    app_and_settings: tuple[ChatcoreApp, Settings],
) -> None:
    app, _ = app_and_settings
    async with serving(app) as served, connect(f"{served.ws_url}/ws", open_timeout=5) as ws:
        await ws.send(json.dumps({"event": "authenticate", "data": {"token": "not-a-jwt"}}))
        frame = await _frame(ws)
        assert frame["event"] == "auth_error"
        assert frame["data"]["code"] == "INVALID_TOKEN"
        assert await _close_code(ws) == 1008


async def test_a_client_that_falls_behind_is_closed_with_1013(
    app_and_settings: tuple[ChatcoreApp, Settings],
) -> None:
    """The hub interrupts the socket's reader and closes from its task (the way that
    also works under Granian); under uvicorn the close frame reaches the client."""
    app, settings = app_and_settings
    user = uuid.uuid4()
    async with serving(app) as served, _authenticated(served.ws_url, settings, user) as ws:
        hub = _container(app).hub
        assert hub is not None
        (connection,) = hub.connections(user)
        # More frames than the queue holds, queued before the sender can run.
        for n in range(hub.queue_size + 1):
            hub.send(connection, json.dumps({"event": "n", "data": {"n": n}, "timestamp": ""}))
        assert await _close_code(ws) == 1013
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.reason == "too slow: send queue full"
        assert hub.count() == 0


async def test_idle_sockets_get_the_heartbeat(tmp_path: Path) -> None:
    settings = _settings(tmp_path, WS_PING_INTERVAL="0.2")
    app = create_app(settings, log_defaults=False, uow=InMemoryUnitOfWorkFactory())
    async with serving(app) as served, _authenticated(served.ws_url, settings, uuid.uuid4()) as ws:
        assert [(await _frame(ws))["event"] for _ in range(2)] == ["ping", "ping"]


async def test_shutdown_closes_open_sockets_with_1012_then_runs_the_lifespan_shutdown(
    app_and_settings: tuple[ChatcoreApp, Settings],
) -> None:
    app, settings = app_and_settings
    users = [uuid.uuid4() for _ in range(3)]
    async with serving(app, graceful_shutdown=10) as served, contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(_authenticated(served.ws_url, settings, user))
            for user in users
        ]
        hub = _container(app).hub
        assert hub is not None
        assert hub.count() == 3
        left_in_hub: list[int] = []
        shut_down = asyncio.Event()

        async def record() -> None:  # the first closer to run at the lifespan shutdown
            left_in_hub.append(hub.count())
            shut_down.set()

        _container(app).closers.append(record)
        loop = asyncio.get_running_loop()
        began = loop.time()

        served.server.should_exit = True
        codes = await asyncio.gather(*(_close_code(ws) for ws in sockets))

        assert codes == [1012, 1012, 1012]  # uvicorn's "service restart"
        # The handlers saw the disconnect and left: nothing waits for the 10 s grace.
        await asyncio.wait_for(shut_down.wait(), 5)
        assert loop.time() - began < 3
        assert left_in_hub == [0]  # the hub was empty when the lifespan shutdown ran


# -- chatcore serve, the process ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _connections_to(server_url: str, database: str) -> int:
    engine = create_async_engine(to_async_url(server_url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db"),
                {"db": database},
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


def _start_serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``chatcore serve`` on ``port`` as its own process, its output into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _until_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until ``/health/ready`` answers 200 (the process must not exit meanwhile)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        deadline = time.monotonic() + 90
        while True:
            # The log is read only when an assertion fails (ASYNC240).
            assert process.poll() is None, log.read_text()  # noqa: ASYNC240
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health/ready")).status_code == 200:
                    return
            assert time.monotonic() < deadline, log.read_text()  # noqa: ASYNC240
            await asyncio.sleep(0.1)


@pytest.fixture
async def served_database(
    create_db: Callable[[], Awaitable[str]],
) -> str:
    url = await create_db()
    await migrate(url, "chat")
    return url


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("signal_number", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)]
)
async def test_chatcore_serve_opens_the_pool_serves_sockets_and_shuts_down_cleanly(
    served_database: str,
    pg_server_url: str,
    tmp_path: Path,
    signal_number: signal.Signals,
    status: int,
) -> None:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}},
        "DATABASE_URL": served_database,
        "JWT_SECRET": SECRET,
        "CHATCORE_DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "WS_PING_INTERVAL": "0",
    }
    log = tmp_path / "serve.log"
    process = _start_serve(env, port, log)
    database = make_url(served_database).database
    assert database is not None
    settings = _settings(tmp_path)
    try:
        await _until_ready(process, port, log)
        # The lifespan built the container: its pool has connections to our database.
        assert await _connections_to(pg_server_url, database) > 0
        async with _authenticated(f"ws://127.0.0.1:{port}", settings, uuid.uuid4()) as ws:
            await ws.send(json.dumps({"event": "ping"}))
            assert (await _frame(ws))["event"] == "pong"
            began = time.monotonic()
            process.send_signal(signal_number)
            assert await _close_code(ws) == 1012
            assert time.monotonic() - began < 3
        code = await asyncio.to_thread(process.wait, 15)
        assert code == status, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The lifespan shutdown ran: the pool is closed.
    assert await _connections_to(pg_server_url, database) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    events = [line.get("event", "") for line in lines]
    assert "chatcore ready" in events
    assert not [line for line in lines if line.get("level") in {"error", "critical"}], lines


def _running_postmaster(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_chatcore_serve_stops_its_embedded_postgresql_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}},
        "CHATCORE_DATA_DIR": str(data),
        "LOG_FORMAT": "json",
    }
    log = tmp_path / "serve.log"
    process = _start_serve(env, port, log)
    try:
        await _until_ready(process, port, log)
        assert _running_postmaster(data / "pgdata")
        process.send_signal(signal.SIGTERM)
        # Killed by the signal, as supervisors expect, and only after stopping PostgreSQL.
        assert await asyncio.to_thread(process.wait, 30) == -signal.SIGTERM, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        left_running = _running_postmaster(data / "pgdata")
        if left_running:  # do not leave it behind for the rest of the run
            pid = int((data / "pgdata" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
    assert not left_running, log.read_text()
