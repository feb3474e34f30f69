"""Domain errors. The HTTP layer maps each ``code`` to a status and the error envelope."""

from __future__ import annotations

from typing import Any
from uuid import UUID

__all__ = [
    "AIServiceUnavailableError",
    "ChatcoreError",
    "ForbiddenError",
    "InvalidStateError",
    "NotFoundError",
    "RateLimitedError",
    "ValidationError",
]


class ChatcoreError(Exception):
    """Base of every error the core raises on purpose.

    Attributes:
        code: the contract's UPPER_SNAKE error code.
        message: a sentence a user can read.
        details: optional structured details for the error envelope.
    """

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationError(ChatcoreError):
    """Input that is well-formed but not acceptable (empty content, unknown parent...)."""

    code = "VALIDATION_ERROR"


class InvalidStateError(ValidationError):
    """A transition the aggregate does not allow (for example un-deleting a conversation)."""


class NotFoundError(ChatcoreError):
    """The resource does not exist *for this user*; another user's data is never revealed."""

    code = "NOT_FOUND"


class ForbiddenError(ChatcoreError):
    """The caller is known but may not do this (for example a non-admin on admin routes)."""

    code = "FORBIDDEN"


class RateLimitedError(ChatcoreError):
    """A per-user limit was reached; ``retry_after`` is in whole seconds (at least 1)."""

    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, *, retry_after: int, limit: int, window: str) -> None:
        super().__init__(
            message, details={"limit": limit, "window": window, "retry_after": retry_after}
        )
        self.retry_after = max(1, retry_after)


class AIServiceUnavailableError(ChatcoreError):
    """No model answered. The user's message is stored; its id travels in ``details``."""

    code = "AI_SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, user_message_id: UUID, reasons: list[str]) -> None:
        super().__init__(
            message, details={"user_message_id": str(user_message_id), "reasons": reasons}
        )
        self.user_message_id = user_message_id
        self.reasons = reasons
