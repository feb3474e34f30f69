"""The OpenRouter chat model: OpenAI-compatible chat completions over httpx.

:class:`OpenRouterChatModel` implements :class:`chatcore.ports.ChatModel` for
OpenRouter (or any OpenAI-compatible server). Every failure surfaces as a
:class:`chatcore.models.ModelError` (see :mod:`adapters.openrouter.errors`); the
fallback policy in the core decides what to do about it.

The hot path (hundreds of concurrent streams) stays cheap: request bodies are
encoded and stream chunks decoded by ``msgspec`` with decoders built once, into
lenient structs that ignore the fields OpenRouter adds; the HTTP client of
:func:`build_http_client` uses :class:`~adapters.openrouter.transport.HTTP1Transport`
(one pool with O(1) connection hand-out, responses parsed by llhttp) and a stream's
body is read raw, each socket read fed whole to the SSE parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Final

import httpx
import msgspec

from adapters.openrouter.errors import (
    error_from_exception,
    error_from_payload,
    error_from_response,
    malformed,
)
from adapters.openrouter.sse import SSEError, SSEParser
from adapters.openrouter.transport import HTTP1Transport
from chatcore import __version__
from chatcore.domain.message import Usage
from chatcore.models import (
    ChatReply,
    ChatRequest,
    FailureKind,
    ModelError,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "OpenRouterChatModel",
    "build_http_client",
    "fetch_context_lengths",
]

DEFAULT_BASE_URL: Final = "https://openrouter.ai/api/v1"
"""OpenRouter's API root; ``/chat/completions`` and ``/models`` are under it."""

DEFAULT_MODEL: Final = "qwen/qwen3-235b-a22b-07-25:free"
"""The model asked for when a request names none (the contract's ``DEFAULT_MODEL``)."""

_DONE: Final = "[DONE]"
_DRAIN_SECONDS: Final = 0.25
"""How long to wait, after ``[DONE]``, for the end of the body (to reuse the connection)."""
_MAX_CONNECT_SECONDS: Final = 10.0
_KEEPALIVE_SECONDS: Final = 30.0
_USER_AGENT: Final = f"chatcore/{__version__}".encode()


# Wire types: lenient (unknown fields ignored, nulls tolerated) ------------------------


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _StreamChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    model: str | None = None
    choices: list[_StreamChoice] | None = None
    usage: _Usage | None = None
    error: Any = None


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    model: str | None = None
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: Any = None


_CHUNK_DECODER: Final = msgspec.json.Decoder(_Chunk)
_COMPLETION_DECODER: Final = msgspec.json.Decoder(_Completion)
_ENCODER: Final = msgspec.json.Encoder()


# Helpers ----------------------------------------------------------------------------


def _usage(usage: _Usage | None, *models: str) -> Usage:
    """The domain usage; free when any of ``models`` (requested, reported) is ``:free``."""
    free = any(model.endswith(":free") for model in models)
    if usage is None:
        return Usage(is_free_model=free)
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        cost=float(usage.cost or 0.0),
        is_free_model=free,
    )


def _no_content(model: str, finish_reason: str | None) -> ModelError:
    if finish_reason == "content_filter":
        return ModelError(
            FailureKind.CONTENT_REFUSED,
            "the answer was withheld by a content filter",
            model=model,
        )
    return ModelError(
        FailureKind.EMPTY_REPLY,
        f"the model answered no content (finish_reason {finish_reason!r})",
        model=model,
    )


def _reply_from_body(body: bytes, model: str) -> ChatReply:
    """The reply of a non-streamed 2xx body, or the ``ModelError`` it amounts to."""
    try:
        completion = _COMPLETION_DECODER.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        snippet = body[:80].decode("utf-8", "replace")
        raise malformed(
            f"the answer is not a chat completion ({exc}): {snippet!r}", model=model
        ) from exc
    if completion.error is not None:
        raise error_from_payload(completion.error, model=model)
    if not completion.choices:
        raise malformed("the answer has no choices", model=model)
    choice = completion.choices[0]
    if choice.finish_reason == "error":
        raise ModelError(
            FailureKind.UNAVAILABLE, "the model stopped with finish_reason 'error'", model=model
        )
    content = choice.message.content if choice.message is not None else None
    if content is None or not content.strip():
        raise _no_content(model, choice.finish_reason)
    reported = completion.model or model
    return ChatReply(
        content=content,
        model=reported,
        usage=_usage(completion.usage, model, reported),
        finish_reason=choice.finish_reason or "stop",
    )


def _header_value(value: str) -> bytes:
    """Header values as bytes: httpx refuses non-ASCII ``str``; a title may be UTF-8."""
    return value.encode()


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what is left of a body after ``[DONE]``, briefly, so its connection is reused.

    A body that does not end quickly (or ends badly) is left to be closed instead: the
    answer is complete either way.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
                pass


# The model --------------------------------------------------------------------------


class OpenRouterChatModel:
    """A :class:`chatcore.ports.ChatModel` backed by OpenRouter's chat completions.

    Each call uses ``request.model`` (the core's fallback policy picks the model per
    call), else ``default_model``. Sent: ``Authorization: Bearer``, ``HTTP-Referer``
    and ``X-Title`` when set, and the body ``{model, messages, temperature,
    max_tokens, stream}`` (no deprecated ``usage.include``: OpenRouter reports usage
    on its own).

    Timeouts: connect ``min(10 s, timeout)``; every read (for a stream, the wait for
    each next chunk, OpenRouter's keep-alive comments included) ``timeout``; a
    non-streamed call also has an overall deadline of ``timeout``.

    Streams: :meth:`stream` reads the response inside an ``async with`` so that when
    the consumer stops early, by ``aclose()`` or because its task is cancelled while
    waiting for the next event, the upstream connection is closed at once and
    OpenRouter stops (and stops billing) the generation. A consumer that may stop
    while *not* awaiting the stream should iterate under
    ``contextlib.aclosing(model.stream(request))`` so that the close is immediate
    rather than left to garbage collection.

    Args:
        client: The shared, pooled HTTP client (see :func:`build_http_client`); owned
            by the caller, which closes it.
        api_key: The OpenRouter API key.
        base_url: The API root, without a trailing ``/chat/completions``.
        referer: Sent as ``HTTP-Referer`` (OpenRouter's app attribution), if set.
        title: Sent as ``X-Title``, if set.
        timeout_ms: The timeout described above, in milliseconds.
        default_model: The model of requests that name none.

    Raises:
        ValueError: ``api_key`` is empty or ``timeout_ms`` is not positive.
    """

    __slots__ = (
        "_chat_url",
        "_client",
        "_default_model",
        "_headers",
        "_stream_headers",
        "_timeout",
        "_timeout_s",
    )

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        referer: str | None = None,
        title: str | None = None,
        timeout_ms: int = 45000,
        default_model: str = DEFAULT_MODEL,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        self._client = client
        self._chat_url = httpx.URL(base_url.rstrip("/") + "/chat/completions")
        self._default_model = default_model
        self._timeout_s = timeout_ms / 1000
        self._timeout = httpx.Timeout(
            self._timeout_s, connect=min(_MAX_CONNECT_SECONDS, self._timeout_s)
        ).as_dict()
        headers: dict[bytes, bytes] = {
            b"Authorization": _header_value(f"Bearer {api_key}"),
            b"Content-Type": b"application/json",
            b"User-Agent": _USER_AGENT,
        }
        if referer:
            headers[b"HTTP-Referer"] = _header_value(referer)
        if title:
            headers[b"X-Title"] = _header_value(title)
        self._headers = {**headers, b"Accept": b"application/json"}
        # The stream is read raw (no decoders), so it is asked for uncompressed.
        self._stream_headers = {
            **headers,
            b"Accept": b"text/event-stream",
            b"Accept-Encoding": b"identity",
        }

    @property
    def default_model(self) -> str:
        """The model of requests that name none."""
        return self._default_model

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        return _ENCODER.encode(
            {
                "model": model,
                "messages": [{"role": m.role, "content": m.content} for m in request.messages],
                "temperature": request.temperature,
                "max_tokens": request.max_tokens,
                "stream": stream,
            }
        )

    async def _send(self, body: bytes, headers: Mapping[bytes, bytes]) -> httpx.Response:
        """POST ``body`` to the chat URL; the response with its body still unread.

        With :func:`build_http_client`'s transport, the request goes to the transport
        directly: what ``AsyncClient.send`` adds around it (authentication, redirects,
        a cookie jar, event hooks) is nothing this client uses, and cost more CPU per
        stream than the transport itself. Any other client (a proxy's) sends it.
        """
        client = self._client
        request = httpx.Request(
            "POST",
            self._chat_url,
            content=body,
            headers=headers,
            extensions={"timeout": self._timeout},
        )
        transport = getattr(client, "_transport", None)
        if isinstance(transport, HTTP1Transport):
            if client.is_closed:
                raise RuntimeError("the HTTP client has been closed")
            response = await transport.handle_async_request(request)
            response.request = request
            return response
        return await client.send(request, stream=True)

    async def complete(self, request: ChatRequest) -> ChatReply:
        """The whole answer to ``request``.

        Args:
            request: The prompt and knobs; ``request.model`` picks the model.

        Returns:
            The content, the model the upstream reports (else the requested one), the
            finish reason and the usage (tokens, ``usage.cost``, ``is_free_model`` for
            ``:free`` model ids).

        Raises:
            ModelError: On any failure; ``EMPTY_REPLY`` for an answer without content.
        """
        model = request.model or self._default_model
        body = self._body(request, model, stream=False)
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._send(body, self._headers)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except (httpx.HTTPError, TimeoutError) as exc:
            raise error_from_exception(exc, model=model) from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(
                response.status_code, response.headers, response.content, model=model
            )
        return _reply_from_body(response.content, model)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The answer to ``request`` as it is generated.

        Yields :class:`StreamDelta` pieces (leading whitespace-only pieces are held
        back until visible text comes, so that a stream which yielded nothing has
        shown nothing), then one :class:`StreamEnd` with the whole reply and the
        usage of OpenRouter's final chunk. The upstream response is closed before
        the ``StreamEnd`` is yielded.

        How a stream ends:

        * ``data: [DONE]``: complete (even without a usage chunk: zero usage);
        * the body ends cleanly without ``[DONE]`` but after a ``finish_reason``:
          complete (the answer was whole; only the trailer is missing);
        * the body ends with neither, or the connection drops: ``UNAVAILABLE``, the
          upstream went away mid-answer and the same request may succeed elsewhere
          (not ``MALFORMED_REPLY``: nothing unreadable was received);
        * a chunk with a top-level ``error`` (or ``finish_reason: "error"``): a
          ``ModelError`` of the kind its code and message say, ``UNAVAILABLE`` by
          default, raised after the deltas already yielded;
        * no content at all: ``EMPTY_REPLY`` (``CONTENT_REFUSED`` for a
          ``content_filter`` finish), raised before any delta;
        * a ``data:`` payload that is not JSON: ``MALFORMED_REPLY``;
        * no chunk within the timeout: ``TIMEOUT``.

        A 2xx answer that is not an event stream (a server that ignores
        ``stream: true``) is read as a whole reply and yielded as one delta.

        Args:
            request: The prompt and knobs; ``request.model`` picks the model.

        Raises:
            ModelError: On any failure, before or after some deltas.
        """
        model = request.model or self._default_model
        body = self._body(request, model, stream=True)
        state = _StreamState(model)
        whole: ChatReply | None = None
        try:
            async with contextlib.aclosing(
                await self._send(body, self._stream_headers)
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise error_from_response(
                        response.status_code, response.headers, await response.aread(), model=model
                    )
                content_type = response.headers.get("content-type", "")
                if not content_type.lower().startswith("text/event-stream"):
                    whole = _reply_from_body(await response.aread(), model)
                else:
                    parser = SSEParser()
                    # Raw reads: one per socket read with build_http_client's transport.
                    # A server that compresses anyway is decoded.
                    encoding = response.headers.get("content-encoding", "identity")
                    chunks = (
                        response.aiter_raw()
                        if encoding.lower() == "identity"
                        else response.aiter_bytes()
                    )
                    async for data in chunks:
                        # The text of every event of one read goes out as one delta:
                        # tokens that arrived together are passed on together.
                        pieces: list[str] = []
                        failure: ModelError | SSEError | None = None
                        try:
                            for event in parser.feed(data):
                                text = state.take(event.data)
                                if text:
                                    pieces.append(text)
                                elif state.done:
                                    break
                        except (ModelError, SSEError) as exc:
                            failure = exc
                        # An error after some text of the same read: that text was
                        # generated, and goes out before the error.
                        if pieces:
                            yield StreamDelta("".join(pieces))
                        if failure is not None:
                            raise failure
                        if state.done:
                            break
                    if state.done:
                        await _drain(chunks)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, model=model) from exc
        except SSEError as exc:
            raise malformed(str(exc), model=model) from exc
        if whole is not None:
            yield StreamDelta(whole.content)
            yield StreamEnd(whole)
            return
        yield StreamEnd(state.reply())


class _StreamState:
    """What a stream has said so far; turns each ``data:`` payload into text to yield."""

    __slots__ = (
        "done",
        "finish_reason",
        "held",
        "model",
        "parts",
        "reported",
        "usage",
        "visible",
    )

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.held: list[str] = []  # whitespace-only pieces before the first visible text
        self.visible = False
        self.finish_reason: str | None = None
        self.reported: str | None = None
        self.usage: _Usage | None = None
        self.done = False

    def take(self, data: str) -> str | None:
        """Account for one event's data; the text to yield now, if any.

        Raises:
            ModelError: The payload is an error chunk or is not JSON.
        """
        if data == _DONE:
            self.done = True
            return None
        try:
            chunk = _CHUNK_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise malformed(
                f"a stream chunk is not JSON ({exc}): {data[:80]!r}", model=self.model
            ) from exc
        if chunk.error is not None:
            raise error_from_payload(chunk.error, model=self.model)
        if chunk.model:
            self.reported = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
            if choice.finish_reason == "error":
                raise ModelError(
                    FailureKind.UNAVAILABLE,
                    "the stream stopped with finish_reason 'error'",
                    model=self.model,
                )
        text = choice.delta.content if choice.delta is not None else None
        if not text:
            return None
        self.parts.append(text)
        if self.visible:
            return text
        if text.isspace():
            self.held.append(text)
            return None
        self.visible = True
        if self.held:
            text = "".join(self.held) + text
            self.held.clear()
        return text

    def reply(self) -> ChatReply:
        """The whole reply once the body ended.

        Raises:
            ModelError: ``UNAVAILABLE`` when the answer was cut off, ``EMPTY_REPLY``
                (or ``CONTENT_REFUSED``) when it had no content.
        """
        if not self.done and self.finish_reason is None:
            raise ModelError(
                FailureKind.UNAVAILABLE,
                "the stream ended before the answer was complete (no finish_reason, no [DONE])",
                model=self.model,
            )
        if not self.visible:
            raise _no_content(self.model, self.finish_reason)
        reported = self.reported or self.model
        return ChatReply(
            content="".join(self.parts),
            model=reported,
            usage=_usage(self.usage, self.model, reported),
            finish_reason=self.finish_reason or "stop",
        )


# Client and model list --------------------------------------------------------------


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def build_http_client(
    max_connections: int = 100, environ: Mapping[str, str] | None = None
) -> httpx.AsyncClient:
    """A pooled HTTP/1.1 client for OpenRouter, to be made and closed by the app's lifespan.

    The client's transport is :class:`~adapters.openrouter.transport.HTTP1Transport`:
    one pool whose cost per request does not grow with its size, so one client serves
    every stream; TLS trusts certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when set. That transport speaks to the server directly: when an
    egress proxy is configured (``HTTPS_PROXY`` or ``ALL_PROXY``, any case), httpx's own
    transport is used instead, which honours those variables and ``NO_PROXY``.

    Args:
        max_connections: Connections kept open at most (and kept alive between calls,
            30 s at most while idle); concurrent streams beyond it wait for a free one.
        environ: Where to look for proxy variables; ``os.environ`` when None.

    Returns:
        An ``httpx.AsyncClient``; the caller owns it and must ``aclose()`` it.
    """
    environ = os.environ if environ is None else environ
    timeout = httpx.Timeout(45.0, connect=_MAX_CONNECT_SECONDS)
    if any(environ.get(name) for name in _PROXY_VARIABLES):
        return httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=_KEEPALIVE_SECONDS,
            ),
            timeout=timeout,
            follow_redirects=False,
            trust_env=True,
        )
    return httpx.AsyncClient(
        transport=HTTP1Transport(
            max_connections=max_connections,
            keepalive_expiry=_KEEPALIVE_SECONDS,
        ),
        timeout=timeout,
        follow_redirects=False,
    )


def _context_lengths(payload: Any) -> dict[str, int]:
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        return {}
    lengths: dict[str, int] = {}
    for entry in data:
        if not isinstance(entry, Mapping):
            continue
        model_id = entry.get("id")
        length = entry.get("context_length")
        if length is None and isinstance(entry.get("top_provider"), Mapping):
            length = entry["top_provider"].get("context_length")
        if isinstance(length, float) and length.is_integer():
            length = int(length)
        if (
            isinstance(model_id, str)
            and isinstance(length, int)
            and not isinstance(length, bool)
            and length > 0
        ):
            lengths[model_id] = length
    return lengths


async def fetch_context_lengths(
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (an httpx timeout, not a deadline on us)
) -> dict[str, int]:
    """Each model's context length, from ``GET {base_url}/models``.

    Args:
        client: The HTTP client.
        base_url: The API root (``https://openrouter.ai/api/v1``).
        api_key: Sent as ``Authorization: Bearer`` (the listing works without one).
        timeout: Seconds for the call.

    Returns:
        ``{model id: context length in tokens}``; ``{}`` on any failure (connection,
        status, body), since the caller then falls back to its configured budget.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await client.get(
            base_url.rstrip("/") + "/models", headers=headers, timeout=timeout
        )
        if response.status_code != 200:
            return {}
        return _context_lengths(msgspec.json.decode(response.content))
    except (httpx.HTTPError, msgspec.DecodeError):
        return {}
