"""An HTTP/1.1 transport for httpx on asyncio protocols, with httptools (llhttp) parsing.

:class:`HTTP1Transport` is what :func:`adapters.openrouter.build_http_client` gives its
``httpx.AsyncClient``: the client keeps httpx's API (requests, responses, timeouts,
exceptions) while the connection pool, the socket I/O and the response parsing are
done here, for the many concurrent, long-lived SSE streams chatcore relays.

Connections:

* one pool per transport, keyed by ``(scheme, host, port)``; idle keep-alive
  connections are kept in last-in-first-out order and taken and returned in O(1)
  (no scan of the pool per request, no system call per pooled connection);
* at most ``max_connections`` connections (connecting, busy or idle) in all; a request
  beyond that waits for one, waiters being served first come, first served, within
  the ``pool`` timeout;
* a connection idle for longer than ``keepalive_expiry`` is closed rather than reused;
  so is a connection the server closed, one that received bytes it was not asked for,
  one whose response said ``Connection: close`` (or was HTTP/1.0 without keep-alive),
  and one whose response was not read to its end;
* a request on a reused connection that the server closes or resets before a byte of
  the response arrives (it gave the idle connection up as the request was written) is
  sent once more, on a new connection; nothing else is retried;
* ``https`` URLs are served over TLS (``ssl_context``, with the URL's host as server
  name); ``http`` URLs over plain TCP.

Requests are written in one piece: the request line, the headers exactly as httpx
gives them (``Host`` and ``Content-Length`` included) and the body, read into memory
first (chatcore sends small JSON bodies). A body of unknown length, for which httpx
sets ``Transfer-Encoding: chunked``, is sent as one chunk.

Responses: the body is framed by ``Content-Length``, by chunked encoding or by the
end of the connection, as the head says. It is handed to httpx as an
``httpx.AsyncByteStream`` that yields what the socket delivered since the last read,
all HTTP chunks of it joined, rather than one piece per chunk. At most about
:data:`READ_BUFFER` bytes are held per connection: beyond that, reading from the
socket pauses until the consumer takes them. Closing that stream before the body is
complete closes the connection at once, so the server sees its client go away (how
chatcore stops an upstream generation its own client abandoned). Informational (1xx)
responses are skipped. Not supported: HTTP/2, proxies, protocol upgrades.

Timeouts come from ``request.extensions["timeout"]`` as httpx sets them: ``connect``
(TCP and TLS set-up), ``write`` (waiting for the socket to accept the request),
``read`` (waiting for each next piece of the response, the head and every body
read) and ``pool`` (waiting for a connection). Errors are httpx's:
``ConnectTimeout``/``WriteTimeout``/``ReadTimeout``/``PoolTimeout``,
``ConnectError`` when no connection can be made, ``ReadError`` when the connection
fails while reading, ``RemoteProtocolError`` when the server closes the connection
before the response is complete or sends something that is not HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any, Final, TypeAlias, cast

import httptools
import httpx

__all__ = ["DEFAULT_KEEPALIVE_EXPIRY", "MAX_HEAD", "READ_BUFFER", "HTTP1Transport"]

READ_BUFFER: Final = 64 * 1024
"""Body bytes held per connection before reading from its socket pauses."""

MAX_HEAD: Final = 256 * 1024
"""Bytes a response head (status line, informational responses and headers) may take."""

DEFAULT_KEEPALIVE_EXPIRY: Final = 30.0
"""Seconds an idle connection is kept for reuse."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HAPPY_EYEBALLS_DELAY: Final = 0.25
"""Seconds before the next address of a host is tried while one is still connecting."""

_Key: TypeAlias = tuple[str, bytes, int]
"""A pool's origin: scheme, host (ASCII, without brackets) and port."""


class _HeadDone(Exception):  # noqa: N818 (a signal to stop the parser, not an error)
    """Raised in the parser's callback to stop it after the head of a HEAD response."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, serving one request at a time.

    The parser's callbacks (``on_status``, ``on_header``, ...) fill the state of the
    current response; the task that sent the request awaits :attr:`_waiter`, which
    every delivery from the socket resolves (``True``; ``False`` on a timeout).
    """

    __slots__ = (
        "_body",
        "_close_requested",
        "_complete",
        "_drain_waiter",
        "_error",
        "_head_bytes",
        "_head_done",
        "_head_request",
        "_headers",
        "_keep_alive",
        "_parser",
        "_reading_paused",
        "_size",
        "_status",
        "_transport",
        "_until_close",
        "_waiter",
        "_write_paused",
        "active",
        "discarded",
        "idle_since",
        "key",
        "loop",
        "lost",
        "pool",
        "reason",
    )

    def __init__(self, pool: HTTP1Transport, key: _Key, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.key = key
        self.loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._drain_waiter: asyncio.Future[bool] | None = None
        self._write_paused = False
        self._reading_paused = False
        self.active = True  # busy with a request (from creation until released)
        self.discarded = False  # counted out of the pool (closed or being closed)
        self.lost = False  # the socket is closed
        self.idle_since = 0.0
        self._reset(head_request=False, close=False)

    def _reset(self, *, head_request: bool, close: bool) -> None:
        self._status = 0
        self.reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._head_bytes = 0
        self._head_request = head_request
        self._close_requested = close
        self._until_close = False
        self._complete = False
        self._keep_alive = False
        self._error: httpx.TransportError | None = None
        self._body: list[bytes] = []
        self._size = 0

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not derive from asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if self._complete or parser is None:
            # Bytes nobody asked for (on an idle connection, or after a whole response):
            # the connection cannot be trusted with another request.
            self._keep_alive = False
            self.close()
            return
        if not self._head_done:
            self._head_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self._parse_failed(exc)
        if not self._head_done and self._head_bytes > MAX_HEAD and self._error is None:
            self._fail(httpx.RemoteProtocolError("the response head is too large"))
        if self._size > READ_BUFFER and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def _parse_failed(self, exc: httptools.HttpParserError) -> None:
        if self._complete:  # after the head of a HEAD response, or bytes after a response
            self.close()
        else:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP/1.1 response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost says what it means

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.active and not self._complete and self._error is None:
            if exc is not None:
                self._error = httpx.ReadError(str(exc) or type(exc).__name__)
            elif self._head_done and self._until_close:
                self._complete = True  # a body delimited by the end of the connection
            else:
                self._error = httpx.RemoteProtocolError(
                    "the server closed the connection before the response was complete"
                )
        self._wake()
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(True)
        self.pool._lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(True)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._complete:  # a second response, unasked for: do not reuse the connection
            self._keep_alive = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if status < 200:
            return  # informational: its on_message_complete resets the state
        self._status = status
        self._head_done = True
        if self._head_request:
            self._complete = True
            self._keep_alive = False  # where the head ended is not known exactly
            raise _HeadDone
        if status in {204, 304}:
            return
        chunked = False
        length = False
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif lowered == b"content-length":
                length = True
        self._until_close = not chunked and not length

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        if not self._head_done:  # the end of an informational response
            self._headers = []
            self.reason = b""
            return
        if self._complete:
            return  # the end of a second response, unasked for
        self._complete = True
        self._keep_alive = not self._close_requested and parser.should_keep_alive()

    # used by the transport and the response stream

    def start(self, *, head_request: bool, close: bool) -> None:
        """Prepare for a new request's response; ``close``: the request said
        ``Connection: close``."""
        self._reset(head_request=head_request, close=close)
        self._parser = httptools.HttpResponseParser(self)

    def reusable(self) -> bool:
        """Whether the last response was read whole and the connection may serve more."""
        return (
            self._complete
            and self._keep_alive
            and self._error is None
            and not self.lost
            and self._transport is not None
            and not self._transport.is_closing()
        )

    def went_silent(self) -> bool:
        """Whether the connection ended without a byte of the current request's
        response (closed or reset by the server), rather than timing out or failing
        to parse."""
        return (
            self.lost
            and self._head_bytes == 0
            and not isinstance(self._error, httpx.TimeoutException)
        )

    def close(self) -> None:
        """Close the socket at once (nothing is left to send)."""
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: httpx.TransportError) -> None:
        if self._error is None:
            self._error = error
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    @staticmethod
    def _expire(waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(False)

    async def _wait(self, seconds: float | None) -> bool:
        """Until the socket delivers something (True) or ``seconds`` pass (False)."""
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._waiter = waiter
        timer = None if seconds is None else self.loop.call_later(seconds, self._expire, waiter)
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def send(self, data: bytes, seconds: float | None) -> None:
        """Write the request; wait (up to ``seconds``) while the socket's buffer is full."""
        transport = self._transport
        if transport is None or self.lost or transport.is_closing():
            raise httpx.WriteError("the connection was closed before the request was sent")
        transport.write(data)
        if not self._write_paused:
            return
        drain: asyncio.Future[bool] = self.loop.create_future()
        self._drain_waiter = drain
        timer = None if seconds is None else self.loop.call_later(seconds, self._expire, drain)
        try:
            if not await drain:
                raise httpx.WriteTimeout("timed out writing the request")
        finally:
            self._drain_waiter = None
            if timer is not None:
                timer.cancel()

    async def read_head(
        self, seconds: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The status, headers and reason phrase of the response."""
        while not self._head_done:
            if self._error is not None:
                raise self._error
            if not await self._wait(seconds):
                raise httpx.ReadTimeout("timed out waiting for the response")
        return self._status, self._headers, self.reason

    async def read(self, seconds: float | None) -> bytes:
        """The body bytes received since the last call; ``b""`` at the end of the body.

        Bytes received before a failure are returned before the failure is raised.
        """
        while True:
            body = self._body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                self._body = []
                self._size = 0
                if self._reading_paused:
                    self._reading_paused = False
                    if self._transport is not None and not self.lost:
                        self._transport.resume_reading()
                return data
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            if not await self._wait(seconds):
                raise httpx.ReadTimeout("timed out waiting for the response body")


class _ResponseStream(httpx.AsyncByteStream):
    """A response body: every iteration yields what the socket delivered since the last.

    The connection goes back to the pool as soon as the body is complete; ``aclose()``
    before that closes the connection.
    """

    __slots__ = ("_connection", "_timeout")

    def __init__(self, connection: _Connection, timeout: float | None) -> None:
        self._connection: _Connection | None = connection
        self._timeout = timeout

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        data = await connection.read(self._timeout)
        if data:
            return data
        self._connection = None
        connection.pool._release(connection)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.pool._release(connection)

    def __del__(self) -> None:
        # A response dropped without aclose(): give its connection back (or close it)
        # rather than hold a place in the pool for ever.
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # e.g. the event loop is closed
                connection.pool._release(connection)


def _timeout(timeouts: object, name: str) -> float | None:
    if isinstance(timeouts, dict):
        value = timeouts.get(name)
        if isinstance(value, int | float):
            return float(value)
    return None


class HTTP1Transport(httpx.AsyncBaseTransport):
    """A pooled HTTP/1.1 transport for ``httpx.AsyncClient(transport=...)``.

    See the module's documentation for the behaviour. One instance serves any number
    of origins; ``aclose()`` (which ``AsyncClient.aclose()`` calls) closes every
    connection, and the transport cannot be used afterwards.

    Args:
        max_connections: Connections open at most, over all origins (connecting,
            busy and idle); requests beyond wait for one.
        max_keepalive_connections: Idle connections kept at most (default:
            ``max_connections``); a connection released beyond that is closed.
        keepalive_expiry: Seconds an idle connection stays reusable.
        ssl_context: The TLS settings of ``https`` connections (default:
            ``httpx.create_ssl_context()``: certifi's CA bundle, or ``SSL_CERT_FILE``
            / ``SSL_CERT_DIR``), made at the first ``https`` connection.

    Raises:
        ValueError: ``max_connections`` is not positive.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        self._max = max_connections
        self._max_idle = (
            max_connections if max_keepalive_connections is None else max_keepalive_connections
        )
        self._expiry = keepalive_expiry
        self._ssl_context = ssl_context
        # Idle connections per origin, oldest first (a dict as an ordered set: O(1)
        # push, pop of the newest and removal of any one).
        self._idle: dict[_Key, dict[_Connection, None]] = {}
        self._idle_count = 0
        self._total = 0  # connections counted against max_connections
        self._waiters: collections.deque[tuple[_Key, asyncio.Future[_Connection | None]]] = (
            collections.deque()
        )
        self._busy: set[_Connection] = set()
        self._closed = False

    # the state of the pool, for tests and metrics

    @property
    def connections(self) -> int:
        """Connections open or being opened."""
        return self._total

    @property
    def idle_connections(self) -> int:
        """Idle connections kept for reuse."""
        return self._idle_count

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection."""
        return len(self._waiters)

    # httpx.AsyncBaseTransport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response once its head has arrived."""
        if self._closed:
            raise httpx.ConnectError("the HTTP transport is closed", request=request)
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"unsupported URL scheme {scheme!r} (http and https only)", request=request
            )
        host = url.raw_host
        if not host:
            raise httpx.UnsupportedProtocol("the URL has no host", request=request)
        key: _Key = (scheme, host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout")
        data, close = await self._encode(request)
        read_timeout = _timeout(timeouts, "read")
        connection = await self._acquire(key, _timeout(timeouts, "pool"))
        reused = connection is not None
        while True:
            if connection is None:
                connection = await self._connect(key, _timeout(timeouts, "connect"))
            try:
                connection.start(head_request=request.method == "HEAD", close=close)
                await connection.send(data, _timeout(timeouts, "write"))
                status, headers, reason = await connection.read_head(read_timeout)
            except httpx.TransportError:
                # The keep-alive race: the server closed an idle connection just as it
                # was reused, before one byte of an answer. Once, on a new connection
                # that takes the old one's place in the pool.
                if reused and connection.went_silent() and not connection.discarded:
                    self._retire(connection)
                    connection = None
                    reused = False
                    continue
                connection.close()
                self._release(connection)
                raise
            except BaseException:
                connection.close()
                self._release(connection)
                raise
            break
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseStream(connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        """Close every connection; waiting requests fail with ``httpx.ConnectError``."""
        self._closed = True
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(httpx.ConnectError("the HTTP transport is closed"))
        for idle in list(self._idle.values()):
            for connection in list(idle):
                self._discard(connection)
        for connection in list(self._busy):
            self._discard(connection, idle=False)  # its response's reader sees an error
        await asyncio.sleep(0)  # asyncio closes the sockets in callbacks: let them run

    # the request's bytes

    @staticmethod
    async def _encode(request: httpx.Request) -> tuple[bytes, bool]:
        """The request's bytes, and whether it asks the server to close the connection."""
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        chunked = close = False
        for name, value in request.headers.raw:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise httpx.LocalProtocolError(f"invalid header {name!r}", request=request)
            parts += (name, b": ", value, b"\r\n")
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif lowered == b"connection":
                close = close or b"close" in value.lower()
        if chunked:
            body = (b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
        parts += (b"\r\n", body)
        return b"".join(parts), close

    # the pool

    async def _acquire(self, key: _Key, seconds: float | None) -> _Connection | None:
        """An idle connection to ``key``, else ``None`` with a slot taken for a new one."""
        idle = self._idle.get(key)
        if idle:
            now = asyncio.get_running_loop().time()
            while idle:
                connection, _ = idle.popitem()
                self._idle_count -= 1
                if now - connection.idle_since <= self._expiry and not connection.lost:
                    connection.active = True
                    self._busy.add(connection)
                    return connection
                self._discard(connection, idle=False)
                if not connection.lost:  # expired: every older one is expired too
                    for older in list(idle):
                        self._discard(older)
        if not self._waiters:
            if self._total >= self._max:
                self._evict_idle()
            if self._total < self._max:
                self._total += 1
                return None
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((key, waiter))
        try:
            async with asyncio.timeout(seconds):
                handed = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                if waiter.exception() is None:
                    self._give_back(waiter.result())  # served, but too late
            else:  # still queued: leave the queue (rare, so O(n) is fine)
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove((key, waiter))
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("timed out waiting for a connection") from None
            raise
        return handed

    def _give_back(self, connection: _Connection | None) -> None:
        """Return what a waiter was handed but will not use."""
        if connection is None:
            self._total -= 1
            self._serve_waiter()
        else:
            self._release(connection)

    def _evict_idle(self) -> None:
        """Close the oldest idle connection of any origin, to make room for a new one."""
        for idle in self._idle.values():
            if idle:
                self._discard(next(iter(idle)))
                return

    async def _connect(self, key: _Key, seconds: float | None) -> _Connection:
        """A new connection to ``key``, its slot already counted."""
        scheme, raw_host, port = key
        host = raw_host.decode("ascii")
        loop = asyncio.get_running_loop()
        try:
            context = self._tls() if scheme == "https" else None
            async with asyncio.timeout(seconds):
                # asyncio's own loop tries a host's addresses (IPv6, IPv4) in
                # parallel, staggered; uvloop's has no such option, and tries them one
                # after the other.
                staggered: dict[str, Any] = (
                    {"happy_eyeballs_delay": _HAPPY_EYEBALLS_DELAY}
                    if isinstance(loop, asyncio.BaseEventLoop)
                    else {}
                )
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, key, loop),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                    **staggered,
                )
        except BaseException as exc:
            self._total -= 1
            self._serve_waiter()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
            if isinstance(exc, OSError):
                detail = str(exc) or type(exc).__name__
                raise httpx.ConnectError(f"cannot connect to {host}:{port}: {detail}") from exc
            raise
        if self._closed:
            connection.close()
            self._release(connection)
            raise httpx.ConnectError("the HTTP transport is closed")
        self._busy.add(connection)
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _release(self, connection: _Connection) -> None:
        """The end of a request on ``connection``: reuse it, hand it on, or close it."""
        if not connection.active:
            return
        connection.active = False
        self._busy.discard(connection)
        if not connection.reusable() or self._closed:
            connection.close()
            self._discard(connection, idle=False)
            return
        waiters = self._waiters
        while waiters:
            key, waiter = waiters[0]
            if waiter.done():
                waiters.popleft()
                continue
            if key != connection.key:
                break  # the first waiter wants another origin: make room for it
            waiters.popleft()
            connection.active = True
            self._busy.add(connection)
            waiter.set_result(connection)
            return
        if waiters or self._idle_count >= self._max_idle:
            self._discard(connection, idle=False)
            return
        connection.idle_since = connection.loop.time()
        self._idle.setdefault(connection.key, {})[connection] = None
        self._idle_count += 1

    def _retire(self, connection: _Connection) -> None:
        """Close a busy ``connection`` and keep its slot for the connection that
        replaces it."""
        connection.active = False
        connection.discarded = True
        self._busy.discard(connection)
        connection.close()

    def _lost(self, connection: _Connection) -> None:
        """The socket of ``connection`` closed (by either side)."""
        if not connection.active and not connection.discarded:
            self._discard(connection)

    def _discard(self, connection: _Connection, *, idle: bool = True) -> None:
        """Close ``connection`` and count it out; ``idle``: it may be in an idle list."""
        if connection.discarded:
            return
        connection.discarded = True
        if idle:
            pool = self._idle.get(connection.key)
            if pool is not None and connection in pool:
                del pool[connection]
                self._idle_count -= 1
        connection.close()
        self._total -= 1
        self._serve_waiter()

    def _serve_waiter(self) -> None:
        """Give the first waiter the slot just freed, if there is a waiter."""
        waiters = self._waiters
        while waiters and self._total < self._max:
            _, waiter = waiters.popleft()
            if not waiter.done():
                self._total += 1
                waiter.set_result(None)
                return
