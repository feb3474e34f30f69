"""Chat models for tests: one that records prompts, one that always fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

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

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
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

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        raise ModelError(self.kind, "upstream said no", model="failing")
        yield StreamDelta("")  # type: ignore[unreachable]  # makes this an async generator


def _usage(model: str) -> Usage:
    """What a scripted answer reports: 13 tokens, 0.002 USD unless the model is free."""
    free = model.endswith(":free")
    return Usage(
        prompt_tokens=10, completion_tokens=3, cost=0.0 if free else 0.002, is_free_model=free
    )


class ScriptedModel:
    """Answers per model from a script: a str is a reply, a ModelError is raised, and
    ``("partial", n, error)`` streams n words then raises. Unscripted models answer."""

    def __init__(self, script: dict[str, list[object]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[ChatRequest] = []
        self.closed_streams = 0

    def _next(self, request: ChatRequest) -> object:
        self.calls.append(request)
        model = request.model or "?"
        queue = self.script.get(model)
        return queue.pop(0) if queue else f"answer from {model}"

    async def complete(self, request: ChatRequest) -> ChatReply:
        step = self._next(request)
        if isinstance(step, ModelError):
            raise step
        if isinstance(step, tuple):
            raise step[2]
        model = request.model or "?"
        return ChatReply(content=str(step), model=model, usage=_usage(model))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        step = self._next(request)
        try:
            if isinstance(step, ModelError):
                raise step
            if isinstance(step, tuple):
                _, count, error = step
                for i in range(count):
                    yield StreamDelta(f"w{i} ")
                raise error
            model = request.model or "?"
            for word in str(step).split(" "):
                yield StreamDelta(word + " ")
            yield StreamEnd(ChatReply(content=str(step) + " ", model=model, usage=_usage(model)))
        finally:
            self.closed_streams += 1


class SlowModel:
    """Streams ``tokens`` words after thinking ``delay`` seconds, ``gap`` seconds apart.

    ``started`` is set once the stream is asked for, ``first_token`` once the first word
    went out; ``closed`` counts streams closed (normally or not) and ``cancelled`` those
    that were cancelled or closed early by their consumer.
    """

    def __init__(
        self, *, delay: float = 0.0, tokens: int = 3, gap: float = 0.0, model: str = "slow"
    ) -> None:
        self.delay = delay
        self.tokens = tokens
        self.gap = gap
        self.model = model
        self.started = asyncio.Event()
        self.first_token = asyncio.Event()
        self.closed = 0
        self.cancelled = 0

    def _words(self) -> list[str]:
        return [f"t{i} " for i in range(self.tokens)]

    async def complete(self, request: ChatRequest) -> ChatReply:
        await asyncio.sleep(self.delay)
        return ChatReply(
            content="".join(self._words()),
            model=request.model or self.model,
            usage=Usage(prompt_tokens=5, completion_tokens=self.tokens, is_free_model=True),
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.started.set()
        finished = False
        try:
            await asyncio.sleep(self.delay)
            for i, word in enumerate(self._words()):
                if i:
                    await asyncio.sleep(self.gap)
                yield StreamDelta(word)
                self.first_token.set()
            finished = True
            yield StreamEnd(
                ChatReply(
                    content="".join(self._words()),
                    model=request.model or self.model,
                    usage=Usage(prompt_tokens=5, completion_tokens=self.tokens, is_free_model=True),
                )
            )
        finally:
            self.closed += 1
            if not finished:
                self.cancelled += 1
