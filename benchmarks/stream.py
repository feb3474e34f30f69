"""Streaming benchmark: answers streamed through chatcore against the same streams direct.

Starts the fake OpenRouter (``python -m tests.fakes.openrouter``, ``--tokens`` tokens
per answer, no delay) and ``chatcore serve`` pointed at it (temporary data directory;
DATABASE_URL from the environment, else the embedded PostgreSQL), or targets running
processes with ``--url`` and ``--fake-url``. Then, in the same run, it measures

* **chatcore**: ``POST /conversations/{id}/messages/stream`` (SSE events
  ``user_message``, ``assistant_chunk`` per token, ``complete``). Every user has a
  conversation of its own and starts a new one after ``--messages-per-conversation``
  messages, so the history the service loads and sends upstream grows as in real use
  but stays bounded; the next conversation is created ahead, off the timed path.
* **direct**: ``POST {fake}/chat/completions`` with ``"stream": true`` straight to the
  fake (``: OPENROUTER PROCESSING`` comments, content chunks, a usage chunk, ``[DONE]``).

each three ways: closed loop at 50 and at 200 concurrent streams (each stream's
successor starts when it ends), and open loop at a fixed ``--rate`` (100 streams/s),
where time counts from the *scheduled* start, so a stalled server cannot hide its
queue (no coordinated omission). Time to first token is the first ``assistant_chunk``
event (chatcore) or the first content ``data:`` chunk (direct); total time runs until
``complete`` (chatcore) or ``[DONE]`` (direct). Every stream's text is checked: all
``--tokens`` tokens, the fake's exact words, and for chatcore the stored message and
the reported usage agreeing with them; a stream that fails a check is an error.

It prints both side by side with ratios, and the goals: at the fixed 100 streams/s
chatcore adds under 10 ms to the p95 time to first token; at 200 concurrent streams
chatcore's throughput is at least 12% of the direct stream's. Every phase is bounded
in time and in count. Run ``python benchmarks/stream.py --help``; see
docs/benchmarks-stream.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from httpclient import ConnectionPool, build_request
from load import (
    QUESTIONS,
    REQUEST_TIMEOUT,
    CpuSample,
    CpuTally,
    PhaseResult,
    Service,
    account_cpu,
    create_users,
    descendants,
    report_quiet,
    running_service,
    started_service,
)

# Private helpers of load.py, imported rather than copied (see the report in
# docs/benchmarks-stream.md: they could be made public there).
from load import _fmt as fmt
from load import _levels as levels_option
from load import _names as names_option
from load import _stop as stop_process
from load import _write_json as write_json

TTFT_GOAL_MS: Final = 10.0  # chatcore p95 - direct p95 time to first token, open loop
THROUGHPUT_GOAL: Final = 0.12  # chatcore / direct streams per second, closed loop at 200
GOAL_RATE: Final = 100  # streams per second the first goal is stated for
GOAL_CONCURRENCY: Final = 200  # concurrent streams the second goal is stated for
STREAM_TIMEOUT: Final = 30.0  # seconds, per stream, from sending to its last byte
MODEL: Final = "bench/a:free"
FALLBACK: Final = "bench/b:free"
REPO: Final = Path(__file__).resolve().parent.parent
CHATCORE_ENV: Final = {
    # The scenario: every model is the fake, no emergency model, limits out of the way.
    # The limits are the largest values chatcore's settings accept.
    "OPENROUTER_API_KEY": "bench",
    "DEFAULT_MODEL": MODEL,
    "FALLBACK_MODEL": FALLBACK,
    "EMERGENCY_FALLBACK_MODEL": "",
    "OPENROUTER_FREE_REQUESTS_PER_MINUTE": "100000",
    "OPENROUTER_FREE_REQUESTS_PER_DAY": "10000000",
    "FREE_MODEL_RATE_LIMIT_PER_MINUTE": "1000000",
    "RATE_LIMIT_CONVERSATIONS_PER_DAY": "1000000",
}


# ---------------------------------------------------------------------------
# Reading a stream: SSE events with their arrival times


class _Text(msgspec.Struct):
    delta: str


class _StoredMessage(msgspec.Struct):
    content: str
    status: str


class _ChatcoreUsage(msgspec.Struct):
    completion_tokens: int


class _Complete(msgspec.Struct):
    assistant_message: _StoredMessage
    usage: _ChatcoreUsage


class _ErrorEvent(msgspec.Struct):
    code: str = ""
    message: str = ""


class _ChunkDelta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _ChunkDelta | None = None


class _ChunkUsage(msgspec.Struct):
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] | None = None
    usage: _ChunkUsage | None = None
    error: Any = None


_decode_text = msgspec.json.Decoder(_Text).decode
_decode_complete = msgspec.json.Decoder(_Complete).decode
_decode_error = msgspec.json.Decoder(_ErrorEvent).decode
_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class Sink:
    """One stream's events as they arrive: SSE framing, first-token and end times,
    the text, and what is wrong with it (if anything)."""

    __slots__ = ("_pending", "done_at", "error", "first_at", "parts", "reported_tokens")

    def __init__(self) -> None:
        self._pending = bytearray()
        self.first_at = 0.0  # perf_counter of the first token; 0: none yet
        self.done_at = 0.0  # perf_counter of the end event; 0: none yet
        self.parts: list[str] = []
        self.error = ""
        self.reported_tokens: int | None = None

    def feed(self, data: bytes, now: float) -> None:
        """Body bytes received at ``now``; dispatch every complete event (``\\n\\n``)."""
        pending = self._pending
        pending += data
        start = 0
        while (end := pending.find(b"\n\n", start)) >= 0:
            self._event(bytes(pending[start:end]), now)
            start = end + 2
        if start:
            del pending[:start]

    def _event(self, raw: bytes, now: float) -> None:
        name = b""
        data: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                name = line[6:].strip()
        if data:  # a comment (": ...") or an event without data is only a keep-alive
            try:
                self.event(name, b"\n".join(data), now)
            except msgspec.DecodeError:
                self.error = self.error or f"undecodable {name.decode() or 'data'} event"

    def event(self, name: bytes, data: bytes, now: float) -> None:
        raise NotImplementedError

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def verdict(self, expected: str, tokens: int) -> str:
        """What is wrong with the stream as received, or ``""``: the text must be the
        expected one (``tokens`` words; a chunk may carry several) and the reported
        usage ``tokens`` completion tokens."""
        if self.error:
            return self.error
        if not self.done_at:
            return "no end event"
        text = self.text
        if text != expected:
            return "incomplete text" if expected.startswith(text) else "wrong text"
        if self.reported_tokens is None:
            return "no usage"
        if self.reported_tokens != tokens:
            return "wrong usage"
        return ""


class ChatcoreSink(Sink):
    """chatcore's events: ``user_message``, ``assistant_chunk`` ×N, ``complete``."""

    __slots__ = ("stored", "user_message")

    def __init__(self) -> None:
        Sink.__init__(self)
        self.user_message = False
        self.stored: _StoredMessage | None = None

    def event(self, name: bytes, data: bytes, now: float) -> None:
        if name == b"assistant_chunk":
            self.parts.append(_decode_text(data).delta)
            if not self.first_at:
                self.first_at = now
        elif name == b"complete":
            complete = _decode_complete(data)
            self.stored = complete.assistant_message
            self.reported_tokens = complete.usage.completion_tokens
            self.done_at = now
        elif name == b"user_message":
            self.user_message = True
        elif name == b"error":
            error = _decode_error(data)
            self.error = f"error event {error.code}"

    def verdict(self, expected: str, tokens: int) -> str:
        wrong = Sink.verdict(self, expected, tokens)
        if wrong:
            return wrong
        if not self.user_message:
            return "no user_message event"
        assert self.stored is not None
        if self.stored.status != "complete" or self.stored.content != expected:
            return "stored answer differs"
        return ""


class DirectSink(Sink):
    """OpenRouter's events: ``data: {chunk}`` ×N, a usage chunk, ``data: [DONE]``."""

    __slots__ = ()

    def event(self, name: bytes, data: bytes, now: float) -> None:
        del name  # the fake names no events
        if data == b"[DONE]":
            self.done_at = now
            return
        chunk = _decode_chunk(data)
        if chunk.error is not None:
            self.error = "error chunk"
        for choice in chunk.choices or ():
            if choice.delta is not None and choice.delta.content:
                self.parts.append(choice.delta.content)
                if not self.first_at:
                    self.first_at = now
        if chunk.usage is not None:
            self.reported_tokens = chunk.usage.completion_tokens


class _StreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one streamed response at a time, fed to a :class:`Sink` as
    it arrives (benchmarks/httpclient.py reads whole responses only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._raw = bytearray()
        self._sink: Sink | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_body = False
        self._status = 0
        self._length = -1
        self._chunked = False
        self._error_body = bytearray()
        self.must_close = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._raw += data
        if self._waiter is not None:
            self._parse(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is None:
            return
        if self._in_body and self._length < 0 and not self._chunked:
            self._deliver(bytes(self._raw), time.perf_counter())  # ended by the close
            self._raw.clear()
            self._finish()
        else:
            self._fail(ConnectionError(f"connection closed by the server ({exc or 'EOF'})"))

    def send(self, raw: bytes, sink: Sink, timeout: float) -> asyncio.Future[int]:
        """Write ``raw``; the future resolves to the status once the body has ended."""
        if self.lost or self._transport is None:
            raise ConnectionError("connection is closed")
        if self._waiter is not None:
            raise RuntimeError("one stream at a time per connection")
        self._waiter = waiter = self._loop.create_future()
        self._sink = sink
        self._in_body = False
        self._error_body.clear()
        self._timer = self._loop.call_later(timeout, self._on_timeout)
        self._transport.write(raw)
        if self._raw:
            self._parse(time.perf_counter())
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._fail(ConnectionError("connection closed by the client"))

    def _on_timeout(self) -> None:
        self._timer = None
        self._fail(TimeoutError("stream not finished in time"))
        if self._transport is not None:
            self._transport.abort()

    def _settle(self) -> asyncio.Future[int] | None:
        waiter, self._waiter = self._waiter, None
        self._sink = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return waiter

    def _fail(self, exc: BaseException) -> None:
        waiter = self._settle()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self) -> None:
        status, self._in_body = self._status, False
        waiter = self._settle()
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    def _deliver(self, data: bytes, now: float) -> None:
        if self._status == 200 and self._sink is not None:
            self._sink.feed(data, now)
        elif len(self._error_body) < 4096:
            self._error_body += data

    def _parse(self, now: float) -> None:
        raw = self._raw
        if not self._in_body:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            self._read_head(bytes(raw[:end]))
            del raw[: end + 4]
            self._in_body = True
            if self._length == 0:
                self._finish()
                return
        if self._chunked:
            self._parse_chunks(now)
        elif self._length >= 0 and len(raw) >= self._length:
            self._deliver(bytes(raw[: self._length]), now)
            del raw[: self._length]
            self._finish()

    def _read_head(self, head: bytes) -> None:
        status_line, *lines = head.split(b"\r\n")
        self._status = int(status_line[9:12]) if status_line[9:12].isdigit() else 0
        self._length, self._chunked, self.must_close = -1, False, False
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._length = int(value)
            elif name == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self.must_close = b"close" in value.lower()
        if self._status in {204, 304}:
            self._length = 0

    def _parse_chunks(self, now: float) -> None:
        raw = self._raw
        position = 0
        while True:
            line_end = raw.find(b"\r\n", position)
            if line_end < 0:
                break
            size = int(bytes(raw[position:line_end]).split(b";", 1)[0], 16)
            if size == 0:
                if len(raw) < line_end + 4:
                    break
                if raw[line_end + 2 : line_end + 4] == b"\r\n":
                    del raw[: line_end + 4]
                else:  # trailers (none expected): skip them
                    trailer_end = raw.find(b"\r\n\r\n", line_end + 2)
                    if trailer_end < 0:
                        break
                    del raw[: trailer_end + 4]
                self._finish()
                return
            start = line_end + 2
            if len(raw) < start + size + 2:
                break
            self._deliver(bytes(raw[start : start + size]), now)
            position = start + size + 2
        if position:
            del raw[:position]


class StreamConnection:
    """One keep-alive connection for streams, opened on first use, reopened after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._protocol: _StreamProtocol | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _StreamProtocol(loop), self.host, self.port
        )
        self._protocol = protocol

    async def stream(self, raw: bytes, sink: Sink) -> int:
        """Send ``raw``, feed the response body to ``sink``; the HTTP status.

        Raises:
            OSError: connecting failed or the server closed the connection.
            TimeoutError: the response did not end within :data:`STREAM_TIMEOUT`.
        """
        protocol = self._protocol
        if protocol is None or protocol.lost:
            await self.open()
            protocol = self._protocol
            assert protocol is not None
        try:
            status = await protocol.send(raw, sink, STREAM_TIMEOUT)
        except BaseException:
            self.close()  # the connection's state is unknown: start afresh next time
            raise
        if protocol.must_close:
            self.close()
        return status

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.close()


class StreamPool:
    """At most ``size`` stream connections, each used by one stream at a time."""

    def __init__(self, host: str, port: int, size: int = 512) -> None:
        self._host = host
        self._port = port
        self._slots = asyncio.Semaphore(size)
        self._idle: collections.deque[StreamConnection] = collections.deque()

    async def prefill(self, count: int) -> None:
        fresh = [StreamConnection(self._host, self._port) for _ in range(count)]
        await asyncio.gather(*(c.open() for c in fresh))
        self._idle.extend(fresh)

    async def stream(self, raw: bytes, sink: Sink) -> int:
        async with self._slots:
            connection = (
                self._idle.pop() if self._idle else StreamConnection(self._host, self._port)
            )
            try:
                return await connection.stream(raw, sink)
            finally:
                self._idle.append(connection)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


# ---------------------------------------------------------------------------
# Targets: where a stream goes and what its request looks like


class ChatUser:
    """A user with a token and a current conversation; after ``limit`` messages the
    user moves on to a new conversation, created in the background beforehand."""

    def __init__(
        self, token: str, conversation_id: str, limit: int, service: Service, setup: ConnectionPool
    ) -> None:
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._conversation_id = conversation_id
        self._limit = limit
        self._service = service
        self._setup = setup
        self._sent = 0
        self._spare: asyncio.Task[str] | None = None
        self.created = 0  # conversations made after the first
        self.waited = 0  # times a stream had to wait for its new conversation

    async def _new_conversation(self) -> str:
        raw = build_request(
            "POST", "/conversations", self._service.authority, headers=self._headers, body=b"{}"
        )
        reply = await self._setup.request(raw, REQUEST_TIMEOUT)
        if reply.status != 201:
            raise RuntimeError(f"POST /conversations: HTTP {reply.status} {reply.body[:200]!r}")
        self.created += 1
        conversation_id: str = json.loads(reply.body)["data"]["id"]
        return conversation_id

    async def next_request(self) -> bytes:
        """The request of this user's next message (in a new conversation when due)."""
        if self._sent >= self._limit:
            if self._spare is None:
                self._spare = asyncio.create_task(self._new_conversation())
            if not self._spare.done():
                self.waited += 1
            spare, self._spare = self._spare, None
            self._conversation_id = await spare
            self._sent = 0
        if self._spare is None and self._sent >= self._limit - 3:
            self._spare = asyncio.create_task(self._new_conversation())
        question = QUESTIONS[self._sent % len(QUESTIONS)]
        self._sent += 1
        return build_request(
            "POST",
            f"/conversations/{self._conversation_id}/messages/stream",
            self._service.authority,
            headers={**self._headers, "Accept": "text/event-stream"},
            body=msgspec.json.encode({"content": question}),
        )

    async def aclose(self) -> None:
        if self._spare is not None:
            self._spare.cancel()
            await asyncio.gather(self._spare, return_exceptions=True)


@dataclass(slots=True)
class Target:
    name: str  # "chatcore" or "direct"
    host: str
    port: int
    sink: Callable[[], Sink]
    request: Callable[[int], Awaitable[bytes]]  # (user index) -> the request's bytes
    pids: set[int] = field(default_factory=set)  # the processes serving it


def chatcore_target(service: Service, users: Sequence[ChatUser]) -> Target:
    async def request(index: int) -> bytes:
        return await users[index % len(users)].next_request()

    return Target("chatcore", service.host, service.port, ChatcoreSink, request, service.pids)


def direct_target(host: str, port: int, path: str, pids: set[int]) -> Target:
    """The fake's streams, asked for like chatcore does (model, system prompt, the
    question, ``max_tokens``, ``temperature``, ``stream``)."""
    requests = [
        build_request(
            "POST",
            path,
            f"{host}:{port}",
            headers={
                "Authorization": "Bearer bench",
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
            body=msgspec.json.encode(
                {
                    "model": MODEL,
                    "messages": [
                        {"role": "system", "content": "You are a career advisor for students."},
                        {"role": "user", "content": question},
                    ],
                    "max_tokens": 1000,
                    "temperature": 0.3,
                    "stream": True,
                }
            ),
        )
        for question in QUESTIONS
    ]

    async def request(index: int) -> bytes:
        return requests[index % len(requests)]

    return Target("direct", host, port, DirectSink, request, pids)


# ---------------------------------------------------------------------------
# Load phases


@dataclass(slots=True)
class StreamPhase(PhaseResult):
    """A phase of streams: ``latencies_ms`` are total times (so ``throughput`` and
    ``percentile`` are load.py's), ``first_token_ms`` the times to first token."""

    first_token_ms: list[float] = field(default_factory=list)
    upstream_cpu_ms: float | None = None  # the fake's CPU per stream (chatcore phases)

    def first_token(self, q: float) -> float:
        """Nearest-rank percentile of the time to first token, in ms (load.py's maths)."""
        ttft = PhaseResult(self.target, self.mode, self.load, latencies_ms=self.first_token_ms)
        return ttft.percentile(q)

    def label(self) -> str:
        if self.mode == "closed":
            return f"closed, {self.load} streams"
        return f"open, {self.load} streams/s"

    def as_json(self) -> dict[str, Any]:
        payload = PhaseResult.as_json(self)
        for q in (50, 95, 99):
            payload[f"total_p{q}_ms"] = payload.pop(f"p{q}_ms")
            payload[f"ttft_p{q}_ms"] = round(self.first_token(q), 2)
        payload["total_max_ms"] = payload.pop("max_ms")
        payload["upstream_cpu_ms"] = (
            None if self.upstream_cpu_ms is None else round(self.upstream_cpu_ms, 3)
        )
        return payload


@dataclass(slots=True, frozen=True)
class Expected:
    text: str
    tokens: int


async def one_stream(
    target: Target,
    send: Callable[[bytes, Sink], Awaitable[int]],
    index: int,
    result: StreamPhase,
    *,
    expected: Expected,
    origin: float | None,
) -> float | None:
    """Run stream ``index``; record its times from ``origin`` (default: when sent) or
    its error; return when it ended, or ``None`` on an error."""
    try:
        raw = await target.request(index)
    except (OSError, TimeoutError, RuntimeError) as exc:
        result.errors[f"new conversation: {type(exc).__name__}"] += 1
        return None
    sink = target.sink()
    sent = time.perf_counter()
    try:
        status = await send(raw, sink)
    except (OSError, TimeoutError) as exc:
        result.errors[type(exc).__name__] += 1
        return None
    ended = time.perf_counter()
    if status != 200:
        result.errors[f"HTTP {status}"] += 1
        return None
    wrong = sink.verdict(expected.text, expected.tokens)
    if wrong:
        result.errors[wrong] += 1
        return None
    start = sent if origin is None else origin
    result.first_token_ms.append((sink.first_at - start) * 1000)
    result.latencies_ms.append((sink.done_at - start) * 1000)
    return ended


async def closed_loop(
    target: Target,
    connections: Sequence[StreamConnection],
    expected: Expected,
    *,
    duration: float,
    max_streams: int,
) -> StreamPhase:
    """Each of ``len(connections)`` workers starts its next stream once the previous one
    ended, until ``duration`` seconds have passed or ``max_streams`` were started."""
    result = StreamPhase(target.name, "closed", len(connections))
    budget = max_streams
    start = time.perf_counter()
    deadline = start + duration
    last_end = start

    async def worker(index: int) -> None:
        nonlocal budget, last_end
        connection = connections[index]
        while budget > 0 and time.perf_counter() < deadline:
            budget -= 1
            ended = await one_stream(
                target, connection.stream, index, result, expected=expected, origin=None
            )
            if ended is None:
                await asyncio.sleep(0.01)  # do not spin on a refused connection
            else:
                last_end = max(last_end, ended)

    async with asyncio.timeout(duration + STREAM_TIMEOUT + 5):
        await asyncio.gather(*(worker(i) for i in range(len(connections))))
    result.elapsed = last_end - start
    return result


async def open_loop(
    target: Target,
    pool: StreamPool,
    expected: Expected,
    *,
    rate: float,
    duration: float,
    max_streams: int,
) -> StreamPhase:
    """Start ``rate * duration`` streams on a fixed schedule; times run from the moment
    a stream was *due*, so waiting (for a connection, in the server) always counts."""
    count = max(1, min(max_streams, round(rate * duration)))
    result = StreamPhase(target.name, "open", round(rate), scheduled=count)
    interval = 1.0 / rate
    start = time.perf_counter() + 0.01
    last_end = start
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, due: float) -> None:
        nonlocal last_end
        ended = await one_stream(target, pool.stream, index, result, expected=expected, origin=due)
        if ended is not None:
            last_end = max(last_end, ended)

    for index in range(count):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_send_lag_ms = max(result.max_send_lag_ms, -delay * 1000)
        task = asyncio.create_task(one(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=STREAM_TIMEOUT + 5)
        for task in pending:
            task.cancel()
        if pending:
            result.errors["unfinished"] += len(pending)
    result.elapsed = last_end - start
    return result


@dataclass(slots=True, frozen=True)
class Plan:
    duration: float
    warmup: float
    rate: float
    max_streams: int


async def run_phase(
    target: Target, expected: Expected, *, mode: str, load: int, plan: Plan, fake_pids: set[int]
) -> StreamPhase:
    """One warm-up (discarded) and one timed phase of ``target``."""
    connections: list[StreamConnection] = []
    pool = StreamPool(target.host, target.port)

    async def once(duration: float) -> StreamPhase:
        if mode == "closed":
            return await closed_loop(
                target, connections, expected, duration=duration, max_streams=plan.max_streams
            )
        return await open_loop(
            target, pool, expected, rate=plan.rate, duration=duration, max_streams=plan.max_streams
        )

    try:
        if mode == "closed":
            connections.extend(StreamConnection(target.host, target.port) for _ in range(load))
            await asyncio.gather(*(c.open() for c in connections))
        else:
            await pool.prefill(32)
        if plan.warmup > 0:
            await once(plan.warmup)
        before, wall = CpuSample.take(), time.perf_counter()
        result = await once(plan.duration)
        wall = time.perf_counter() - wall
        after = CpuSample.take()
    finally:
        for connection in connections:
            connection.close()
        pool.close()
    # The server and the fake both count as serving (not as noise); then each apart.
    tally = CpuTally()
    tally.add(before, after, wall, target.pids | fake_pids)
    account_cpu(result, tally, target.pids | fake_pids)
    if result.completed:
        served = after.used_since(before, target.pids)[0]["server"]
        result.server_cpu_ms = served * 1000 / result.completed if target.pids else None
        if target.name == "chatcore" and fake_pids:
            upstream = after.used_since(before, fake_pids)[0]["server"]
            result.upstream_cpu_ms = upstream * 1000 / result.completed
    return result


# ---------------------------------------------------------------------------
# Setting up: the fake, the service, the users


@dataclass(slots=True)
class Fake:
    base_url: str
    host: str
    port: int
    path: str  # of chat/completions
    pids: set[int]
    description: str


def _local(url: str, option: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in {"127.0.0.1", "localhost"} or not parts.port:
        raise SystemExit(f"{option} must be http://127.0.0.1:PORT/...: only local traffic")
    return parts


def _fake_at(base_url: str, pids: set[int], description: str) -> Fake:
    parts = _local(base_url, "--fake-url")
    assert parts.port is not None
    path = parts.path.rstrip("/") + "/chat/completions"
    return Fake(base_url.rstrip("/"), "127.0.0.1", parts.port, path, pids, description)


@contextlib.asynccontextmanager
async def started_fake(tokens: int) -> AsyncIterator[Fake]:
    """Run the fake OpenRouter for the duration of the block, then stop it."""
    log_dir = Path(tempfile.mkdtemp(prefix="chatcore-fake-"))
    log_path = log_dir / "fake.log"
    command = [sys.executable, "-m", "tests.fakes.openrouter", "--port", "0"]
    command += ["--tokens", str(tokens), "--delay", "0"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220, S603 - our own argv; returns at once
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base_url = ""
        for _ in range(300):  # 30 s
            text = log_path.read_text(errors="replace")
            if text.startswith("READY "):
                base_url = text.split()[1]
                break
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        if not base_url:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the fake OpenRouter did not start; its output:\n{tail}")
        yield _fake_at(
            base_url,
            {process.pid},
            f"fake OpenRouter (tests.fakes.openrouter), {tokens} tokens, no delay",
        )
    finally:
        await stop_process(process)
        shutil.rmtree(log_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_fake(args: argparse.Namespace) -> AsyncIterator[Fake]:
    pids = descendants(args.fake_pid) if args.fake_pid else set()
    yield _fake_at(args.fake_url, pids, f"running fake OpenRouter at {args.fake_url}")


async def prime(target: Target, expected: Expected | None) -> Expected:
    """One stream, checked: the fake's text (to expect from then on) when ``expected``
    is None. Raises when the stream fails, before any load."""
    sink = target.sink()
    connection = StreamConnection(target.host, target.port)
    try:
        status = await connection.stream(await target.request(0), sink)
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"{target.name}: a first stream answered HTTP {status}")
    if expected is None:
        expected = Expected(sink.text, len(sink.text.split()))
    wrong = sink.verdict(expected.text, expected.tokens)
    if wrong:
        raise RuntimeError(f"{target.name}: a first stream failed its check: {wrong}")
    return expected


# ---------------------------------------------------------------------------
# The run


async def run(args: argparse.Namespace) -> int:
    plan = Plan(args.duration, args.warmup, args.rate, args.max_streams)
    fake_context = running_fake(args) if args.fake_url else started_fake(args.tokens)
    results: list[StreamPhase] = []
    async with fake_context as fake:
        if not args.url:
            os.environ.update(CHATCORE_ENV, OPENROUTER_BASE_URL=fake.base_url)
        service_context = running_service(args) if args.url else started_service(args)
        async with service_context as service:
            print(f"server: {service.description}, at http://{service.authority}")
            print(f"upstream: {fake.description}, at {fake.base_url}")
            print(
                f"client: asyncio HTTP/1.1 keep-alive SSE reader, Python "
                f"{platform.python_version()}, {os.cpu_count()} CPUs; {plan.duration:g} s "
                f"per phase after {plan.warmup:g} s of warm-up"
            )
            await report_quiet()
            direct = direct_target(fake.host, fake.port, fake.path, fake.pids)
            expected = await prime(direct, None)
            if expected.tokens != args.tokens:
                raise SystemExit(
                    f"the fake answers {expected.tokens} tokens, --tokens says {args.tokens}"
                )
            started = time.perf_counter()
            setup = ConnectionPool(service.host, service.port, 16)
            plain = await create_users(service, max(args.concurrency))
            users = [
                ChatUser(u.token, u.conversation_id, args.messages_per_conversation, service, setup)
                for u in plain
            ]
            chatcore = chatcore_target(service, users)
            await prime(chatcore, expected)
            print(
                f"created {len(users)} users with a conversation each in "
                f"{time.perf_counter() - started:.1f} s; a new conversation every "
                f"{args.messages_per_conversation} messages"
            )
            phases: list[tuple[str, int]] = []
            if "closed" in args.modes:
                phases.extend(("closed", c) for c in args.concurrency)
            if "open" in args.modes:
                phases.append(("open", round(plan.rate)))
            try:
                for mode, load in phases:
                    for target in (t for t in (direct, chatcore) if t.name in args.targets):
                        result = await run_phase(
                            target, expected, mode=mode, load=load, plan=plan, fake_pids=fake.pids
                        )
                        results.append(result)
                        print(
                            f"  {target.name:8} {result.label():19} {result.throughput:8.1f}/s "
                            f"ttft p95 {result.first_token(95):7.1f} ms  total p95 "
                            f"{result.percentile(95):7.1f} ms  errors {result.error_count}",
                            flush=True,
                        )
            finally:
                await asyncio.gather(*(u.aclose() for u in users))
                setup.close()
            created = sum(u.created for u in users)
            waited = sum(u.waited for u in users)
            print(
                f"conversations created during the load: {created} (streams that waited: {waited})"
            )
    print_table(results)
    failures = print_goals(results)
    if args.json:
        write_json(
            args.json,
            {
                "server": service.description,
                "upstream": fake.description,
                "tokens": expected.tokens,
                "duration_s": plan.duration,
                "warmup_s": plan.warmup,
                "users": len(users),
                "messages_per_conversation": args.messages_per_conversation,
                "phases": [r.as_json() for r in results],
            },
        )
        print(f"results written to {args.json}")
    return 1 if failures and args.fail_on_goals else 0


# ---------------------------------------------------------------------------
# Output


def _ttft(q: float) -> Callable[[StreamPhase], float]:
    return lambda r: r.first_token(q)


def _total(q: float) -> Callable[[StreamPhase], float]:
    return lambda r: r.percentile(q)


def _rows(
    mode: str, chat: StreamPhase | None, direct: StreamPhase | None
) -> list[tuple[str, float | None, float | None, str]]:
    """(metric, chatcore figure, direct figure, kind: rate, latency or other)."""

    def both(get: Callable[[StreamPhase], float | None]) -> tuple[float | None, float | None]:
        return (get(chat) if chat else None, get(direct) if direct else None)

    rows = [
        ("streams/s" if mode == "closed" else "achieved/s", *both(lambda r: r.throughput), "rate"),
        *((f"ttft p{q}", *both(_ttft(q)), "latency") for q in (50, 95, 99)),
        *((f"total p{q}", *both(_total(q)), "latency") for q in (50, 95, 99)),
        ("streams ok", *both(lambda r: r.completed), "count"),
        ("errors", *both(lambda r: r.error_count), "count"),
        # In a chatcore phase the fake serves chatcore; in a direct phase, the client.
        ("chatcore CPU ms/str", chat.server_cpu_ms if chat else None, None, "other"),
        (
            "fake CPU ms/stream",
            chat.upstream_cpu_ms if chat else None,
            direct.server_cpu_ms if direct else None,
            "other",
        ),
        ("postgres CPU ms/str", *both(lambda r: r.postgres_cpu_ms), "other"),
        ("client CPU %", *both(lambda r: r.client_cpu * 100), "other"),
        ("other procs CPU %", *both(lambda r: r.other_cpu * 100), "other"),
        ("machine busy %", *both(lambda r: r.machine_busy * 100), "other"),
    ]
    if mode == "open":
        rows.append(("sender lag max ms", *both(lambda r: r.max_send_lag_ms), "other"))
    return rows


def print_table(results: Sequence[StreamPhase]) -> None:
    by_key = {(r.target, r.mode, r.load): r for r in results}
    header = f"{'phase':20} {'metric':20} {'chatcore':>10} {'direct':>10} {'diff':>10} {'ratio':>8}"
    print()
    print("streams through chatcore vs the same streams direct from the fake; times in ms")
    print(header)
    print("-" * len(header))
    for mode, load in dict.fromkeys((r.mode, r.load) for r in results):
        chat = by_key.get(("chatcore", mode, load))
        direct = by_key.get(("direct", mode, load))
        label = (chat or direct or StreamPhase("", mode, load)).label()
        for name, c, d, kind in _rows(mode, chat, direct):
            diff = ratio = ""
            if kind == "rate" and c is not None and d:
                ratio = f"{c / d:.1%}"
            elif kind == "latency" and c is not None and d is not None and d > 0:
                diff = f"{c - d:+.1f}"
                ratio = f"{c / d:.1f}x"
            digits = 0 if kind == "count" else (2 if "ms/" in name else 1)
            print(
                f"{label:20} {name:20} {fmt(c, digits):>10} {fmt(d, digits):>10} "
                f"{diff:>10} {ratio:>8}"
            )
            label = ""
        for r in (chat, direct):
            if r is not None and r.other_cpu > 0.1:
                busiest = ", ".join(f"{name} {cpu:.0%}" for name, cpu in r.other_top)
                print(f"{'':20} note: other processes busy during {r.target}: {busiest}")
            if r is not None and r.errors:
                print(f"{'':20} {r.target} errors by kind: {dict(r.errors)}")


def print_goals(results: Sequence[StreamPhase]) -> int:
    """Print each goal that was measured as PASS or FAIL; return the number failed."""
    by_key = {(r.target, r.mode, r.load): r for r in results}
    checks: list[tuple[bool, str]] = []
    chat = by_key.get(("chatcore", "open", GOAL_RATE))
    direct = by_key.get(("direct", "open", GOAL_RATE))
    if chat is not None and direct is not None:
        added = chat.first_token(95) - direct.first_token(95)
        kept_up = chat.throughput >= 0.95 * GOAL_RATE
        checks.append(
            (
                added < TTFT_GOAL_MS and kept_up and not chat.error_count,
                f"open loop, {GOAL_RATE} streams/s: chatcore adds {added:+.1f} ms to the p95 "
                f"time to first token ({chat.first_token(95):.1f} vs "
                f"{direct.first_token(95):.1f} ms; goal < {TTFT_GOAL_MS:g} ms, no errors, "
                f">= 95% of the rate); achieved {chat.throughput:.1f}/s, "
                f"{chat.error_count} errors",
            )
        )
    chat = by_key.get(("chatcore", "closed", GOAL_CONCURRENCY))
    direct = by_key.get(("direct", "closed", GOAL_CONCURRENCY))
    if chat is not None and direct is not None:
        share = chat.throughput / direct.throughput if direct.throughput else 0.0
        checks.append(
            (
                share >= THROUGHPUT_GOAL and not chat.error_count,
                f"closed loop, {GOAL_CONCURRENCY} streams: chatcore {chat.throughput:.1f} "
                f"streams/s is {share:.1%} of direct {direct.throughput:.1f}/s (goal >= "
                f"{THROUGHPUT_GOAL:.0%}, no errors); {chat.error_count} errors",
            )
        )
    print("\ngoals")
    if not checks:
        print("  none measured (the goals need the open loop at 100/s and 200 streams)")
    for ok, text in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {text}")
    return sum(1 for ok, _ in checks if not ok)


# ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Stream answers through chatcore and direct from the fake OpenRouter.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per phase")
    parser.add_argument(
        "--concurrency",
        type=levels_option,
        default=(50, 200),
        help="closed-loop concurrent streams, comma-separated; the largest is also the "
        "number of users created",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop streams per second")
    parser.add_argument(
        "--modes",
        type=names_option("closed", "open"),
        default=("closed", "open"),
        help="closed, open or both",
    )
    parser.add_argument(
        "--targets",
        type=names_option("chatcore", "direct"),
        default=("chatcore", "direct"),
        help="what to measure, comma-separated: chatcore, direct (e.g. chatcore alone while "
        "profiling it)",
    )
    parser.add_argument(
        "--max-streams", type=int, default=200_000, help="upper bound of streams per phase"
    )
    parser.add_argument(
        "--messages-per-conversation",
        type=int,
        default=20,
        help="messages a user sends in a conversation before starting a new one",
    )
    parser.add_argument(
        "--tokens", type=int, default=50, help="tokens per answer (the fake's --tokens)"
    )
    parser.add_argument(
        "--url",
        help="target a running chatcore (127.0.0.1) instead of starting one; needs --fake-url",
    )
    parser.add_argument("--jwt-secret", help="with --url: the service's JWT_SECRET")
    parser.add_argument("--server-pid", type=int, help="with --url: its PID, to account its CPU")
    parser.add_argument(
        "--fake-url",
        help="the base URL of a running fake OpenRouter (…/api/v1) instead of starting one; "
        "a chatcore started here is pointed at it",
    )
    parser.add_argument("--fake-pid", type=int, help="with --fake-url: its PID, for CPU figures")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="`chatcore serve --workers` when started here"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="LOG_LEVEL of the server started here",
    )
    parser.add_argument(
        "--data-dir", help="CHATCORE_DATA_DIR of the server started here (default: a temp dir)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--fail-on-goals", action="store_true", help="exit with status 1 when a goal fails"
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 60] seconds")
    if not 1 <= args.rate <= 5_000:
        parser.error("--rate must be between 1 and 5000")
    if not all(1 <= n <= 1_000 for n in args.concurrency):
        parser.error("--concurrency levels must be between 1 and 1000")
    if not 1 <= args.max_streams <= 1_000_000:
        parser.error("--max-streams must be between 1 and 1000000")
    if not 4 <= args.messages_per_conversation <= 1_000:
        parser.error("--messages-per-conversation must be between 4 and 1000")
    if not 1 <= args.tokens <= 10_000:
        parser.error("--tokens must be between 1 and 10000")
    if args.url and not args.fake_url:
        parser.error("--url needs --fake-url: the fake that service streams from")
    if args.url:
        _local(args.url, "--url")
    if args.fake_url:
        _local(args.fake_url, "--fake-url")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
