"""WebSocket capacity: server memory per idle socket and notification fan-out latency.

Starts one server (``chatcore serve`` by default; see ``--server``) on a free
127.0.0.1 port with its own PostgreSQL database and its own notifications exchange,
then, in steps (``--levels``, default 1000 then 10,000 sockets in all):

* opens authenticated ``/ws`` sockets, ``--per-user`` (5) for each user, and prints the
  server worker's RSS (``VmRSS``/``RssAnon`` of ``/proc/<pid>/status``) before and after,
  and the memory per connection;
* raises ``--notifications`` notifications (500) at ``--rate`` per second (100) the way
  the consumer does: ``RabbitMQNotifier(url, hub=None, exchange=...)`` publishes each on
  the notifications exchange, the server's own queue brings it to its hub, and the hub
  sends it to every socket of the user. Per notification it records the time from the
  ``notify`` call's *scheduled* start to the frame on the user's *last* socket (p50,
  p95, p99) and counts the notifications that did not reach every socket.

The client is one asyncio process with a minimal WebSocket client (``WsClient``: an
``asyncio.Protocol``, no task per socket, a few hundred bytes each), so 10,000 sockets
cost it little CPU. The script raises its ``RLIMIT_NOFILE`` soft limit (the server
inherits it). Every phase is bounded in count and in time.

Servers (``--server``):

``chatcore``   ``chatcore serve`` as shipped (``entrypoints.server``: uvicorn,
               websockets-sansio, per-message deflate off, one process)
``granian``    the same app under the ``granian`` command (the server before decision
               0009), with ``--backpressure``
``uvicorn``    ``uvicorn --factory entrypoints.http.app:create_app_from_env --ws
               websockets-sansio``, deflate as ``--server-deflate`` says
``bare-granian``, ``bare-uvicorn``  a minimal ASGI app (accept, answer the
               authenticate frame, wait): what the server itself costs per socket

    python benchmarks/sockets.py [--server chatcore] [--levels 1000,10000]

See docs/benchmarks-journey.md. ``events.py`` uses this module's WebSocket client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import os
import platform
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from entrypoints.auth import issue_token
from load import (
    CpuSample,
    PhaseResult,
    Service,
    _free_port,
    _stop,
    descendants,
    report_quiet,
    started_service,
    wait_ready,
)

ROOT: Final = Path(__file__).resolve().parent.parent
BENCH_DIR: Final = Path(__file__).resolve().parent
DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_RABBITMQ_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_NOTIFICATION: Final = "bench_notification"
_NOTIFICATION_PREFIX: Final = b'{"event":"bench_notification"'


# ---------------------------------------------------------------------------
# A lean WebSocket client (RFC 6455, client side), one asyncio.Protocol per socket

FrameHandler = Callable[["WsClient", bytes, float], None]


class WsClient(asyncio.Protocol):
    """One client socket to ``/ws``: the upgrade, the authenticate frame, then every
    text frame goes to ``on_frame(client, payload, arrival time)``.

    No task per socket: frames are parsed in ``data_received``. Server pings are
    answered, a close frame is echoed. With ``offer_deflate`` the upgrade offers
    ``permessage-deflate`` as browsers do, and compressed frames are inflated.
    """

    __slots__ = (
        "_buffer",
        "_fragments",
        "_inflater",
        "_key",
        "_no_takeover",
        "authenticated",
        "close_code",
        "closed",
        "deflate",
        "on_frame",
        "transport",
        "upgraded",
        "user",
    )

    def __init__(
        self,
        user: int,
        on_frame: FrameHandler | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.user = user
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._key = b""
        self._fragments: list[bytes] | None = None
        self._inflater: Any = None
        self._no_takeover = False
        self.deflate = False
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.authenticated: asyncio.Future[None] = loop.create_future()
        self.closed = False
        self.close_code: int | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.upgraded.done():
            self._read_upgrade()
            if not self.upgraded.done() or self.upgraded.exception() is not None:
                return
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = ConnectionError(f"connection closed ({exc or 'EOF'}, code {self.close_code})")
        for waiter in (self.upgraded, self.authenticated):
            if not waiter.done():
                waiter.set_exception(error)

    # the upgrade

    def upgrade(self, host: str, path: str, *, offer_deflate: bool) -> None:
        """Send the upgrade request (``upgraded`` resolves on the 101 answer)."""
        assert self.transport is not None
        self._key = base64.b64encode(secrets.token_bytes(16))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if offer_deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _read_upgrade(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()  # noqa: S324 - the protocol's
        if not status.startswith("HTTP/1.1 101"):
            self.upgraded.set_exception(ConnectionError(f"upgrade refused: {status[:60]}"))
            return
        if headers.get("sec-websocket-accept") != expected:
            self.upgraded.set_exception(ConnectionError("bad Sec-WebSocket-Accept"))
            return
        extensions = headers.get("sec-websocket-extensions", "")
        self.deflate = "permessage-deflate" in extensions
        self._no_takeover = "server_no_context_takeover" in extensions
        self.upgraded.set_result(None)

    # frames

    def _parse(self) -> None:
        buffer = self._buffer
        position = 0
        available = len(buffer)
        while available - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if available - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                head = 4
            elif length == 127:
                if available - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                head = 10
            mask = b""
            if second & 0x80:  # servers do not mask, but be lenient
                mask = bytes(buffer[position + head : position + head + 4])
                head += 4
            end = position + head + length
            if available < end:
                break
            payload = bytes(buffer[position + head : end])
            if mask:
                payload = _xor(payload, mask)
            position = end
            self._frame(first, payload)
        if position:
            del buffer[:position]

    def _frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        final = bool(first & 0x80)
        if opcode in {1, 2}:
            if not final:
                self._fragments = [payload]
                compressed = bool(first & 0x40)
                self._fragments.append(b"\x01" if compressed else b"\x00")  # marker, last
                return
            self._message(payload, bool(first & 0x40))
        elif opcode == 0 and self._fragments is not None:
            marker = self._fragments.pop()
            self._fragments.append(payload)
            if final:
                whole, self._fragments = b"".join(self._fragments), None
                self._message(whole, marker == b"\x01")
            else:
                self._fragments.append(marker)
        elif opcode == 8:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
            if not self.closed:
                self.closed = True
                self._send(8, payload[:2])
                if self.transport is not None:
                    self.transport.close()
        elif opcode == 9:
            self._send(10, payload)

    def _message(self, payload: bytes, compressed: bool) -> None:
        if compressed:
            if self._inflater is None or self._no_takeover:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            payload = self._inflater.decompress(payload + b"\x00\x00\xff\xff")
        arrived = time.perf_counter()
        if not self.authenticated.done():
            if payload.startswith(b'{"event":"authenticated"'):
                self.authenticated.set_result(None)
            else:
                self.authenticated.set_exception(
                    ConnectionError(f"not authenticated: {payload[:120]!r}")
                )
            return
        if self.on_frame is not None:
            self.on_frame(self, payload, arrived)

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = random.getrandbits(32).to_bytes(4, "big")
        transport.write(head + mask + _xor(payload, mask))

    def send_text(self, text: bytes) -> None:
        self._send(1, text)

    def close(self) -> None:
        """Send a normal close frame and close the TCP connection."""
        if self.transport is None:
            return
        if not self.closed:
            self.closed = True
            self._send(8, (1000).to_bytes(2, "big"))
        self.transport.close()


def _xor(payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def authenticate_frame(token: str) -> bytes:
    return json.dumps({"event": "authenticate", "data": {"token": token}}).encode()


async def open_socket(
    host: str,
    port: int,
    user: int,
    token: str,
    on_frame: FrameHandler | None,
    *,
    offer_deflate: bool = False,
    timeout: float = 30.0,  # noqa: ASYNC109 - one bound for the whole opening
) -> WsClient:
    """Connect, upgrade and authenticate one socket (all within ``timeout``)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, client = await loop.create_connection(lambda: WsClient(user, on_frame, loop), host, port)
        try:
            client.upgrade(f"{host}:{port}", "/ws", offer_deflate=offer_deflate)
            await client.upgraded
            client.send_text(authenticate_frame(token))
            await client.authenticated
        except BaseException:
            if client.transport is not None:
                client.transport.abort()
            raise
    return client


async def open_sockets(
    host: str,
    port: int,
    plan: Sequence[tuple[int, str]],
    on_frame: FrameHandler | None,
    *,
    concurrency: int = 200,
    offer_deflate: bool = False,
    timeout: float = 30.0,  # noqa: ASYNC109 - per socket
) -> tuple[list[WsClient], Counter[str], float]:
    """Open one socket per ``(user index, token)`` of ``plan``, ``concurrency`` at a
    time; returns the sockets, the failures by kind and the seconds it took."""
    slots = asyncio.Semaphore(concurrency)
    opened: list[WsClient] = []
    failures: Counter[str] = Counter()

    async def one(user: int, token: str) -> None:
        async with slots:
            try:
                opened.append(
                    await open_socket(
                        host,
                        port,
                        user,
                        token,
                        on_frame,
                        offer_deflate=offer_deflate,
                        timeout=timeout,
                    )
                )
            except (OSError, TimeoutError) as exc:
                failures[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(user, token) for user, token in plan))
    return opened, failures, time.perf_counter() - started


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``load.PhaseResult.percentile``)."""
    return PhaseResult("", "", 0, latencies_ms=list(values)).percentile(q)


# ---------------------------------------------------------------------------
# Resources of a run: a database, broker names, the file-descriptor limit


@contextlib.asynccontextmanager
async def temporary_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database on the server of ``admin_url`` for the block, dropped after."""
    import asyncpg  # noqa: PLC0415 - only the benchmarks need it directly

    name = f"{prefix}_{secrets.token_hex(4)}"
    parts = urllib.parse.urlsplit(admin_url)
    if parts.hostname not in {"127.0.0.1", "localhost"}:
        raise SystemExit("the benchmarks only use a PostgreSQL server on 127.0.0.1")
    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def raise_file_limit(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` (children inherit it) toward
    ``needed``, up to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def run_names(prefix: str) -> dict[str, str]:
    """Exchange and queue names of one run, so nothing outside it is touched."""
    tag = f"{prefix}.{os.getpid()}.{secrets.token_hex(3)}"
    return {
        "RABBITMQ_EXCHANGE": f"{tag}.events",
        "RABBITMQ_QUEUE": f"{tag}.assessment",
        "NOTIFICATIONS_EXCHANGE": f"{tag}.notifications",
    }


# ---------------------------------------------------------------------------
# Servers


@dataclass(slots=True)
class Server:
    """A started server: where it answers, and the process that holds the sockets."""

    service: Service
    root_pid: int
    description: str
    forks_worker: bool = False
    """Whether the sockets live in a child of ``root_pid`` (Granian's worker), not in
    the started process itself (uvicorn with one worker, ``chatcore serve`` included)."""

    @property
    def worker_pid(self) -> int:
        """The process serving the sockets: Granian's worker (the root's only child),
        else the root itself."""
        if not self.forks_worker:
            return self.root_pid
        children = sorted(p for p in descendants(self.root_pid) if p != self.root_pid)
        if len(children) != 1:
            raise RuntimeError(f"expected one worker under {self.root_pid}, found {children}")
        return children[0]


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        stat = fh.read()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a server or consumer of a run (rate limits raised)."""
    return {
        **os.environ,
        "FREE_MODEL_RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_CONVERSATIONS_PER_DAY": "1000000",
        **extra,
    }


def migrate(env: dict[str, str]) -> None:
    """``chatcore migrate`` on ``env['DATABASE_URL']``."""
    subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "migrate"],
        env=env,
        check=True,
        timeout=180,
        stdout=subprocess.DEVNULL,
    )


def _server_command(kind: str, port: int, backpressure: int, deflate: bool) -> list[str]:
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if kind.endswith("uvicorn"):
        uvicorn = [sys.executable, "-m", "uvicorn", "--ws", "websockets-sansio", *host]
        uvicorn += ["--log-level", "warning", "--no-access-log"]
        uvicorn += ["--ws-per-message-deflate", "true" if deflate else "false"]
        if kind == "uvicorn":
            return [*uvicorn, "--factory", "entrypoints.http.app:create_app_from_env"]
        return [*uvicorn, "--app-dir", str(BENCH_DIR), "sockets:bare_app"]
    granian = [sys.executable, "-m", "granian", "--interface", "asgi", *host, "--workers", "1"]
    granian += ["--backpressure", str(backpressure), "--log-level", "warning", "--no-access-log"]
    if kind == "granian":
        return [*granian, "--factory", "entrypoints.http.app:create_app_from_env"]
    return [*granian, "--working-dir", str(BENCH_DIR), "sockets:bare_app"]


@contextlib.asynccontextmanager
async def started_server(
    kind: str,
    env: dict[str, str],
    *,
    backpressure: int = 16384,
    deflate: bool = True,
    log_level: str = "warning",
) -> AsyncIterator[Server]:
    """Start a server of ``kind`` (see the module doc) with ``env`` for the block.

    ``chatcore`` is ``load.started_service`` (``chatcore serve``, which migrates
    ``DATABASE_URL`` first); the others are started here the same way.
    """
    if kind == "chatcore":
        saved = dict(os.environ)
        os.environ.update(env)  # started_service passes os.environ to the server
        try:
            options = argparse.Namespace(data_dir=None, log_level=log_level, server_workers=1)
            async with started_service(options) as service:
                # The `chatcore serve` process: the one whose parent is not among them.
                root = next(p for p in service.pids if _parent(p) not in service.pids)
                yield Server(service, root, service.description)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return
    data_dir = Path(tempfile.mkdtemp(prefix=f"chatcore-bench-{kind}-"))
    env = {**env, "CHATCORE_DATA_DIR": str(data_dir), "LOG_LEVEL": log_level}
    if not kind.startswith("bare"):
        migrate(env)
    port = _free_port()
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220, S603 - our own argv; returns at once
            _server_command(kind, port, backpressure, deflate),
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            await wait_ready("127.0.0.1", port, 180, lambda: process.poll() is None)
        except RuntimeError:
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            print(f"the server did not start; the end of its log:\n{tail}", file=sys.stderr)
            raise
        service = Service(
            host="127.0.0.1",
            port=port,
            jwt_secret=env.get("JWT_SECRET", ""),
            issuer=env.get("JWT_ISSUER", "atma-auth-service"),
            audience=env.get("JWT_AUDIENCE", "atma-services"),
            pids=descendants(process.pid),
            description=_describe(kind, backpressure, deflate),
        )
        yield Server(service, process.pid, service.description, "granian" in kind)
    finally:
        await _stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


def _describe(kind: str, backpressure: int, deflate: bool) -> str:
    versions = _versions()
    if kind == "granian":
        return (
            f"chatcore app under granian {versions['granian']} CLI, --backpressure {backpressure}"
        )
    if kind == "bare-granian":
        return f"bare ASGI app under granian {versions['granian']}, --backpressure {backpressure}"
    name = "chatcore app" if kind == "uvicorn" else "bare ASGI app"
    return (
        f"{name} under uvicorn {versions['uvicorn']} --ws websockets-sansio "
        f"(websockets {versions['websockets']}), --ws-per-message-deflate "
        f"{'true' if deflate else 'false'}"
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    found = {}
    for name in ("granian", "uvicorn", "websockets", "litestar"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: ``/health/ready`` answers 200; ``/ws`` accepts, answers the
    first frame with ``authenticated`` and waits for the client to leave. What a
    server costs per socket with nothing of chatcore's on top (one task per socket,
    which any ASGI app has)."""
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif kind == "http":
        body = b'{"success":true}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif kind == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        first = await receive()
        if first["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": '{"event":"authenticated","data":{}}'})
        while (await receive())["type"] != "websocket.disconnect":
            pass


# ---------------------------------------------------------------------------
# Memory


@dataclass(slots=True, frozen=True)
class Memory:
    """A process's resident memory, in KiB."""

    rss: int
    anon: int
    file: int
    threads: int

    @classmethod
    def of(cls, pid: int) -> Memory:
        fields: dict[str, int] = {}
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name in {"VmRSS", "RssAnon", "RssFile", "Threads"}:
                    fields[name] = int(value.split()[0])
        return cls(fields["VmRSS"], fields["RssAnon"], fields["RssFile"], fields["Threads"])


# ---------------------------------------------------------------------------
# Notification fan-out


@dataclass(slots=True)
class FanOut:
    """One notification in flight: when it was due and how many sockets still wait."""

    due: float
    waiting: int
    first: float = 0.0


@dataclass(slots=True)
class FanOutResult:
    level: int
    users: int
    scheduled: int
    complete_ms: list[float] = field(default_factory=list)  # to the user's last socket
    first_ms: list[float] = field(default_factory=list)  # to the user's first socket
    notify_ms: list[float] = field(default_factory=list)  # the publish (with its confirm)
    incomplete: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    max_send_lag_ms: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0


class Notifications:
    """Receives the benchmark's notification frames on every socket."""

    def __init__(self) -> None:
        self.inflight: dict[int, FanOut] = {}
        self.result: FanOutResult | None = None
        self.unexpected = 0

    def on_frame(self, _client: WsClient, payload: bytes, arrived: float) -> None:
        if not payload.startswith(_NOTIFICATION_PREFIX):
            return  # pings and the like
        sequence = json.loads(payload)["data"]["seq"]
        state = self.inflight.get(sequence)
        if state is None:
            self.unexpected += 1
            return
        if not state.first:
            state.first = arrived
        state.waiting -= 1
        if state.waiting == 0:
            del self.inflight[sequence]
            if self.result is not None:
                self.result.complete_ms.append((arrived - state.due) * 1000)
                self.result.first_ms.append((state.first - state.due) * 1000)


async def fan_out(
    notifier: Any,
    receiver: Notifications,
    users: Sequence[uuid.UUID],
    sockets_per_user: dict[uuid.UUID, int],
    *,
    level: int,
    count: int,
    rate: float,
    sequence_start: int,
    wait: float = 10.0,
) -> FanOutResult:
    """Notify ``count`` users (round-robin over a shuffled ``users``) at ``rate`` per
    second, open loop; wait up to ``wait`` seconds for the last frames."""
    result = FanOutResult(level=level, users=len(users), scheduled=count)
    receiver.result = result
    order = list(users)
    random.shuffle(order)
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.05
    interval = 1.0 / rate

    async def one(sequence: int, user: uuid.UUID, due: float) -> None:
        receiver.inflight[sequence] = FanOut(due=due, waiting=sockets_per_user[user])
        try:
            await notifier.notify(user, _NOTIFICATION, {"seq": sequence})
        except Exception as exc:  # the notifier never raises; count it if it does
            result.errors[type(exc).__name__] += 1
        result.notify_ms.append((time.perf_counter() - due) * 1000)

    for index in range(count):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_send_lag_ms = max(result.max_send_lag_ms, -delay * 1000)
        task = asyncio.create_task(one(sequence_start + index, order[index % len(order)], due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    deadline = time.perf_counter() + wait
    while (receiver.inflight or tasks) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    result.elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    result.incomplete = len(receiver.inflight)
    receiver.inflight.clear()
    receiver.result = None
    return result


# ---------------------------------------------------------------------------
# The run


@dataclass(slots=True)
class Step:
    level: int
    users: int
    opened: int
    failures: Counter[str]
    open_seconds: float
    before: Memory
    after: Memory
    base: Memory
    opened_before: int = 0
    after_traffic: Memory | None = None
    fan_out: FanOutResult | None = None

    def per_socket_kib(self) -> float:
        """(RSS with ``level`` sockets - RSS before any) / sockets."""
        return (self.after.rss - self.base.rss) / self.opened if self.opened else float("nan")

    def marginal_kib(self) -> float:
        added = self.opened - self.opened_before
        return (self.after.rss - self.before.rss) / added if added else float("nan")


async def settle(seconds: float) -> None:
    """Let the server finish what opening left (log lines, tasks)."""
    await asyncio.sleep(seconds)


async def run(args: argparse.Namespace) -> int:
    levels: tuple[int, ...] = args.levels
    soft = raise_file_limit(max(levels) * 2 + 1024)
    if soft < max(levels) + 512:
        raise SystemExit(f"RLIMIT_NOFILE is {soft}: not enough for {max(levels)} sockets")
    names = run_names("bench-sockets")
    secret = secrets.token_urlsafe(32)
    bare = args.server.startswith("bare")
    async with contextlib.AsyncExitStack() as stack:
        database = await stack.enter_async_context(
            temporary_database(args.postgres, "chatcore_bench_sockets")
        )
        if not bare:  # registered before the server starts, so it runs after it stopped
            stack.push_async_callback(_delete_exchanges, args.rabbitmq, names)
        env = server_env(
            {
                "DATABASE_URL": database,
                "RABBITMQ_URL": args.rabbitmq,
                "JWT_SECRET": secret,
                "LOG_LEVEL": args.log_level,
                **names,
            }
        )
        if args.ws_ping_interval is not None:
            env["WS_PING_INTERVAL"] = f"{args.ws_ping_interval:g}"
        server = await stack.enter_async_context(
            started_server(
                args.server,
                env,
                backpressure=args.backpressure,
                deflate=args.server_deflate == "on",
                log_level=args.log_level,
            )
        )
        service = server.service
        print(f"server: {server.description}, at http://{service.authority}")
        print(
            f"client: one asyncio process (WsClient protocol), Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs, RLIMIT_NOFILE {soft}; "
            f"{args.per_user} sockets per user"
            + (", offering permessage-deflate" if args.offer_deflate else "")
        )
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        if args.ws_ping_interval is not None:
            print(f"WS_PING_INTERVAL={args.ws_ping_interval:g}")
        await report_quiet()
        notifier = None
        if not bare:
            from adapters.websocket.notifier import RabbitMQNotifier  # noqa: PLC0415

            notifier = RabbitMQNotifier(
                args.rabbitmq, hub=None, exchange=names["NOTIFICATIONS_EXCHANGE"]
            )
            await notifier.start()
            stack.push_async_callback(notifier.stop)
        receiver = Notifications()
        worker = server.worker_pid
        print(f"server worker pid {worker}")

        def token(user: uuid.UUID) -> str:
            return issue_token(
                secret=secret,
                user_id=user,
                issuer=service.issuer,
                audience=service.audience,
                ttl_seconds=3600,
            )

        # Warm-up: the first sockets load code paths and start the hub's heartbeat.
        warm_user = uuid.uuid4()
        warm, failures, _ = await open_sockets(
            "127.0.0.1", service.port, [(0, token(warm_user))] * 20, None
        )
        if failures:
            raise SystemExit(f"warm-up sockets failed: {dict(failures)}")
        for client in warm:
            client.close()
        await settle(args.settle)
        gc.collect()
        base = Memory.of(worker)
        print(
            f"server worker before any socket: VmRSS {base.rss / 1024:.1f} MiB "
            f"(anon {base.anon / 1024:.1f} MiB, {base.threads} threads)"
        )

        clients: list[WsClient] = []
        users: list[uuid.UUID] = []
        steps: list[Step] = []
        sequence = 0
        for level in levels:
            want_users = max(1, -(-level // args.per_user))
            new_users = [uuid.uuid4() for _ in range(want_users - len(users))]
            first_new = len(users)
            users.extend(new_users)
            plan = []
            for offset, user in enumerate(new_users):
                minted = token(user)
                plan.extend([(first_new + offset, minted)] * args.per_user)
            plan = plan[: level - len(clients)]
            before = Memory.of(worker)
            opened, failures, seconds = await open_sockets(
                "127.0.0.1",
                service.port,
                plan,
                receiver.on_frame,
                concurrency=args.concurrency,
                offer_deflate=args.offer_deflate,
                timeout=args.open_timeout,
            )
            clients.extend(opened)
            await settle(args.settle)
            after = Memory.of(worker)
            step = Step(
                level=level,
                users=len(users),
                opened=len(clients),
                failures=failures,
                open_seconds=seconds,
                before=before,
                after=after,
                base=base,
                opened_before=len(clients) - len(opened),
            )
            steps.append(step)
            alive = sum(1 for c in clients if not c.closed)
            deflated = sum(1 for c in opened if c.deflate)
            print(
                f"  {len(clients):6} sockets open ({len(opened)} in {seconds:.1f} s, "
                f"{len(opened) / seconds if seconds else 0:.0f}/s; failures {dict(failures) or 0}; "
                f"alive {alive}{f'; deflate negotiated on {deflated}' if deflated else ''}): "
                f"VmRSS {after.rss / 1024:.1f} MiB, {step.per_socket_kib():.1f} KiB per socket "
                f"overall, {step.marginal_kib():.1f} KiB per added socket",
                flush=True,
            )
            if notifier is not None and args.notifications > 0:
                per_user = Counter(users[c.user] for c in clients if not c.closed)
                targets = [u for u in users if per_user.get(u)]
                cpu_before, wall = CpuSample.take(), time.perf_counter()
                result = await fan_out(
                    notifier,
                    receiver,
                    targets,
                    dict(per_user),
                    level=len(clients),
                    count=args.notifications,
                    rate=args.rate,
                    sequence_start=sequence,
                )
                wall = time.perf_counter() - wall
                used, _ = CpuSample.take().used_since(cpu_before, descendants(server.root_pid))
                result.server_cpu_s, result.client_cpu_s = used["server"], used["client"]
                sequence += args.notifications
                step.fan_out = result
                step.after_traffic = Memory.of(worker)
                print(
                    f"         fan-out of {result.scheduled} notifications at {args.rate:g}/s to "
                    f"{result.users} users: p50 {percentile(result.complete_ms, 50):.1f} ms, "
                    f"p99 {percentile(result.complete_ms, 99):.1f} ms to the last socket; "
                    f"incomplete {result.incomplete}; server CPU {used['server'] / wall:.0%}",
                    flush=True,
                )
        # Close everything and see what the server gives back.
        for client in clients:
            client.close()
        await settle(max(args.settle, 3.0))
        closed = Memory.of(worker)
        print_report(steps, base, closed, args)
    return 0


async def _delete_exchanges(url: str, names: dict[str, str]) -> None:
    """Delete the run's exchanges: the notifications one, and the events one that the
    server's integration publisher declares (no queue of the run is left: the server's
    notification queue is exclusive and went with it)."""
    import aio_pika  # noqa: PLC0415

    connection = await aio_pika.connect(url)
    async with connection:
        for key in ("NOTIFICATIONS_EXCHANGE", "RABBITMQ_EXCHANGE"):
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.exchange_delete(names[key])
    print(f"deleted exchanges {names['NOTIFICATIONS_EXCHANGE']}, {names['RABBITMQ_EXCHANGE']}")


# ---------------------------------------------------------------------------
# Output


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        cell.ljust(width) if index == 0 else cell.rjust(width)
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain text table (load.py's ``print_table`` is specific to its two targets)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    print()
    print(title)
    print(_row(header, widths))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for row in rows:
        print(_row(row, widths))


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def print_report(
    steps: Sequence[Step], base: Memory, closed: Memory, args: argparse.Namespace
) -> None:
    rows = [["no sockets (after warm-up)", "-", _mib(base.rss), _mib(base.anon), "-", "-"]]
    for step in steps:
        rows.append(
            [
                f"{step.opened} sockets, idle",
                str(step.users),
                _mib(step.after.rss),
                _mib(step.after.anon),
                f"{step.per_socket_kib():.1f}",
                f"{step.marginal_kib():.1f}",
            ]
        )
        if step.after_traffic is not None:
            rows.append(
                [
                    f"{step.opened} sockets, after fan-out",
                    str(step.users),
                    _mib(step.after_traffic.rss),
                    _mib(step.after_traffic.anon),
                    f"{(step.after_traffic.rss - base.rss) / step.opened:.1f}",
                    "-",
                ]
            )
    rows.append(["all closed", "-", _mib(closed.rss), _mib(closed.anon), "-", "-"])
    print_table(
        "server worker memory (VmRSS / RssAnon of /proc/<pid>/status)",
        ["state", "users", "RSS MiB", "anon MiB", "KiB/socket", "KiB/added"],
        rows,
    )
    fans = [s.fan_out for s in steps if s.fan_out is not None]
    if fans:
        print_table(
            f"notification fan-out, {args.per_user} sockets per user, "
            f"{args.rate:g} notifications/s (ms from the scheduled notify)",
            [
                "sockets",
                "sent",
                "p50 all",
                "p95 all",
                "p99 all",
                "max all",
                "p99 first",
                "p99 publish",
                "incomplete",
                "srv CPU ms/notif",
            ],
            [
                [
                    str(f.level),
                    str(f.scheduled),
                    f"{percentile(f.complete_ms, 50):.1f}",
                    f"{percentile(f.complete_ms, 95):.1f}",
                    f"{percentile(f.complete_ms, 99):.1f}",
                    f"{max(f.complete_ms, default=float('nan')):.1f}",
                    f"{percentile(f.first_ms, 99):.1f}",
                    f"{percentile(f.notify_ms, 99):.1f}",
                    str(f.incomplete),
                    f"{f.server_cpu_s * 1000 / f.scheduled:.2f}",
                ]
                for f in fans
            ],
        )
    print("\ngoals")
    for step in steps:
        per = step.per_socket_kib()
        ok = per <= args.goal_kib and not step.failures
        print(
            f"  [{'PASS' if ok else 'FAIL'}] {step.opened} idle sockets: {per:.1f} KiB per socket "
            f"(goal <= {args.goal_kib:g} KiB; {sum(step.failures.values())} failed to open)"
        )


# ---------------------------------------------------------------------------


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not levels or not all(1 <= n <= 20_000 for n in levels):
        raise argparse.ArgumentTypeError("levels between 1 and 20000")
    return levels


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="WebSocket capacity of one server: memory per socket, fan-out latency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--server",
        choices=("chatcore", "granian", "uvicorn", "bare-granian", "bare-uvicorn"),
        default="chatcore",
        help="what serves /ws (see the module doc)",
    )
    parser.add_argument(
        "--levels", type=_levels, default=(1000, 10_000), help="sockets open in all, per step"
    )
    parser.add_argument("--per-user", type=int, default=5, help="sockets per user")
    parser.add_argument(
        "--notifications",
        type=int,
        default=3000,
        help="notifications per step (0: none); 3000 at 100/s span a heartbeat (25 s)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="notifications per second")
    parser.add_argument("--concurrency", type=int, default=200, help="sockets opening at once")
    parser.add_argument("--open-timeout", type=float, default=30.0, help="seconds per socket")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    parser.add_argument(
        "--backpressure",
        type=int,
        default=16384,
        help="granian --backpressure (servers granian and bare-granian)",
    )
    parser.add_argument(
        "--offer-deflate",
        action="store_true",
        help="offer permessage-deflate in the upgrade, as browsers do",
    )
    parser.add_argument(
        "--server-deflate",
        choices=("on", "off"),
        default="on",
        help="uvicorn --ws-per-message-deflate (servers uvicorn and bare-uvicorn; on is "
        "uvicorn's default; chatcore serve has it off)",
    )
    parser.add_argument(
        "--ws-ping-interval",
        type=float,
        default=None,
        help="WS_PING_INTERVAL of the server (chatcore's heartbeat; 0: none; default: "
        "the service's, 25 s)",
    )
    parser.add_argument("--goal-kib", type=float, default=50.0, help="KiB per idle socket")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL to create the run's database on (127.0.0.1)",
    )
    parser.add_argument(
        "--rabbitmq",
        default=os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL),
        help="RabbitMQ (127.0.0.1)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args(argv)
    if not 1 <= args.per_user <= 100:
        parser.error("--per-user must be between 1 and 100")
    if not 0 <= args.notifications <= 100_000 or not 1 <= args.rate <= 10_000:
        parser.error("--notifications in [0, 100000], --rate in [1, 10000]")
    if not 1 <= args.concurrency <= 2000 or not 1 <= args.open_timeout <= 120:
        parser.error("--concurrency in [1, 2000], --open-timeout in [1, 120] seconds")
    if not 0 <= args.settle <= 60:
        parser.error("--settle in [0, 60] seconds")
    for url in (args.rabbitmq, args.postgres):
        if urllib.parse.urlsplit(url).hostname not in {"127.0.0.1", "localhost"}:
            parser.error(f"only 127.0.0.1: {url}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
