"""The assessment journey's wire types: the analysis worker's events, the archive's
result, and what chatcore publishes and notifies.

Events come from another service: decoding is lenient (unknown fields allowed,
optional fields may be missing), and each type has one decoder, built once.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

import msgspec

__all__ = [
    "AnalysisCompleted",
    "AnalysisEvent",
    "AnalysisFailed",
    "AnalysisStarted",
    "ArchiveResult",
    "ArchiveUnavailableError",
    "AssessmentSource",
    "IntegrationPublisher",
    "Notifier",
    "decode_analysis_event",
]


class _Metadata(msgspec.Struct, kw_only=True):
    """Informational only (logs, the demo): any JSON value is taken as it comes, so
    that a worker that sends ``98121.5`` or ``"5m"`` does not cost an event."""

    assessmentName: Any = None  # noqa: N815 - the worker's names
    processingTime: Any = None  # noqa: N815
    retryCount: Any = None  # noqa: N815
    estimatedProcessingTime: Any = None  # noqa: N815
    errorType: Any = None  # noqa: N815


class _AnalysisEvent(msgspec.Struct, kw_only=True, tag_field="eventType"):
    timestamp: str | None = None
    jobId: str  # noqa: N815
    userId: UUID  # noqa: N815
    userEmail: str | None = None  # noqa: N815
    metadata: _Metadata | None = None


class AnalysisStarted(_AnalysisEvent, kw_only=True, tag="analysis.started"):
    resultId: str | None = None  # noqa: N815


class AnalysisCompleted(_AnalysisEvent, kw_only=True, tag="analysis.completed"):
    resultId: str  # noqa: N815


class AnalysisFailed(_AnalysisEvent, kw_only=True, tag="analysis.failed"):
    resultId: str | None = None  # noqa: N815
    errorMessage: str | None = None  # noqa: N815


AnalysisEvent = AnalysisStarted | AnalysisCompleted | AnalysisFailed

_DECODER: msgspec.json.Decoder[AnalysisEvent] = msgspec.json.Decoder(AnalysisEvent)


def decode_analysis_event(body: bytes) -> AnalysisEvent:
    """Decode one event body; raises ``msgspec.DecodeError``/``ValidationError`` when it
    is not JSON or not one of the three events (the consumer dead-letters those)."""
    return _DECODER.decode(body)


class ArchiveResult(msgspec.Struct, kw_only=True):
    """``data`` of ``GET /archive/results/{id}``."""

    id: str
    user_id: UUID
    status: str
    assessment_data: dict[str, Any] | None = None
    persona_profile: dict[str, Any] | None = None
    assessment_name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class ArchiveUnavailableError(Exception):
    """The archive could not be reached or answered 5xx: a passing failure, retry later."""


class AssessmentSource(Protocol):
    """Where analysis results come from (the archive service)."""

    async def fetch_result(self, result_id: str) -> ArchiveResult | None:
        """The result, or None when the archive does not know it.

        Raises:
            ArchiveUnavailableError: the archive is down or failing; try again later.
        """
        ...


class Notifier(Protocol):
    """Real-time notifications to a user's open sockets, on every replica."""

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        """Deliver ``event`` with ``data`` to every socket of ``user_id``; never raises
        for a user without sockets."""
        ...


class IntegrationPublisher(Protocol):
    """Events chatcore publishes for other services (``chatbot.conversation_ready``)."""

    async def publish(self, routing_key: str, payload: dict[str, Any]) -> None:
        """Publish ``payload`` as JSON with ``routing_key`` on the events exchange."""
        ...
