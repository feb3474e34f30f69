"""Helpers for the HTTP tests: the real Litestar app over the in-memory adapters.

``Api`` is one running app (a ``TestClient`` inside its lifespan); ``Api.user()``
gives a caller with a fresh user id and a valid token. ``assert_ok`` and
``assert_error`` check the contract's envelopes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import jwt
import msgspec
from litestar.testing import TestClient

from adapters.memory import InMemoryAssessmentSource, InMemoryUnitOfWorkFactory
from chatcore.assessment import ArchiveResult
from entrypoints.auth import issue_token
from entrypoints.bootstrap import Container
from entrypoints.http.app import ChatcoreApp, create_app
from entrypoints.settings import Settings, load_settings
from tests.conftest import load_fixture

SECRET = "unit-test-jwt-secret-0123456789abcdef"
SERVICE_KEY = "internal-service-key-0123456789"

PUBLIC_PREFIXES = ("/health", "/metrics", "/schema")


@dataclass(frozen=True)
class Route:
    """One authenticated route; ``{id}`` is replaced by a conversation id,
    ``{message_id}`` by a message id (random ones unless given) and ``{reaction}`` by
    ``like``; ``query`` is appended to the URL.

    ``admin``: for admins only, a user's valid token gets 403 ``FORBIDDEN``.
    """

    method: str
    path: str
    body: dict[str, Any] | None = None
    admin: bool = False
    query: str = ""

    def url(
        self,
        conversation_id: str | uuid.UUID | None = None,
        message_id: str | uuid.UUID | None = None,
    ) -> str:
        path = self.path.replace("{id}", str(conversation_id or uuid.uuid4()))
        path = path.replace("{message_id}", str(message_id or uuid.uuid4()))
        path = path.replace("{reaction}", "like")
        return f"{path}?{self.query}" if self.query else path

    @property
    def has_id(self) -> bool:
        return "{id}" in self.path

    @property
    def has_message_id(self) -> bool:
        return "{message_id}" in self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# Every authenticated route of the app; test_http_auth checks that none is missing.
ROUTES: tuple[Route, ...] = (
    Route("POST", "/conversations", {"title": "from the route table"}),
    Route("GET", "/conversations"),
    Route("GET", "/conversations/{id}"),
    Route("PUT", "/conversations/{id}", {"title": "taken over", "status": "archived"}),
    Route("DELETE", "/conversations/{id}"),
    Route("POST", "/conversations/{id}/messages", {"content": "whose conversation is this?"}),
    Route("GET", "/conversations/{id}/messages"),
    Route("POST", "/conversations/{id}/messages/stream", {"content": "stream it to whom?"}),
    Route("POST", "/conversations/{id}/messages/{message_id}/regenerate", {"temperature": 0.5}),
    Route("GET", "/conversations/{id}/usage"),
    Route("GET", "/usage/summary"),
    Route("GET", "/usage/stats"),
    Route("GET", "/usage/system", admin=True),
    Route("GET", "/conversations/{id}/suggestions"),
    Route("POST", "/assessment/from-assessment", {"assessment_id": "a-result-of-someone"}),
    Route("GET", "/conversations/search", query="q=secret+plans"),
    Route("GET", "/conversations/{id}/export", query="format=md"),
    Route("POST", "/conversations/{id}/messages/{message_id}/reactions", {"reaction": "like"}),
    Route("GET", "/conversations/{id}/messages/{message_id}/reactions"),
    Route("DELETE", "/conversations/{id}/messages/{message_id}/reactions/{reaction}"),
)
ID_ROUTES = tuple(r for r in ROUTES if r.has_id)
BODY_ROUTES = tuple(r for r in ROUTES if r.body is not None)


def route_templates(app: ChatcoreApp) -> set[tuple[str, str]]:
    """``(method, path)`` of every authenticated handler, path params written ``{id}``."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if route.path.startswith(PUBLIC_PREFIXES):
            continue
        path = re.sub(r"\{conversation_id(:\w+)?\}", "{id}", route.path)
        path = re.sub(r"\{message_id(:\w+)?\}", "{message_id}", path)
        path = re.sub(r"\{reaction(:\w+)?\}", "{reaction}", path)
        for method in getattr(route, "methods", ()):
            if method not in {"OPTIONS", "HEAD"}:
                found.add((method, path))
    return found


def make_settings(data_dir: Path, **env: str) -> Settings:
    return load_settings({"JWT_SECRET": SECRET, "CHATCORE_DATA_DIR": str(data_dir), **env})


def token_for(settings: Settings, user_id: uuid.UUID, **kwargs: Any) -> str:
    return issue_token(
        secret=SECRET,
        user_id=user_id,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        **kwargs,
    )


def claims_for(settings: Settings, user_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    """A valid claim set; an override of ``None`` removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "id": str(user_id),
        "type": "user",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error envelope with ``status`` and ``code``; returns ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    assert response.headers.get("x-request-id")
    return error


def assert_ok(response: httpx.Response, status: int = 200) -> Any:
    """The success envelope with ``status``; returns ``data``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "message", "data"}, body
    assert body["success"] is True
    assert isinstance(body["message"], str)
    assert response.headers.get("x-request-id")
    return body["data"]


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """The frames of a server-sent-events body, in order: ``(event, data)`` with the
    JSON ``data`` decoded, and ``(":", text)`` for a comment line."""
    assert text.endswith("\n\n"), f"the stream does not end with a whole frame: {text[-80:]!r}"
    frames: list[tuple[str, Any]] = []
    for block in text.removesuffix("\n\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                frames.append((":", line[1:].strip()))
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
            else:
                raise AssertionError(f"not an SSE line: {line!r}")
        if data:
            frames.append((event, json.loads("\n".join(data))))
    return frames


@dataclass
class User:
    """A caller with its own user id and token."""

    api: Api
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    admin: bool = False

    @property
    def headers(self) -> dict[str, str]:
        token = token_for(self.api.settings, self.id, admin=self.admin)
        return {"Authorization": f"Bearer {token}"}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.api.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        data: dict[str, Any] = assert_ok(self.post("/conversations", json=body), 201)
        return data

    def send(self, conversation_id: str, content: str, **body: Any) -> dict[str, Any]:
        response = self.post(
            f"/conversations/{conversation_id}/messages", json={"content": content, **body}
        )
        data: dict[str, Any] = assert_ok(response, 201)
        return data

    def stream(self, conversation_id: str, content: str, **body: Any) -> httpx.Response:
        """POST to the stream route (the whole response, read to its end)."""
        return self.post(
            f"/conversations/{conversation_id}/messages/stream", json={"content": content, **body}
        )

    def conversation(self, conversation_id: str, **params: Any) -> dict[str, Any]:
        data: dict[str, Any] = assert_ok(
            self.get(f"/conversations/{conversation_id}", params=params)
        )
        return data

    def messages(self, conversation_id: str, **params: Any) -> list[dict[str, Any]]:
        data = assert_ok(self.get(f"/conversations/{conversation_id}/messages", params=params))
        messages: list[dict[str, Any]] = data["messages"]
        return messages

    def all_pages(self, url: str, key: str, limit: int) -> list[dict[str, Any]]:
        """Follow ``next_cursor`` to the end; returns every item in order."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": limit}
        for _ in range(1000):
            data = assert_ok(self.get(url, params=params))
            page = data[key]
            pagination = data["pagination"]
            assert pagination["limit"] == limit
            assert len(page) <= limit
            assert pagination["has_more"] is (pagination["next_cursor"] is not None)
            items.extend(page)
            if pagination["next_cursor"] is None:
                return items
            assert len(page) == limit
            params = {"limit": limit, "cursor": pagination["next_cursor"]}
        raise AssertionError("pagination never ended")


@dataclass
class Api:
    """One running app."""

    client: TestClient[ChatcoreApp]
    settings: Settings

    @property
    def app(self) -> ChatcoreApp:
        return cast(ChatcoreApp, self.client.app)

    @property
    def container(self) -> Container:
        container: Container = self.app.state.container
        return container

    def user(self, user_id: uuid.UUID | None = None, *, admin: bool = False) -> User:
        return User(self, user_id or uuid.uuid4(), admin)

    def archive_result(self, owner: uuid.UUID, result_id: str | None = None) -> str:
        """Put a completed result of ``owner`` (the v2 fixture) in the in-memory archive."""
        source = self.container.assessment_source
        assert isinstance(source, InMemoryAssessmentSource)
        data = {**load_fixture("archive_result_v2.json")["data"], "user_id": str(owner)}
        data["id"] = result_id or f"result-{uuid.uuid4()}"
        source.add(msgspec.convert(data, ArchiveResult))
        return str(data["id"])


def running_api(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    container: Container | None = None,
    **overrides: Any,
) -> Iterator[Api]:
    """Start the app (in-memory storage unless ``uow`` is given) and yield an :class:`Api`."""
    settings = container.settings if container else make_settings(data_dir, **(env or {}))
    if container is None:
        overrides.setdefault("uow", InMemoryUnitOfWorkFactory())
        overrides.setdefault("source", InMemoryAssessmentSource())
        app = create_app(settings, **overrides)
    else:
        app = create_app(settings, container=container)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, settings)
