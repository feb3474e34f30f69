"""A lean HTTP/1.1 keep-alive client on asyncio protocols, for load generation.

It does one thing: send pre-built request bytes on a persistent connection and read
one response (``Content-Length``, chunked, or until close). It is several times cheaper
per request than a general client such as httpx, which matters when the load
generator shares a small machine with the server (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

__all__ = ["Connection", "ConnectionPool", "Reply", "build_request"]


@dataclass(slots=True, frozen=True)
class Reply:
    """A response: its status and body."""

    status: int
    body: bytes


def build_request(
    method: str,
    path: str,
    host: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """The bytes of an HTTP/1.1 request (keep-alive), ready to write on a connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _ResponseProtocol(asyncio.Protocol):
    """Reads one response at a time into the future :meth:`send` returns."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Reply] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head_length = -1  # bytes up to and including the blank line; -1: not yet
        self._status = 0
        self._content_length = -1
        self._chunked = False
        self.must_close = False  # the server said "Connection: close"
        self.lost = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is not None:
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is None:
            return
        if self._head_length >= 0 and self._content_length < 0 and not self._chunked:
            # A body delimited by the end of the connection.
            self._finish(bytes(self._buffer[self._head_length :]), len(self._buffer))
        else:
            self._fail(ConnectionError(f"connection closed by the server ({exc or 'EOF'})"))

    # requests

    def send(self, raw: bytes, timeout: float) -> asyncio.Future[Reply]:
        """Write ``raw``; the future resolves to the response or fails after ``timeout``."""
        if self.lost or self._transport is None:
            raise ConnectionError("connection is closed")
        if self._waiter is not None:
            raise RuntimeError("one request at a time per connection")
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._head_length = -1
        self._content_length = -1
        self._chunked = False
        self._timer = self._loop.call_later(timeout, self._on_timeout)
        self._transport.write(raw)
        if self._buffer:
            self._parse()
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._fail(ConnectionError("connection closed by the client"))

    def _on_timeout(self) -> None:
        self._timer = None
        self._fail(TimeoutError("no complete response in time"))
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self, body: bytes, consumed: int) -> None:
        del self._buffer[:consumed]
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiter is not None and not waiter.done():
            waiter.set_result(Reply(self._status, body))

    # parsing

    def _parse(self) -> None:
        buffer = self._buffer
        if self._head_length < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head_length = end + 4
            self._read_head(bytes(buffer[:end]))
        if self._chunked:
            self._parse_chunked()
            return
        if self._content_length >= 0:
            end = self._head_length + self._content_length
            if len(buffer) >= end:
                self._finish(bytes(buffer[self._head_length : end]), end)

    def _read_head(self, head: bytes) -> None:
        status_line, *header_lines = head.split(b"\r\n")
        try:
            self._status = int(status_line[9:12])
        except ValueError:
            self._fail(ConnectionError(f"not an HTTP response: {status_line[:40]!r}"))
            return
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._content_length = int(value)
            elif name == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self.must_close = b"close" in value.lower()
        if self._status in {204, 304} or 100 <= self._status < 200:
            self._content_length = 0

    def _parse_chunked(self) -> None:
        buffer = self._buffer
        position = self._head_length
        parts: list[bytes] = []
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
            position = line_end + 2
            if size == 0:
                # No trailers expected; skip them if there are some.
                if buffer[position : position + 2] == b"\r\n":
                    self._finish(b"".join(parts), position + 2)
                    return
                trailer_end = buffer.find(b"\r\n\r\n", position)
                if trailer_end >= 0:
                    self._finish(b"".join(parts), trailer_end + 4)
                return
            if len(buffer) < position + size + 2:
                return
            parts.append(bytes(buffer[position : position + size]))
            position += size + 2


class Connection:
    """One keep-alive connection, opened on first use and reopened after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._protocol: _ResponseProtocol | None = None
        self.opened = 0  # how many times a TCP connection was opened

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _ResponseProtocol(loop), self.host, self.port
        )
        self._protocol = protocol
        self.opened += 1

    async def request(self, raw: bytes, timeout: float = 10.0) -> Reply:  # noqa: ASYNC109
        """Send ``raw`` (from :func:`build_request`) and return the response.

        Raises:
            OSError: connecting failed or the server closed the connection.
            TimeoutError: no complete response within ``timeout`` seconds.
        """
        protocol = self._protocol
        if protocol is None or protocol.lost:
            await self.open()
            protocol = self._protocol
            assert protocol is not None
        try:
            reply = await protocol.send(raw, timeout)
        except BaseException:
            self.close()  # the connection's state is unknown: start afresh next time
            raise
        if protocol.must_close:
            self.close()
        return reply

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.close()


class ConnectionPool:
    """At most ``size`` connections, each used by one request at a time."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._host = host
        self._port = port
        self._slots = asyncio.Semaphore(size)
        self._idle: collections.deque[Connection] = collections.deque()
        self.size = size

    async def prefill(self, count: int) -> None:
        """Open ``count`` connections ahead of time, so a timed phase does not pay for them."""
        fresh = [Connection(self._host, self._port) for _ in range(min(count, self.size))]
        await asyncio.gather(*(c.open() for c in fresh))
        self._idle.extend(fresh)

    async def request(self, raw: bytes, timeout: float = 10.0) -> Reply:  # noqa: ASYNC109
        async with self._slots:
            connection = self._idle.pop() if self._idle else Connection(self._host, self._port)
            try:
                return await connection.request(raw, timeout)
            finally:
                self._idle.append(connection)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
