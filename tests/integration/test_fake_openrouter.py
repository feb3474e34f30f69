"""The fake OpenRouter itself, driven by a plain httpx client over real HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openrouter import (
    DEFAULT_TOKENS,
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

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-or-test"
HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "HTTP-Referer": "https://chatcore.test",
    "X-Title": "chatcore",
}
MESSAGES = [
    {"role": "system", "content": "You are a career advisor."},
    {"role": "user", "content": "What should I study?"},
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    async with FakeOpenRouter(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
async def client(fake: FakeOpenRouter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url, headers=HEADERS, timeout=5) as http:
        yield http


def body(model: str = "m", *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "stream": stream, **extra}


def parse_sse(text: str) -> tuple[list[Any], int, bool]:
    """(JSON chunks, comment count, whether ``[DONE]`` ended it) of an SSE body."""
    chunks: list[Any] = []
    comments = 0
    done = False
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("data: "):
                payload = line.removeprefix("data: ")
                assert not done, "data after [DONE]"
                if payload == "[DONE]":
                    done = True
                else:
                    chunks.append(json.loads(payload))
            else:
                assert line == "", line
    return chunks, comments, done


async def stream_text(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    response = await client.post("/chat/completions", json=payload)
    assert response.headers["content-type"] == "text/event-stream"
    return response


async def collect_lines(response: httpx.Response, into: list[str]) -> None:
    """Append the lines of a streamed response to ``into`` as they arrive."""
    async for line in response.aiter_lines():
        into.append(line)  # noqa: PERF401 (kept when the read times out)


def content_of(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])


# Replies ----------------------------------------------------------------------------


async def test_non_stream_reply_with_usage_and_recorded_request(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", Reply("Hello there, student.", prompt_tokens=12, cost=0.25))
    before = time.monotonic()
    response = await client.post("/chat/completions", json=body(temperature=0.2, max_tokens=99))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["id"].startswith("gen-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "m"
    assert data["provider"] == "FakeProvider"
    [choice] = data["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello there, student.",
        "refusal": None,
        "reasoning": None,
    }
    assert choice["finish_reason"] == choice["native_finish_reason"] == "stop"
    usage = data["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        12,
        3,
        15,
    )
    assert usage["cost"] == 0.25

    [request] = fake.requests
    assert request.model == "m"
    assert request.stream is False
    assert request.body["temperature"] == 0.2
    assert request.messages == MESSAGES
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["http-referer"] == "https://chatcore.test"
    assert request.headers["x-title"] == "chatcore"
    assert request.headers["content-type"] == "application/json"
    assert before <= request.arrived_at <= time.monotonic()
    assert (
        request.prompt_tokens == len(MESSAGES[0]["content"]) // 4 + len(MESSAGES[1]["content"]) // 4
    )
    assert request.behaviour == Reply("Hello there, student.", prompt_tokens=12, cost=0.25)


async def test_default_reply_and_estimated_prompt_tokens(client: httpx.AsyncClient) -> None:
    data = (await client.post("/chat/completions", json=body())).json()
    usage = data["usage"]
    assert usage["completion_tokens"] == DEFAULT_TOKENS
    assert len(data["choices"][0]["message"]["content"].split()) == DEFAULT_TOKENS
    assert usage["prompt_tokens"] == 6 + 5
    assert usage["cost"] == 0


async def test_stream_comments_chunks_usage_and_done(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    text = "One two three four five six seven eight nine ten eleven"
    fake.script("m", Reply(text, cost=0.001, comment_every=4))
    response = await stream_text(client, body(stream=True))
    assert response.status_code == 200
    raw = response.text
    assert raw.startswith(": OPENROUTER PROCESSING\n\n")
    chunks, comments, done = parse_sse(raw)
    assert done
    assert comments == 1 + 2  # before the first chunk, then before chunks 5 and 9
    *content, usage_chunk = chunks
    assert len(content) == 11
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1
    assert ids.pop().startswith("gen-")
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "m"
        assert chunk["provider"] == "FakeProvider"
        assert isinstance(chunk["created"], int)
    for chunk in content[:-1]:
        [choice] = chunk["choices"]
        assert choice["index"] == 0
        assert choice["delta"]["role"] == "assistant"
        assert choice["finish_reason"] is None
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    assert content[-1]["choices"][0]["native_finish_reason"] == "stop"
    assert content_of(content) == text
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 11
    assert usage_chunk["usage"]["cost"] == 0.001
    assert sum("usage" in c for c in chunks) == 1
    assert fake.requests[0].stream is True


async def test_stream_without_comments_and_separate_finish(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", Reply(tokens=3, comments=False, separate_finish=True))
    chunks, comments, done = parse_sse((await stream_text(client, body(stream=True))).text)
    assert comments == 0
    assert done
    assert [c["choices"][0]["finish_reason"] if c["choices"] else "usage" for c in chunks] == [
        None,
        None,
        None,
        "stop",
        "usage",
    ]
    assert chunks[3]["choices"][0]["delta"]["content"] == ""
    assert len(content_of(chunks).split()) == 3


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(
    client: httpx.AsyncClient,
) -> None:
    data = (await client.post("/chat/completions", json=body(max_tokens=4))).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 4
    chunks, _, _ = parse_sse((await stream_text(client, body(stream=True, max_tokens=4))).text)
    assert len(chunks) == 5
    assert chunks[3]["choices"][0]["finish_reason"] == "length"


# Errors -----------------------------------------------------------------------------

FAILURES = [
    (400, "bad_request", None),
    (401, "invalid_api_key", None),
    (402, "insufficient_credits", None),
    (403, "moderation", None),
    (408, "timeout", None),
    (429, "rate_limit_exceeded", 7),
    (502, "provider_error", None),
    (503, "provider_unavailable", 30),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", FAILURES, ids=[str(case[0]) for case in FAILURES])
async def test_fail_statuses(
    fake: FakeOpenRouter,
    client: httpx.AsyncClient,
    case: tuple[int, str, int | None],
    stream: bool,
) -> None:
    status, error_type, retry_after = case
    fake.script("m", Fail(status, retry_after=retry_after))
    response = await client.post("/chat/completions", json=body(stream=stream))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get("retry-after") == (
        None if retry_after is None else str(retry_after)
    )
    error = response.json()["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["metadata"]["error_type"] == error_type
    if status == 403:
        assert error["metadata"]["reasons"] == ["harassment"]
        assert error["metadata"]["flagged_input"] == "What should I study?"
        assert error["metadata"]["provider_name"] == "FakeProvider"
    if status == 502:
        assert error["metadata"]["provider_name"] == "FakeProvider"
        assert "raw" in error["metadata"]


async def test_fail_custom_message_metadata_and_headers(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script(
        "m",
        Fail(
            429,
            "Rate limit exceeded: limit_rpm/m/abc",
            retry_after=1.5,
            metadata={"headers": {"X-RateLimit-Remaining": "0"}},
            headers={"X-RateLimit-Remaining": "0"},
        ),
        Fail(503, error_type=""),
    )
    response = await client.post("/chat/completions", json=body())
    assert response.headers["retry-after"] == "1.5"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.json() == {
        "error": {
            "code": 429,
            "message": "Rate limit exceeded: limit_rpm/m/abc",
            "metadata": {
                "error_type": "rate_limit_exceeded",
                "headers": {"X-RateLimit-Remaining": "0"},
            },
        }
    }
    response = await client.post("/chat/completions", json=body())
    assert response.json() == {"error": {"code": 503, "message": "No instances available"}}


async def test_wrong_api_key_gets_401_and_consumes_no_script(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", Reply("scripted"))
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        response = await client.post("/chat/completions", json=body(), headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": {"code": 401, "message": "No auth credentials found"}}
    assert fake.pending("m") == 1
    assert [r.behaviour for r in fake.requests] == [
        Fail(401, "No auth credentials found", error_type="")
    ] * 2
    response = await client.post("/chat/completions", json=body())
    assert response.json()["choices"][0]["message"]["content"] == "scripted"


async def test_no_api_key_configured_accepts_any_key() -> None:
    async with (
        FakeOpenRouter() as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        response = await http.post("/chat/completions", json=body())
        assert response.status_code == 200


async def test_context_length_exceeded_and_models_listing() -> None:
    async with (
        FakeOpenRouter(context_lengths={"tiny": 100}) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        fake.script("tiny", Reply("kept for later"))
        long = [{"role": "user", "content": "x" * 480}]  # 120 tokens
        response = await http.post(
            "/chat/completions", json={"model": "tiny", "messages": long, "max_tokens": 50}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == 400
        assert error["metadata"] == {"error_type": "context_length_exceeded"}
        assert error["message"].startswith(
            "This endpoint's maximum context length is 100 tokens. However, you requested "
            "about 170 tokens (120 of text input, 50 in the output)."
        )
        assert fake.pending("tiny") == 1
        short = [{"role": "user", "content": "x" * 400}]  # exactly 100 tokens
        response = await http.post("/chat/completions", json={"model": "tiny", "messages": short})
        assert response.json()["choices"][0]["message"]["content"] == "kept for later"

        models = (await http.get("/models")).json()["data"]
        lengths = {m["id"]: m["context_length"] for m in models}
        assert lengths["tiny"] == 100
        assert lengths["openai/gpt-4o-mini"] == 128_000
        assert len(fake.requests) == 2  # GET /models is not a chat request


async def test_invalid_requests(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", content=b"{oops")
    assert response.status_code == 400
    assert fake.requests[-1].body is None
    response = await client.post("/chat/completions", json={"model": "m"})
    assert response.status_code == 400
    assert (await client.get("/chat/completions")).status_code == 405
    assert (await client.get("/nowhere")).status_code == 404


async def test_strict_models_rejects_unknown_models() -> None:
    async with (
        FakeOpenRouter(strict_models=True) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        response = await http.post("/chat/completions", json=body("no/such-model"))
        assert response.json() == {
            "error": {"code": 400, "message": "no/such-model is not a valid model ID"}
        }
        response = await http.post("/chat/completions", json=body("openai/gpt-4o-mini"))
        assert response.status_code == 200


# Other behaviours -------------------------------------------------------------------


async def test_empty(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("m", Empty(), Empty())
    data = (await client.post("/chat/completions", json=body())).json()
    assert data["choices"][0]["message"]["content"] == ""
    assert data["usage"]["completion_tokens"] == 0
    chunks, comments, done = parse_sse((await stream_text(client, body(stream=True))).text)
    assert done
    assert comments == 1
    finish, usage = chunks
    assert finish["choices"][0]["delta"]["content"] == ""
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 0


async def test_mid_stream_error(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("m", MidStreamError(after_tokens=3), MidStreamError(message="boom"))
    response = await stream_text(client, body(stream=True))
    assert response.status_code == 200
    chunks, _, done = parse_sse(response.text)
    assert done
    *content, failure = chunks
    assert len(content) == 3
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert failure["error"] == {
        "code": "server_error",
        "message": "Provider disconnected unexpectedly",
    }
    [choice] = failure["choices"]
    assert choice["delta"]["content"] == ""
    assert choice["finish_reason"] == choice["native_finish_reason"] == "error"
    assert not any("usage" in c for c in chunks)

    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["message"] == "boom"
    assert error["metadata"]["error_type"] == "provider_error"


async def test_mid_stream_error_without_done(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", MidStreamError(after_tokens=0, done=False))
    chunks, _, done = parse_sse((await stream_text(client, body(stream=True))).text)
    assert not done
    assert [c["choices"][0]["finish_reason"] for c in chunks] == ["error"]


async def test_hang_times_out_the_client_and_counts_as_disconnect(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", Hang())
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/chat/completions", json=body(), timeout=0.2)
    disconnect = await fake.wait_for_disconnect(1.0)
    assert disconnect.model == "m"
    assert disconnect.chunks_sent == 0


async def test_hang_after_tokens_stalls_mid_stream(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", Hang(after_tokens=2))
    pieces: list[str] = []
    async with client.stream(
        "POST", "/chat/completions", json=body(stream=True), timeout=0.2
    ) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await collect_lines(response, pieces)
    assert sum(p.startswith("data: ") for p in pieces) == 2
    disconnect = await fake.wait_for_disconnect(1.0)
    assert (disconnect.chunks_sent, disconnect.tokens_sent) == (2, 2)


async def test_malformed(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("m", Malformed(), Malformed("{truncated"))
    response = await client.post("/chat/completions", json=body())
    assert response.status_code == 200
    assert response.content == b"not json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    response = await stream_text(client, body(stream=True))
    assert "data: {truncated\n\n" in response.text
    assert response.text.endswith("data: [DONE]\n\n")


async def test_drop_closes_the_connection(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("m", Drop(), Drop(after_tokens=2))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=body())
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=body(stream=True))
    assert fake.disconnects == []
    assert (await client.post("/chat/completions", json=body())).status_code == 200


async def test_split_writes_tiny_http_chunks(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    text = "Héllo wörld — 日本語 🚀 ok"
    fake.script("m", Split(Reply(text), chunk_bytes=7), Reply(text, chunk_bytes=3))
    for size in (7, 3):
        raw: list[bytes] = []
        async with client.stream("POST", "/chat/completions", json=body(stream=True)) as resp:
            raw.extend([piece async for piece in resp.aiter_raw()])
        assert max(len(piece) for piece in raw) <= size
        assert len(raw) > 50
        chunks, _, done = parse_sse(b"".join(raw).decode())
        assert done
        assert content_of(chunks) == text


async def test_slow_stream_with_delays(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("m", Slow(tokens=5, chunk_delay=0.02), Slow(tokens=3, chunk_delay=0.02))
    started = time.monotonic()
    chunks, _, done = parse_sse((await stream_text(client, body(stream=True))).text)
    assert time.monotonic() - started >= 0.09
    assert done
    assert len(content_of(chunks).split()) == 5
    started = time.monotonic()
    data = (await client.post("/chat/completions", json=body())).json()
    assert time.monotonic() - started >= 0.05
    assert data["usage"]["completion_tokens"] == 3
    assert fake.disconnects == []


async def test_client_closing_mid_slow_stream_is_a_disconnect(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("m", Slow(tokens=1000, chunk_delay=0.01))
    data_lines = 0
    async with client.stream("POST", "/chat/completions", json=body(stream=True)) as response:
        async for line in response.aiter_lines():
            data_lines += line.startswith("data: ")
            if data_lines == 3:
                break
        closed_at = time.monotonic()
    disconnect = await fake.wait_for_disconnect(1.0)
    assert disconnect.at - closed_at < 0.1
    assert disconnect.stream is True
    assert 3 <= disconnect.chunks_sent < 30
    assert disconnect.tokens_sent == disconnect.chunks_sent
    assert disconnect.request is fake.requests[0]
    # The server goes on serving other requests.
    assert (await client.post("/chat/completions", json=body())).status_code == 200


async def test_close_ends_hung_requests() -> None:
    fake = FakeOpenRouter(default=Hang())
    await fake.start()
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=5) as http:
        pending = asyncio.ensure_future(http.post("/chat/completions", json=body()))
        await fake.wait_for_requests(1)
        await asyncio.wait_for(fake.close(), 1)
        with pytest.raises(httpx.RemoteProtocolError):
            await pending
    assert fake.disconnects == []
    assert fake.errors == []


async def test_wait_for_disconnect_times_out(fake: FakeOpenRouter) -> None:
    with pytest.raises(TimeoutError):
        await fake.wait_for_disconnect(0.05)


# Scripting and connections ----------------------------------------------------------


async def test_scripts_are_consumed_in_order_per_model(
    fake: FakeOpenRouter, client: httpx.AsyncClient
) -> None:
    fake.script("a", Reply("a1"), Reply("a2"))
    fake.script("b", Fail(429), Reply("b2"))
    fake.default("a", Reply("a-default"))
    fake.default(None, Reply("everyone"))

    async def ask(model: str) -> str:
        response = await client.post("/chat/completions", json=body(model))
        if response.status_code != 200:
            return str(response.status_code)
        content: str = response.json()["choices"][0]["message"]["content"]
        return content

    answers = [await ask(model) for model in ("b", "a", "c", "a", "b", "a", "b")]
    assert answers == ["429", "a1", "everyone", "a2", "b2", "a-default", "everyone"]
    assert [r.model for r in fake.requests] == ["b", "a", "c", "a", "b", "a", "b"]
    assert fake.pending() == 0
    fake.reset()
    assert fake.requests == []
    assert await ask("a") == "everyone"


async def test_keep_alive_serves_many_requests_on_one_connection(
    fake: FakeOpenRouter,
) -> None:
    fake.script("m", Reply("one"), Fail(429, retry_after=1), Empty(), MidStreamError(2))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=fake.base_url, headers=HEADERS, limits=limits) as http:
        statuses = []
        for stream in (False, True, True, True, False, True, False):
            response = await http.post("/chat/completions", json=body(stream=stream))
            statuses.append(response.status_code)
        assert (await http.get("/models")).status_code == 200
    assert statuses == [200, 429, 200, 200, 200, 200, 200]
    assert fake.connection_count == 1


async def test_pipelined_and_chunked_requests_on_a_raw_socket(fake: FakeOpenRouter) -> None:
    payload = json.dumps(body()).encode()
    host = f"Host: 127.0.0.1:{fake.port}\r\nAuthorization: Bearer {KEY}\r\n"
    first = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\n{host}Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    half = len(payload) // 2
    second = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\n{host}"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (
        half,
        payload[:half],
        len(payload) - half,
        payload[half:],
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    writer.write(first + second)
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), 2)  # until the server closes
    writer.close()
    await writer.wait_closed()
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert b"Connection: close\r\n" in received
    assert [r.body for r in fake.requests] == [body(), body()]


async def test_process_mode_prints_ready_and_serves() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.openrouter",
        "--port",
        "0",
        "--tokens",
        "7",
        "--delay",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.split()[1]
        assert base_url.endswith("/api/v1")
        async with httpx.AsyncClient(base_url=base_url) as http:
            chunks, _, done = parse_sse((await stream_text(http, body(stream=True))).text)
            assert done
            assert chunks[-1]["usage"]["completion_tokens"] == 7
            data = (await http.post("/chat/completions", json=body())).json()
            assert data["usage"]["completion_tokens"] == 7
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 5)
    assert process.returncode == 0, stderr.decode()
    assert stderr == b""
