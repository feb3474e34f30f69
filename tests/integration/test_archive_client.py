"""The archive client against a fake archive over real HTTP."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.archive import ArchiveClient, build_archive_http_client
from chatcore.assessment import ArchiveUnavailableError
from tests.fakes.archive import FakeArchive, synthetic_result_id

KEY = "internal-test-key"


@pytest.fixture
async def archive() -> AsyncIterator[FakeArchive]:
    async with FakeArchive(service_key=KEY) as fake:
        yield fake


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    client = build_archive_http_client()
    yield client
    await client.aclose()


def client_for(
    http_client: httpx.AsyncClient, base_url: str, key: str | None = KEY, timeout: float = 2.0
) -> ArchiveClient:
    return ArchiveClient(client=http_client, base_url=base_url, service_key=key, timeout=timeout)


async def test_fetches_a_result_with_the_internal_headers(
    archive: FakeArchive, http_client: httpx.AsyncClient, archive_v2: dict[str, Any]
) -> None:
    archive.add({**archive_v2, "an_unknown_field": {"nested": True}})
    client = client_for(http_client, archive.base_url + "/")  # a trailing slash is fine

    result = await client.fetch_result(archive_v2["id"])

    assert result is not None
    assert result.id == archive_v2["id"]
    assert str(result.user_id) == archive_v2["user_id"]
    assert result.status == "completed"
    assert result.persona_profile is not None
    assert result.persona_profile["archetype"] == "The Analytical Innovator"
    assert result.assessment_data is not None
    assert result.assessment_data["riasec"]["investigative"] == 88
    [request] = archive.requests
    assert request.method == "GET"
    assert request.path == f"/archive/results/{archive_v2['id']}"
    assert request.headers["x-internal-service"] == "true"
    assert request.headers["x-service-key"] == KEY


async def test_v1_profiles_decode_too(
    archive: FakeArchive, http_client: httpx.AsyncClient, archive_v1: dict[str, Any]
) -> None:
    archive.add(archive_v1)
    result = await client_for(http_client, archive.base_url).fetch_result(archive_v1["id"])
    assert result is not None
    assert result.persona_profile is not None
    assert result.persona_profile["roleModel"] == ["Marie Curie", "B.J. Habibie"]


async def test_unknown_result_is_none(archive: FakeArchive, http_client: httpx.AsyncClient) -> None:
    assert await client_for(http_client, archive.base_url).fetch_result(str(uuid.uuid4())) is None


async def test_result_ids_are_path_escaped(
    archive: FakeArchive, http_client: httpx.AsyncClient, archive_v2: dict[str, Any]
) -> None:
    odd = "a/b?c=d#e f"
    archive.add({**archive_v2, "id": odd})
    result = await client_for(http_client, archive.base_url).fetch_result(odd)
    assert result is not None
    assert result.id == odd
    assert archive.requests[-1].path == "/archive/results/a%2Fb%3Fc%3Dd%23e%20f"
    # ``..`` cannot climb out of the results path either.
    assert await client_for(http_client, archive.base_url).fetch_result("../health") is None


async def test_synthesized_results_for_benchmarks(http_client: httpx.AsyncClient) -> None:
    user = uuid.uuid4()
    async with FakeArchive(synthesize=True) as fake:
        client = client_for(http_client, fake.base_url, key=None)
        result = await client.fetch_result(synthetic_result_id(user, 7))
        assert result is not None
        assert result.id == f"{user}.7"
        assert result.user_id == user
        assert await client.fetch_result("not-a-synthetic-id") is None


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_refused_credentials_name_the_variable(
    archive: FakeArchive, http_client: httpx.AsyncClient, key: str | None
) -> None:
    client = client_for(http_client, archive.base_url, key=key)
    with pytest.raises(ArchiveUnavailableError, match="INTERNAL_SERVICE_KEY"):
        await client.fetch_result(str(uuid.uuid4()))


async def test_5xx_then_recovery(
    archive: FakeArchive, http_client: httpx.AsyncClient, archive_v2: dict[str, Any]
) -> None:
    archive.add(archive_v2)
    client = client_for(http_client, archive.base_url)
    await archive.down("503")
    with pytest.raises(ArchiveUnavailableError, match="HTTP 503"):
        await client.fetch_result(archive_v2["id"])
    await archive.up()
    assert await client.fetch_result(archive_v2["id"]) is not None
    assert archive.request_count == 2


async def test_refused_connections_then_recovery_on_the_same_port(
    archive: FakeArchive, http_client: httpx.AsyncClient, archive_v2: dict[str, Any]
) -> None:
    archive.add(archive_v2)
    client = client_for(http_client, archive.base_url)
    assert await client.fetch_result(archive_v2["id"]) is not None  # a pooled connection
    await archive.down("refuse")
    with pytest.raises(ArchiveUnavailableError, match="unreachable"):
        await client.fetch_result(archive_v2["id"])
    await archive.up()
    assert await client.fetch_result(archive_v2["id"]) is not None


async def test_nothing_listening(http_client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(http_client, f"http://127.0.0.1:{port}")
    with pytest.raises(ArchiveUnavailableError, match="ConnectError"):
        await client.fetch_result("x")


async def test_timeout(
    archive: FakeArchive, http_client: httpx.AsyncClient, archive_v2: dict[str, Any]
) -> None:
    archive.add(archive_v2)
    await archive.down("hang")
    client = client_for(http_client, archive.base_url, timeout=0.3)
    with pytest.raises(ArchiveUnavailableError, match=r"did not answer within 0\.3s"):
        await client.fetch_result(archive_v2["id"])


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (200, b"<html>gateway</html>", "malformed"),
        (200, b'{"success": false, "error": {"code": "X"}}', "without a result"),
        (200, b'{"success": true, "data": {"id": "r1"}}', "malformed"),  # no user_id
        (
            200,
            b'{"success": true, "data": {"id": "r1", "user_id": "u", "status": "x"}}',
            "malformed",
        ),
        (429, b'{"success": false}', "HTTP 429"),
        (500, b"boom", "HTTP 500"),
        (400, b'{"success": false}', "HTTP 400"),
    ],
)
async def test_bad_answers_are_passing_failures(status: int, body: bytes, match: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mock:
        client = ArchiveClient(client=mock, base_url="http://archive", service_key=KEY)
        with pytest.raises(ArchiveUnavailableError, match=match):
            await client.fetch_result("r1")


async def test_a_result_for_another_id_is_refused() -> None:
    user = uuid.uuid4()
    body = f'{{"success": true, "data": {{"id": "other", "user_id": "{user}", "status": "c"}}}}'

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, text=body))
    ) as mock:
        client = ArchiveClient(client=mock, base_url="http://archive", service_key=KEY)
        with pytest.raises(ArchiveUnavailableError, match="when asked for"):
            await client.fetch_result("r1")


async def test_gone_is_none() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(410))
    ) as mock:
        client = ArchiveClient(client=mock, base_url="http://archive", service_key=KEY)
        assert await client.fetch_result("r1") is None
