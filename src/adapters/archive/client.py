"""The archive service's results, over httpx: the ``AssessmentSource`` port.

``GET {base_url}/archive/results/{id}`` with the internal-service headers answers
``{"success": true, "data": {...}}``. What each answer means to the consumer:

- 200 with a well-formed envelope: the result (unknown fields ignored: the archive's
  profiles vary);
- 404 or 410: the archive does not know the result → ``None`` (the event rightly
  creates nothing);
- 5xx, 429, any other 4xx, a timeout, a refused or dropped connection, a malformed
  body: :class:`~chatcore.assessment.ArchiveUnavailableError`, a passing failure the
  consumer retries and, after its last attempt, dead-letters (so the event is kept);
- 401/403: the same error, naming ``INTERNAL_SERVICE_KEY``: a wrong key is an operator's
  fix, and retrying then dead-lettering keeps the events until it is made.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

import httpx
import msgspec

from chatcore.assessment import ArchiveResult, ArchiveUnavailableError

__all__ = ["ArchiveClient", "build_archive_http_client"]

_GONE: Final = frozenset({404, 410})
_AUTH: Final = frozenset({401, 403})
_SNIPPET: Final = 200


class _Envelope(msgspec.Struct, kw_only=True):
    success: bool = False
    data: ArchiveResult | None = None


_DECODER: Final = msgspec.json.Decoder(_Envelope)


def _snippet(body: bytes) -> str:
    text = body[:_SNIPPET].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > _SNIPPET else "")


class ArchiveClient:
    """Fetches analysis results from the archive service.

    Args:
        client: a pooled ``httpx.AsyncClient`` (see :func:`build_archive_http_client`),
            owned and closed by the caller.
        base_url: ``ARCHIVE_SERVICE_URL``, e.g. ``http://archive:3002``; results are at
            ``{base_url}/archive/results/{id}``.
        service_key: ``INTERNAL_SERVICE_KEY``, sent as ``X-Service-Key`` (``None``: the
            header is left out and the archive will most likely refuse).
        timeout: seconds for the whole request (connect, send, read).
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        service_key: str | None,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self.base_url = base_url.rstrip("/")
        self._headers = {"X-Internal-Service": "true", "Accept": "application/json"}
        if service_key:
            self._headers["X-Service-Key"] = service_key
        self._timeout = httpx.Timeout(timeout)
        self._timeout_seconds = timeout

    def url_for(self, result_id: str) -> str:
        """The URL of one result (the id path-escaped: ``/`` and ``?`` stay in it)."""
        return f"{self.base_url}/archive/results/{urllib.parse.quote(result_id, safe='')}"

    async def fetch_result(self, result_id: str) -> ArchiveResult | None:
        """The result, or None when the archive does not know it.

        Raises:
            ArchiveUnavailableError: the archive is unreachable, slow, failing, refuses
                our key, or answers something that is not a result.
        """
        url = self.url_for(result_id)
        try:
            response = await self._client.get(url, headers=self._headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise ArchiveUnavailableError(
                f"archive did not answer within {self._timeout_seconds:g}s for result "
                f"{result_id} ({type(exc).__name__} on {url})"
            ) from exc
        except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
            raise ArchiveUnavailableError(
                f"archive unreachable for result {result_id}: {type(exc).__name__}: {exc} ({url})"
            ) from exc
        status = response.status_code
        if status in _GONE:
            return None
        if status in _AUTH:
            raise ArchiveUnavailableError(
                f"archive refused chatcore's credentials with HTTP {status} for result "
                f"{result_id}: check INTERNAL_SERVICE_KEY (it must match the archive's "
                f"internal service key)"
            )
        if status != 200:
            raise ArchiveUnavailableError(
                f"archive answered HTTP {status} for result {result_id} ({url}): "
                f"{_snippet(response.content)}"
            )
        return self._decode(result_id, response.content)

    @staticmethod
    def _decode(result_id: str, body: bytes) -> ArchiveResult:
        try:
            envelope = _DECODER.decode(body)
        except msgspec.DecodeError as exc:
            raise ArchiveUnavailableError(
                f"archive answered a malformed body for result {result_id}: {exc}"
            ) from exc
        data = envelope.data
        if not envelope.success or data is None:
            raise ArchiveUnavailableError(
                f"archive answered 200 without a result for {result_id}: {_snippet(body)}"
            )
        if data.id.lower() != result_id.lower():
            raise ArchiveUnavailableError(
                f"archive answered result {data.id!r} when asked for {result_id!r}"
            )
        return data


def build_archive_http_client(max_connections: int = 50) -> httpx.AsyncClient:
    """A pooled HTTP/1.1 client for the archive; the caller owns it and must ``aclose()`` it.

    Args:
        max_connections: connections kept open at most (the consumer fetches one result
            per in-flight message, so its prefetch is a good bound).
    """
    return httpx.AsyncClient(
        http1=True,
        http2=False,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        ),
        timeout=httpx.Timeout(10.0),
        follow_redirects=False,
    )
