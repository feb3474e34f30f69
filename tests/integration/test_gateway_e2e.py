"""The model gateway end to end: the real HTTP app, served by uvicorn with the settings
of ``chatcore serve`` (``entrypoints.server.server_config``) on a real socket, with the
real OpenRouter adapter talking to the fake OpenRouter over real HTTP.

Everything here runs in the test's event loop: the fake OpenRouter, the uvicorn server
with the app (whose lifespan builds the container: settings → OpenRouter adapter →
gateway) and the httpx client playing the browser. Storage is in memory except in the
PostgreSQL test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from adapters.memory import (
    InMemorySystemUsageReader,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
)
from chatcore.clock import FakeClock
from chatcore.domain import UsageRecord
from entrypoints.auth import issue_token
from entrypoints.bootstrap import Container
from entrypoints.http.app import ChatcoreApp, create_app
from entrypoints.settings import Settings, load_settings
from tests.fakes.openrouter import (
    Empty,
    Fail,
    FakeOpenRouter,
    Hang,
    MidStreamError,
    Reply,
    Slow,
)
from tests.integration.served import serving

KEY = "sk-or-e2e-test-key"
SECRET = "e2e-jwt-secret-0123456789abcdefghij"
PRIMARY = "vendor/primary-model:free"
FALLBACK = "vendor/fallback-model:free"
PAID = "openai/gpt-4o-mini"


# --- the stack ------------------------------------------------------------------------


@dataclass
class Stack:
    """The served app, its container, and an HTTP client for it."""

    url: str
    app: ChatcoreApp
    settings: Settings
    http: httpx.AsyncClient

    @property
    def container(self) -> Container:
        container: Container = self.app.state.container
        return container

    def headers(self, user: uuid.UUID, *, admin: bool = False) -> dict[str, str]:
        token = issue_token(
            secret=SECRET,
            user_id=user,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            admin=admin,
        )
        return {"Authorization": f"Bearer {token}"}

    async def conversation(self, user: uuid.UUID) -> str:
        response = await self.http.post("/conversations", json={}, headers=self.headers(user))
        assert response.status_code == 201, response.text
        cid: str = response.json()["data"]["id"]
        return cid

    async def send(self, user: uuid.UUID, cid: str, content: str) -> httpx.Response:
        return await self.http.post(
            f"/conversations/{cid}/messages", json={"content": content}, headers=self.headers(user)
        )

    async def stream(self, user: uuid.UUID, cid: str, content: str) -> httpx.Response:
        return await self.http.post(
            f"/conversations/{cid}/messages/stream",
            json={"content": content},
            headers=self.headers(user),
        )

    async def messages(self, user: uuid.UUID, cid: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/conversations/{cid}/messages",
            params={"include_usage": "true"},
            headers=self.headers(user),
        )
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["data"]["messages"]
        return messages

    async def usage_record(self, user: uuid.UUID, message_id: str) -> UsageRecord:
        """The usage ledger's row of one answer, read through the app's own storage."""
        async with self.container.uow(user) as uow:
            records = await uow.usage.for_messages([uuid.UUID(message_id)])
        return records[uuid.UUID(message_id)]


def model_env(fake: FakeOpenRouter, **extra: str) -> dict[str, str]:
    return {
        "OPENROUTER_API_KEY": KEY,
        "OPENROUTER_BASE_URL": fake.base_url,
        "DEFAULT_MODEL": PRIMARY,
        "FALLBACK_MODEL": FALLBACK,
        "HTTP_REFERER": "https://chatcore.test",
        "X_TITLE": "chatcore e2e",
        "OPENROUTER_TIMEOUT": "5000",
        **extra,
    }


StartStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    async with FakeOpenRouter(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
async def start(fake: FakeOpenRouter, tmp_path: Path) -> AsyncIterator[StartStack]:
    """``await start(env={...}, **overrides)``: the app on the fake, served; in-memory
    storage unless ``DATABASE_URL`` is in ``env``."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(env: dict[str, str] | None = None, **overrides: Any) -> Stack:
            variables = {
                "JWT_SECRET": SECRET,
                "CHATCORE_DATA_DIR": str(tmp_path),
                **model_env(fake),
                **(env or {}),
            }
            settings = load_settings(variables)
            if "DATABASE_URL" not in variables:
                overrides.setdefault("uow", InMemoryUnitOfWorkFactory())
            app = create_app(settings, log_defaults=False, **overrides)
            url = (await stack.enter_async_context(serving(app))).url
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            return Stack(url, app, settings, http)

        yield make


def sse(text: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of an SSE body, comments left out."""
    frames: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        event = next(line[7:] for line in lines if line.startswith("event: "))
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        frames.append((event, json.loads(data)))
    return frames


async def events_as_they_come(
    response: httpx.Response,
) -> AsyncGenerator[tuple[str, Any], None]:
    """The SSE events of a streamed response, each as soon as its last line arrived."""
    buffer = ""
    async for piece in response.aiter_text():
        buffer += piece
        *blocks, buffer = buffer.split("\n\n")
        for event in sse("\n\n".join(blocks) + "\n\n"):
            yield event


def deltas(frames: list[tuple[str, Any]]) -> str:
    return "".join(data["delta"] for name, data in frames if name == "assistant_chunk")


def models_asked(fake: FakeOpenRouter) -> list[str]:
    return [request.model for request in fake.requests]


# --- whole answers --------------------------------------------------------------------


async def test_a_whole_answer_through_openrouter(start: StartStack, fake: FakeOpenRouter) -> None:
    fake.script(PRIMARY, Reply("Data science suits your analytical profile.", cost=0.0))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    response = await stack.send(user, cid, "Karier apa yang cocok untukku?")

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["model"] == PRIMARY
    answer = data["assistant_message"]
    assert answer["content"] == "Data science suits your analytical profile."
    assert answer["metadata"]["model"] == PRIMARY
    assert answer["metadata"]["finish_reason"] == "stop"
    assert "fallback_from" not in answer["metadata"]
    assert data["usage"]["completion_tokens"] == 6
    assert data["usage"]["prompt_tokens"] > 0
    assert data["usage"]["is_free_model"] is True
    # What OpenRouter was sent.
    (request,) = fake.requests
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["http-referer"] == "https://chatcore.test"
    assert request.headers["x-title"] == "chatcore e2e"
    assert request.body["model"] == PRIMARY
    assert request.body["stream"] is False
    assert request.body["max_tokens"] == 1000
    assert request.body["temperature"] == 0.3
    assert request.messages[0]["role"] == "system"
    assert request.messages[-1]["role"] == "user"
    assert "Karier apa yang cocok untukku?" in request.messages[-1]["content"]

    # Never in process: the question is committed before OpenRouter is asked (0018).
    assert not stack.container.gateway.in_process
    record = await stack.usage_record(user, answer["id"])
    assert record.model_used == PRIMARY
    assert record.usage.completion_tokens == 6
    assert record.usage.prompt_tokens == data["usage"]["prompt_tokens"]
    assert record.usage.cost == 0
    assert record.attempts == (f"{PRIMARY}: answered",)
    assert record.fell_back is False
    assert record.time_to_first_token_ms is not None
    assert record.time_to_first_token_ms >= 0


async def test_a_429_falls_back_and_the_primary_cools_down(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    fake.script(PRIMARY, Fail(429, retry_after=30))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    first = await stack.send(user, cid, "one")
    assert first.status_code == 201, first.text
    data = first.json()["data"]
    assert data["model"] == FALLBACK
    assert data["assistant_message"]["metadata"]["fallback_from"] == [PRIMARY]
    assert models_asked(fake) == [PRIMARY, FALLBACK]
    record = await stack.usage_record(user, data["assistant_message"]["id"])
    assert record.attempts == (f"{PRIMARY}: failed (rate_limited)", f"{FALLBACK}: answered")
    assert record.fell_back is True
    assert record.model_used == FALLBACK

    # Within the Retry-After the primary is not asked at all.
    second = await stack.send(user, cid, "two")
    assert second.status_code == 201, second.text
    assert second.json()["data"]["model"] == FALLBACK
    assert models_asked(fake) == [PRIMARY, FALLBACK, FALLBACK]
    record = await stack.usage_record(user, second.json()["data"]["assistant_message"]["id"])
    assert record.attempts[0].startswith(f"{PRIMARY}: skipped (cooling down for ")
    assert record.attempts[1] == f"{FALLBACK}: answered"
    # The stream route skips it too.
    frames = sse((await stack.stream(user, cid, "three")).text)
    assert frames[-1][1]["model"] == FALLBACK
    assert models_asked(fake) == [PRIMARY, FALLBACK, FALLBACK, FALLBACK]

    summary = await stack.http.get("/usage/summary", headers=stack.headers(user))
    totals = summary.json()["data"]["totals"]
    assert (totals["requests"], totals["fallback_requests"]) == (3, 3)
    assert totals["fallback_rate"] == 1


@pytest.mark.parametrize("route", ["messages", "stream"])
async def test_an_empty_reply_falls_back(
    start: StartStack, fake: FakeOpenRouter, route: str
) -> None:
    fake.script(PRIMARY, Empty())
    fake.script(FALLBACK, Reply("Here is a real answer."))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)
    if route == "messages":
        response = await stack.send(user, cid, "hello")
        assert response.status_code == 201, response.text
        answer = response.json()["data"]["assistant_message"]
    else:
        frames = sse((await stack.stream(user, cid, "hello")).text)
        assert [frames[0][0], frames[-1][0]] == ["user_message", "complete"]
        answer = frames[-1][1]["assistant_message"]
        assert deltas(frames) == answer["content"]
    assert answer["content"] == "Here is a real answer."
    assert answer["metadata"]["model"] == FALLBACK
    assert models_asked(fake) == [PRIMARY, FALLBACK]
    record = await stack.usage_record(user, answer["id"])
    assert record.attempts == (f"{PRIMARY}: failed (empty_reply)", f"{FALLBACK}: answered")


async def test_a_prompt_over_the_context_window_is_trimmed_and_sent_once_more(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    stack = await start(env={"MAX_TOKENS": "50"})
    user = uuid.uuid4()
    cid = await stack.conversation(user)
    for n in range(3):
        assert (await stack.send(user, cid, f"question {n} " + "x" * 1400)).status_code == 201
    # The primary's window turns out smaller than the next prompt.
    limit = fake.requests[-1].prompt_tokens + 50
    fake.context_lengths[PRIMARY] = limit

    response = await stack.send(user, cid, "the last question " + "y" * 1400)

    assert response.status_code == 201, response.text
    answer = response.json()["data"]["assistant_message"]
    assert answer["metadata"]["model"] == PRIMARY
    refused, retried = fake.requests[-2:]
    assert (refused.model, retried.model) == (PRIMARY, PRIMARY)
    assert isinstance(refused.behaviour, Fail)
    assert refused.behaviour.status == 400
    assert refused.prompt_tokens > limit
    # Trimmed, not resent unchanged: the oldest history went, the question stayed.
    assert retried.prompt_tokens <= limit
    assert len(retried.messages) < len(refused.messages)
    assert retried.messages[0] == refused.messages[0]
    assert retried.messages[-1] == refused.messages[-1]
    record = await stack.usage_record(user, answer["id"])
    assert record.attempts == (f"{PRIMARY}: failed (context_too_long)", f"{PRIMARY}: answered")

    # The window is remembered: the next prompt is trimmed before it is sent.
    sent = len(fake.requests)
    assert (await stack.send(user, cid, "one more " + "z" * 1400)).status_code == 201
    assert len(fake.requests) == sent + 1
    assert fake.requests[-1].prompt_tokens <= limit


async def test_every_model_failing_is_503_and_the_question_is_kept(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    fake.default(PRIMARY, Fail(503))
    fake.default(FALLBACK, Fail(502))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    response = await stack.send(user, cid, "is anyone there?")

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "AI_SERVICE_UNAVAILABLE"
    assert error["details"]["reasons"] == [
        f"{PRIMARY}: failed (unavailable)",
        f"{FALLBACK}: failed (unavailable)",
        f"{PAID}: skipped (paid models are disabled)",
    ]
    assert models_asked(fake) == [PRIMARY, FALLBACK]  # never the paid one
    stored = await stack.messages(user, cid)
    assert [(m["sender_type"], m["content"]) for m in stored] == [("user", "is anyone there?")]
    assert error["details"]["user_message_id"] == stored[0]["id"]
    assert "FakeProvider" not in response.text


# --- streams --------------------------------------------------------------------------


async def test_a_stream_end_to_end(start: StartStack, fake: FakeOpenRouter) -> None:
    text = "Based on your profile, consider research, engineering or product design."
    fake.script(PRIMARY, Reply(text, cost=0.0, chunk_bytes=5))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    response = await stack.stream(user, cid, "What should I study?")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = sse(response.text)
    names = [name for name, _ in frames]
    assert names[0] == "user_message"
    assert names[-1] == "complete"
    assert set(names[1:-1]) == {"assistant_chunk"}
    assert deltas(frames) == text
    complete = frames[-1][1]
    assert complete["model"] == PRIMARY
    assert complete["assistant_message"]["content"] == text
    assert complete["usage"]["completion_tokens"] == len(text.split(" "))
    (request,) = fake.requests
    assert request.body["stream"] is True
    assert request.headers["accept"] == "text/event-stream"

    question, answer = await stack.messages(user, cid)
    assert question["status"] == "complete"
    assert answer["status"] == "complete"
    assert answer["content"] == text
    assert answer["usage"] == complete["usage"]
    record = await stack.usage_record(user, answer["id"])
    assert record.time_to_first_token_ms is not None
    assert 0 <= record.time_to_first_token_ms <= record.processing_time_ms
    assert record.attempts == (f"{PRIMARY}: answered",)


async def test_a_stream_arrives_chunk_by_chunk(start: StartStack, fake: FakeOpenRouter) -> None:
    """Each token reaches the client when the model sends it, not in one piece at the
    end: the server does not buffer the event stream."""
    fake.script(PRIMARY, Slow(tokens=6, chunk_delay=0.15))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)
    loop = asyncio.get_running_loop()

    arrivals: list[float] = []
    async with stack.http.stream(
        "POST",
        f"/conversations/{cid}/messages/stream",
        json={"content": "one word at a time"},
        headers=stack.headers(user),
    ) as response:
        assert response.status_code == 200
        async for name, _ in events_as_they_come(response):
            if name == "assistant_chunk":
                arrivals.append(loop.time())

    assert len(arrivals) == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # 0.15 s apart at the model; delivered in one piece they would be microseconds apart.
    assert min(gaps) > 0.05, gaps
    assert arrivals[-1] - arrivals[0] > 0.5


async def test_clients_that_disconnect_one_after_another_are_each_noticed(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    """Several abandoned streams on one server, each after a request on the same
    keep-alive connection: every one cancels its model call within a second."""
    fake.default(PRIMARY, Slow(tokens=2000, chunk_delay=0.01))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)
    loop = asyncio.get_running_loop()

    for attempt in range(3):
        async with httpx.AsyncClient(base_url=stack.url, timeout=5) as browser:
            listed = await browser.get(f"/conversations/{cid}", headers=stack.headers(user))
            assert listed.status_code == 200
            async with browser.stream(
                "POST",
                f"/conversations/{cid}/messages/stream",
                json={"content": f"attempt {attempt}"},
                headers=stack.headers(user),
            ) as response:
                assert response.status_code == 200
                chunks = 0
                async for piece in response.aiter_text():
                    chunks += piece.count("event: assistant_chunk")
                    if chunks >= 2:
                        break
            closed_at = loop.time()
        disconnect = await fake.wait_for_disconnect(timeout=1.0)
        assert loop.time() - closed_at < 1.0
        assert disconnect.tokens_sent < 2000
    assert len(fake.requests) == len(fake.disconnects) == 3


async def test_a_mid_stream_error_ends_the_answer_without_fallback(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    fake.script(PRIMARY, MidStreamError(after_tokens=4))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    frames = sse((await stack.stream(user, cid, "tell me more")).text)

    names = [name for name, _ in frames]
    assert names[0] == "user_message"
    assert names[-1] == "error"
    assert set(names[1:-1]) == {"assistant_chunk"}
    assert frames[-1][1]["code"] == "STREAM_INTERRUPTED"
    assert len(fake.requests) == 1  # no fallback after the first token
    partial = deltas(frames)
    assert len(partial.split()) == 4
    _, answer = await stack.messages(user, cid)
    assert answer["status"] == "failed"
    assert answer["content"] == partial
    assert answer["metadata"]["model"] == PRIMARY
    # Cut short after its first token, the answer is in the ledger with estimated tokens.
    assert answer["usage"]["completion_tokens"] > 0
    assert answer["usage"]["cost"] == 0


async def test_a_client_that_disconnects_cancels_the_upstream_call(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    fake.script(PRIMARY, Slow(tokens=2000, chunk_delay=0.01))
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    received: list[tuple[str, Any]] = []
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as browser:
        async with browser.stream(
            "POST",
            f"/conversations/{cid}/messages/stream",
            json={"content": "a long answer please"},
            headers=stack.headers(user),
        ) as response:
            assert response.status_code == 200
            async with contextlib.aclosing(events_as_they_come(response)) as events:
                async for event in events:
                    received.append(event)
                    if sum(name == "assistant_chunk" for name, _ in received) >= 3:
                        break
        # Leaving the block unread closes the connection.
        closed_at = asyncio.get_running_loop().time()

    disconnect = await fake.wait_for_disconnect(timeout=1.0)
    assert asyncio.get_running_loop().time() - closed_at < 1.0
    assert disconnect.model == PRIMARY
    assert disconnect.stream is True
    assert 3 <= disconnect.tokens_sent < 2000
    assert len(fake.requests) == 1

    # The answer is kept as far as it went, marked cancelled.
    shown = deltas(received)
    answer: dict[str, Any] = {}
    async with asyncio.timeout(2):
        while answer.get("status") != "cancelled":
            messages = await stack.messages(user, cid)
            answer = messages[1] if len(messages) > 1 else {}
            await asyncio.sleep(0.02)
    assert answer["content"].startswith(shown)
    assert len(answer["content"].split()) <= disconnect.tokens_sent
    assert answer["metadata"]["cancelled"] is True
    # Cut short after its first token, the answer is in the ledger with estimated tokens.
    assert answer["usage"]["completion_tokens"] > 0
    assert answer["usage"]["cost"] == 0


async def test_a_client_that_leaves_before_the_first_token_cancels_the_call(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    fake.script(PRIMARY, Hang())  # the model thinks forever
    stack = await start()
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=5) as browser,
        browser.stream(
            "POST",
            f"/conversations/{cid}/messages/stream",
            json={"content": "are you thinking?"},
            headers=stack.headers(user),
        ) as response,
    ):
        first = await anext(response.aiter_text())
        assert first.startswith("event: user_message\n")
        await fake.wait_for_requests(1)

    disconnect = await fake.wait_for_disconnect(timeout=1.0)
    assert disconnect.model == PRIMARY
    assert disconnect.tokens_sent == 0
    assert models_asked(fake) == [PRIMARY]  # no fallback for a client that left
    answer: dict[str, Any] = {}
    async with asyncio.timeout(2):
        while answer.get("status") != "cancelled":
            messages = await stack.messages(user, cid)
            answer = messages[1] if len(messages) > 1 else {}
            await asyncio.sleep(0.02)
    assert answer["content"] == ""


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """No variable (in-memory storage), or ``DATABASE_URL`` of the session's database."""
    if request.param == "postgres":
        return {"DATABASE_URL": request.getfixturevalue("pg_url")}
    return {}


async def test_a_stream_cut_by_the_shutdown_grace_is_stored_cancelled_before_the_pool_closes(
    fake: FakeOpenRouter, tmp_path: Path, database_env: dict[str, str]
) -> None:
    """A streamed answer still running when the server's graceful-shutdown time is up is
    cancelled by the server, and the lifespan shutdown (which closes the storage) waits
    for it to be stored as ``cancelled`` rather than leaving it ``streaming``."""
    fake.script(PRIMARY, Slow(tokens=2000, chunk_delay=0.01))
    env = {"JWT_SECRET": SECRET, "CHATCORE_DATA_DIR": str(tmp_path), **model_env(fake)}
    overrides: dict[str, Any] = {}
    if not database_env:
        overrides["uow"] = InMemoryUnitOfWorkFactory()
    settings = load_settings({**env, **database_env})
    app = create_app(settings, log_defaults=False, **overrides)
    user = uuid.uuid4()
    token = issue_token(
        secret=SECRET, user_id=user, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    headers = {"Authorization": f"Bearer {token}"}
    statuses_at_shutdown: list[list[str]] = []

    async with serving(app, graceful_shutdown=1) as served:
        container: Container = app.state.container

        async def look() -> None:  # runs first among the lifespan's closers
            async with container.uow(user) as uow:
                messages = await uow.messages.recent(uuid.UUID(cid), limit=10)
            statuses_at_shutdown.append([m.status.value for m in messages])

        container.closers.append(look)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as browser:
            created = await browser.post("/conversations", json={}, headers=headers)
            cid = created.json()["data"]["id"]
            async with browser.stream(
                "POST",
                f"/conversations/{cid}/messages/stream",
                json={"content": "a long answer please"},
                headers=headers,
            ) as response:
                pieces = response.aiter_text()
                async for piece in pieces:
                    if "assistant_chunk" in piece:
                        break
                served.server.should_exit = True
                with contextlib.suppress(httpx.HTTPError):
                    async for _ in pieces:  # until the server cuts the stream
                        pass

    assert sorted(statuses_at_shutdown[0]) == ["cancelled", "complete"]


class SlowStorage:
    """In-memory storage whose units of work first wait ``delay`` seconds."""

    def __init__(self) -> None:
        self.inner = InMemoryUnitOfWorkFactory()
        self.delay = 0.0

    def __call__(self, user_id: uuid.UUID) -> _SlowUnitOfWork:
        return _SlowUnitOfWork(self, self.inner(user_id))


class _SlowUnitOfWork:
    def __init__(self, storage: SlowStorage, inner: InMemoryUnitOfWork) -> None:
        self._storage = storage
        self._inner = inner

    async def __aenter__(self) -> InMemoryUnitOfWork:
        await asyncio.sleep(self._storage.delay)
        return await self._inner.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)


async def test_a_client_that_leaves_before_the_stream_begins_leaves_no_streaming_row(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    storage = SlowStorage()
    stack = await start(uow=storage, system_usage=InMemorySystemUsageReader(storage.inner.store))
    user = uuid.uuid4()
    cid = await stack.conversation(user)
    host, port = stack.url.removeprefix("http://").split(":")

    # The client sends its question and leaves while the service is still storing it.
    storage.delay = 0.3
    _, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps({"content": "never mind"}).encode()
    head = "".join(
        f"{name}: {value}\r\n"
        for name, value in {
            "Host": f"{host}:{port}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **stack.headers(user),
        }.items()
    )
    writer.write(f"POST /conversations/{cid}/messages/stream HTTP/1.1\r\n{head}\r\n".encode())
    writer.write(body)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()
    storage.delay = 0.0

    # The question is stored; its answer must not stay "streaming" for ever.
    messages: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2):
            while len(messages) < 2 or messages[1]["status"] == "streaming":
                await asyncio.sleep(0.05)
                messages = await stack.messages(user, cid)
    assert [(m["sender_type"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "cancelled"),
    ]
    assert messages[1]["content"] == ""
    # No model was asked, or its call was abandoned.
    assert len(fake.requests) == len(fake.disconnects)


# --- the paid emergency model ---------------------------------------------------------


async def test_the_paid_model_answers_until_the_daily_budget_is_spent(
    start: StartStack, fake: FakeOpenRouter
) -> None:
    clock = FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    fake.default(PRIMARY, Fail(503))
    fake.default(FALLBACK, Fail(503))
    fake.default(PAID, Reply("A paid answer.", cost=0.02))
    stack = await start(
        env={"USE_FREE_MODELS_ONLY": "false", "EMERGENCY_DAILY_BUDGET_USD": "0.01"},
        clock=clock,
    )
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    first = await stack.send(user, cid, "one")
    assert first.status_code == 201, first.text
    data = first.json()["data"]
    assert data["model"] == PAID
    assert data["usage"]["cost"] == pytest.approx(0.02)
    assert data["usage"]["is_free_model"] is False
    assert data["assistant_message"]["metadata"]["fallback_from"] == [PRIMARY, FALLBACK]
    assert models_asked(fake) == [PRIMARY, FALLBACK, PAID]
    record = await stack.usage_record(user, data["assistant_message"]["id"])
    assert record.model_used == PAID
    assert record.usage.cost == pytest.approx(0.02)
    assert record.usage.is_free_model is False
    assert record.attempts == (
        f"{PRIMARY}: failed (unavailable)",
        f"{FALLBACK}: failed (unavailable)",
        f"{PAID}: answered",
    )

    # Later the same day: the free models are asked again (their cool-down is over),
    # the paid one is not (today's paid cost, 0.02, reached the budget of 0.01).
    clock.advance(600)
    second = await stack.send(user, cid, "two")
    assert second.status_code == 503, second.text
    reasons = second.json()["error"]["details"]["reasons"]
    assert reasons[:2] == [f"{PRIMARY}: failed (unavailable)", f"{FALLBACK}: failed (unavailable)"]
    assert reasons[2].startswith(f"{PAID}: skipped (daily budget spent")
    assert models_asked(fake) == [PRIMARY, FALLBACK, PAID, PRIMARY, FALLBACK]

    # A new day, a new budget.
    clock.advance(86_400)
    third = await stack.send(user, cid, "three")
    assert third.status_code == 201, third.text
    assert third.json()["data"]["model"] == PAID

    # The budget is the service's, not the user's: another user is refused too.
    clock.advance(600)
    other = uuid.uuid4()
    refused = await stack.send(other, await stack.conversation(other), "me too")
    assert refused.status_code == 503
    assert models_asked(fake).count(PAID) == 2

    admin = await stack.http.get("/usage/system", headers=stack.headers(uuid.uuid4(), admin=True))
    totals = admin.json()["data"]["totals"]
    assert totals["requests"] == 2
    assert totals["cost"] == pytest.approx(0.04)
    assert totals["free_model_share"] == 0
    assert totals["fallback_rate"] == 1


# --- on PostgreSQL --------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_gateway_on_postgresql(
    start: StartStack, fake: FakeOpenRouter, pg_url: str
) -> None:
    fake.script(PRIMARY, Fail(429, retry_after=30))
    fake.script(FALLBACK, Reply("Answered by the fallback.", cost=0.0))
    stack = await start(env={"DATABASE_URL": pg_url})
    user = uuid.uuid4()
    cid = await stack.conversation(user)

    sent = await stack.send(user, cid, "one")
    assert sent.status_code == 201, sent.text
    answer = sent.json()["data"]["assistant_message"]
    assert answer["metadata"]["model"] == FALLBACK
    record = await stack.usage_record(user, answer["id"])
    assert record.model_used == FALLBACK
    assert record.attempts == (f"{PRIMARY}: failed (rate_limited)", f"{FALLBACK}: answered")
    assert record.fell_back is True
    assert record.time_to_first_token_ms is not None
    assert record.usage.completion_tokens == 4

    frames = sse((await stack.stream(user, cid, "two")).text)
    assert frames[-1][0] == "complete"
    streamed = frames[-1][1]["assistant_message"]
    assert deltas(frames) == streamed["content"]
    stored = await stack.messages(user, cid)
    assert [m["status"] for m in stored] == ["complete"] * 4
    assert stored[-1]["content"] == streamed["content"]
    assert models_asked(fake) == [PRIMARY, FALLBACK, FALLBACK]  # the primary cools down

    usage = await stack.http.get(f"/conversations/{cid}/usage", headers=stack.headers(user))
    assert usage.status_code == 200, usage.text
    totals = usage.json()["data"]["totals"]
    assert (totals["requests"], totals["fallback_requests"]) == (2, 2)
    assert totals["free_model_share"] == 1
    system = await stack.http.get("/usage/system", headers=stack.headers(uuid.uuid4(), admin=True))
    assert system.status_code == 200, system.text
    assert system.json()["data"]["totals"]["requests"] >= 2
