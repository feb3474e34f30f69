"""Bad input everywhere, request ids, internal errors, a database that goes away, logs."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from adapters.memory import (
    InMemorySystemUsageReader,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
)
from chatcore.models import ChatReply, ChatRequest, StreamEvent
from entrypoints.http.middleware import RequestContext
from entrypoints.logs import configure_logging
from entrypoints.metrics import Metrics
from tests.unit.conftest import MakeApi
from tests.unit.http_support import (
    BODY_ROUTES,
    ID_ROUTES,
    Api,
    Route,
    User,
    assert_error,
    assert_ok,
)


@pytest.fixture
def user(shared_api: Api) -> User:
    return shared_api.user()


@pytest.fixture
def cid(user: User) -> str:
    conversation_id: str = user.create(title="target")["id"]
    return conversation_id


# --- bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@pytest.mark.parametrize(
    "body", [b"{bad", b'{"content": "x",}', b"\xff\xfe", b'{"content": "unterminated'], ids=repr
)
def test_malformed_json_is_400(user: User, cid: str, route: Route, body: bytes) -> None:
    response = user.request(
        route.method, route.url(cid), content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@pytest.mark.parametrize("body", [[], "text", 42, True], ids=repr)
def test_a_body_that_is_not_an_object_is_400(user: User, cid: str, route: Route, body: Any) -> None:
    assert_error(user.request(route.method, route.url(cid), json=body), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (Route("POST", "/conversations"), {"title": 5}),
        (Route("POST", "/conversations"), {"title": ["a"]}),
        (Route("POST", "/conversations"), {"context_data": "x"}),
        (Route("POST", "/conversations"), {"metadata": [1]}),
        (Route("POST", "/conversations"), {"profilePersona": "persona"}),
        (Route("POST", "/conversations"), {"resultsId": 7}),
        (Route("PUT", "/conversations/{id}"), {"title": 5}),
        (Route("PUT", "/conversations/{id}"), {"status": 1}),
        (Route("PUT", "/conversations/{id}"), {"metadata": "x"}),
        (Route("PUT", "/conversations/{id}"), {"context_data": [1]}),
        (Route("POST", "/conversations/{id}/messages"), {"content": 5}),
        (Route("POST", "/conversations/{id}/messages"), {"content": None}),
        (Route("POST", "/conversations/{id}/messages"), {"content": ["hi"]}),
        (Route("POST", "/conversations/{id}/messages"), {"content": "hi", "parent_message_id": 1}),
    ],
    ids=str,
)
def test_wrong_types_are_400(user: User, cid: str, route: Route, body: dict[str, Any]) -> None:
    error = assert_error(
        user.request(route.method, route.url(cid), json=body), 400, "VALIDATION_ERROR"
    )
    field = next(iter(body)) if len(body) == 1 else "parent_message_id"
    assert field in error["message"]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
def test_unknown_fields_are_400(user: User, cid: str, route: Route) -> None:
    body = {**(route.body or {}), "surprise": True}
    error = assert_error(
        user.request(route.method, route.url(cid), json=body), 400, "VALIDATION_ERROR"
    )
    assert "surprise" in error["message"]


def test_nothing_is_changed_by_a_refused_update(user: User, cid: str) -> None:
    response = user.put(f"/conversations/{cid}", json={"title": "new", "surprise": 1})
    assert_error(response, 400, "VALIDATION_ERROR")
    assert user.conversation(cid)["title"] == "target"


NUL = "a\x00b"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (Route("POST", "/conversations/{id}/messages"), {"content": NUL}),
        (Route("POST", "/conversations"), {"title": NUL}),
        (Route("POST", "/conversations"), {"metadata": {"k": NUL}}),
        (Route("POST", "/conversations"), {"metadata": {NUL: 1}}),
        (Route("POST", "/conversations"), {"context_data": {"k": [{"deep": NUL}]}}),
        (Route("POST", "/conversations"), {"profilePersona": {"name": NUL}}),
        (Route("POST", "/conversations"), {"resultsId": NUL}),
        (Route("PUT", "/conversations/{id}"), {"title": NUL}),
        (Route("PUT", "/conversations/{id}"), {"metadata": {"k": [NUL]}}),
        (Route("PUT", "/conversations/{id}"), {"context_data": {NUL: {}}}),
    ],
    ids=str,
)
def test_a_nul_character_anywhere_is_400(
    user: User, cid: str, route: Route, body: dict[str, Any]
) -> None:
    # PostgreSQL stores U+0000 in neither text nor jsonb: without this check the
    # database would refuse it and the client would get a 500.
    response = user.request(route.method, route.url(cid), json=body)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "U+0000" in error["message"]
    assert user.conversation(cid)["title"] == "target"
    assert user.messages(cid) == []


def test_text_that_merely_mentions_a_nul_escape_is_fine(user: User, cid: str) -> None:
    sent = user.send(cid, "what does \\u0000 mean in JSON?")
    assert sent["user_message"]["content"] == "what does \\u0000 mean in JSON?"


def _nested(levels: int) -> bytes:
    """A metadata value of ``levels`` nested containers (the metadata object included)."""
    inner = levels - 1
    return b'{"metadata": {"a": ' + b"[" * inner + b"]" * inner + b"}}"


@pytest.mark.parametrize("route", [r for r in BODY_ROUTES if "messages" not in r.path], ids=str)
@pytest.mark.parametrize("levels", [33, 200, 999, 5_000, 100_000])
def test_json_nested_too_deeply_is_400(user: User, cid: str, route: Route, levels: int) -> None:
    response = user.request(
        route.method,
        route.url(cid),
        content=_nested(levels),
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "VALIDATION_ERROR")


def test_json_nested_32_levels_is_fine(user: User) -> None:
    response = user.post(
        "/conversations", content=_nested(32), headers={"content-type": "application/json"}
    )
    data = assert_ok(response, 201)
    assert user.conversation(data["id"])["metadata"] == data["metadata"]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (Route("PUT", "/conversations/{id}"), None),
        (Route("POST", "/conversations/{id}/messages"), None),
        (Route("POST", "/conversations/{id}/messages"), {}),
    ],
    ids=str,
)
def test_a_missing_required_body_is_400(
    user: User, cid: str, route: Route, body: dict[str, Any] | None
) -> None:
    response = user.request(route.method, route.url(cid), json=body)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "'data'" not in error["message"]  # no framework internals in the message


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (Route("POST", "/conversations"), {"context_type": "weird"}),
        (Route("POST", "/conversations"), {"context_type": "GENERAL"}),
        (Route("PUT", "/conversations/{id}"), {"status": "closed"}),
        (Route("PUT", "/conversations/{id}"), {"status": "deleted"}),
    ],
    ids=str,
)
def test_unknown_enum_values_in_bodies_are_400(
    user: User, cid: str, route: Route, body: dict[str, Any]
) -> None:
    assert_error(user.request(route.method, route.url(cid), json=body), 400, "VALIDATION_ERROR")
    assert user.conversation(cid)["status"] == "active"


@pytest.mark.parametrize(
    "query", ["status=deleted", "status=closed", "context_type=weird", "status="], ids=str
)
def test_unknown_enum_values_in_the_list_filter_are_400(user: User, query: str) -> None:
    assert_error(user.get(f"/conversations?{query}"), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("route", [r for r in BODY_ROUTES if "messages" not in r.path], ids=str)
def test_a_title_over_255_characters_is_400(
    shared_api: Api, user: User, cid: str, route: Route
) -> None:
    extra: dict[str, str] = {}
    if route.path == "/assessment/from-assessment":
        extra = {"assessment_id": shared_api.archive_result(user.id)}
    response = user.request(route.method, route.url(cid), json={"title": "t" * 256, **extra})
    assert_error(response, 400, "VALIDATION_ERROR")
    ok = user.request(route.method, route.url(cid), json={"title": "t" * 255, **extra})
    assert ok.status_code in {200, 201}


@pytest.mark.parametrize("title", ["", "   "])
def test_an_empty_title_is_400(user: User, title: str) -> None:
    assert_error(user.post("/conversations", json={"title": title}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_id_in_the_path_is_400(user: User, route: Route, bad_id: str) -> None:
    response = user.request(route.method, route.url(bad_id), json=route.body)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "conversation_id" in error["message"]


@pytest.mark.parametrize("route", [r for r in ID_ROUTES if r.has_message_id], ids=str)
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_message_id_in_the_path_is_400(
    user: User, cid: str, route: Route, bad_id: str
) -> None:
    response = user.request(route.method, route.url(cid, bad_id), json=route.body)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "message_id" in error["message"]


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
def test_a_malformed_id_from_an_anonymous_caller_is_401(api: Api, route: Route) -> None:
    response = api.client.request(route.method, route.url("nope", "nope"))
    assert_error(response, 401, "UNAUTHORIZED")


# --- queries --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "101", "-1", "abc", "1.5", ""])
def test_a_bad_conversation_list_limit_is_400(user: User, value: str) -> None:
    error = assert_error(user.get(f"/conversations?limit={value}"), 400, "VALIDATION_ERROR")
    assert "limit" in error["message"]


@pytest.mark.parametrize("value", ["0", "201", "-1", "abc"])
def test_a_bad_message_list_limit_is_400(user: User, cid: str, value: str) -> None:
    response = user.get(f"/conversations/{cid}/messages?limit={value}")
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("value", ["0", "201", "-5", "many"])
def test_a_bad_message_limit_is_400(user: User, cid: str, value: str) -> None:
    response = user.get(f"/conversations/{cid}?include_messages=true&message_limit={value}")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "message_limit" in error["message"]


def test_message_limit_200_is_allowed(user: User, cid: str) -> None:
    assert user.conversation(cid, include_messages="true", message_limit=200)["messages"] == []


@pytest.mark.parametrize(
    "query", ["include_messages=maybe", "page=0", "page=x", "page=-2"], ids=str
)
def test_other_bad_query_values_are_400(user: User, cid: str, query: str) -> None:
    url = f"/conversations/{cid}" if "include" in query else f"/conversations?{query}"
    if "include" in query:
        url += f"?{query}"
    assert_error(user.get(url), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "cursor",
    [
        "zzz",
        "!!!!",
        "a" * 65,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "f" * 32,  # decodes to 24 bytes whose timestamp is far out of range
    ],
    ids=str,
)
@pytest.mark.parametrize("path", ["/conversations", "/conversations/{id}/messages"])
def test_a_malformed_cursor_is_400(user: User, cid: str, path: str, cursor: str) -> None:
    response = user.get(path.replace("{id}", cid), params={"cursor": cursor})
    assert_error(response, 400, "VALIDATION_ERROR")


# --- sizes and content types ----------------------------------------------------------


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
def test_a_body_of_several_megabytes_is_413(user: User, cid: str, route: Route) -> None:
    body = json.dumps({"content": "x" * 3_000_000}).encode()
    response = user.request(
        route.method, route.url(cid), content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert user.messages(cid) == []


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
def test_a_chunked_body_without_content_length_is_413_when_too_large(
    user: User, cid: str, route: Route
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(300):
            yield b"x" * 10_000
        yield b'"}'

    response = user.request(
        route.method, route.url(cid), content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_small_chunked_body_is_accepted(user: User, cid: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": '
        yield b'"chunked hello"}'

    response = user.post(
        f"/conversations/{cid}/messages",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert assert_ok(response, 201)["user_message"]["content"] == "chunked hello"


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"content=hi&title=x"),
        ("text/plain", b"hello there"),
        ("application/xml", b"<content>hi</content>"),
    ],
)
def test_a_body_that_is_not_json_is_400(
    user: User, cid: str, route: Route, content_type: str, body: bytes
) -> None:
    response = user.request(
        route.method, route.url(cid), content=body, headers={"content-type": content_type}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


def test_a_multipart_upload_is_400(user: User, cid: str) -> None:
    response = user.post(
        f"/conversations/{cid}/messages", files={"file": ("cv.pdf", b"%PDF-1.4", "application/pdf")}
    )
    assert_error(response, 400, "VALIDATION_ERROR")
    assert user.messages(cid) == []


# --- unknown routes and methods -------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/conversations/x/y/z", "/api/chatbot/conversations"])
def test_an_unknown_path_is_404_with_the_envelope(api: Api, path: str) -> None:
    assert_error(api.client.get(path), 404, "NOT_FOUND")


def test_an_unsupported_method_is_405_with_the_envelope(user: User, cid: str) -> None:
    response = user.request("PATCH", f"/conversations/{cid}", json={"title": "x"})
    assert_error(response, 405, "METHOD_NOT_ALLOWED")


# --- X-Request-ID ---------------------------------------------------------------------


def _requests_of_every_kind(api: Api, user: User, cid: str) -> dict[str, Any]:
    return {
        "200": user.get("/conversations"),
        "201": user.post("/conversations", json={}),
        "400": user.post("/conversations", content=b"{bad"),
        "401": api.client.get("/conversations"),
        "404 unknown path": api.client.get("/nowhere"),
        "404 conversation": user.get(f"/conversations/{uuid.uuid4()}"),
        "413": user.post(f"/conversations/{cid}/messages", content=b"x" * 3_000_000),
        "health": api.client.get("/health/live"),
        "metrics": api.client.get("/metrics"),
    }


def test_every_response_carries_a_generated_request_id(api: Api, user: User, cid: str) -> None:
    responses = _requests_of_every_kind(api, user, cid)
    seen: set[str] = set()
    for kind, response in responses.items():
        rid = response.headers.get("x-request-id")
        assert rid, kind
        assert len(rid) >= 16, kind
        seen.add(rid)
    assert len(seen) == len(responses)  # a fresh one each time


@pytest.mark.parametrize(
    "given", ["abc-123", "req.42:7_x", "0b7f6a52-51f4-4d4e-9a51-1d6f6f0c2a11", "A" * 128]
)
def test_a_valid_request_id_is_echoed(api: Api, user: User, given: str) -> None:
    for response in (
        user.get("/conversations", headers={"X-Request-ID": given}),
        api.client.get("/conversations", headers={"X-Request-ID": given}),
        api.client.get("/nowhere", headers={"X-Request-ID": given}),
    ):
        assert response.headers["x-request-id"] == given


@pytest.mark.parametrize("junk", ["a" * 500, "a b", "<script>", "é", "a;b", "A" * 129])
def test_a_junk_request_id_is_replaced(user: User, junk: str) -> None:
    response = user.get("/conversations", headers={"X-Request-ID": junk.encode()})
    rid = response.headers["x-request-id"]
    assert rid != junk
    assert rid.isalnum()
    assert len(rid) <= 128


@pytest.mark.parametrize(
    "raw", [b"a\nb", b"a\r\nX-Injected: 1", b"", b"a\x00b", b"\xff\xfe", b" padded "]
)
def test_request_ids_with_control_characters_are_replaced(raw: bytes) -> None:
    rid = RequestContext.request_id([(b"x-request-id", raw)])
    assert rid.encode() != raw
    assert rid.isalnum()


def test_the_first_valid_request_id_header_wins() -> None:
    headers = [(b"x-request-id", b"bad id"), (b"x-request-id", b"good-id")]
    assert RequestContext.request_id(headers) == "good-id"


# --- 500 ------------------------------------------------------------------------------


class ExplodingModel:
    """A bug in a model adapter: not a ModelError, a plain crash."""

    async def complete(self, request: ChatRequest) -> ChatReply:
        raise RuntimeError("kaboom: secret-internal-detail at line 42")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        raise RuntimeError("kaboom: secret-internal-detail at line 42")
        yield  # type: ignore[unreachable]  # makes this an async generator


@pytest.mark.usefixtures("restore_logging")
def test_an_unexpected_error_is_500_with_the_request_id_and_no_trace(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    user = make_api(model=ExplodingModel()).user()
    cid = user.create()["id"]
    response = user.post(f"/conversations/{cid}/messages", json={"content": "hi"})
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert error["details"] == {"request_id": response.headers["x-request-id"]}
    for leak in ("kaboom", "secret-internal-detail", "Traceback", "RuntimeError", ".py"):
        assert leak not in response.text
    given = user.post(
        f"/conversations/{cid}/messages",
        json={"content": "hi"},
        headers={"X-Request-ID": "support-ticket-1"},
    )
    assert assert_error(given, 500, "INTERNAL_ERROR")["details"] == {
        "request_id": "support-ticket-1"
    }
    # The service keeps serving.
    assert_ok(user.get(f"/conversations/{cid}"))
    # The trace is in the log line that carries the request id.
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    crashes = [line for line in logged if line["event"] == "unhandled error"]
    assert {line["request_id"] for line in crashes} == {
        response.headers["x-request-id"],
        "support-ticket-1",
    }
    assert all("kaboom" in line["exception"] for line in crashes)


# --- a database that goes away --------------------------------------------------------


class FlakyUnitOfWork:
    def __init__(self, factory: FlakyDatabase, inner: InMemoryUnitOfWork) -> None:
        self._factory = factory
        self._inner = inner

    async def __aenter__(self) -> InMemoryUnitOfWork:
        if self._factory.error is not None:
            raise self._factory.error
        return await self._inner.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)


class FlakyDatabase:
    """The in-memory store behind a switch: set ``error`` and every unit of work fails."""

    def __init__(self) -> None:
        self.inner = InMemoryUnitOfWorkFactory()
        self.error: BaseException | None = None

    def __call__(self, user_id: uuid.UUID) -> FlakyUnitOfWork:
        return FlakyUnitOfWork(self, self.inner(user_id))


class _PostgresError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _refused(sqlstate: str, message: str) -> DBAPIError:
    return DBAPIError("connect", {}, _PostgresError(sqlstate, message))


DATABASE_ERRORS: dict[str, Callable[[], Exception]] = {
    "OperationalError": lambda: OperationalError(
        "SELECT 1", {}, ConnectionError("connection refused")
    ),
    "InterfaceError": lambda: InterfaceError("SELECT 1", {}, ConnectionError("connection closed")),
    "OSError": lambda: OSError(113, "No route to host"),
    "ConnectionRefusedError": lambda: ConnectionRefusedError(111, "Connection refused"),
    # PostgreSQL refusing a new connection: every slot taken (53300), shutting down
    # (57P01), still starting (57P03); the driver raises them as a generic DBAPIError.
    "too many clients": lambda: _refused("53300", "sorry, too many clients already"),
    "shutting down": lambda: _refused("57P01", "terminating connection due to shutdown"),
    "starting up": lambda: _refused("57P03", "the database system is starting up"),
}


@pytest.mark.parametrize("kind", list(DATABASE_ERRORS))
def test_a_database_that_goes_away_is_503_then_recovers(make_api: MakeApi, kind: str) -> None:
    database = FlakyDatabase()
    user = make_api(
        uow=database, system_usage=InMemorySystemUsageReader(database.inner.store)
    ).user()
    cid = user.create()["id"]
    answer = user.send(cid, "before the outage")["assistant_message"]["id"]
    database.error = DATABASE_ERRORS[kind]()
    for route in (
        Route("GET", "/conversations"),
        Route("POST", "/conversations", {}),
        Route("GET", "/conversations/{id}"),
        Route("PUT", "/conversations/{id}", {"title": "x"}),
        Route("DELETE", "/conversations/{id}"),
        Route("POST", "/conversations/{id}/messages", {"content": "hi"}),
        Route("GET", "/conversations/{id}/messages"),
        Route("POST", "/conversations/{id}/messages/stream", {"content": "hi"}),
        Route("POST", "/conversations/{id}/messages/{message_id}/regenerate", {}),
        Route("GET", "/conversations/{id}/usage"),
        Route("GET", "/usage/summary"),
        Route("GET", "/usage/stats"),
    ):
        response = user.request(route.method, route.url(cid, answer), json=route.body)
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert response.headers["retry-after"].isdigit()
        assert "refused" not in response.text
        assert "No route" not in response.text
    database.error = None
    assert_ok(user.get(f"/conversations/{cid}"))
    assert user.conversation(cid)["title"] != "x"
    user.send(cid, "back again")


# --- logs -----------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_are_json_with_the_request_id(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    api = make_api(model=ExplodingModel())
    user = api.user()
    capsys.readouterr()

    ok = user.post("/conversations", json={}, headers={"X-Request-ID": "trace-ok-1"})
    cid = ok.json()["data"]["id"]
    failed = user.post(
        f"/conversations/{cid}/messages",
        json={"content": "hi"},
        headers={"X-Request-ID": "trace-500-1"},
    )
    assert failed.status_code == 500
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines
    by_rid: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        assert "event" in line
        assert "level" in line
        by_rid.setdefault(line.get("request_id", ""), []).append(line)
    access = [line for line in by_rid["trace-ok-1"] if line["event"] == "request"]
    assert access
    assert access[0]["status"] == 201
    assert access[0]["route"] == "/conversations"
    assert any(
        line["event"] == "request" and line["status"] == 500 for line in by_rid["trace-500-1"]
    )
    # The tokens never reach the logs.
    assert "Bearer" not in err
    assert user.headers["Authorization"].split()[1] not in err


def test_metrics_label_unknown_paths_without_the_path(api: Api) -> None:
    api.client.get(f"/nowhere/{uuid.uuid4()}")
    text = api.client.get("/metrics").text
    assert 'route="unmatched"' in text
    assert "/nowhere" not in text


def test_a_metrics_registry_belongs_to_its_app() -> None:
    one, two = Metrics(), Metrics()
    one.observe_request("GET", "/x", 200, 0.01)
    assert b'route="/x"' in one.render()
    assert b'route="/x"' not in two.render()
