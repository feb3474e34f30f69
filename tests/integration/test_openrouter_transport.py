"""HTTP1Transport (httpx on asyncio protocols + httptools) against real local servers.

Most tests use a small scripted HTTP/1.1 server of their own (:class:`RawServer`), which
writes exactly the bytes a test gives it, in the pieces and with the pauses it says,
and records every connection: the requests read on it and when its client went away.
The fake OpenRouter covers the whole-read behaviour on a real SSE answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.openrouter import error_from_exception
from adapters.openrouter.transport import READ_BUFFER, HTTP1Transport
from chatcore.models import FailureKind
from tests.fakes.openrouter import FakeOpenRouter, Reply

# A scripted HTTP/1.1 server ----------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """One accepted connection, seen from the server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    port: int
    closing: asyncio.Event  # set when the server stops
    requests: list[Request] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    gone_at: float | None = None

    async def send(self, *pieces: bytes, pause: float = 0.0) -> None:
        """Write ``pieces`` one by one, each flushed, ``pause`` seconds apart."""
        for index, piece in enumerate(pieces):
            if index and pause:
                await asyncio.sleep(pause)
            self.writer.write(piece)
            await self.writer.drain()


Handler = Callable[[Peer, Request], Awaitable[bool]]
"""Answers one request on a connection; returns whether to read another on it."""


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 whose answers are written by a handler."""

    def __init__(
        self,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        read_requests: bool = True,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.read_requests = read_requests
        self.peers: list[Peer] = []
        self.arrivals: list[str] = []  # request targets in the order they arrived
        self.port = 0
        self.closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.closing.set()
        for peer in self.peers:
            peer.writer.transport.abort()  # handlers waiting for their client return
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, path: str = "/", *, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(reader, writer, writer.get_extra_info("peername")[1], self.closing)
        self.peers.append(peer)
        try:
            if not self.read_requests:
                await self.handler(peer, Request("", "", {}, b""))
                await reader.read()  # until the client goes away
                return
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                peer.requests.append(request)
                self.arrivals.append(request.target)
                if not await self.handler(peer, request):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            peer.gone_at = time.monotonic()
            peer.gone.set()
            writer.close()
            self._tasks.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


def response(
    body: bytes = b"hello",
    *,
    status: str = "200 OK",
    headers: tuple[str, ...] = (),
    chunked: bool = False,
) -> bytes:
    """A whole response: ``Content-Length`` framing, or one chunk and the last one."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def answer(*pieces: bytes, pause: float = 0.0, keep: bool = True) -> Handler:
    """A handler writing ``pieces`` to every request (then keeping the connection)."""

    async def handle(peer: Peer, request: Request) -> bool:
        await peer.send(*pieces, pause=pause)
        return keep

    return handle


def hang_after(*pieces: bytes) -> Handler:
    """A handler writing ``pieces`` and then nothing more, until the client leaves."""

    async def handle(peer: Peer, request: Request) -> bool:
        await peer.send(*pieces)
        await peer.reader.read()
        return False

    return handle


async def until(condition: Callable[[], bool], seconds: float = 1.0) -> None:
    """Until ``condition()`` holds (a state of the transport, which has no event for it)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def client(**options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, HTTP1Transport]]:
    transport = HTTP1Transport(**options)
    async with httpx.AsyncClient(transport=transport) as http:
        yield http, transport


def kind(exc: BaseException) -> FailureKind:
    """What chatcore's error mapping makes of a transport exception."""
    return error_from_exception(exc, model="m").kind


# Bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_bodies_and_headers(chunked: bool) -> None:
    body = b'{"hello": "world"}'
    wire = response(body, headers=("Content-Type: application/json", "X-A: 1", "X-A: 2"))
    if chunked:
        wire = response(body, headers=("Content-Type: application/json",), chunked=True)
    async with RawServer(answer(wire)) as server, client() as (http, _):
        reply = await http.post(server.url("/v1/x?q=1"), content=b"abc", headers={"X-T": "t"})
        assert reply.status_code == 200
        assert reply.json() == {"hello": "world"}
        assert reply.headers["content-type"] == "application/json"
        assert reply.http_version == "HTTP/1.1"
        assert reply.reason_phrase == "OK"
        if not chunked:
            assert reply.headers.get_list("x-a") == ["1", "2"]
    [request] = server.peers[0].requests
    assert (request.method, request.target, request.body) == ("POST", "/v1/x?q=1", b"abc")
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == "3"
    assert request.headers["x-t"] == "t"


def _cuts(wire: bytes) -> Iterator[tuple[bytes, bytes]]:
    for cut in range(1, len(wire)):
        yield wire[:cut], wire[cut:]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_response_cut_anywhere_reads_the_same(chunked: bool) -> None:
    body = b"data: one\n\ndata: two\n\n"
    cuts = list(_cuts(response(body, headers=("X-Y: z",), chunked=chunked)))

    async def handle(peer: Peer, request: Request) -> bool:
        first, rest = cuts[int(request.target[1:])]
        await peer.send(first, rest, pause=0.002)
        return True

    async with RawServer(handle) as server, client() as (http, transport):
        for index in range(len(cuts)):
            async with http.stream("GET", server.url(f"/{index}")) as reply:
                assert reply.headers["x-y"] == "z"
                received = b"".join([piece async for piece in reply.aiter_raw()])
            assert received == body, index
        assert transport.connections == 1
    assert len(server.peers) == 1


async def test_many_http_chunks_of_one_read_come_as_one_piece() -> None:
    """Whole socket reads: 50 SSE events in their own HTTP chunks, written at once."""
    async with FakeOpenRouter(default=Reply(tokens=50)) as fake, client() as (http, _):
        payload = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with http.stream("POST", fake.url("/chat/completions"), json=payload) as reply:
            pieces = [piece async for piece in reply.aiter_raw()]
    text = b"".join(pieces)
    assert text.count(b"data: ") == 52  # 50 tokens, the usage chunk and [DONE]
    assert len(pieces) <= 2


async def test_body_until_close_204_head_and_informational_responses() -> None:
    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/eof":
            await peer.send(b"HTTP/1.1 200 OK\r\n\r\nall of ", b"it", pause=0.01)
            return False  # the end of the connection ends the body
        if request.target == "/204":
            await peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif request.target == "/head":
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        else:
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n")
            await peer.send(response(b"after 1xx"))
        return True

    async with RawServer(handle) as server, client() as (http, _):
        reply = await http.get(server.url("/eof"))
        assert (reply.status_code, reply.content) == (200, b"all of it")
        reply = await http.get(server.url("/204"))
        assert (reply.status_code, reply.content) == (204, b"")
        reply = await http.head(server.url("/head"))
        assert (reply.status_code, reply.content) == (200, b"")
        assert reply.headers["content-length"] == "1000"
        reply = await http.get(server.url("/1xx"))
        assert (reply.status_code, reply.content) == (200, b"after 1xx")
        assert "link" not in reply.headers


async def test_request_body_of_unknown_length_is_sent_chunked() -> None:
    received: list[bytes] = []

    async def handle(peer: Peer, request: Request) -> bool:
        received.append(await peer.reader.readuntil(b"0\r\n\r\n"))
        await peer.send(response())
        return False

    async def parts() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    async with RawServer(handle, read_requests=False) as server, client() as (http, _):
        reply = await http.post(server.url(), content=parts())
        assert reply.content == b"hello"
    [raw] = received
    assert b"\r\nTransfer-Encoding: chunked\r\n" in raw
    assert raw.endswith(b"\r\n\r\n4\r\nabcd\r\n0\r\n\r\n")


async def test_backpressure_bounds_what_is_held() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    pieces: list[bytes] = []
    async with (
        RawServer(answer(response(body))) as server,
        client() as (http, _),
        http.stream("GET", server.url()) as reply,
    ):
        async for piece in reply.aiter_raw():
            pieces.append(piece)
            await asyncio.sleep(0.001)  # a slow consumer
    assert b"".join(pieces) == body
    # Reading pauses once READ_BUFFER bytes are held; one socket read may come on top.
    assert max(len(piece) for piece in pieces) <= READ_BUFFER + 256 * 1024


# Keep-alive and the pool -----------------------------------------------------------


async def test_sequential_requests_reuse_one_connection() -> None:
    async with (
        RawServer(answer(response(b"x", chunked=True))) as server,
        client() as (http, transport),
    ):
        for _ in range(3):
            assert (await http.get(server.url())).content == b"x"
            async with http.stream("GET", server.url()) as reply:
                assert await reply.aread() == b"x"
        assert (transport.connections, transport.idle_connections) == (1, 1)
    [peer] = server.peers
    assert len(peer.requests) == 6


async def test_early_close_closes_the_socket_and_is_not_reused() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/slow":
            await peer.send(head + b"5\r\nfirst\r\n")
            await peer.reader.read()  # the rest never comes
        await peer.send(response())
        return True

    async with RawServer(handle) as server, client() as (http, transport):
        async with http.stream("GET", server.url("/slow")) as reply:
            async for piece in reply.aiter_raw():
                assert piece == b"first"
                break
            closed_at = time.monotonic()
        await asyncio.wait_for(server.peers[0].gone.wait(), 1.0)
        assert server.peers[0].gone_at is not None
        assert server.peers[0].gone_at - closed_at < 0.2
        assert transport.connections == 0
        assert (await http.get(server.url())).content == b"hello"
    assert len(server.peers) == 2


async def test_cancelling_a_reader_closes_the_socket() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    started = asyncio.Event()

    async def read() -> None:
        async with http.stream("GET", server.url()) as reply:
            async for _ in reply.aiter_raw():
                started.set()

    async with RawServer(hang_after(head + b"1\r\na\r\n")) as server, client() as (http, _):
        task = asyncio.create_task(read())
        await asyncio.wait_for(started.wait(), 1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.peers[0].gone.wait(), 0.5)


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(response(headers=("Connection: close",)), id="connection-close"),
        pytest.param(response() + b"HTTP/1.1 200 OK\r\n", id="unread-bytes"),
        pytest.param(response().replace(b"HTTP/1.1", b"HTTP/1.0"), id="http-1.0"),
    ],
)
async def test_connections_not_to_reuse_are_closed(wire: bytes) -> None:
    async with RawServer(answer(wire)) as server, client() as (http, transport):
        for _ in range(2):
            assert (await http.get(server.url())).content == b"hello"
            await asyncio.sleep(0.01)
        assert transport.idle_connections <= 1
    assert len(server.peers) == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async with RawServer(answer(response(), keep=False)) as server, client() as (http, transport):
        assert (await http.get(server.url())).content == b"hello"
        await asyncio.wait_for(server.peers[0].gone.wait(), 1.0)
        await asyncio.sleep(0.01)  # the client sees the end of the connection
        assert transport.idle_connections == 0
        assert (await http.get(server.url())).content == b"hello"
    assert len(server.peers) == 2


def closing_on(request_number: int, *, reset: bool = False, first: bytes = b"") -> Handler:
    """A handler answering every request on a connection until its
    ``request_number``-th, which it reads and then closes the connection on, after
    writing ``first`` (with a reset rather than an orderly close when ``reset``)."""

    async def handle(peer: Peer, request: Request) -> bool:
        if len(peer.requests) < request_number:
            await peer.send(response())
            return True
        if first:
            await peer.send(first)
        if reset:
            peer.writer.transport.abort()
        return False

    return handle


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
async def test_a_reused_connection_closed_unanswered_is_retried_once_on_a_new_one(
    reset: bool,
) -> None:
    # The keep-alive race: the server gives up an idle connection just as the client
    # sends on it. Not one byte of an answer came, so the request is sent again.
    async with (
        RawServer(closing_on(2, reset=reset)) as server,
        client(max_connections=1) as (http, transport),
    ):
        assert (await http.get(server.url("/1"))).content == b"hello"
        assert (await http.get(server.url("/2"))).content == b"hello"
        assert (transport.connections, transport.idle_connections) == (1, 1)
    assert server.arrivals == ["/1", "/2", "/2"]
    assert [len(peer.requests) for peer in server.peers] == [2, 1]


async def test_the_retry_is_made_once_and_a_new_connection_is_not_retried() -> None:
    async def handle(peer: Peer, request: Request) -> bool:
        if server.arrivals == ["/1"]:
            await peer.send(response())
            return True
        return False  # every later request: closed unanswered

    async with RawServer(handle) as server, client() as (http, transport):
        await http.get(server.url("/1"))
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url("/2"))  # the reused connection, then one new one
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url("/3"))  # a new connection: not sent again
        assert transport.connections == 0
    assert server.arrivals == ["/1", "/2", "/2", "/3"]


@pytest.mark.parametrize(
    "first", [b"HTTP/1.1 200 OK\r\nContent-Le", b"HTTP/1.1 200 OK\r\n"], ids=["head", "line"]
)
async def test_a_reused_connection_closed_after_some_bytes_is_not_retried(first: bytes) -> None:
    async with RawServer(closing_on(2, first=first)) as server, client() as (http, transport):
        await http.get(server.url("/1"))
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url("/2"))
        assert transport.connections == 0
    assert server.arrivals == ["/1", "/2"]


async def test_a_reused_connection_that_times_out_is_not_retried() -> None:
    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/1":
            await peer.send(response())
            return True
        await peer.reader.read()  # never answers
        return False

    async with RawServer(handle) as server, client() as (http, transport):
        await http.get(server.url("/1"))
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url("/2"), timeout=httpx.Timeout(1.0, read=0.05))
        assert transport.connections == 0
    assert server.arrivals == ["/1", "/2"]


async def test_a_response_dropped_unclosed_gives_its_place_back() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with (
        RawServer(hang_after(head + b"1\r\na\r\n")) as server,
        client(max_connections=1) as (http, transport),
    ):
        reply = await http.send(http.build_request("GET", server.url()), stream=True)
        assert transport.connections == 1
        del reply  # never closed; httpx's response and stream refer to each other
        gc.collect()
        assert transport.connections == 0
        await asyncio.wait_for(server.peers[0].gone.wait(), 1.0)


async def test_a_request_asking_to_close_does_not_keep_the_connection() -> None:
    async with RawServer(answer(response())) as server, client() as (http, transport):
        await http.get(server.url(), headers={"Connection": "close"})
        assert transport.connections == 0


async def test_idle_connections_expire() -> None:
    async with (
        RawServer(answer(response())) as server,
        client(keepalive_expiry=0.05) as (http, transport),
    ):
        await http.get(server.url())
        await http.get(server.url())
        assert len(server.peers) == 1
        await asyncio.sleep(0.1)
        await http.get(server.url())
        assert transport.connections == 1
    assert len(server.peers) == 2


async def test_the_pool_limit_and_first_come_first_served_waiters() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    release = asyncio.Event()

    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/hold":
            await peer.send(head + b"1\r\na\r\n")
            await release.wait()
            await peer.send(b"0\r\n\r\n")
        else:
            await peer.send(response(request.target.encode()))
        return True

    async with RawServer(handle) as server, client(max_connections=2) as (http, transport):
        holders = [await http.send(http.build_request("GET", server.url("/hold")), stream=True)]
        holders.append(await http.send(http.build_request("GET", server.url("/hold")), stream=True))
        assert transport.connections == 2
        tasks = []
        for index in range(5):
            tasks.append(asyncio.create_task(http.get(server.url(f"/w{index}"))))
            await until(lambda: transport.waiting == index + 1)  # noqa: B023
        await asyncio.sleep(0.02)
        assert server.arrivals == ["/hold", "/hold"]
        release.set()
        for holder in holders:
            assert await holder.aread() == b"a"
        replies = await asyncio.gather(*tasks)
        assert [reply.content for reply in replies] == [f"/w{i}".encode() for i in range(5)]
        assert server.arrivals[2:] == [f"/w{i}" for i in range(5)]
        assert transport.connections == 2
        assert transport.waiting == 0
    assert len(server.peers) == 2


async def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
    release = asyncio.Event()

    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/hold":
            await peer.send(head)
            await release.wait()
            await peer.send(b"a")
        else:
            await peer.send(response())
        return True

    async with RawServer(handle) as server, client(max_connections=1) as (http, transport):
        holder = await http.send(http.build_request("GET", server.url("/hold")), stream=True)
        with pytest.raises(httpx.PoolTimeout) as caught:
            await http.get(server.url(), timeout=httpx.Timeout(5.0, pool=0.05))
        assert kind(caught.value) is FailureKind.TIMEOUT
        assert transport.waiting == 0
        cancelled = asyncio.create_task(http.get(server.url()))
        await until(lambda: transport.waiting == 1)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert transport.waiting == 0
        release.set()
        assert await holder.aread() == b"a"
        assert (await http.get(server.url())).content == b"hello"
        assert transport.connections == 1
    assert len(server.peers) == 1


async def test_origins_share_the_limit() -> None:
    async with (
        RawServer(answer(response(b"a"))) as first,
        RawServer(answer(response(b"b"))) as second,
        client(max_connections=1) as (http, transport),
    ):
        assert (await http.get(first.url())).content == b"a"
        assert (await http.get(second.url())).content == b"b"  # the idle one makes room
        assert (await http.get(first.url())).content == b"a"
        assert transport.connections == 1
    assert (len(first.peers), len(second.peers)) == (2, 1)


async def test_aclose_closes_every_connection() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/hold":
            await peer.send(head + b"1\r\na\r\n")
            await peer.reader.read()
        await peer.send(response())
        return True

    async with RawServer(handle) as server:
        transport = HTTP1Transport()
        http = httpx.AsyncClient(transport=transport)
        await http.get(server.url())  # an idle connection
        busy = await http.send(http.build_request("GET", server.url("/hold")), stream=True)
        await http.aclose()
        assert transport.connections == 0
        for peer in server.peers:
            await asyncio.wait_for(peer.gone.wait(), 1.0)
        with pytest.raises(httpx.TransportError):
            await busy.aread()
        await busy.aclose()
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("GET", server.url()))


# Failures and timeouts -------------------------------------------------------------


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client() as (http, transport):
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(f"http://127.0.0.1:{port}/")
        assert kind(caught.value) is FailureKind.UNAVAILABLE
        assert transport.connections == 0


async def test_connect_timeout() -> None:
    """A TLS handshake with a server that never answers it: the connect timeout."""
    async with RawServer(answer(), read_requests=False) as server, client() as (http, transport):
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout) as caught:
            await http.get(server.url(scheme="https"), timeout=httpx.Timeout(5.0, connect=0.1))
        assert time.monotonic() - started < 1.0
        assert kind(caught.value) is FailureKind.TIMEOUT
        assert transport.connections == 0


async def test_read_timeout_before_the_head_and_inside_the_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"

    async def handle(peer: Peer, request: Request) -> bool:
        if request.target == "/body":
            await peer.send(head + b"12345")
        await peer.reader.read()
        return False

    async with RawServer(handle) as server, client() as (http, transport):
        timeout = httpx.Timeout(5.0, read=0.1)
        with pytest.raises(httpx.ReadTimeout) as caught:
            await http.get(server.url("/head"), timeout=timeout)
        assert kind(caught.value) is FailureKind.TIMEOUT
        async with http.stream("GET", server.url("/body"), timeout=timeout) as reply:
            pieces = reply.aiter_raw()
            assert await anext(pieces) == b"12345"
            with pytest.raises(httpx.ReadTimeout):
                await anext(pieces)
        for peer in server.peers:
            await asyncio.wait_for(peer.gone.wait(), 1.0)
        assert transport.connections == 0


async def test_read_timeout_counts_each_read() -> None:
    """Pieces 0.06 s apart with a read timeout of 0.15 s: 0.3 s in all, no timeout."""
    pieces = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", *(bytes([c]) for c in b"abcde")]
    async with RawServer(answer(*pieces, pause=0.06)) as server, client() as (http, _):
        reply = await http.get(server.url(), timeout=httpx.Timeout(5.0, read=0.15))
        assert reply.content == b"abcde"


async def test_write_timeout() -> None:
    """The server never reads: a large body fills the socket buffers."""

    async def handle(peer: Peer, request: Request) -> bool:
        await peer.closing.wait()  # reads nothing
        return False

    async with RawServer(handle, read_requests=False) as server, client() as (http, transport):
        body = b"x" * (64 * 1024 * 1024)
        with pytest.raises(httpx.WriteTimeout) as caught:
            await http.post(server.url(), content=body, timeout=httpx.Timeout(5.0, write=0.2))
        assert kind(caught.value) is FailureKind.TIMEOUT
        assert transport.connections == 0


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", id="content-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345", id="chunked"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="head"),
        pytest.param(b"", id="no-response"),
    ],
)
async def test_server_closing_before_the_end_is_a_protocol_error(wire: bytes) -> None:
    async with RawServer(answer(wire, keep=False)) as server, client() as (http, transport):
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.get(server.url())
        assert kind(caught.value) is FailureKind.UNAVAILABLE
        assert transport.connections == 0


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"HTTX/1.1 200 OK\r\n\r\n", id="status-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", id="header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="chunk"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", id="upgrade"),
    ],
)
async def test_malformed_responses_are_protocol_errors(wire: bytes) -> None:
    async with RawServer(hang_after(wire)) as server, client() as (http, transport):
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.get(server.url())
        assert kind(caught.value) is FailureKind.UNAVAILABLE
        await asyncio.wait_for(server.peers[0].gone.wait(), 1.0)
        assert transport.connections == 0


async def test_malformed_body_after_some_bytes_yields_them_first() -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
    async with (
        RawServer(hang_after(wire)) as server,
        client() as (http, _),
        http.stream("GET", server.url()) as reply,
    ):
        pieces = reply.aiter_raw()
        assert await anext(pieces) == b"abc"
        with pytest.raises(httpx.RemoteProtocolError):
            await anext(pieces)


async def test_unsupported_urls() -> None:
    async with client() as (_, transport):
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/"))


# TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made by the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate (cryptography is absent)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # noqa: S603 - a fixed command line
        [
            openssl,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls(certificate: tuple[Path, Path], host: str) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    body = b"data: secret\n\n"
    async with RawServer(answer(response(body, chunked=True)), tls=server_context) as server:
        async with client(ssl_context=trusting) as (http, transport):
            for _ in range(2):
                async with http.stream("GET", server.url(scheme="https", host=host)) as reply:
                    assert b"".join([piece async for piece in reply.aiter_raw()]) == body
            assert transport.connections == 1
            assert server.peers[0].requests[0].headers["host"] == f"{host}:{server.port}"
        async with client() as (http, _):  # the default context does not trust the cert
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(server.url(scheme="https", host=host))


async def test_tls_early_close_closes_the_socket(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with (
        RawServer(hang_after(head + b"1\r\na\r\n"), tls=server_context) as server,
        client(ssl_context=ssl.create_default_context(cafile=str(cert))) as (http, _),
    ):
        async with http.stream("GET", server.url(scheme="https")) as reply:
            async for _ in reply.aiter_raw():
                break
        await asyncio.wait_for(server.peers[0].gone.wait(), 0.5)


# The same on uvloop -----------------------------------------------------------------


def test_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        await test_sequential_requests_reuse_one_connection()
        await test_early_close_closes_the_socket_and_is_not_reused()
        await test_read_timeout_before_the_head_and_inside_the_body()
        await test_the_pool_limit_and_first_come_first_served_waiters()
        await test_server_closing_before_the_end_is_a_protocol_error(b"")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
