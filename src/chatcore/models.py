"""What the core asks of a chat model, and the ways a model call can fail."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from chatcore.domain.message import Usage
from chatcore.domain.profile import AssessmentProfile

__all__ = [
    "ChatMessage",
    "ChatReply",
    "ChatRequest",
    "FailureKind",
    "ModelError",
    "StreamDelta",
    "StreamEnd",
    "StreamEvent",
]


@dataclass(slots=True)
class ChatMessage:
    """One turn of the prompt: ``role`` is ``system``, ``user`` or ``assistant``.

    Immutable by type (``Final`` fields, which mypy enforces) rather than at run
    time: every turn builds one of these for each message of the history it sends,
    and a frozen dataclass's ``__init__`` costs two and a half times as much.
    """

    role: Final[str]
    content: Final[str]


@dataclass(slots=True, frozen=True, kw_only=True)
class ChatRequest:
    """A prompt plus the knobs a model call takes.

    ``profile`` and ``language`` are there for models that answer from the profile
    directly (the offline advisor); remote models read the prompt only.
    """

    messages: tuple[ChatMessage, ...]
    model: str | None = None
    temperature: float = 0.3
    max_tokens: int = 1000
    profile: AssessmentProfile | None = None
    language: str = "id"


@dataclass(slots=True, frozen=True, kw_only=True)
class ChatReply:
    content: str
    model: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass(slots=True, frozen=True)
class StreamDelta:
    """A piece of the answer text."""

    text: str


@dataclass(slots=True, frozen=True)
class StreamEnd:
    """The end of a stream, with the whole reply and its usage."""

    reply: ChatReply


StreamEvent = StreamDelta | StreamEnd


class FailureKind(enum.StrEnum):
    """Why a model call failed; the fallback policy decides what each one means."""

    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    CONTEXT_TOO_LONG = "context_too_long"
    CONTENT_REFUSED = "content_refused"
    PAYMENT_REQUIRED = "payment_required"
    AUTH_FAILED = "auth_failed"
    TIMEOUT = "timeout"
    EMPTY_REPLY = "empty_reply"
    MALFORMED_REPLY = "malformed_reply"


class ModelError(Exception):
    """A model call failed.

    ``retry_after`` is in seconds when the upstream said so; ``context_limit`` is the
    model's window in tokens when a too-long prompt's error told it.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        model: str,
        retry_after: float | None = None,
        context_limit: int | None = None,
    ) -> None:
        super().__init__(f"{model}: {kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.model = model
        self.retry_after = retry_after
        self.context_limit = context_limit
