"""Chat models for tests: one that records prompts, one that always fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatcore.domain import Usage
from chatcore.models import (
    ChatReply,
    ChatRequest,
    FailureKind,
    ModelError,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)


class RecordingModel:
    """Answers "answer N" and keeps every request it was given."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        return ChatReply(
            content=f"answer {len(self.requests)}",
            model="recording",
            usage=Usage(prompt_tokens=10, completion_tokens=2),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        reply = await self.complete(request)
        yield StreamDelta(reply.content)
        yield StreamEnd(reply)


class FailingModel:
    """Every call fails as ``kind`` would."""

    def __init__(self, kind: FailureKind = FailureKind.UNAVAILABLE) -> None:
        self.kind = kind
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.calls += 1
        raise ModelError(self.kind, "upstream said no", model="failing")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        raise ModelError(self.kind, "upstream said no", model="failing")
        yield StreamDelta("")  # pragma: no cover - makes this an async generator
