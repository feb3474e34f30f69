"""The OpenRouter adapter against the fake OpenRouter, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from adapters.openrouter import (
    ContextTooLongError,
    OpenRouterChatModel,
    build_http_client,
    fetch_context_lengths,
)
from chatcore.models import (
    ChatMessage,
    ChatReply,
    ChatRequest,
    FailureKind,
    ModelError,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)
from tests.fakes.openrouter import (
    Drop,
    Empty,
    Fail,
    FakeOpenRouter,
    Hang,
    Malformed,
    MidStreamError,
    Reply,
    Slow,
    Split,
)

KEY = "sk-or-test"
MESSAGES = (
    ChatMessage("system", "You are a career advisor."),
    ChatMessage("user", "What should I study?"),
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    async with FakeOpenRouter(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = build_http_client(max_connections=10)
    try:
        yield client
    finally:
        await client.aclose()


ModelFactory = Callable[..., OpenRouterChatModel]


@pytest.fixture
def make_model(fake: FakeOpenRouter, http: httpx.AsyncClient) -> ModelFactory:
    def make(**overrides: Any) -> OpenRouterChatModel:
        options: dict[str, Any] = {
            "client": http,
            "api_key": KEY,
            "base_url": fake.base_url,
            "referer": "https://chatcore.test",
            "title": "chatcore",
            "timeout_ms": 3000,
            "default_model": "m",
        }
        options.update(overrides)
        return OpenRouterChatModel(**options)

    return make


@pytest.fixture
def model(make_model: ModelFactory) -> OpenRouterChatModel:
    return make_model()


def ask(model: str | None = "m", **extra: Any) -> ChatRequest:
    return ChatRequest(messages=MESSAGES, model=model, **extra)


async def collect(stream: AsyncIterator[StreamEvent]) -> tuple[list[str], ChatReply]:
    deltas: list[str] = []
    end: ChatReply | None = None
    async for event in stream:
        assert end is None, "nothing may follow StreamEnd"
        if isinstance(event, StreamDelta):
            deltas.append(event.text)
        else:
            assert isinstance(event, StreamEnd)
            end = event.reply
    assert end is not None
    return deltas, end


async def deltas_until_error(
    stream: AsyncIterator[StreamEvent],
) -> tuple[list[str], ModelError]:
    """The deltas yielded before the stream raised its ``ModelError``."""
    deltas: list[str] = []
    try:
        async for event in stream:
            assert isinstance(event, StreamDelta), "a failing stream must not end"
            deltas.append(event.text)
    except ModelError as error:
        return deltas, error
    pytest.fail("the stream did not raise ModelError")


async def failure(model: OpenRouterChatModel, request: ChatRequest, *, stream: bool) -> ModelError:
    if stream:
        deltas, error = await deltas_until_error(model.stream(request))
        assert deltas == []
        return error
    with pytest.raises(ModelError) as caught:
        await model.complete(request)
    return caught.value


# Replies ----------------------------------------------------------------------------


async def test_complete_reply_usage_and_request_sent(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("openai/gpt-4o-mini", Reply("Hello there, student.", prompt_tokens=12, cost=0.25))
    reply = await model.complete(ask("openai/gpt-4o-mini", temperature=0.2, max_tokens=99))
    assert reply.content == "Hello there, student."
    assert reply.model == "openai/gpt-4o-mini"
    assert reply.finish_reason == "stop"
    assert reply.usage.prompt_tokens == 12
    assert reply.usage.completion_tokens == 3
    assert reply.usage.cost == 0.25
    assert reply.usage.is_free_model is False

    [request] = fake.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["http-referer"] == "https://chatcore.test"
    assert request.headers["x-title"] == "chatcore"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a career advisor."},
            {"role": "user", "content": "What should I study?"},
        ],
        "temperature": 0.2,
        "max_tokens": 99,
        "stream": False,
    }
    assert "usage" not in request.body  # the deprecated usage.include is not sent


async def test_requests_name_chatcore_and_carry_no_cookie_from_an_earlier_answer(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    # A gateway in front of the upstream may set a cookie on one user's request; the
    # shared client must not send it along with the next user's.
    fake.script(
        "m",
        Fail(503, headers={"Set-Cookie": "__cf_bm=abc123; Path=/; HttpOnly"}),
        Reply("Hello."),
        Reply("Hello again."),
    )
    with pytest.raises(ModelError):
        await model.complete(ask())
    assert (await model.complete(ask())).content == "Hello."
    _, reply = await collect(model.stream(ask()))
    assert reply.content == "Hello again."
    assert len(fake.requests) == 3
    for request in fake.requests:
        assert request.headers["user-agent"].startswith("chatcore/")
        assert "cookie" not in request.headers


async def test_free_model_default_model_and_optional_headers(
    fake: FakeOpenRouter, make_model: ModelFactory
) -> None:
    model = make_model(referer=None, title=None, default_model="vendor/small:free")
    reply = await model.complete(ask(None))
    assert reply.model == "vendor/small:free"
    assert reply.usage.is_free_model is True
    assert reply.usage.cost == 0.0
    [request] = fake.requests
    assert request.model == "vendor/small:free"
    assert "http-referer" not in request.headers
    assert "x-title" not in request.headers


async def test_chunks_that_arrive_apart_are_passed_on_apart(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    # A delta goes out as soon as its read arrives; nothing waits to be merged.
    text = "One two three four five"
    fake.script("m", Reply(text, chunk_delay=0.02))
    deltas, reply = await collect(model.stream(ask()))
    assert deltas == ["One", " two", " three", " four", " five"]
    assert reply.content == text


async def test_stream_deltas_comments_and_final_usage(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    text = "One two three four five six seven eight nine ten eleven"
    fake.script("m", Reply(text, cost=0.001, prompt_tokens=40, comment_every=2))
    deltas, reply = await collect(model.stream(ask()))
    assert deltas  # events that arrive in one read are passed on as one delta
    assert "".join(deltas) == text
    assert reply.content == text
    assert reply.model == "m"
    assert reply.finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (40, 11)
    assert reply.usage.cost == 0.001
    [request] = fake.requests
    assert request.stream is True
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["accept-encoding"] == "identity"  # the body is read raw
    assert request.headers["x-title"] == "chatcore"
    assert "usage" not in request.body


async def test_stream_with_separate_finish_chunk(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Reply(tokens=3, comments=False, separate_finish=True))
    deltas, reply = await collect(model.stream(ask()))
    assert len("".join(deltas).split()) == 3
    assert reply.finish_reason == "stop"
    assert reply.usage.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_gives_finish_reason_length(
    model: OpenRouterChatModel, stream: bool
) -> None:
    request = ask(max_tokens=4)
    reply = (await collect(model.stream(request)))[1] if stream else await model.complete(request)
    assert reply.finish_reason == "length"
    assert reply.usage.completion_tokens == 4


@pytest.mark.parametrize("chunk_bytes", range(1, 8))
async def test_tiny_http_chunks_still_parse(
    fake: FakeOpenRouter, model: OpenRouterChatModel, chunk_bytes: int
) -> None:
    text = "Héllo wörld — 日本語 🚀 ok, ça va? 👩‍💻"
    fake.script("m", Split(Reply(text, cost=0.5, comment_every=1), chunk_bytes=chunk_bytes))
    deltas, reply = await collect(model.stream(ask()))
    assert "".join(deltas) == text
    assert reply.content == text
    assert reply.usage.cost == 0.5


async def test_connections_are_reused(fake: FakeOpenRouter, model: OpenRouterChatModel) -> None:
    for _ in range(3):
        await model.complete(ask())
        await collect(model.stream(ask()))
    assert len(fake.requests) == 6
    assert fake.connection_count == 1


async def test_one_client_serves_concurrent_streams_within_its_limit(
    fake: FakeOpenRouter,
) -> None:
    fake.default("m", Slow(tokens=5, chunk_delay=0.01))
    client = build_http_client(max_connections=4)
    try:
        model = OpenRouterChatModel(client=client, api_key=KEY, base_url=fake.base_url)
        results = await asyncio.gather(*(collect(model.stream(ask())) for _ in range(12)))
    finally:
        await client.aclose()
    assert all(reply.usage.completion_tokens == 5 for _, reply in results)
    assert fake.connection_count == 4


# Failures ---------------------------------------------------------------------------

FAILURES = [
    pytest.param((Fail(429, retry_after=2), FailureKind.RATE_LIMITED, 2.0), id="429"),
    pytest.param((Fail(402), FailureKind.PAYMENT_REQUIRED, None), id="402"),
    pytest.param((Fail(403), FailureKind.CONTENT_REFUSED, None), id="403-moderation"),
    pytest.param((Fail(408), FailureKind.TIMEOUT, None), id="408"),
    pytest.param((Fail(400), FailureKind.UNAVAILABLE, None), id="400"),
    pytest.param((Fail(502), FailureKind.UNAVAILABLE, None), id="502"),
    pytest.param((Fail(503, retry_after=30), FailureKind.UNAVAILABLE, 30.0), id="503"),
    pytest.param((Fail(500, error_type=""), FailureKind.UNAVAILABLE, None), id="500"),
    pytest.param((Empty(), FailureKind.EMPTY_REPLY, None), id="empty"),
    pytest.param((Malformed(), FailureKind.MALFORMED_REPLY, None), id="malformed"),
    pytest.param((Malformed("{truncated"), FailureKind.MALFORMED_REPLY, None), id="truncated"),
    pytest.param((Drop(), FailureKind.UNAVAILABLE, None), id="drop"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("case", FAILURES)
async def test_failures_map_to_kinds(
    fake: FakeOpenRouter,
    model: OpenRouterChatModel,
    case: tuple[Any, FailureKind, float | None],
    stream: bool,
) -> None:
    behaviour, kind, retry_after = case
    fake.script("m", behaviour)
    error = await failure(model, ask(), stream=stream)
    assert error.kind is kind
    assert error.retry_after == retry_after
    assert error.model == "m"
    assert error.message


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_wrong_api_key_is_auth_failed(make_model: ModelFactory, stream: bool) -> None:
    error = await failure(make_model(api_key="sk-wrong"), ask(), stream=stream)
    assert error.kind is FailureKind.AUTH_FAILED
    assert "No auth credentials found" in error.message


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_context_too_long_carries_the_limit(http: httpx.AsyncClient, stream: bool) -> None:
    async with FakeOpenRouter(context_lengths={"tiny": 100}) as fake:
        model = OpenRouterChatModel(client=http, api_key=KEY, base_url=fake.base_url)
        request = ChatRequest(
            messages=(ChatMessage("user", "x" * 480),), model="tiny", max_tokens=50
        )
        error = await failure(model, request, stream=stream)
    assert isinstance(error, ContextTooLongError)
    assert error.kind is FailureKind.CONTEXT_TOO_LONG
    assert error.context_limit == 100
    assert error.requested_tokens == 170
    assert error.model == "tiny"


async def test_mid_stream_error_after_tokens(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", MidStreamError(after_tokens=3), MidStreamError(after_tokens=2, done=False))
    deltas, error = await deltas_until_error(model.stream(ask()))
    # The text before the error chunk, even when both came in one read.
    assert len("".join(deltas).split()) == 3
    assert error.kind is FailureKind.UNAVAILABLE
    assert "Provider disconnected unexpectedly" in error.message
    deltas, error = await deltas_until_error(model.stream(ask()))
    assert len("".join(deltas).split()) == 2
    assert error.kind is FailureKind.UNAVAILABLE


async def test_mid_stream_error_unstreamed_is_a_502(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", MidStreamError(message="boom"))
    error = await failure(model, ask(), stream=False)
    assert error.kind is FailureKind.UNAVAILABLE
    assert "boom" in error.message


async def test_mid_stream_error_code_is_mapped(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script(
        "m",
        MidStreamError(after_tokens=1, code="rate_limit_exceeded", message="slow down"),
        MidStreamError(
            after_tokens=0,
            code="context_length_exceeded",
            message="This endpoint's maximum context length is 4096 tokens.",
        ),
    )
    deltas, error = await deltas_until_error(model.stream(ask()))
    assert len(deltas) == 1
    assert error.kind is FailureKind.RATE_LIMITED
    deltas, error = await deltas_until_error(model.stream(ask()))
    assert deltas == []
    assert isinstance(error, ContextTooLongError)
    assert error.context_limit == 4096


async def test_empty_stream_yields_nothing(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Empty(cost=0.0), Reply("   ", tokens=1))
    for _ in range(2):
        deltas, error = await deltas_until_error(model.stream(ask()))
        assert deltas == []
        assert error.kind is FailureKind.EMPTY_REPLY


async def test_whitespace_only_reply_is_empty(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Reply("  \n ", tokens=1))
    error = await failure(model, ask(), stream=False)
    assert error.kind is FailureKind.EMPTY_REPLY


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_hang_times_out(fake: FakeOpenRouter, make_model: ModelFactory, stream: bool) -> None:
    fake.script("m", Hang())
    model = make_model(timeout_ms=200)
    started = time.monotonic()
    error = await failure(model, ask(), stream=stream)
    assert error.kind is FailureKind.TIMEOUT
    assert time.monotonic() - started < 1.0
    disconnect = await fake.wait_for_disconnect(1.0)
    assert disconnect.stream is stream


async def test_hang_mid_stream_times_out_after_the_deltas(
    fake: FakeOpenRouter, make_model: ModelFactory
) -> None:
    fake.script("m", Hang(after_tokens=2))
    deltas, error = await deltas_until_error(make_model(timeout_ms=200).stream(ask()))
    assert len("".join(deltas).split()) == 2
    assert error.kind is FailureKind.TIMEOUT


async def test_drop_mid_stream_is_unavailable_after_the_deltas(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Drop(after_tokens=2))
    deltas, error = await deltas_until_error(model.stream(ask()))
    assert len("".join(deltas).split()) == 2
    assert error.kind is FailureKind.UNAVAILABLE


async def test_unreachable_server_is_unavailable(http: httpx.AsyncClient) -> None:
    async with FakeOpenRouter() as fake:
        base_url = fake.base_url
    model = OpenRouterChatModel(client=http, api_key=KEY, base_url=base_url)
    for stream in (False, True):
        error = await failure(model, ask(), stream=stream)
        assert error.kind is FailureKind.UNAVAILABLE


# Cancellation -----------------------------------------------------------------------


async def test_aclose_after_three_deltas_closes_the_upstream(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Slow(tokens=1000, chunk_delay=0.01))
    stream = model.stream(ask())
    deltas = [await anext(stream) for _ in range(3)]
    assert all(isinstance(d, StreamDelta) for d in deltas)
    closed_at = time.monotonic()
    await stream.aclose()
    disconnect = await fake.wait_for_disconnect(1.0)
    assert disconnect.at - closed_at < 0.2
    assert disconnect.stream is True
    assert 3 <= disconnect.tokens_sent < 50


async def test_cancelling_the_consumer_closes_the_upstream(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Slow(tokens=1000, chunk_delay=0.01))
    three = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for event in model.stream(ask()):
            assert isinstance(event, StreamDelta)
            received.append(event.text)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), 2.0)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    disconnect = await fake.wait_for_disconnect(1.0)
    assert disconnect.at - cancelled_at < 0.2
    assert disconnect.tokens_sent < 50


async def test_cancelling_a_consumer_busy_elsewhere_closes_the_upstream(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    """Cancelled while awaiting its own work (not the stream): ``aclosing`` closes it."""
    fake.script("m", Slow(tokens=1000, chunk_delay=0.01))
    busy = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(model.stream(ask())) as stream:
            async for _ in stream:
                busy.set()
                await asyncio.sleep(10)  # e.g. writing to a slow end-user socket

    task = asyncio.create_task(consume())
    await asyncio.wait_for(busy.wait(), 2.0)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    disconnect = await fake.wait_for_disconnect(1.0)
    assert disconnect.at - cancelled_at < 0.2


async def test_a_complete_stream_leaves_no_disconnect(
    fake: FakeOpenRouter, model: OpenRouterChatModel
) -> None:
    fake.script("m", Slow(tokens=5, chunk_delay=0.01))
    deltas, _ = await collect(model.stream(ask()))
    assert len(deltas) == 5
    with pytest.raises(TimeoutError):
        await fake.wait_for_disconnect(0.05)


# Model list -------------------------------------------------------------------------


async def test_fetch_context_lengths(fake: FakeOpenRouter, http: httpx.AsyncClient) -> None:
    fake.context_lengths["tiny"] = 100
    lengths = await fetch_context_lengths(http, fake.base_url, KEY)
    assert lengths["tiny"] == 100
    assert lengths["openai/gpt-4o-mini"] == 128_000
    assert lengths["mistralai/mistral-7b-instruct:free"] == 32_768


async def test_fetch_context_lengths_is_empty_on_failure(
    fake: FakeOpenRouter, http: httpx.AsyncClient
) -> None:
    assert await fetch_context_lengths(http, fake.base_url + "/nowhere", KEY) == {}
    async with FakeOpenRouter() as gone:
        base_url = gone.base_url
    assert await fetch_context_lengths(http, base_url, KEY) == {}


async def test_fetch_context_lengths_tolerates_odd_bodies() -> None:
    bodies = {
        "/a/models": b"not json",
        "/b/models": b'{"data": "nope"}',
        "/c/models": (
            b'{"data": [{"id": "x", "context_length": 10}, {"id": 3}, "junk",'
            b' {"id": "y", "context_length": null, "top_provider": {"context_length": 20}},'
            b' {"id": "z", "context_length": true}]}'
        ),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies[request.url.path])

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        assert await fetch_context_lengths(client, "http://h/a", KEY) == {}
        assert await fetch_context_lengths(client, "http://h/b", KEY) == {}
        assert await fetch_context_lengths(client, "http://h/c/", KEY) == {"x": 10, "y": 20}


# Construction -----------------------------------------------------------------------


def test_invalid_construction(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="api_key"):
        OpenRouterChatModel(client=http, api_key="")
    with pytest.raises(ValueError, match="timeout_ms"):
        OpenRouterChatModel(client=http, api_key=KEY, timeout_ms=0)


async def test_non_ascii_title_is_sent_as_utf8(
    fake: FakeOpenRouter, make_model: ModelFactory
) -> None:
    await make_model(title="Karier — Jalur 🚀").complete(ask())
    raw = fake.requests[0].headers["x-title"]
    assert raw.encode("latin-1").decode() == "Karier — Jalur 🚀"


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
async def test_a_configured_proxy_is_honoured(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lean transport speaks to the server directly; with an egress proxy configured
    # the client must go through it, so httpx's own (proxy-aware) transport is used.
    from adapters.openrouter import HTTP1Transport  # noqa: PLC0415

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = build_http_client(max_connections=2)
    monkeypatch.setenv(variable, "http://127.0.0.1:3128")
    proxied = build_http_client(max_connections=2)
    try:
        assert isinstance(direct._transport, HTTP1Transport)
        assert not isinstance(proxied._transport, HTTP1Transport)
        proxies = [t for t in proxied._mounts.values() if t is not None]
        assert proxies  # httpx mounted a transport that goes through the proxy
    finally:
        await direct.aclose()
        await proxied.aclose()
