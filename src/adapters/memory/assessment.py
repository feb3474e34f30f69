"""An in-memory archive: the ``AssessmentSource`` port over a dict, for tests and the demo."""

from __future__ import annotations

from chatcore.assessment import ArchiveResult, ArchiveUnavailableError

__all__ = ["InMemoryAssessmentSource"]


class InMemoryAssessmentSource:
    """Results by id; :attr:`down` makes every fetch fail as an unreachable archive would.

    Args:
        results: the results the archive knows, by id (kept, not copied: a test may add
            to it later, or call :meth:`add`).

    Attributes:
        down: while true, :meth:`fetch_result` raises ``ArchiveUnavailableError``.
        requests: every id asked for, in order (including those refused while down).
    """

    def __init__(self, results: dict[str, ArchiveResult] | None = None) -> None:
        self.results: dict[str, ArchiveResult] = results if results is not None else {}
        self.down = False
        self.requests: list[str] = []

    def add(self, result: ArchiveResult) -> None:
        """Make the archive know ``result``."""
        self.results[result.id] = result

    async def fetch_result(self, result_id: str) -> ArchiveResult | None:
        """The result, or None when unknown.

        Raises:
            ArchiveUnavailableError: while :attr:`down`.
        """
        self.requests.append(result_id)
        if self.down:
            raise ArchiveUnavailableError(
                f"archive unavailable (in-memory archive switched down) for result {result_id}"
            )
        return self.results.get(result_id)
