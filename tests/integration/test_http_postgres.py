"""The HTTP API on real PostgreSQL: the whole stack, isolation, and a database that goes away."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.postgres import to_async_url
from entrypoints.auth import issue_token
from entrypoints.http.app import create_app
from entrypoints.settings import load_settings

pytestmark = pytest.mark.postgres

SECRET = "integration-secret-0123456789-abcdefghij"


def _settings(tmp_path: Path, database_url: str) -> Any:
    return load_settings(
        {"DATABASE_URL": database_url, "JWT_SECRET": SECRET, "CHATCORE_DATA_DIR": str(tmp_path)}
    )


def _headers(user: uuid.UUID) -> dict[str, str]:
    token = issue_token(
        secret=SECRET, user_id=user, issuer="atma-auth-service", audience="atma-services"
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(tmp_path: Path, pg_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(_settings(tmp_path, pg_url))) as test_client:
        yield test_client


def test_conversation_journey_on_postgres(client: TestClient[Any]) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    created = client.post(
        "/conversations",
        json={"title": "Karier", "profilePersona": {"archetype": "The Analytical Innovator"}},
        headers=_headers(alice),
    )
    assert created.status_code == 201
    cid = created.json()["data"]["id"]
    sent = client.post(
        f"/conversations/{cid}/messages",
        json={"content": "Apa kekuatan saya?"},
        headers=_headers(alice),
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()["data"]
    assert body["model"] == "offline"
    assert body["assistant_message"]["parent_message_id"] == body["user_message"]["id"]
    listed = client.get(
        f"/conversations/{cid}/messages?include_usage=true", headers=_headers(alice)
    ).json()["data"]["messages"]
    assert [m["sender_type"] for m in listed] == ["user", "assistant"]
    assert listed[1]["usage"]["total_tokens"] == body["usage"]["total_tokens"]
    # Another user sees nothing of it, on PostgreSQL too.
    assert client.get(f"/conversations/{cid}", headers=_headers(bob)).status_code == 404
    assert client.get("/conversations", headers=_headers(bob)).json()["data"]["conversations"] == []
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["data"]["checks"] == {"database": True}


async def test_requests_survive_the_database_dropping_every_connection(
    client: TestClient[Any], pg_url: str
) -> None:
    alice = uuid.uuid4()
    cid = client.post("/conversations", json={}, headers=_headers(alice)).json()["data"]["id"]
    # Kill every connection the service holds, as a database restart would.
    admin = create_async_engine(to_async_url(pg_url))
    async with admin.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await admin.dispose()
    # No restart: the next requests work.
    again = client.post(
        f"/conversations/{cid}/messages",
        json={"content": "masih di sana?"},
        headers=_headers(alice),
    )
    assert again.status_code == 201, again.text
    assert client.get("/health/ready").status_code == 200


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_database_that_is_down_gives_503_not_500(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    with TestClient(create_app(_settings(tmp_path, url))) as down:
        ready = down.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert ready.json()["error"]["details"]["checks"] == {"database": False}
        assert down.get("/health/live").status_code == 200
        response = down.post("/conversations", json={}, headers=_headers(uuid.uuid4()))
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert "Traceback" not in response.text
        assert response.headers["x-request-id"]


def _history_reads(client: TestClient[Any]) -> dict[str, float]:
    reads = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("chatcore_history_cache_reads_total{"):
            name, value = line.rsplit(" ", 1)
            reads[name.split('"')[1]] = float(value)
    return reads


@pytest.mark.parametrize("size", ["512", "0"])
def test_a_conversations_next_message_reads_its_history_from_memory(
    tmp_path: Path, pg_url: str, size: str
) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": pg_url,
            "JWT_SECRET": SECRET,
            "CHATCORE_DATA_DIR": str(tmp_path),
            "HISTORY_CACHE_SIZE": size,
        }
    )
    user = uuid.uuid4()
    with TestClient(create_app(settings)) as client:
        cid = client.post("/conversations", json={}, headers=_headers(user)).json()["data"]["id"]
        for question in ("Apa kekuatan saya?", "Karier apa yang cocok?", "Jurusan apa?"):
            sent = client.post(
                f"/conversations/{cid}/messages", json={"content": question}, headers=_headers(user)
            )
            assert sent.status_code == 201, sent.text
        reads = _history_reads(client)
        listed = client.get(f"/conversations/{cid}/messages", headers=_headers(user))
    # The first message read the (empty) history from the database; the next two found
    # it unchanged since this process wrote it. Switched off, nothing is kept.
    assert reads == (
        {"hit": 2.0, "miss": 1.0, "stale": 0.0}
        if size != "0"
        else {"hit": 0.0, "miss": 0.0, "stale": 0.0}
    )
    assert len(listed.json()["data"]["messages"]) == 6


def test_a_change_made_through_another_process_is_seen_by_the_next_message(
    tmp_path: Path, pg_url: str
) -> None:
    # Two service processes on one database, each with its own kept conversations: what
    # one remembers is checked against what the other wrote (decision 0017).
    def settings(name: str) -> Any:
        return load_settings(
            {
                "DATABASE_URL": pg_url,
                "JWT_SECRET": SECRET,
                "CHATCORE_DATA_DIR": str(tmp_path / name),
            }
        )

    user = uuid.uuid4()
    with (
        TestClient(create_app(settings("a"))) as here,
        TestClient(create_app(settings("b"))) as there,
    ):
        cid = here.post("/conversations", json={}, headers=_headers(user)).json()["data"]["id"]
        route = f"/conversations/{cid}/messages"
        assert here.post(route, json={"content": "Halo"}, headers=_headers(user)).status_code == 201
        renamed = there.put(
            f"/conversations/{cid}", json={"title": "Renamed there"}, headers=_headers(user)
        )
        assert renamed.status_code == 200, renamed.text
        sent = here.post(route, json={"content": "Apa kekuatan saya?"}, headers=_headers(user))
        assert sent.status_code == 201, sent.text
        assert _history_reads(here)["stale"] == 1.0
        assert there.delete(f"/conversations/{cid}", headers=_headers(user)).status_code == 200
        gone = here.post(route, json={"content": "Masih di sana?"}, headers=_headers(user))
        assert gone.status_code == 404, gone.text
        assert gone.json()["error"]["code"] == "NOT_FOUND"
        assert _history_reads(here)["stale"] == 2.0
        listed = there.get(f"/conversations/{cid}/messages", headers=_headers(user))
    assert listed.status_code == 404
