"""The conversation routes: create, read, list (filters, cursors, pages), update, delete."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.unit.http_support import Api, assert_error, assert_ok

CONVERSATION_FIELDS = {
    "id",
    "user_id",
    "title",
    "context_type",
    "context_data",
    "metadata",
    "status",
    "created_at",
    "updated_at",
}
PAGINATION_FIELDS = {"limit", "next_cursor", "has_more", "page"}


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    return parsed


def assert_conversation(data: dict[str, Any]) -> None:
    assert set(data) == CONVERSATION_FIELDS, data
    uuid.UUID(data["id"])
    uuid.UUID(data["user_id"])
    assert data["status"] in {"active", "archived"}
    assert data["context_type"] in {"general", "assessment", "career_guidance"}
    assert isinstance(data["context_data"], dict)
    assert isinstance(data["metadata"], dict)
    assert _timestamp(data["updated_at"]) >= _timestamp(data["created_at"])


def test_create_returns_201_and_the_conversation(api: Api) -> None:
    user = api.user()
    response = user.post("/conversations", json={"title": "Career plans"})
    data = assert_ok(response, 201)
    assert_conversation(data)
    assert data["title"] == "Career plans"
    assert data["user_id"] == str(user.id)
    assert data["status"] == "active"
    assert data["context_type"] == "general"
    assert data["context_data"] == {}
    assert data["metadata"] == {}


def test_create_without_a_body_uses_the_defaults(api: Api) -> None:
    data = assert_ok(api.user().post("/conversations"), 201)
    assert_conversation(data)
    assert data["title"] == "Percakapan Baru"
    assert data["context_type"] == "general"


def test_create_with_every_field(api: Api) -> None:
    persona = {"archetype": "The Analyst", "strengths": ["logic"]}
    data = api.user().create(
        title="Mine",
        context_type="career_guidance",
        context_data={"source": "web"},
        metadata={"language": "en", "client": "app"},
        profilePersona=persona,
        resultsId="result-42",
    )
    assert data["context_type"] == "career_guidance"
    assert data["metadata"] == {"language": "en", "client": "app"}
    assert data["context_data"]["source"] == "web"
    assert data["context_data"]["persona_profile"] == persona
    assert data["context_data"]["result_id"] == "result-42"


def test_a_persona_without_a_context_type_makes_an_assessment_conversation(api: Api) -> None:
    data = api.user().create(profilePersona={"archetype": "The Builder"})
    assert data["context_type"] == "assessment"


def test_english_metadata_gives_an_english_default_title(api: Api) -> None:
    assert api.user().create(metadata={"language": "en"})["title"] == "New Conversation"


def test_get_returns_the_conversation_without_messages_by_default(api: Api) -> None:
    user = api.user()
    created = user.create(title="Read me")
    user.send(created["id"], "Hello")
    data = user.conversation(created["id"])
    assert_conversation(data)
    assert data["id"] == created["id"]
    assert data["title"] == "Read me"
    assert "messages" not in data


def test_get_with_include_messages_returns_the_newest_oldest_first(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    sent = [user.send(cid, f"question {n}") for n in range(3)]
    everything = user.conversation(cid, include_messages="true")
    assert [m["id"] for m in everything["messages"]] == [
        mid
        for result in sent
        for mid in (result["user_message"]["id"], result["assistant_message"]["id"])
    ]
    newest = user.conversation(cid, include_messages="true", message_limit=3)
    assert [m["id"] for m in newest["messages"]] == [m["id"] for m in everything["messages"][-3:]]
    assert newest["messages"][1]["content"] == "question 2"


def test_update_changes_the_fields_and_persists(api: Api) -> None:
    user = api.user()
    created = user.create(title="Before", metadata={"a": 1})
    response = user.put(
        f"/conversations/{created['id']}",
        json={
            "title": "After",
            "status": "archived",
            "metadata": {"b": 2},
            "context_data": {"note": "x"},
        },
    )
    data = assert_ok(response)
    assert_conversation(data)
    assert data["title"] == "After"
    assert data["status"] == "archived"
    assert data["metadata"] == {"b": 2}
    assert data["context_data"] == {"note": "x"}
    assert _timestamp(data["updated_at"]) >= _timestamp(created["updated_at"])
    again = user.conversation(created["id"])
    assert {k: again[k] for k in ("title", "status", "metadata", "context_data")} == {
        "title": "After",
        "status": "archived",
        "metadata": {"b": 2},
        "context_data": {"note": "x"},
    }


def test_update_with_an_empty_object_changes_nothing(api: Api) -> None:
    user = api.user()
    created = user.create(title="Same")
    data = assert_ok(user.put(f"/conversations/{created['id']}", json={}))
    assert data["title"] == "Same"
    assert data["status"] == "active"


def test_an_archived_conversation_can_be_made_active_again(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    assert_ok(user.put(f"/conversations/{cid}", json={"status": "archived"}))
    data = assert_ok(user.put(f"/conversations/{cid}", json={"status": "active"}))
    assert data["status"] == "active"


def test_delete_is_soft_and_every_later_read_is_404(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    user.send(cid, "something to keep")
    response = user.delete(f"/conversations/{cid}")
    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["data"] is None
    assert_error(user.get(f"/conversations/{cid}"), 404, "NOT_FOUND")
    assert_error(user.put(f"/conversations/{cid}", json={"title": "x"}), 404, "NOT_FOUND")
    assert_error(user.delete(f"/conversations/{cid}"), 404, "NOT_FOUND")
    assert_error(user.get(f"/conversations/{cid}/messages"), 404, "NOT_FOUND")
    assert_error(
        user.post(f"/conversations/{cid}/messages", json={"content": "hi"}), 404, "NOT_FOUND"
    )
    for status in ("active", "archived"):
        listed = assert_ok(user.get("/conversations", params={"status": status}))
        assert cid not in [c["id"] for c in listed["conversations"]]


def test_list_shape_and_most_recently_active_first(api: Api) -> None:
    user = api.user()
    first = user.create(title="first")["id"]
    second = user.create(title="second")["id"]
    data = assert_ok(user.get("/conversations"))
    assert set(data) == {"conversations", "pagination"}
    assert set(data["pagination"]) == PAGINATION_FIELDS
    assert data["pagination"] == {
        "limit": 20,
        "next_cursor": None,
        "has_more": False,
        "page": None,
    }
    for conversation in data["conversations"]:
        assert_conversation(conversation)
    assert [c["id"] for c in data["conversations"]] == [second, first]
    user.send(first, "bump me")
    data = assert_ok(user.get("/conversations"))
    assert [c["id"] for c in data["conversations"]] == [first, second]


def test_list_shows_only_the_callers_conversations(api: Api) -> None:
    alice, bob = api.user(), api.user()
    mine = alice.create()["id"]
    bob.create()
    data = assert_ok(alice.get("/conversations"))
    assert [c["id"] for c in data["conversations"]] == [mine]


def test_list_filters_by_status_and_context_type(api: Api) -> None:
    user = api.user()
    general = user.create(context_type="general")["id"]
    guidance = user.create(context_type="career_guidance")["id"]
    archived = user.create(context_type="career_guidance")["id"]
    assert_ok(user.put(f"/conversations/{archived}", json={"status": "archived"}))

    def ids(**params: str) -> set[str]:
        data = assert_ok(user.get("/conversations", params=params))
        return {c["id"] for c in data["conversations"]}

    assert ids() == {general, guidance}
    assert ids(status="active") == {general, guidance}
    assert ids(status="archived") == {archived}
    assert ids(context_type="career_guidance") == {guidance}
    assert ids(context_type="career_guidance", status="archived") == {archived}
    assert ids(context_type="assessment") == set()


@pytest.mark.parametrize("limit", [1, 3, 7, 8])
def test_cursor_pagination_yields_every_conversation_exactly_once(api: Api, limit: int) -> None:
    user = api.user()
    created = [user.create(title=f"c{n}")["id"] for n in range(7)]
    items = user.all_pages("/conversations", "conversations", limit)
    ids = [c["id"] for c in items]
    assert len(ids) == len(set(ids))
    assert ids == list(reversed(created))


def test_the_default_limit_is_20(api: Api) -> None:
    user = api.user()
    for n in range(21):
        user.create(title=f"c{n}")
    data = assert_ok(user.get("/conversations"))
    assert len(data["conversations"]) == 20
    assert data["pagination"]["limit"] == 20
    assert data["pagination"]["has_more"] is True
    assert data["pagination"]["next_cursor"]


def test_page_is_kept_for_older_clients(api: Api) -> None:
    user = api.user()
    created = list(reversed([user.create(title=f"c{n}")["id"] for n in range(5)]))
    second = assert_ok(user.get("/conversations", params={"limit": 2, "page": 2}))
    assert [c["id"] for c in second["conversations"]] == created[2:4]
    assert second["pagination"]["page"] == 2
    assert second["pagination"]["limit"] == 2
    assert second["pagination"]["has_more"] is True
    last = assert_ok(user.get("/conversations", params={"limit": 2, "page": 3}))
    assert [c["id"] for c in last["conversations"]] == created[4:]
    assert last["pagination"]["has_more"] is False
    assert last["pagination"]["next_cursor"] is None
    beyond = assert_ok(user.get("/conversations", params={"limit": 2, "page": 9}))
    assert beyond["conversations"] == []
    assert beyond["pagination"]["has_more"] is False


def test_a_cursor_wins_over_page(api: Api) -> None:
    user = api.user()
    created = list(reversed([user.create(title=f"c{n}")["id"] for n in range(4)]))
    first = assert_ok(user.get("/conversations", params={"limit": 2}))
    cursor = first["pagination"]["next_cursor"]
    data = assert_ok(user.get("/conversations", params={"limit": 2, "cursor": cursor, "page": 1}))
    assert [c["id"] for c in data["conversations"]] == created[2:]
    assert data["pagination"]["page"] is None
