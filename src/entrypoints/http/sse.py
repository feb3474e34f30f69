"""Server-sent events for a streamed answer, with keep-alive comments and cancel on disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import msgspec
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send

from chatcore.services.messages import (
    StreamCompleted,
    StreamFailed,
    StreamStarted,
    StreamText,
    StreamUpdate,
)
from entrypoints.http.schemas import message_out, usage_out

__all__ = ["KEEPALIVE", "EventStream", "LastChunk", "sse_frames"]

KEEPALIVE = b": keep-alive\n\n"
_encode = msgspec.json.encode


def _frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def _render(update: StreamUpdate) -> bytes:
    if isinstance(update, StreamText):
        return _frame("assistant_chunk", {"delta": update.delta})
    if isinstance(update, StreamStarted):
        return _frame("user_message", message_out(update.user_message))
    if isinstance(update, StreamCompleted):
        return _frame(
            "complete",
            {
                "assistant_message": message_out(update.assistant_message),
                "usage": usage_out(update.usage),
                "model": update.model,
            },
        )
    assert isinstance(update, StreamFailed)
    payload: dict[str, Any] = {
        "code": update.code,
        "message": update.message,
        "user_message_id": str(update.user_message_id),
    }
    if update.assistant_message is not None:
        payload["assistant_message"] = message_out(update.assistant_message)
    return _frame("error", payload)


class LastChunk(bytes):
    """The last chunk of :func:`sse_frames`: nothing follows it."""

    __slots__ = ()


_QUEUED_FRAMES = 64
_DONE = b""


async def sse_frames(
    updates: AsyncGenerator[StreamUpdate, None], *, keepalive_seconds: float = 15.0
) -> AsyncIterator[bytes]:
    """Render ``updates`` as SSE frames; a comment goes out whenever nothing else has
    for ``keepalive_seconds`` (models can think for a while before the first token).

    One task reads ``updates`` and queues rendered frames (at most 64 ahead of the
    client); this generator yields whatever is queued as one chunk, so that tokens
    that arrived together leave in one write rather than one each.

    When the client disconnects, the server cancels this generator: the reading task is
    then cancelled and ``updates`` closed under a shield, which cancels the upstream
    model call at once and lets the answer be stored as ``cancelled`` (with what the
    model had generated until then).
    """
    queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(_QUEUED_FRAMES)

    async def read() -> None:
        try:
            async for update in updates:
                await queue.put(_render(update))
        except Exception as exc:  # handed to the client's side, which raises it
            await queue.put(exc)
        else:
            await queue.put(_DONE)

    reader = asyncio.ensure_future(read())
    try:
        while True:
            if queue.empty():
                try:
                    async with asyncio.timeout(keepalive_seconds):
                        item = await queue.get()
                except TimeoutError:
                    yield KEEPALIVE
                    continue
            else:
                item = queue.get_nowait()
            chunk: list[bytes] = []
            while isinstance(item, bytes) and item:
                chunk.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if chunk:
                # The end of the stream marks its last chunk, so that the response can
                # end with it rather than with a write of its own.
                yield (LastChunk if item == _DONE else bytes)(b"".join(chunk))
            if isinstance(item, BaseException):
                raise item
            if item == _DONE:
                return
    finally:
        with anyio.CancelScope(shield=True):
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await updates.aclose()


class _EventStreamASGIResponse(ASGIStreamingResponse):
    """Litestar's streaming response without its task group.

    Litestar runs the body in a child task of an anyio task group and cancels the
    group's scope when the client disconnects; per stream that machinery cost more CPU
    than framing the whole answer. Here the body is sent from the request's own task,
    and one watcher task cancels that task when the client disconnects; the
    cancellation is then caught here, so the request ends normally, as it does with
    the task group. The server's own cancellation (at shutdown) still propagates.
    """

    __slots__ = ()  # the same layout as its base: EventStream re-classes one

    async def _stream(self, send: Send) -> None:
        # As the base class, but a LastChunk ends the response in the same write.
        async for chunk in self.iterator:
            last = isinstance(chunk, LastChunk)
            body = chunk if isinstance(chunk, bytes) else chunk.encode(self.encoding)
            await send({"type": "http.response.body", "body": body, "more_body": not last})
            if last:
                break
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        aclose = getattr(self.iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    async def send_body(self, send: Send, receive: Receive) -> None:
        sender = asyncio.current_task()
        if sender is None:  # pragma: no cover - ASGI servers call apps from a task
            await super().send_body(send, receive)
            return
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            sender.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await self._stream(send)
        except asyncio.CancelledError:
            if not gone:
                raise
            sender.uncancel()  # ours: the client went away, which ends the response
        finally:
            watcher.cancel()


class EventStream(Stream):
    """A ``text/event-stream`` response of SSE frames (see :func:`sse_frames`), sent
    without a task group per stream (see :class:`_EventStreamASGIResponse`)."""

    __slots__ = ()

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        response = super().to_asgi_response(*args, **kwargs)
        assert isinstance(response, ASGIStreamingResponse)
        response.__class__ = _EventStreamASGIResponse
        return response
