"""Server-sent events for a streamed answer, with keep-alive comments and cancel on disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import msgspec

from chatcore.services.messages import (
    StreamCompleted,
    StreamFailed,
    StreamStarted,
    StreamText,
    StreamUpdate,
)
from entrypoints.http.schemas import message_out, usage_out

__all__ = ["KEEPALIVE", "sse_frames"]

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


async def sse_frames(
    updates: AsyncGenerator[StreamUpdate, None], *, keepalive_seconds: float = 15.0
) -> AsyncIterator[bytes]:
    """Render ``updates`` as SSE frames; a comment goes out whenever nothing else has
    for ``keepalive_seconds`` (models can think for a while before the first token).

    When the client disconnects, the server cancels this generator: ``updates`` is then
    closed under a shield, which cancels the upstream model call at once and lets the
    answer be stored as ``cancelled``.
    """
    pending: asyncio.Task[StreamUpdate] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(updates))
            done, _ = await asyncio.wait({pending}, timeout=keepalive_seconds)
            if not done:
                yield KEEPALIVE
                continue
            task, pending = pending, None
            try:
                update = task.result()
            except StopAsyncIteration:
                return
            yield _render(update)
    finally:
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await updates.aclose()
