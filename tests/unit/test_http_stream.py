"""The streaming route: SSE framing, what is stored, failures, bad input, keep-alive, cancel.

The HTTP tests run the real app on in-memory storage with test models; the keep-alive
and cancellation tests drive :func:`entrypoints.http.sse.sse_frames` directly over the
real message service (the end-to-end cancel over a real socket is in
tests/integration/test_gateway_e2e.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast
from uuid import UUID, uuid4

import httpx
import pytest

from chatcore.domain import Message, MessageStatus, SenderType
from chatcore.fallback import ModelChain
from chatcore.models import FailureKind, ModelError
from chatcore.pagination import PageRequest
from chatcore.services import CreateConversation
from chatcore.services.messages import StreamText, StreamUpdate
from chatcore.testing import InMemorySystem, in_memory_system
from entrypoints.http.sse import KEEPALIVE, EventStream, LastChunk, sse_frames
from tests.unit.conftest import MakeApi
from tests.unit.http_support import Api, User, assert_error, parse_sse
from tests.unit.models import FailingModel, ScriptedModel, SlowModel

PRIMARY, FALLBACK = "vendor/primary:free", "vendor/fallback:free"
CHAIN_ENV = {"DEFAULT_MODEL": PRIMARY, "FALLBACK_MODEL": FALLBACK}


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """The events of a streamed answer (comments left out), after checking the head."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers.get("x-request-id")
    return [frame for frame in parse_sse(response.text) if frame[0] != ":"]


def stored(user: User, cid: str) -> list[dict[str, Any]]:
    return user.messages(cid, include_usage="true")


@pytest.fixture
def scripted() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def api_with(make_api: MakeApi, scripted: ScriptedModel) -> Api:
    return make_api(env=CHAIN_ENV, model=scripted)


# --- framing --------------------------------------------------------------------------


def test_the_stream_is_user_message_then_chunks_then_complete(
    api_with: Api, scripted: ScriptedModel
) -> None:
    scripted.script[PRIMARY] = ["Data science could suit your analytical mind"]
    user = api_with.user()
    cid = user.create()["id"]

    frames = events(user.stream(cid, "Karier apa yang cocok?"))

    names = [name for name, _ in frames]
    assert names[0] == "user_message"
    assert names[-1] == "complete"
    assert set(names[1:-1]) == {"assistant_chunk"}
    assert len(names) - 2 == 7  # one chunk per word of the scripted answer
    question = frames[0][1]
    assert question["sender_type"] == "user"
    assert question["content"] == "Karier apa yang cocok?"
    assert question["status"] == "complete"
    assert question["conversation_id"] == cid
    deltas = [data for name, data in frames if name == "assistant_chunk"]
    assert all(set(delta) == {"delta"} for delta in deltas)
    complete = frames[-1][1]
    assert set(complete) == {"assistant_message", "usage", "model"}
    answer = complete["assistant_message"]
    assert "".join(d["delta"] for d in deltas) == answer["content"]
    assert answer["content"] == "Data science could suit your analytical mind "
    assert answer["sender_type"] == "assistant"
    assert answer["status"] == "complete"
    assert answer["parent_message_id"] == question["id"]
    assert answer["metadata"]["model"] == PRIMARY
    assert complete["model"] == PRIMARY
    assert complete["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 13,
        "cost": 0.0,
        "is_free_model": True,
    }

    # What was streamed is what is stored.
    listed = stored(user, cid)
    assert [m["id"] for m in listed] == [question["id"], answer["id"]]
    assert listed[0]["status"] == "complete"
    assert listed[0]["content"] == "Karier apa yang cocok?"
    assert listed[1]["status"] == "complete"
    assert listed[1]["content"] == answer["content"]
    assert listed[1]["metadata"]["model"] == PRIMARY
    assert listed[1]["metadata"]["finish_reason"] == "stop"
    assert listed[1]["usage"]["total_tokens"] == 13
    assert {k: v for k, v in listed[1].items() if k != "usage"} == answer


def test_the_offline_advisor_streams_too(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    frames = events(user.stream(cid, "What are my strengths?"))
    assert [frames[0][0], frames[-1][0]] == ["user_message", "complete"]
    deltas = "".join(data["delta"] for name, data in frames if name == "assistant_chunk")
    complete = frames[-1][1]
    assert complete["model"] == "offline"
    assert deltas == complete["assistant_message"]["content"]
    assert deltas.strip()
    assert stored(user, cid)[1]["content"] == deltas


def test_a_streamed_answer_continues_the_thread(api_with: Api) -> None:
    user = api_with.user()
    cid = user.create()["id"]
    first = events(user.stream(cid, "one"))[-1][1]["assistant_message"]
    second = user.send(cid, "two")
    assert second["user_message"]["parent_message_id"] == first["id"]
    # An explicit parent is honoured as for a plain send.
    branch = events(user.stream(cid, "again", parent_message_id=first["id"]))
    assert branch[0][1]["parent_message_id"] == first["id"]


def test_a_fallback_before_the_first_token_is_invisible_to_the_client(
    api_with: Api, scripted: ScriptedModel
) -> None:
    scripted.script[PRIMARY] = [ModelError(FailureKind.RATE_LIMITED, "busy", model=PRIMARY)]
    user = api_with.user()
    cid = user.create()["id"]
    frames = events(user.stream(cid, "hello"))
    assert [frames[0][0], frames[-1][0]] == ["user_message", "complete"]
    complete = frames[-1][1]
    assert complete["model"] == FALLBACK
    assert complete["assistant_message"]["metadata"]["fallback_from"] == [PRIMARY]
    assert [r.model for r in scripted.calls] == [PRIMARY, FALLBACK]


# --- failures -------------------------------------------------------------------------


def test_no_model_answering_is_an_error_event_and_the_question_is_kept(
    make_api: MakeApi,
) -> None:
    model = FailingModel()
    user = make_api(env=CHAIN_ENV, model=model).user()
    cid = user.create()["id"]

    frames = events(user.stream(cid, "anyone there?"))

    assert [name for name, _ in frames] == ["user_message", "error"]
    error = frames[1][1]
    assert error["code"] == "AI_SERVICE_UNAVAILABLE"
    assert error["message"]
    assert error["user_message_id"] == frames[0][1]["id"]
    assert "upstream said no" not in str(frames)
    assert model.calls == 2  # both free rungs; the paid one is disabled
    question, answer = stored(user, cid)
    assert question["id"] == frames[0][1]["id"]
    assert (question["sender_type"], question["status"]) == ("user", "complete")
    assert question["content"] == "anyone there?"
    assert (answer["sender_type"], answer["status"]) == ("assistant", "failed")
    assert answer["content"] == ""
    assert answer["parent_message_id"] == question["id"]
    assert "usage" not in answer  # no answer, no usage row


def test_a_mid_stream_failure_keeps_the_partial_answer_as_failed(
    api_with: Api, scripted: ScriptedModel
) -> None:
    scripted.script[PRIMARY] = [
        ("partial", 3, ModelError(FailureKind.UNAVAILABLE, "provider went away", model=PRIMARY))
    ]
    user = api_with.user()
    cid = user.create()["id"]

    frames = events(user.stream(cid, "tell me everything"))

    assert [name for name, _ in frames] == ["user_message"] + ["assistant_chunk"] * 3 + ["error"]
    error = frames[-1][1]
    assert error["code"] == "STREAM_INTERRUPTED"
    assert error["user_message_id"] == frames[0][1]["id"]
    assert "provider went away" not in str(frames)
    partial = "".join(data["delta"] for name, data in frames if name == "assistant_chunk")
    assert partial == "w0 w1 w2 "
    # No fallback once a token was sent.
    assert [r.model for r in scripted.calls] == [PRIMARY]
    assert scripted.closed_streams == 1
    answer = stored(user, cid)[1]
    assert answer["status"] == "failed"
    assert answer["content"] == partial
    assert answer["metadata"]["model"] == PRIMARY
    assert answer["metadata"]["error"] == "unavailable"
    assert error["assistant_message"]["id"] == answer["id"]


# --- bad input before the stream ------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   ", "x" * 10_001])
def test_bad_content_is_a_400_envelope_not_a_stream(api: Api, content: str) -> None:
    user = api.user()
    cid = user.create()["id"]
    assert_error(user.stream(cid, content), 400, "VALIDATION_ERROR")
    assert user.messages(cid) == []


def test_an_unknown_conversation_is_404_not_a_stream(api: Api) -> None:
    assert_error(api.user().stream(str(uuid4()), "hello?"), 404, "NOT_FOUND")


def test_another_users_conversation_is_404_and_untouched(api: Api) -> None:
    owner, intruder = api.user(), api.user()
    cid = owner.create()["id"]
    assert_error(intruder.stream(cid, "let me in"), 404, "NOT_FOUND")
    assert owner.messages(cid) == []


def test_an_unknown_parent_is_400_not_a_stream(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    response = user.stream(cid, "hi", parent_message_id=str(uuid4()))
    assert_error(response, 400, "VALIDATION_ERROR")
    assert user.messages(cid) == []


def test_the_message_rate_limit_is_429_before_the_stream(make_api: MakeApi) -> None:
    api = make_api(env={"FREE_MODEL_RATE_LIMIT_PER_MINUTE": "2"})
    user = api.user()
    cid = user.create()["id"]
    events(user.stream(cid, "one"))
    user.send(cid, "two")  # sends and streams share the limit
    response = user.stream(cid, "three")
    error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert int(response.headers["retry-after"]) >= 1
    assert error["details"]["retry_after"] >= 1
    assert [m["content"] for m in user.messages(cid) if m["sender_type"] == "user"] == [
        "one",
        "two",
    ]
    # Other users have their own limit.
    other = api.user()
    events(other.stream(other.create()["id"], "mine"))


# --- sse_frames: keep-alive and cancellation -------------------------------------------

USER = UUID("00000000-0000-4000-8000-000000000001")
SLOW = "vendor/slow:free"


async def _system_with(model: SlowModel) -> tuple[InMemorySystem, UUID]:
    system = in_memory_system(model=model, chain=ModelChain(primary=SLOW))
    conversation = await system.conversations.create(USER, CreateConversation())
    return system, conversation.id


def _events(chunks: list[bytes]) -> list[bytes]:
    """The SSE events in the chunks (a chunk holds one or more whole events)."""
    out: list[bytes] = []
    for chunk in chunks:
        assert chunk.endswith(b"\n\n")  # never an event split across chunks
        out.extend(event + b"\n\n" for event in chunk[:-2].split(b"\n\n"))
    return out


def _names(chunks: list[bytes]) -> list[str]:
    return [
        ":" if event == KEEPALIVE else event.split(b"\n")[0].decode() for event in _events(chunks)
    ]


async def test_keep_alive_comments_while_the_model_thinks() -> None:
    model = SlowModel(delay=0.3, tokens=2)
    system, cid = await _system_with(model)
    updates = await system.messages.stream(USER, cid, "take your time")

    frames = [frame async for frame in sse_frames(updates, keepalive_seconds=0.05)]

    names = _names(frames)
    assert names[0] == "event: user_message"
    assert names[-1] == "event: complete"
    first_chunk = names.index("event: assistant_chunk")
    thinking = names[1:first_chunk]
    assert len(thinking) >= 3  # ~0.3 s of thinking at one comment per 0.05 s
    assert set(thinking) == {":"}
    assert KEEPALIVE == b": keep-alive\n\n"
    # The comments are only padding: the answer is whole and stored.
    parsed = [f for f in parse_sse(b"".join(frames).decode()) if f[0] != ":"]
    deltas = "".join(data["delta"] for name, data in parsed if name == "assistant_chunk")
    assert deltas == parsed[-1][1]["assistant_message"]["content"] == "t0 t1 "
    message = await system.messages.get(USER, cid, UUID(parsed[-1][1]["assistant_message"]["id"]))
    assert message.status is MessageStatus.COMPLETE


async def test_no_keep_alive_when_the_model_is_quick() -> None:
    system, cid = await _system_with(SlowModel(tokens=3))
    updates = await system.messages.stream(USER, cid, "quick")
    frames = [frame async for frame in sse_frames(updates, keepalive_seconds=5)]
    assert ":" not in _names(frames)


def _frames(updates: AsyncGenerator[StreamUpdate, None]) -> AsyncGenerator[bytes, None]:
    """sse_frames as the async generator it is (so that it can be closed)."""
    return cast(AsyncGenerator[bytes, None], sse_frames(updates, keepalive_seconds=5))


async def _read_until_chunks(frames: AsyncIterator[bytes], count: int) -> list[bytes]:
    seen: list[bytes] = []
    async for chunk in frames:
        seen.extend(_events([chunk]))
        if sum(f.startswith(b"event: assistant_chunk") for f in seen) >= count:
            break
    return seen


async def _assistant(system: InMemorySystem, cid: UUID) -> Message:
    messages = await system.messages.list(USER, cid, PageRequest(limit=50))
    return [m for m in messages.page.items if m.sender_type is SenderType.ASSISTANT][-1]


async def test_closing_the_frames_cancels_the_model_and_keeps_the_partial_answer() -> None:
    model = SlowModel(tokens=1000, gap=0.01)
    system, cid = await _system_with(model)
    updates = await system.messages.stream(USER, cid, "go on")
    frames = _frames(updates)

    seen = await _read_until_chunks(frames, 3)
    await frames.aclose()  # as when a server closes the body iterator of a gone client

    assert model.cancelled == 1
    assert model.closed == 1
    answer = await _assistant(system, cid)
    assert answer.status is MessageStatus.CANCELLED
    # What the model had generated when the client left: at least what was sent, and
    # at most the few tokens queued meanwhile; never the whole answer.
    sent = "".join(
        json.loads(event.split(b"data: ", 1)[1])["delta"]
        for event in seen
        if event.startswith(b"event: assistant_chunk")
    )
    assert sent.startswith("t0 t1 t2 ")
    assert answer.content.startswith(sent)
    assert answer.content == "".join(f"t{i} " for i in range(len(answer.content.split())))
    assert len(answer.content.split()) < 100
    assert answer.metadata["cancelled"] is True
    assert not any(f.startswith(b"event: complete") for f in seen)
    # The question stays, complete.
    assert answer.parent_message_id is not None
    question = await system.messages.get(USER, cid, answer.parent_message_id)
    assert question.status is MessageStatus.COMPLETE


@pytest.mark.parametrize("after_tokens", [0, 2], ids=["while thinking", "mid-answer"])
async def test_cancelling_the_consumer_cancels_the_model(after_tokens: int) -> None:
    # What the server does when the client goes away: it cancels the task that is
    # iterating the frames.
    model = SlowModel(delay=0 if after_tokens else 30, tokens=1000, gap=0.01)
    system, cid = await _system_with(model)
    updates = await system.messages.stream(USER, cid, "think hard")
    chunks = 0
    enough = asyncio.Event()

    async def consume() -> None:
        nonlocal chunks
        async for chunk in sse_frames(updates, keepalive_seconds=5):
            chunks += sum(e.startswith(b"event: assistant_chunk") for e in _events([chunk]))
            if chunks >= after_tokens:
                enough.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(model.started.wait(), 1)
    await asyncio.wait_for(enough.wait(), 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)

    assert model.cancelled == 1
    answer = await _assistant(system, cid)
    assert answer.status is MessageStatus.CANCELLED
    assert len(answer.content.split()) >= after_tokens
    assert len(answer.content.split()) < 1000
    assert answer.content == "".join(f"t{i} " for i in range(len(answer.content.split())))


async def test_a_stream_closed_before_anyone_read_from_it_ends_cancelled() -> None:
    # A client that leaves before the stream begins: the answer's row, stored as
    # "streaming" with the question, must not stay so.
    model = SlowModel(tokens=3)
    system, cid = await _system_with(model)
    updates = await system.messages.stream(USER, cid, "never mind")
    answer = await _assistant(system, cid)
    assert answer.status is MessageStatus.STREAMING

    await updates.aclose()

    answer = await _assistant(system, cid)
    assert answer.status is MessageStatus.CANCELLED
    assert answer.content == ""
    assert not model.started.is_set()  # the model was never asked


async def test_a_client_that_leaves_right_after_the_user_message_cancels_the_answer() -> None:
    model = SlowModel(delay=30, tokens=3)
    system, cid = await _system_with(model)
    updates = await system.messages.stream(USER, cid, "bye")
    frames = _frames(updates)
    assert (await anext(frames)).startswith(b"event: user_message\n")

    await frames.aclose()

    answer = await _assistant(system, cid)
    assert answer.status is MessageStatus.CANCELLED
    assert answer.content == ""
    assert model.closed == model.cancelled  # asked or not, never left running


async def test_a_completed_stream_is_not_marked_cancelled_when_closed_late() -> None:
    system, cid = await _system_with(SlowModel(tokens=2))
    updates = await system.messages.stream(USER, cid, "short")
    frames = _frames(updates)
    seen = [frame async for frame in frames]
    await frames.aclose()
    assert _names(seen)[-1] == "event: complete"
    answer = await _assistant(system, cid)
    assert answer.status is MessageStatus.COMPLETE


async def _canned(*updates: StreamUpdate) -> AsyncGenerator[StreamUpdate, None]:
    for update in updates:
        yield update


async def test_events_that_are_ready_together_leave_in_one_chunk() -> None:
    # Tokens that arrive together (one network read upstream) need one write, not one
    # each; every event still arrives whole and in order.
    updates = _canned(*(StreamText(f"t{i} ") for i in range(20)))
    chunks = [chunk async for chunk in sse_frames(updates, keepalive_seconds=5)]
    events = _events(chunks)
    assert [json.loads(e.split(b"data: ", 1)[1])["delta"] for e in events] == [
        f"t{i} " for i in range(20)
    ]
    assert len(chunks) < len(events)


async def test_a_failure_of_the_updates_reaches_the_server_after_what_came_before() -> None:
    async def failing() -> AsyncGenerator[StreamUpdate, None]:
        yield StreamText("t0 ")
        raise RuntimeError("the stream broke")

    seen: list[bytes] = []

    frames = sse_frames(failing(), keepalive_seconds=5)
    seen.append(await anext(frames))
    with pytest.raises(RuntimeError, match="the stream broke"):
        await anext(frames)
    assert _names(seen) == ["event: assistant_chunk"]


async def test_the_last_frames_are_marked_and_end_the_response_in_one_message() -> None:
    system, cid = await _system_with(SlowModel(tokens=3))
    updates = await system.messages.stream(USER, cid, "quick")
    frames = [frame async for frame in sse_frames(updates, keepalive_seconds=5)]
    assert [isinstance(f, LastChunk) for f in frames] == [False] * (len(frames) - 1) + [True]
    assert _names(frames)[-1] == "event: complete"

    updates = await system.messages.stream(USER, cid, "again")
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async def receive() -> Any:
        await asyncio.Event().wait()  # the client stays

    response = EventStream(sse_frames(updates, keepalive_seconds=5)).to_asgi_response(
        None, cast(Any, None)
    )
    await response.send_body(send, receive)
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert [m["more_body"] for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert bodies[-1]["body"].rstrip().endswith(b"}")  # the complete frame, not b""
    assert b"event: complete" in bodies[-1]["body"]
    assert (await _assistant(system, cid)).status is MessageStatus.COMPLETE
