"""A fake OpenRouter: the chat-completions protocol over real HTTP/1.1 on 127.0.0.1.

OpenRouter is never reachable from the test machines, so chatcore's tests and
benchmarks talk to this server instead. It speaks the real wire protocol (as
documented by OpenRouter), over a real socket, with a small hand-written HTTP/1.1
server on :func:`asyncio.start_server` (keep-alive, pipelining, ``Content-Length``
and chunked request bodies). It is cheap per request, since it is also the baseline
of a benchmark at hundreds of streams per second.

Endpoints (under ``base_url``, ``http://127.0.0.1:PORT/api/v1``):

``POST /chat/completions``
    The OpenAI-compatible body (``model``, ``messages``, ``stream``, ``max_tokens``,
    ...). Without ``"stream": true`` the answer is one ``chat.completion`` JSON
    object with ``usage`` (and its ``cost``). With it, a ``text/event-stream`` of
    ``data: {chat.completion.chunk}`` events, ``: OPENROUTER PROCESSING`` comments
    before and between them, the finish reason on the last content chunk, then one
    chunk with ``"choices": []`` carrying ``usage``, then ``data: [DONE]``. Errors
    are ``{"error": {"code", "message", "metadata"}}`` with the HTTP status; an error
    after the first token is an in-stream chunk with ``finish_reason: "error"``.
``GET /models``
    ``{"data": [...]}``, each model with its ``context_length``.

What each request gets is scripted per model (the ``model`` of the body)::

    async with FakeOpenRouter(api_key="k") as fake:
        fake.script("m", Fail(429, retry_after=2), Reply("Hello there"))
        fake.default("m", Slow(tokens=100))
        ...  # point the client at fake.base_url
        assert fake.requests[0].headers["x-title"] == "chatcore"

Each request takes the next behaviour queued for its model by :meth:`~FakeOpenRouter.
script`; when none is left, the model's default (:meth:`~FakeOpenRouter.default`),
else the server's default (a normal :class:`Reply`). Requests rejected before
routing (wrong API key, invalid body, unknown model in strict mode, prompt over the
model's context length) consume nothing.

Every chat request is recorded in :attr:`FakeOpenRouter.requests`; every response
the client abandoned (closed its connection before the end of the stream or of the
answer) in :attr:`FakeOpenRouter.disconnects`, detected as soon as the socket
reports it; :meth:`FakeOpenRouter.wait_for_disconnect` awaits the next one.

Run as a process (for benchmarks) it prints ``READY <base_url>`` once listening and
serves until SIGINT/SIGTERM, every model answering ``--tokens`` tokens::

    python -m tests.fakes.openrouter --port 0 --tokens 50 --delay 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeAlias

__all__ = [
    "API_PREFIX",
    "DEFAULT_CONTEXT_LENGTHS",
    "DEFAULT_TOKENS",
    "Behaviour",
    "Disconnect",
    "Drop",
    "Empty",
    "Fail",
    "FakeOpenRouter",
    "Hang",
    "Malformed",
    "MidStreamError",
    "RecordedRequest",
    "Reply",
    "Slow",
    "Split",
    "estimate_prompt_tokens",
    "main",
]

API_PREFIX: Final = "/api/v1"
"""The path prefix of OpenRouter's API; ``base_url`` ends with it."""

DEFAULT_TOKENS: Final = 20
"""Tokens in a :class:`Reply` that gives neither ``text`` nor ``tokens``."""

DEFAULT_CONTEXT_LENGTHS: Final[Mapping[str, int]] = {
    "openai/gpt-4o-mini": 128_000,
    "meta-llama/llama-3.3-70b-instruct:free": 131_072,
    "mistralai/mistral-7b-instruct:free": 32_768,
}
"""The models ``GET /models`` lists unless told otherwise, with their context lengths."""

_CHAT_PATH: Final = API_PREFIX + "/chat/completions"
_MODELS_PATH: Final = API_PREFIX + "/models"
_MAX_HEAD: Final = 64 * 1024
_READ_SIZE: Final = 64 * 1024

_COMMENT: Final = b": OPENROUTER PROCESSING\n\n"
_DONE: Final = b"data: [DONE]\n\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"

_WORDS: Final = tuple(
    " ".join(
        (
            "Based on your assessment profile, you show strong analytical skills and a",
            "real curiosity about how things work. Careers in data science, engineering,",
            "research or product design could suit you well; talk to people in those",
            "fields first.",
        )
    ).split(" ")
)

_WORD_RE: Final = re.compile(r"\s*\S+(?:\s+$)?")


# Behaviours -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer, streamed or not as the request asks.

    ``text`` is the content (split into word-sized chunks when streamed); without it
    the content is ``tokens`` (else :data:`DEFAULT_TOKENS`) generated words, one
    token each. With both, ``text`` is sent and ``tokens`` is the reported
    ``completion_tokens``. ``prompt_tokens`` defaults to the estimate of the request's
    messages (:func:`estimate_prompt_tokens`). When the request's ``max_tokens`` is
    smaller than the reply, the reply is cut there with finish reason ``"length"``.

    Streaming: ``chunk_delay`` seconds before each content chunk (a non-streamed
    answer waits the whole generation time, ``chunk_delay`` × chunks); comments
    ``: OPENROUTER PROCESSING`` before the first chunk and before every
    ``comment_every``-th one when ``comments``; the finish reason rides on the last
    content chunk, or on an extra empty-content chunk with ``separate_finish`` (as
    OpenRouter often does). ``chunk_bytes`` writes the response body in HTTP chunks
    of that many bytes, cutting events (and UTF-8 characters) anywhere, to exercise
    the client's SSE parser.
    """

    text: str | None = None
    tokens: int | None = None
    prompt_tokens: int | None = None
    cost: float = 0.0
    chunk_delay: float = 0.0
    comments: bool = True
    finish_reason: str = "stop"
    chunk_bytes: int | None = None
    comment_every: int = 8
    separate_finish: bool = False
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """An error response: HTTP ``status`` and ``{"error": {code, message, metadata}}``.

    ``message`` defaults to OpenRouter's wording for the status. ``error_type`` goes
    into ``metadata.error_type``: ``None`` picks the usual one for the status
    (``rate_limit_exceeded`` for 429, ``moderation`` for 403, ...), ``""`` leaves it
    out. A 403 also gets ``reasons``, ``flagged_input``, ``provider_name`` and
    ``model_slug``; a 502 ``provider_name`` and ``raw``. ``metadata`` is merged over
    all that; the body has no ``metadata`` key when it ends up empty.
    ``retry_after`` (seconds) adds a ``Retry-After`` header, ``headers`` any others.
    """

    status: int = 429
    message: str | None = None
    error_type: str | None = None
    retry_after: float | None = None
    metadata: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Empty:
    """A 200 answer with no content.

    Not streamed: ``content: ""``. Streamed: no content chunk, only an empty chunk
    carrying the finish reason, the usage chunk and ``[DONE]``.
    """

    prompt_tokens: int | None = None
    cost: float = 0.0
    comments: bool = True


@dataclass(frozen=True, slots=True)
class MidStreamError:
    """A stream that fails after ``after_tokens`` tokens, the way OpenRouter reports it.

    The HTTP status stays 200; after the tokens comes a chunk with a top-level
    ``error: {code, message}`` and ``finish_reason: "error"``, then ``data: [DONE]``
    when ``done``, then the end of the response. A non-streamed request gets a 502
    provider error carrying ``message`` instead.
    """

    after_tokens: int = 5
    message: str = "Provider disconnected unexpectedly"
    code: str = "server_error"
    chunk_delay: float = 0.0
    done: bool = True
    chunk_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Slow:
    """A slow answer: :class:`Reply` of ``tokens`` tokens, ``chunk_delay`` s apart."""

    tokens: int = 1000
    chunk_delay: float = 0.05
    comments: bool = True


@dataclass(frozen=True, slots=True)
class Hang:
    """Accept the request and never answer (until the client goes away).

    With ``after_tokens`` a streamed request first gets the response head and that
    many tokens, then the stream stalls (a read timeout mid-stream).
    """

    after_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A 200 whose body is not JSON (not streamed) or a ``data:`` line that is not JSON.

    The stream form is a comment, ``data: <body>``, then ``data: [DONE]``.
    """

    body: str = "not json"


@dataclass(frozen=True, slots=True)
class Drop:
    """The server closes the connection abruptly.

    ``after_tokens=0``: without any response (the client sees the server disconnect
    before a status line). Otherwise, for a streamed request, after the head and that
    many tokens, without ending the chunked body.
    """

    after_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Split:
    """``inner`` with its streamed body written in HTTP chunks of ``chunk_bytes`` bytes.

    The cuts fall anywhere: inside ``data:`` lines, between ``\\n\\n`` and inside
    multi-byte UTF-8 characters, so that the client's SSE parser is exercised.
    """

    inner: Behaviour = Reply()
    chunk_bytes: int = 7


Behaviour: TypeAlias = (
    Reply | Fail | Empty | MidStreamError | Slow | Hang | Malformed | Drop | Split
)
"""Anything :meth:`FakeOpenRouter.script` and :meth:`FakeOpenRouter.default` accept."""


# Records ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A chat-completions request as the fake received it.

    ``headers`` has lower-case names (``authorization``, ``http-referer``,
    ``x-title``, ...). ``body`` is the parsed JSON (``None`` when it was not JSON).
    ``arrived_at`` is :func:`time.monotonic` when the request head was read (the
    clock of asyncio's default event loop). ``behaviour`` is what was applied:
    rejections before routing show as the :class:`Fail` that was sent.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes
    model: str
    stream: bool
    prompt_tokens: int
    arrived_at: float
    behaviour: Behaviour

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` (empty when absent)."""
        if isinstance(self.body, dict):
            messages = self.body.get("messages")
            if isinstance(messages, list):
                return [m for m in messages if isinstance(m, dict)]
        return []


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A response its client abandoned: the connection closed before it was complete.

    ``chunks_sent`` counts the ``data:`` events written before (comments excluded),
    ``tokens_sent`` the content chunks among them; ``at`` is the
    :func:`time.monotonic` of the detection.
    """

    request: RecordedRequest
    chunks_sent: int
    tokens_sent: int
    at: float

    @property
    def model(self) -> str:
        """The model of the abandoned request."""
        return self.request.model

    @property
    def stream(self) -> bool:
        """Whether the abandoned request was streamed."""
        return self.request.stream


# Helpers ----------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of ``{"type": "text"}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def estimate_prompt_tokens(messages: Iterable[Any]) -> int:
    """OpenRouter-ish token estimate of ``messages``: the sum of ``len(content) // 4``."""
    return sum(len(_content_text(m.get("content"))) // 4 for m in messages if isinstance(m, dict))


@lru_cache(maxsize=64)
def _generated(tokens: int) -> tuple[str, ...]:
    """``tokens`` word pieces (the first without a leading space)."""
    return tuple((" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(max(tokens, 0)))


def _split_words(text: str) -> tuple[str, ...]:
    """``text`` in word-sized pieces whose concatenation is ``text``."""
    if not text:
        return ()
    pieces = tuple(_WORD_RE.findall(text))
    if "".join(pieces) != text:
        return (text,)
    return pieces


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=64)
def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _head(
    status: int,
    content_type: str,
    *,
    length: int | None,
    keep_alive: bool,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A response head; ``length=None`` means a chunked body."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}", f"Content-Type: {content_type}"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    lines.extend(f"{name}: {value}" for name, value in extra)
    if not keep_alive:
        lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _frame(data: bytes, chunk_bytes: int | None) -> bytes:
    """``data`` as HTTP chunks: one, or pieces of ``chunk_bytes`` bytes."""
    if not data:
        return b""
    if chunk_bytes is None or chunk_bytes >= len(data):
        return b"%x\r\n%b\r\n" % (len(data), data)
    size = max(chunk_bytes, 1)
    return b"".join(
        b"%x\r\n%b\r\n" % (len(piece), piece)
        for piece in (data[i : i + size] for i in range(0, len(data), size))
    )


def _generation_id() -> str:
    return f"gen-{int(time.time())}-{os.urandom(10).hex()}"


_DEFAULT_ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "bad_request",
    401: "invalid_api_key",
    402: "insufficient_credits",
    403: "moderation",
    408: "timeout",
    429: "rate_limit_exceeded",
    502: "provider_error",
    503: "provider_unavailable",
}

_DEFAULT_MESSAGES: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "No auth credentials found",
    402: (
        "Insufficient credits. This account never purchased credits. "
        "Make sure your key is on the correct account or org, and if so, "
        "purchase more at https://openrouter.ai/settings/credits"
    ),
    408: "Request timed out",
    429: "Rate limit exceeded: free-models-per-min.",
    502: "Provider returned error",
    503: "No instances available",
}


class _BadRequestError(Exception):
    """The bytes on the connection are not an HTTP/1.1 request we can read."""


@dataclass(slots=True)
class _Progress:
    """What a response has written so far (for :class:`Disconnect`)."""

    chunks: int = 0
    tokens: int = 0


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    arrived_at: float


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    buffer: bytearray


# (delay before, bytes, data chunks, tokens)
_Event: TypeAlias = tuple[float, bytes, int, int]


class _StreamBuilder:
    """Builds the ``data:`` events of one stream; the shared JSON prefix is made once."""

    __slots__ = ("_prefix",)

    def __init__(self, generation_id: str, created: int, model: str, provider: str) -> None:
        self._prefix = (
            f'{{"id":{_dumps(generation_id)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(model)},"provider":{_dumps(provider)},'
        )

    def content(self, piece: str, finish_reason: str | None) -> bytes:
        finish = "null" if finish_reason is None else _dumps(finish_reason)
        return (
            f'data: {self._prefix}"choices":[{{"index":0,"delta":{{"role":"assistant",'
            f'"content":{_dumps(piece)}}},"finish_reason":{finish},'
            f'"native_finish_reason":{finish},"logprobs":null}}]}}\n\n'
        ).encode()

    def usage(self, usage: Mapping[str, Any]) -> bytes:
        return f'data: {self._prefix}"choices":[],"usage":{_dumps(usage)}}}\n\n'.encode()

    def error(self, code: str, message: str) -> bytes:
        error = _dumps({"code": code, "message": message})
        return (
            f'data: {self._prefix}"error":{error},"choices":[{{"index":0,'
            f'"delta":{{"role":"assistant","content":""}},"finish_reason":"error",'
            f'"native_finish_reason":"error","logprobs":null}}]}}\n\n'
        ).encode()


def _usage(prompt_tokens: int, completion_tokens: int, cost: float) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": cost,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _resolve(behaviour: Behaviour) -> tuple[Behaviour, int | None]:
    """Unwrap :class:`Split` and reduce :class:`Slow`/:class:`Empty` to :class:`Reply`."""
    chunk_bytes: int | None = None
    while isinstance(behaviour, Split):
        chunk_bytes = behaviour.chunk_bytes
        behaviour = behaviour.inner
    if isinstance(behaviour, Slow):
        behaviour = Reply(
            tokens=behaviour.tokens, chunk_delay=behaviour.chunk_delay, comments=behaviour.comments
        )
    elif isinstance(behaviour, Empty):
        behaviour = Reply(
            text="",
            tokens=0,
            prompt_tokens=behaviour.prompt_tokens,
            cost=behaviour.cost,
            comments=behaviour.comments,
        )
    if isinstance(behaviour, Reply | MidStreamError) and chunk_bytes is None:
        chunk_bytes = behaviour.chunk_bytes
    return behaviour, chunk_bytes


def _is_instant(behaviour: Behaviour) -> bool:
    """Whether the response is written at once (no waiting, so no disconnect watch)."""
    if isinstance(behaviour, Reply | MidStreamError):
        return behaviour.chunk_delay <= 0
    return not isinstance(behaviour, Hang)


# The server -------------------------------------------------------------------------


class FakeOpenRouter:
    """OpenRouter's chat-completions API on 127.0.0.1, scripted per model.

    Use as ``async with FakeOpenRouter() as fake:`` (or :meth:`start` /
    :meth:`close`); the port is chosen by the system unless ``port`` is given.

    Args:
        host: the address to listen on.
        port: the port, 0 for any free one.
        api_key: when set, a chat request whose ``Authorization: Bearer`` key differs
            gets 401 ``{"error": {"code": 401, "message": "No auth credentials
            found"}}``.
        context_lengths: context length per model, merged over
            :data:`DEFAULT_CONTEXT_LENGTHS`; ``GET /models`` lists these models. A
            request whose estimated prompt tokens exceed its model's length gets a
            400 ``context_length_exceeded``.
        default_context_length: the length of models not listed (``None``: no limit).
        default: the behaviour of a model with neither script nor default of its own
            (``None``: ``Reply()``).
        provider: the ``provider`` reported in answers.
        strict_models: reject models not listed with 400 ``"<model> is not a valid
            model ID"``.
        record: keep :attr:`requests` (turn off for long benchmark runs).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        context_lengths: Mapping[str, int] | None = None,
        default_context_length: int | None = None,
        default: Behaviour | None = None,
        provider: str = "FakeProvider",
        strict_models: bool = False,
        record: bool = True,
    ) -> None:
        self._host = host
        self._port = port
        self.api_key = api_key
        self.context_lengths: dict[str, int] = {
            **DEFAULT_CONTEXT_LENGTHS,
            **(context_lengths or {}),
        }
        self.default_context_length = default_context_length
        self.provider = provider
        self.strict_models = strict_models
        self.record = record
        self._global_default: Behaviour = default if default is not None else Reply()
        self._scripts: dict[str, deque[Behaviour]] = {}
        self._defaults: dict[str, Behaviour] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._disconnected = asyncio.Event()
        self._requested = asyncio.Event()
        self._disconnect_cursor = 0
        self.requests: list[RecordedRequest] = []
        """Every chat-completions request, in arrival order (when ``record``)."""
        self.disconnects: list[Disconnect] = []
        """Every response abandoned by its client, in order."""
        self.connection_count = 0
        """TCP connections accepted so far (keep-alive reuses one)."""
        self.errors: list[BaseException] = []
        """Unexpected exceptions inside the fake (a bug in it); empty normally."""

    # lifecycle

    async def start(self) -> None:
        """Start listening (idempotent)."""
        if self._server is None:
            self._disconnected = asyncio.Event()
            self._requested = asyncio.Event()
            self._server = await asyncio.start_server(
                self._handle, self._host, self._port, limit=_READ_SIZE
            )

    async def close(self) -> None:
        """Stop listening and close every connection (abandoning hung requests)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    async def __aenter__(self) -> FakeOpenRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def host(self) -> str:
        """The address listened on."""
        return self._host

    @property
    def port(self) -> int:
        """The port listened on (known once started)."""
        if self._server is None:
            raise RuntimeError("FakeOpenRouter is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``: the client's OpenRouter base URL."""
        return f"http://{self._host}:{self.port}{API_PREFIX}"

    def url(self, path: str) -> str:
        """The URL of ``path`` under :attr:`base_url` (e.g. ``"/chat/completions"``)."""
        return self.base_url + "/" + path.lstrip("/")

    # scripting

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Queue ``behaviours`` for ``model``: its next requests take one each, in order."""
        self._scripts.setdefault(model, deque()).extend(behaviours)

    def default(self, model: str | None, behaviour: Behaviour) -> None:
        """What ``model`` does once its script is used up (``None``: every model)."""
        if model is None:
            self._global_default = behaviour
        else:
            self._defaults[model] = behaviour

    def pending(self, model: str | None = None) -> int:
        """Scripted behaviours not consumed yet, for ``model`` or for all models."""
        if model is not None:
            return len(self._scripts.get(model, ()))
        return sum(len(queue) for queue in self._scripts.values())

    def reset(self) -> None:
        """Forget scripts, per-model defaults and records (the global default stays)."""
        self._scripts.clear()
        self._defaults.clear()
        self.requests.clear()
        self.disconnects.clear()
        self.errors.clear()
        self._disconnect_cursor = 0

    def _next_behaviour(self, model: str) -> Behaviour:
        queue = self._scripts.get(model)
        if queue:
            return queue.popleft()
        return self._defaults.get(model, self._global_default)

    # waiting

    async def wait_for_disconnect(self, timeout: float = 1.0) -> Disconnect:  # noqa: ASYNC109
        """The next disconnect not yet returned by this method, waiting for it.

        Raises :class:`TimeoutError` when none comes within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while self._disconnect_cursor >= len(self.disconnects):
                self._disconnected.clear()
                await self._disconnected.wait()
        self._disconnect_cursor += 1
        return self.disconnects[self._disconnect_cursor - 1]

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 1.0,  # noqa: ASYNC109
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests are recorded; return them all."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._requested.clear()
                await self._requested.wait()
        return list(self.requests)

    def _record_disconnect(self, request: RecordedRequest, progress: _Progress) -> None:
        self.disconnects.append(
            Disconnect(request, progress.chunks, progress.tokens, time.monotonic())
        )
        self._disconnected.set()

    # HTTP/1.1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.connection_count += 1
        connection = _Connection(reader, writer, bytearray())
        try:
            while True:
                try:
                    request = await self._read_request(connection)
                except _BadRequestError as exc:
                    body = _dumps({"error": {"code": 400, "message": str(exc)}}).encode()
                    head = _head(400, "application/json", length=len(body), keep_alive=False)
                    writer.write(head + body)
                    await writer.drain()
                    break
                if request is None or not await self._dispatch(connection, request):
                    break
        except (ConnectionError, TimeoutError):
            pass
        except Exception as exc:  # a bug of the fake: keep it for the test to see
            self.errors.append(exc)
        finally:
            writer.close()
            if task is not None:
                self._handlers.discard(task)
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, connection: _Connection) -> _Request | None:
        """The next request on ``connection``; ``None`` at a clean end of input."""
        buffer = connection.buffer
        while True:
            while buffer[:2] == b"\r\n":  # tolerated empty lines between requests
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buffer) > _MAX_HEAD:
                raise _BadRequestError("request head too large")
            data = await connection.reader.read(_READ_SIZE)
            if not data:
                return None
            buffer += data
        arrived_at = time.monotonic()
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequestError("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _BadRequestError("malformed header line")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        connection_header = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection_header
        else:
            keep_alive = "close" not in connection_header
        if headers.get("expect", "").lower() == "100-continue":
            connection.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(connection)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _BadRequestError("invalid Content-Length") from None
            if length < 0:
                raise _BadRequestError("invalid Content-Length")
            body = await self._read_exactly(connection, length)
        return _Request(method, target, headers, body, keep_alive, arrived_at)

    async def _read_exactly(self, connection: _Connection, length: int) -> bytes:
        buffer = connection.buffer
        while len(buffer) < length:
            data = await connection.reader.read(_READ_SIZE)
            if not data:
                raise ConnectionResetError("connection closed inside a request body")
            buffer += data
        body = bytes(buffer[:length])
        del buffer[:length]
        return body

    async def _read_line(self, connection: _Connection) -> bytes:
        buffer = connection.buffer
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > _MAX_HEAD:
                raise _BadRequestError("chunk line too long")
            data = await connection.reader.read(_READ_SIZE)
            if not data:
                raise ConnectionResetError("connection closed inside a request body")
            buffer += data
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        return line

    async def _read_chunked(self, connection: _Connection) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = (await self._read_line(connection)).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequestError("invalid chunk size") from None
            if size == 0:
                while await self._read_line(connection):  # trailers
                    pass
                return b"".join(parts)
            parts.append(await self._read_exactly(connection, size))
            if await self._read_exactly(connection, 2) != b"\r\n":
                raise _BadRequestError("chunk not followed by CRLF")

    async def _dispatch(self, connection: _Connection, request: _Request) -> bool:
        """Answer ``request``; whether the connection stays open."""
        path = request.target.split("?", 1)[0].rstrip("/")
        if path == _CHAT_PATH:
            if request.method == "POST":
                return await self._chat(connection, request)
            return await self._send_json(
                connection, request.keep_alive, 405, _error(405, "Method Not Allowed")
            )
        if path == _MODELS_PATH and request.method == "GET":
            return await self._send_json(connection, request.keep_alive, 200, self._models())
        return await self._send_json(connection, request.keep_alive, 404, _error(404, "Not Found"))

    def _models(self) -> dict[str, Any]:
        created = int(time.time())
        data = []
        for model, length in self.context_lengths.items():
            price = "0" if model.endswith(":free") else "0.0000006"
            data.append(
                {
                    "id": model,
                    "canonical_slug": model,
                    "name": model,
                    "created": created,
                    "description": f"{model} (fake)",
                    "context_length": length,
                    "architecture": {
                        "modality": "text->text",
                        "input_modalities": ["text"],
                        "output_modalities": ["text"],
                        "tokenizer": "Other",
                        "instruct_type": None,
                    },
                    "pricing": {"prompt": price, "completion": price, "request": "0"},
                    "top_provider": {
                        "context_length": length,
                        "max_completion_tokens": None,
                        "is_moderated": False,
                    },
                    "per_request_limits": None,
                    "supported_parameters": ["max_tokens", "temperature", "stream"],
                }
            )
        return {"data": data}

    async def _send_json(
        self,
        connection: _Connection,
        keep_alive: bool,
        status: int,
        payload: Any,
        extra: Iterable[tuple[str, str]] = (),
    ) -> bool:
        body = _dumps(payload).encode()
        head = _head(
            status, "application/json", length=len(body), keep_alive=keep_alive, extra=extra
        )
        connection.writer.write(head + body)
        await connection.writer.drain()
        return keep_alive

    # chat completions

    async def _chat(self, connection: _Connection, request: _Request) -> bool:
        try:
            body: Any = json.loads(request.body) if request.body else None
        except ValueError:
            body = None
        fields: dict[str, Any] = body if isinstance(body, dict) else {}
        model = fields.get("model")
        model = model if isinstance(model, str) else ""
        messages = fields.get("messages")
        prompt_tokens = estimate_prompt_tokens(messages) if isinstance(messages, list) else 0
        behaviour: Behaviour
        if self.api_key is not None and (
            request.headers.get("authorization") != f"Bearer {self.api_key}"
        ):
            behaviour = Fail(401, "No auth credentials found", error_type="")
        elif not isinstance(body, dict):
            behaviour = Fail(400, "Invalid JSON in request body", error_type="")
        elif not isinstance(messages, list) or not messages:
            behaviour = Fail(400, 'Input required: specify "prompt" or "messages"', error_type="")
        elif self.strict_models and model not in self.context_lengths:
            behaviour = Fail(400, f"{model} is not a valid model ID", error_type="")
        elif (
            limit := self.context_lengths.get(model, self.default_context_length)
        ) is not None and (prompt_tokens > limit):
            behaviour = _context_error(limit, prompt_tokens, _max_tokens(fields))
        else:
            behaviour = self._next_behaviour(model)
        record = RecordedRequest(
            method=request.method,
            path=request.target,
            headers=request.headers,
            body=body,
            raw_body=request.body,
            model=model,
            stream=fields.get("stream") is True,
            prompt_tokens=prompt_tokens,
            arrived_at=request.arrived_at,
            behaviour=behaviour,
        )
        if self.record:
            self.requests.append(record)
            self._requested.set()
        return await self._perform(connection, request, record, behaviour)

    async def _perform(
        self,
        connection: _Connection,
        request: _Request,
        record: RecordedRequest,
        behaviour: Behaviour,
    ) -> bool:
        """Run ``behaviour``, watching the connection while the response takes time."""
        resolved, chunk_bytes = _resolve(behaviour)
        progress = _Progress()
        if _is_instant(resolved):
            try:
                return await self._respond(
                    connection,
                    record,
                    resolved,
                    keep_alive=request.keep_alive,
                    chunk_bytes=chunk_bytes,
                    progress=progress,
                )
            except ConnectionError:
                self._record_disconnect(record, progress)
                return False
        respond = asyncio.ensure_future(
            self._respond(
                connection,
                record,
                resolved,
                keep_alive=request.keep_alive,
                chunk_bytes=chunk_bytes,
                progress=progress,
            )
        )
        watch = asyncio.ensure_future(self._watch(connection))
        try:
            await asyncio.wait((respond, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (respond, watch):
                task.cancel()
            await asyncio.gather(respond, watch, return_exceptions=True)
        if respond.done() and not respond.cancelled():
            error = respond.exception()
            if error is None:
                return respond.result()
            if not isinstance(error, ConnectionError):
                raise error
        self._record_disconnect(record, progress)
        return False

    async def _watch(self, connection: _Connection) -> None:
        """Return when the client closes its side; keep what it sends meanwhile."""
        while True:
            try:
                data = await connection.reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            connection.buffer += data

    async def _respond(
        self,
        connection: _Connection,
        record: RecordedRequest,
        behaviour: Behaviour,
        *,
        keep_alive: bool,
        chunk_bytes: int | None,
        progress: _Progress,
    ) -> bool:
        writer = connection.writer
        if isinstance(behaviour, Fail):
            status, payload, extra = self._failure(behaviour, record)
            return await self._send_json(connection, keep_alive, status, payload, extra)
        if isinstance(behaviour, Reply):
            if record.stream:
                events = self._reply_events(behaviour, record)
                await self._stream(connection, keep_alive, events, chunk_bytes, progress)
                return keep_alive
            return await self._reply_json(connection, keep_alive, behaviour, record)
        if isinstance(behaviour, MidStreamError):
            if not record.stream:
                fail = Fail(502, behaviour.message, metadata={"raw": behaviour.message})
                status, payload, extra = self._failure(fail, record)
                return await self._send_json(connection, keep_alive, status, payload, extra)
            builder = self._builder(record, None)
            tokens = _generated(behaviour.after_tokens)
            events = self._content_events(builder, tokens, delay=behaviour.chunk_delay)
            events.append((0.0, builder.error(behaviour.code, behaviour.message), 1, 0))
            if behaviour.done:
                events.append((0.0, _DONE, 0, 0))
            await self._stream(connection, keep_alive, events, chunk_bytes, progress)
            return keep_alive
        if isinstance(behaviour, Malformed):
            data = behaviour.body.encode()
            if record.stream:
                events = [(0.0, _COMMENT, 0, 0), (0.0, b"data: " + data + b"\n\n", 1, 0)]
                events.append((0.0, _DONE, 0, 0))
                await self._stream(connection, keep_alive, events, chunk_bytes, progress)
                return keep_alive
            head = _head(200, "application/json", length=len(data), keep_alive=keep_alive)
            writer.write(head + data)
            await writer.drain()
            return keep_alive
        if isinstance(behaviour, Drop):
            if record.stream and behaviour.after_tokens > 0:
                builder = self._builder(record, None)
                tokens = _generated(behaviour.after_tokens)
                events = self._content_events(builder, tokens)
                await self._stream(
                    connection, keep_alive, events, chunk_bytes, progress, terminate=False
                )
            return False
        if isinstance(behaviour, Hang):
            if record.stream and behaviour.after_tokens is not None:
                builder = self._builder(record, None)
                tokens = _generated(behaviour.after_tokens)
                events = self._content_events(builder, tokens)
                await self._stream(
                    connection, keep_alive, events, chunk_bytes, progress, terminate=False
                )
            await asyncio.Event().wait()  # never set: until the client leaves or we close
            return False
        raise TypeError(f"not a behaviour: {behaviour!r}")  # Split/Slow/Empty are resolved

    def _failure(
        self, fail: Fail, record: RecordedRequest
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        status = fail.status
        message = fail.message
        if message is None:
            message = _DEFAULT_MESSAGES.get(status, _reason(status))
            if status == 403:
                message = (
                    f"{record.model} requires moderation on {self.provider}. "
                    'Your input was flagged for "harassment".'
                )
        error_type = (
            _DEFAULT_ERROR_TYPES.get(status) if fail.error_type is None else fail.error_type
        )
        metadata: dict[str, Any] = {}
        if error_type:
            metadata["error_type"] = error_type
        if status == 403:
            last = record.messages[-1].get("content") if record.messages else ""
            metadata.update(
                reasons=["harassment"],
                flagged_input=_content_text(last)[:100],
                provider_name=self.provider,
                model_slug=record.model,
            )
        elif status == 502:
            metadata.update(provider_name=self.provider, raw="upstream returned 500")
        if fail.metadata:
            metadata.update(fail.metadata)
        error: dict[str, Any] = {"code": status, "message": message}
        if metadata:
            error["metadata"] = metadata
        extra: list[tuple[str, str]] = []
        if fail.retry_after is not None:
            extra.append(("Retry-After", f"{fail.retry_after:g}"))
        if fail.headers:
            extra.extend(fail.headers.items())
        return status, {"error": error}, extra

    def _pieces(self, reply: Reply, record: RecordedRequest) -> tuple[tuple[str, ...], int, str]:
        """The content pieces, reported completion tokens and finish reason of ``reply``."""
        if reply.text is None:
            pieces = _generated(DEFAULT_TOKENS if reply.tokens is None else reply.tokens)
            completion = len(pieces)
        else:
            pieces = _split_words(reply.text)
            completion = len(pieces) if reply.tokens is None else reply.tokens
        finish = reply.finish_reason
        limit = _max_tokens(record.body if isinstance(record.body, dict) else {})
        if limit is not None and len(pieces) > limit:
            pieces = pieces[: max(limit, 0)]
            completion = len(pieces)
            finish = "length"
        return pieces, completion, finish

    def _builder(self, record: RecordedRequest, provider: str | None) -> _StreamBuilder:
        return _StreamBuilder(
            _generation_id(), int(time.time()), record.model, provider or self.provider
        )

    @staticmethod
    def _content_events(
        builder: _StreamBuilder,
        pieces: Sequence[str],
        *,
        delay: float = 0.0,
        finish_reason: str | None = None,
        comments: bool = True,
        comment_every: int = 8,
    ) -> list[_Event]:
        """Comments and content chunks; the last carries ``finish_reason``."""
        events: list[_Event] = [(0.0, _COMMENT, 0, 0)] if comments else []
        last = len(pieces) - 1
        every = max(comment_every, 1)
        for i, piece in enumerate(pieces):
            if comments and i and i % every == 0:
                events.append((0.0, _COMMENT, 0, 0))
            finish = finish_reason if i == last else None
            events.append((delay, builder.content(piece, finish), 1, 1))
        return events

    def _reply_events(self, reply: Reply, record: RecordedRequest) -> list[_Event]:
        pieces, completion, finish = self._pieces(reply, record)
        builder = self._builder(record, reply.provider)
        separate = reply.separate_finish or not pieces
        events = self._content_events(
            builder,
            pieces,
            delay=reply.chunk_delay,
            finish_reason=None if separate else finish,
            comments=reply.comments,
            comment_every=reply.comment_every,
        )
        if separate:
            events.append((0.0, builder.content("", finish), 1, 0))
        prompt = record.prompt_tokens if reply.prompt_tokens is None else reply.prompt_tokens
        events.append((0.0, builder.usage(_usage(prompt, completion, reply.cost)), 1, 0))
        events.append((0.0, _DONE, 0, 0))
        return events

    async def _reply_json(
        self, connection: _Connection, keep_alive: bool, reply: Reply, record: RecordedRequest
    ) -> bool:
        pieces, completion, finish = self._pieces(reply, record)
        if reply.chunk_delay > 0 and pieces:
            await asyncio.sleep(reply.chunk_delay * len(pieces))
        prompt = record.prompt_tokens if reply.prompt_tokens is None else reply.prompt_tokens
        payload = {
            "id": _generation_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": record.model,
            "provider": reply.provider or self.provider,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": finish,
                    "native_finish_reason": finish,
                    "message": {
                        "role": "assistant",
                        "content": "".join(pieces),
                        "refusal": None,
                        "reasoning": None,
                    },
                }
            ],
            "usage": _usage(prompt, completion, reply.cost),
        }
        return await self._send_json(connection, keep_alive, 200, payload)

    async def _stream(
        self,
        connection: _Connection,
        keep_alive: bool,
        events: Sequence[_Event],
        chunk_bytes: int | None,
        progress: _Progress,
        *,
        terminate: bool = True,
    ) -> None:
        """Write a ``text/event-stream`` response of ``events`` (chunked encoding).

        Without delays everything goes out in one write (one HTTP chunk per event, or
        ``chunk_bytes`` pieces cut across events); otherwise event by event.
        """
        writer = connection.writer
        head = _head(
            200,
            "text/event-stream",
            length=None,
            keep_alive=keep_alive,
            extra=(("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")),
        )
        end = _LAST_CHUNK if terminate else b""
        if all(delay <= 0 for delay, _, _, _ in events):
            if chunk_bytes is None:
                body = b"".join(_frame(data, None) for _, data, _, _ in events)
            else:
                body = _frame(b"".join(data for _, data, _, _ in events), chunk_bytes)
            progress.chunks += sum(event[2] for event in events)
            progress.tokens += sum(event[3] for event in events)
            writer.write(head + body + end)
            await writer.drain()
            return
        writer.write(head)
        for delay, data, chunks, tokens in events:
            if delay > 0:
                await writer.drain()
                await asyncio.sleep(delay)
            writer.write(_frame(data, chunk_bytes))
            progress.chunks += chunks
            progress.tokens += tokens
        writer.write(end)
        await writer.drain()


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message}}


def _max_tokens(fields: Mapping[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens"):
        value = fields.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _context_error(limit: int, prompt_tokens: int, max_tokens: int | None) -> Fail:
    """OpenRouter's 400 for a prompt longer than the model's context."""
    output = max_tokens or 0
    detail = f"{prompt_tokens} of text input"
    if output:
        detail += f", {output} in the output"
    message = (
        f"This endpoint's maximum context length is {limit} tokens. However, you "
        f"requested about {prompt_tokens + output} tokens ({detail}). Please reduce the "
        'length of either one, or use the "middle-out" transform to compress your '
        "prompt automatically."
    )
    return Fail(400, message, error_type="context_length_exceeded")


# Process mode -----------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    default = Reply(tokens=args.tokens, chunk_delay=args.delay, chunk_bytes=args.chunk_bytes)
    fake = FakeOpenRouter(
        host=args.host, port=args.port, api_key=args.api_key, default=default, record=False
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with fake:
        print(f"READY {fake.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake OpenRouter until SIGINT/SIGTERM; print ``READY <base_url>`` first."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.openrouter",
        description="A fake OpenRouter chat-completions server on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 for any (default 0)")
    parser.add_argument("--tokens", type=int, default=50, help="tokens per answer (default 50)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between streamed tokens (default 0)"
    )
    parser.add_argument("--api-key", default=None, help="accept only this Bearer key")
    parser.add_argument(
        "--chunk-bytes", type=int, default=None, help="write streams in chunks of N bytes"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
