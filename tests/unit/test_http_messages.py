"""The message routes: send (shape, threading, failures, limits) and list (usage, pages)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.unit.conftest import MakeApi
from tests.unit.http_support import Api, assert_error, assert_ok
from tests.unit.models import FailingModel, RecordingModel

MESSAGE_FIELDS = {
    "id",
    "conversation_id",
    "sender_type",
    "content",
    "parent_message_id",
    "status",
    "metadata",
    "created_at",
}
USAGE_FIELDS = {"prompt_tokens", "completion_tokens", "total_tokens", "cost", "is_free_model"}


def assert_message(message: dict[str, Any], conversation_id: str) -> None:
    assert set(message) - {"usage"} == MESSAGE_FIELDS, message
    uuid.UUID(message["id"])
    assert message["conversation_id"] == conversation_id
    assert message["sender_type"] in {"user", "assistant", "system"}
    assert message["status"] in {"complete", "streaming", "cancelled", "failed"}
    assert isinstance(message["metadata"], dict)


def assert_usage(usage: dict[str, Any]) -> None:
    assert set(usage) == USAGE_FIELDS, usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert isinstance(usage["cost"], int | float)
    assert isinstance(usage["is_free_model"], bool)


def test_send_returns_201_with_both_messages_usage_and_model(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    response = user.post(
        f"/conversations/{cid}/messages", json={"content": "Karier apa yang cocok untukku?"}
    )
    data = assert_ok(response, 201)
    assert set(data) == {
        "user_message",
        "assistant_message",
        "usage",
        "model",
        "processing_time_ms",
    }
    question, answer = data["user_message"], data["assistant_message"]
    assert_message(question, cid)
    assert_message(answer, cid)
    assert question["sender_type"] == "user"
    assert question["content"] == "Karier apa yang cocok untukku?"
    assert question["parent_message_id"] is None
    assert question["status"] == "complete"
    assert answer["sender_type"] == "assistant"
    assert answer["parent_message_id"] == question["id"]
    assert answer["status"] == "complete"
    assert answer["content"].strip()
    assert data["model"] == "offline"
    assert answer["metadata"]["model"] == "offline"
    assert isinstance(answer["metadata"]["finish_reason"], str)
    assert isinstance(answer["metadata"]["processing_time_ms"], int)
    assert answer["metadata"]["processing_time_ms"] >= 0
    assert isinstance(data["processing_time_ms"], int)
    assert data["processing_time_ms"] >= 0
    assert_usage(data["usage"])
    assert data["usage"]["is_free_model"] is True
    assert data["usage"]["cost"] == 0


def test_each_message_follows_the_previous_answer(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    first = user.send(cid, "one")
    second = user.send(cid, "two")
    assert second["user_message"]["parent_message_id"] == first["assistant_message"]["id"]


def test_parent_message_id_starts_a_branch(make_api: MakeApi) -> None:
    model = RecordingModel()
    user = make_api(model=model).user()
    cid = user.create()["id"]
    first = user.send(cid, "first question")
    user.send(cid, "second question")
    branch = user.send(cid, "instead", parent_message_id=first["user_message"]["id"])
    assert branch["user_message"]["parent_message_id"] == first["user_message"]["id"]
    prompt = " ".join(m.content for m in model.requests[-1].messages)
    assert "first question" in prompt
    assert "second question" not in prompt


def test_the_conversation_history_reaches_the_model(make_api: MakeApi) -> None:
    model = RecordingModel()
    user = make_api(model=model).user()
    cid = user.create()["id"]
    user.send(cid, "I like biology")
    user.send(cid, "What should I study?")
    contents = [m.content for m in model.requests[-1].messages]
    assert "I like biology" in contents
    assert "answer 1" in contents
    assert contents[-1] == "What should I study?"


def test_list_messages_oldest_first(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    sent = [user.send(cid, f"q{n}") for n in range(2)]
    data = assert_ok(user.get(f"/conversations/{cid}/messages"))
    assert set(data) == {"messages", "pagination"}
    assert data["pagination"] == {"limit": 50, "next_cursor": None, "has_more": False, "page": None}
    expected = [
        mid
        for result in sent
        for mid in (result["user_message"]["id"], result["assistant_message"]["id"])
    ]
    assert [m["id"] for m in data["messages"]] == expected
    for message in data["messages"]:
        assert_message(message, cid)
        assert "usage" not in message
    assert [m["sender_type"] for m in data["messages"]] == ["user", "assistant"] * 2


def test_list_messages_with_include_usage(make_api: MakeApi) -> None:
    user = make_api(model=RecordingModel()).user()
    cid = user.create()["id"]
    user.send(cid, "hello")
    messages = user.messages(cid, include_usage="true")
    question, answer = messages
    assert "usage" not in question
    assert_usage(answer["usage"])
    assert answer["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "total_tokens": 12,
        "cost": 0.0,
        "is_free_model": True,
    }
    assert answer["metadata"]["model"] == "recording"


def test_a_new_conversation_has_no_messages(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    assert user.messages(cid) == []


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_message_cursor_pagination_yields_every_message_exactly_once(api: Api, limit: int) -> None:
    user = api.user()
    cid = user.create()["id"]
    for n in range(4):
        user.send(cid, f"q{n}")
    items = user.all_pages(f"/conversations/{cid}/messages", "messages", limit)
    ids = [m["id"] for m in items]
    assert len(ids) == 8
    assert len(set(ids)) == 8
    assert ids == [m["id"] for m in user.messages(cid)]


def test_message_page_compat(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    for n in range(3):
        user.send(cid, f"q{n}")
    everything = [m["id"] for m in user.messages(cid)]
    data = assert_ok(user.get(f"/conversations/{cid}/messages", params={"limit": 4, "page": 2}))
    assert [m["id"] for m in data["messages"]] == everything[4:]
    assert data["pagination"]["page"] == 2
    assert data["pagination"]["has_more"] is False


def test_model_failure_is_503_and_the_question_is_kept(make_api: MakeApi) -> None:
    model = FailingModel()
    user = make_api(model=model).user()
    cid = user.create()["id"]
    response = user.post(f"/conversations/{cid}/messages", json={"content": "are you there?"})
    error = assert_error(response, 503, "AI_SERVICE_UNAVAILABLE")
    # Each free rung of the default chain was asked once; the paid one is disabled.
    assert model.calls == 2
    assert error["details"]["reasons"] == [
        "qwen/qwen3-235b-a22b-07-25:free: failed (unavailable)",
        "meta-llama/llama-3.2-3b-instruct:free: failed (unavailable)",
        "openai/gpt-4o-mini: skipped (paid models are disabled)",
    ]
    stored = user.messages(cid)
    assert [(m["sender_type"], m["content"]) for m in stored] == [("user", "are you there?")]
    assert error["details"]["user_message_id"] == stored[0]["id"]
    assert "upstream said no" not in response.text  # the model's own words stay in the logs


def test_the_message_rate_limit_is_429_with_retry_after(make_api: MakeApi) -> None:
    api = make_api(env={"FREE_MODEL_RATE_LIMIT_PER_MINUTE": "2"})
    user = api.user()
    cid = user.create()["id"]
    user.send(cid, "one")
    user.send(cid, "two")
    response = user.post(f"/conversations/{cid}/messages", json={"content": "three"})
    error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60
    assert error["details"]["limit"] == 2
    assert len(user.messages(cid)) == 4  # the refused message was not stored
    # Limits are per user.
    other = api.user()
    other.send(other.create()["id"], "mine")


def test_the_conversation_rate_limit_is_429_with_retry_after(make_api: MakeApi) -> None:
    api = make_api(env={"RATE_LIMIT_CONVERSATIONS_PER_DAY": "2"})
    user = api.user()
    user.create()
    user.create()
    response = user.post("/conversations", json={"title": "one too many"})
    error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 86_400
    assert error["details"]["limit"] == 2
    listed = assert_ok(user.get("/conversations"))
    assert len(listed["conversations"]) == 2
    api.user().create()


@pytest.mark.parametrize("content", ["", " ", "\n\t  "])
def test_empty_content_is_400(api: Api, content: str) -> None:
    user = api.user()
    cid = user.create()["id"]
    response = user.post(f"/conversations/{cid}/messages", json={"content": content})
    assert_error(response, 400, "VALIDATION_ERROR")
    assert user.messages(cid) == []


def test_content_longer_than_max_message_length_is_400(make_api: MakeApi) -> None:
    user = make_api(env={"MAX_MESSAGE_LENGTH": "20"}).user()
    cid = user.create()["id"]
    user.send(cid, "x" * 20)
    response = user.post(f"/conversations/{cid}/messages", json={"content": "x" * 21})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"]["max_length"] == 20
    assert len(user.messages(cid)) == 2


def test_the_default_max_message_length_is_10000(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    accepted = user.send(cid, "a" * 10_000)
    assert len(accepted["user_message"]["content"]) == 10_000
    response = user.post(f"/conversations/{cid}/messages", json={"content": "a" * 10_001})
    assert_error(response, 400, "VALIDATION_ERROR")


def test_parent_message_id_must_be_a_uuid(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    response = user.post(
        f"/conversations/{cid}/messages", json={"content": "hi", "parent_message_id": "nope"}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


def test_parent_message_id_of_another_conversation_is_400(api: Api) -> None:
    user = api.user()
    elsewhere = user.send(user.create()["id"], "elsewhere")["user_message"]["id"]
    cid = user.create()["id"]
    for parent in (elsewhere, str(uuid.uuid4())):
        response = user.post(
            f"/conversations/{cid}/messages", json={"content": "hi", "parent_message_id": parent}
        )
        assert_error(response, 400, "VALIDATION_ERROR")
    assert user.messages(cid) == []


def test_parent_message_id_of_another_users_message_is_400(api: Api) -> None:
    alice, mallory = api.user(), api.user()
    secret = alice.send(alice.create()["id"], "private")["user_message"]["id"]
    cid = mallory.create()["id"]
    response = mallory.post(
        f"/conversations/{cid}/messages", json={"content": "hi", "parent_message_id": secret}
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "private" not in str(error)
