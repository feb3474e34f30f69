"""The per-process registry of live WebSocket connections, and the frame encoding.

Delivery never waits on a client. Each connection has a bounded outbound queue; a
sender task drains it, one frame at a time, and exists only while there is something
to send (an idle connection holds no task: at 10,000 idle sockets a task apiece would
cost more than everything else the hub keeps per socket).

Policy for clients that do not keep up (documented in docs, tested in tests/unit):

- a frame that would make a connection's queue exceed ``queue_size`` drops the
  connection: it is unregistered at once, its pending frames are discarded and it is
  closed with 1013 (*try again later*), so the client reconnects and re-reads state
  over HTTP instead of receiving a gapped stream;
- a single send that takes longer than ``send_timeout`` (a client that stopped
  reading while the TCP window is full) drops the connection the same way;
- a send that fails (the client is gone) unregisters the connection.

Heartbeat: every ``ping_interval`` seconds each idle connection gets an application
frame ``{"event": "ping", ...}`` through its queue, a batch at a time. It is part of the
socket's contract (clients may watch for it: a browser script cannot see protocol
pings), it keeps proxies (nginx cuts idle upstreams after 60 s by default) from closing
quiet sockets, and it finds dead ones when their send fails or times out. ASGI cannot
send protocol pings; uvicorn (``chatcore serve``) sends its own besides, on a timer per
connection, and closes a socket whose peer stops answering them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_TRY_AGAIN_LATER",
    "Connection",
    "ConnectionHub",
    "FrameSocket",
    "encode_frame",
    "iso_timestamp",
]

_log = logging.getLogger("chatcore.websocket")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class FrameSocket(Protocol):
    """What the hub needs of a socket (Litestar's ``WebSocket`` is one)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class _Frame(msgspec.Struct, kw_only=True, frozen=True):
    event: str
    data: dict[str, Any]
    timestamp: str


_ENCODER = msgspec.json.Encoder()


def iso_timestamp(at: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``, as JavaScript's ``toISOString``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_frame(event: str, data: dict[str, Any], at: datetime) -> bytes:
    """The contract's frame ``{"event", "data", "timestamp"}`` as JSON bytes."""
    return _ENCODER.encode(_Frame(event=event, data=data, timestamp=iso_timestamp(at)))


class Connection:
    """One registered socket. Handed back by :meth:`ConnectionHub.register`."""

    __slots__ = (
        "close_code",
        "close_reason",
        "closed",
        "owner",
        "pending",
        "sender",
        "socket",
        "user_id",
    )

    def __init__(self, user_id: UUID, socket: FrameSocket) -> None:
        self.user_id = user_id
        self.socket = socket
        # Made on demand and dropped when drained: an idle connection is a few slots.
        self.pending: deque[str] | None = None
        self.sender: asyncio.Task[None] | None = None
        self.closed = False
        # The task reading the client's frames (see ConnectionHub.hold), and how the
        # hub asked it to close the socket.
        self.owner: asyncio.Task[Any] | None = None
        self.close_code: int | None = None
        self.close_reason = ""


class ConnectionHub:
    """user id → that user's live sockets, in this process.

    Args:
        queue_size: frames a connection may have waiting; one more drops it.
        ping_interval: seconds between heartbeat frames to idle connections.
        send_timeout: seconds one send may take before the connection is dropped.
    """

    def __init__(
        self,
        *,
        queue_size: int = 64,
        ping_interval: float = 25.0,
        send_timeout: float = 10.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        # A list per user: most users have one socket, and removal scans only theirs.
        self._by_user: dict[UUID, list[Connection]] = {}
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self.dropped = 0
        """Connections the hub dropped: too slow, dead, or closed at shutdown."""

    # -- registry -------------------------------------------------------------------

    def register(self, user_id: UUID, socket: FrameSocket) -> Connection:
        """Add ``socket`` for ``user_id``; frames for the user reach it from now on."""
        connection = Connection(user_id, socket)
        self._by_user.setdefault(user_id, []).append(connection)
        self._count += 1
        self.start()  # here, not at bootstrap: in the loop that serves the sockets
        return connection

    def unregister(self, connection: Connection) -> None:
        """Forget ``connection`` and discard what it had pending; idempotent."""
        connection.closed = True
        connection.pending = None
        sockets = self._by_user.get(connection.user_id)
        if sockets is None:
            return
        try:
            sockets.remove(connection)
        except ValueError:
            return
        self._count -= 1
        if not sockets:
            del self._by_user[connection.user_id]

    def count(self) -> int:
        """Live connections in this process."""
        return self._count

    def users(self) -> set[UUID]:
        """Users with at least one live connection in this process."""
        return set(self._by_user)

    def has(self, user_id: UUID) -> bool:
        return user_id in self._by_user

    def connections(self, user_id: UUID) -> tuple[Connection, ...]:
        return tuple(self._by_user.get(user_id, ()))

    # -- delivery -------------------------------------------------------------------

    async def deliver(self, user_id: UUID, frame: bytes | str) -> int:
        """Queue ``frame`` (an encoded frame) for every socket of ``user_id``.

        Never waits on a client. Returns how many sockets it was queued for.
        """
        sockets = self._by_user.get(user_id)
        if not sockets:
            return 0
        text = frame.decode() if isinstance(frame, bytes) else frame
        queued = 0
        for connection in tuple(sockets):  # a full queue unregisters while we iterate
            queued += self.send(connection, text)
        return queued

    def send(self, connection: Connection, frame: bytes | str) -> bool:
        """Queue ``frame`` for one connection; False when it is closed or was dropped."""
        if connection.closed:
            return False
        text = frame.decode() if isinstance(frame, bytes) else frame
        pending = connection.pending
        if pending is None:
            pending = connection.pending = deque()
        elif len(pending) >= self.queue_size:
            self.drop(connection, CLOSE_TRY_AGAIN_LATER, "too slow: send queue full")
            return False
        pending.append(text)
        if connection.sender is None:
            connection.sender = self._spawn(self._drain(connection))
        return True

    async def _drain(self, connection: Connection) -> None:
        try:
            while not connection.closed and connection.pending:
                text = connection.pending[0]
                async with asyncio.timeout(self.send_timeout):
                    await connection.socket.send_text(text)
                if connection.pending:  # None once dropped while sending
                    connection.pending.popleft()
        except TimeoutError:
            self.drop(connection, CLOSE_TRY_AGAIN_LATER, "too slow: a send timed out")
        except Exception as exc:  # the client is gone (disconnect, reset, closed transport)
            _log.debug("websocket send failed, dropping the connection: %r", exc)
            self.drop(connection, None, "")
        finally:
            connection.sender = None
            if not connection.pending:
                connection.pending = None

    def drop(self, connection: Connection, code: int | None, reason: str) -> None:
        """Unregister ``connection`` now and have its socket closed with ``code``
        (None: the socket is dead already, do not try).

        A connection held by :meth:`hold` is closed by its owner task, which the hub
        interrupts; any other is closed from a background task.
        """
        if connection.closed:
            return
        self.unregister(connection)
        self.dropped += 1
        sender, connection.sender = connection.sender, None
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
        if code is None:
            return
        _log.info("dropping websocket of user %s: %s", connection.user_id, reason)
        owner = connection.owner
        if owner is not None and not owner.done():
            connection.close_code, connection.close_reason = code, reason
            owner.cancel()
        else:
            self._spawn(self._close(connection.socket, code, reason))

    async def hold(
        self, connection: Connection, read: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Run ``read`` (the loop over the client's frames) in the calling task until
        it returns or the hub drops the connection, then unregister it.

        Why the hub interrupts the reader instead of closing the socket beside it:
        Granian (2.x) drops an ASGI ``websocket.close`` sent while a ``receive`` is
        pending (the receive returns a disconnect, the client never gets the close
        frame and the TCP connection stays open). A cancelled receive followed by the
        close works, so :meth:`drop` cancels this task and it sends the close. Under
        uvicorn (websockets-sansio) either way works; this one is kept so that the app
        behaves the same under both (tests/integration/test_server.py checks the close
        frame under uvicorn).
        """
        owner = asyncio.current_task()
        connection.owner = owner
        try:
            await read()
        except asyncio.CancelledError:
            if connection.close_code is None or owner is None:
                raise  # not the hub's doing: the server is cancelling us
            owner.uncancel()
            await self._close(connection.socket, connection.close_code, connection.close_reason)
        finally:
            connection.owner = None
            self.unregister(connection)

    async def _close(self, socket: FrameSocket, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.send_timeout):
                await socket.close(code, reason)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- heartbeat and lifecycle ----------------------------------------------------

    def ping_all(self, at: datetime | None = None) -> int:
        """Queue a ``ping`` frame for every idle connection; returns how many."""
        text = encode_frame("ping", {}, at or datetime.now(UTC)).decode()
        sent = 0
        for connection in self._all():
            if connection.pending is None:  # busy ones prove themselves by sending
                sent += self.send(connection, text)
        return sent

    def _all(self) -> list[Connection]:
        return [c for sockets in self._by_user.values() for c in sockets]

    def start(self) -> None:
        """Start the heartbeat in the running loop, unless it runs already.

        The first :meth:`register` calls it, so a process that serves no sockets runs
        no heartbeat.
        """
        if self.ping_interval > 0 and (self._heartbeat is None or self._heartbeat.done()):
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._sweep()
            except Exception:
                _log.exception("websocket heartbeat failed")

    async def _sweep(self, batch: int = 250) -> int:
        """Ping idle connections a batch at a time, spread over part of the interval:
        pinging 10,000 sockets at once stalls the loop (and every notification) for
        most of a second."""
        text = encode_frame("ping", {}, datetime.now(UTC)).decode()
        idle = [c for c in self._all() if c.pending is None]
        batches = max(1, -(-len(idle) // batch))
        pause = min(0.05, self.ping_interval / 4 / batches)
        sent = 0
        for start in range(0, len(idle), batch):
            for connection in idle[start : start + batch]:
                if connection.pending is None and not connection.closed:
                    sent += self.send(connection, text)
            await asyncio.sleep(pause)
        return sent

    async def aclose(
        self,
        code: int = CLOSE_GOING_AWAY,
        reason: str = "server shutting down",
        *,
        grace: float = 1.0,
    ) -> None:
        """Stop the heartbeat and close every socket (clients reconnect elsewhere),
        waiting up to ``grace`` seconds for the close frames to go out.

        The wait is short on purpose: servers run the lifespan shutdown after they
        have dealt with the connections themselves. uvicorn has by then closed every
        socket with 1012 (*service restart*), so usually nothing is left here; Granian
        has stopped them without a close frame, so a close sent here never leaves. A
        longer wait would only delay shutdown.
        """
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None and not heartbeat.done():
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        connections = self._all()
        closing: set[asyncio.Future[Any]] = {c.owner for c in connections if c.owner is not None}
        for connection in connections:
            self.drop(connection, code, reason)
        loop = asyncio.get_running_loop()
        closing.update(self._tasks)
        closing = {t for t in closing if t.get_loop() is loop and not t.done()}
        if closing:
            await asyncio.wait(closing, timeout=grace)
