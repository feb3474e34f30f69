"""``GET /conversations/search``, ``GET /conversations/{id}/export`` and the reactions
of ``/conversations/{id}/messages/{mid}/reactions``.

Authentication, another user's conversation (404) and malformed bodies are tried on
these routes with every other one (``ROUTES`` in http_support).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.unit.http_support import Api, User, assert_error, assert_ok

# -- search ---------------------------------------------------------------------------


def _search(user: User, q: str, **params: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(user.get("/conversations/search", params={"q": q, **params}))
    return data


def test_search_finds_the_users_messages_by_word_starts_newest_first(api: Api) -> None:
    user, other = api.user(), api.user()
    first = user.create(title="Rencana")["id"]
    user.send(first, "Apakah karier data scientist cocok?")
    second = user.create(title="Jurusan")["id"]
    sent = user.send(second, "Jurusan informatika atau statistika untuk data?")
    other.send(other.create()["id"], "data karier rahasia orang lain")

    found = _search(user, "DATA")
    results = found["results"]
    assert isinstance(results, list)
    user_hits = [r for r in results if r["sender_type"] == "user"]
    assert [h["conversation_id"] for h in user_hits] == [second, first]  # newest first
    assert user_hits[0]["message_id"] == sent["user_message"]["id"]
    assert user_hits[0]["conversation_title"] == "Jurusan"
    assert "<mark>data</mark>" in user_hits[0]["snippet"]
    assert all("rahasia" not in r["snippet"] for r in results)  # never another user's
    # Every word must start a word of the message; a prefix is enough.
    both = _search(user, "kari scien")["results"]
    assert isinstance(both, list)
    assert [r["conversation_id"] for r in both if r["sender_type"] == "user"] == [first]
    assert _search(user, "zzzunknown")["results"] == []


def test_search_skips_deleted_conversations_and_keeps_archived_ones(api: Api) -> None:
    user = api.user()
    kept = user.create()["id"]
    user.send(kept, "arsitek lanskap")
    gone = user.create()["id"]
    user.send(gone, "arsitek perangkat lunak")
    assert_ok(user.put(f"/conversations/{kept}", json={"status": "archived"}))
    assert_ok(user.delete(f"/conversations/{gone}"))
    results = _search(user, "arsitek")["results"]
    assert isinstance(results, list)
    assert {r["conversation_id"] for r in results} == {kept}


def test_search_pages_give_every_hit_exactly_once(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    for i in range(7):
        user.send(cid, f"pertanyaan nomor {i} tentang magang")
    hits: list[dict[str, str]] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = _search(user, "magang", **params)
        hits += page["results"]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
        params = {"limit": 3, "cursor": cursor}
    asked = [h for h in hits if h["sender_type"] == "user"]
    assert len({h["message_id"] for h in hits}) == len(hits)
    assert [h["snippet"].split()[2] for h in asked] == [str(i) for i in reversed(range(7))]


def test_search_snippets_are_html_escaped(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    user.send(cid, "<script>alert(1)</script> beasiswa luar negeri")
    [hit] = [r for r in _search(user, "beasiswa")["results"] if r["sender_type"] == "user"]
    assert "<script>" not in hit["snippet"]
    assert "&lt;script&gt;" in hit["snippet"]
    assert "<mark>beasiswa</mark>" in hit["snippet"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "?!  --"}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "data", "limit": 0}, "limit"),
        ({"q": "data", "limit": 101}, "limit"),
        ({"q": "data", "cursor": "not-a-cursor"}, "cursor"),
    ],
    ids=["missing", "empty", "no-word", "too-long", "limit-0", "limit-101", "bad-cursor"],
)
def test_bad_searches_are_400(api: Api, params: dict[str, object], field: str) -> None:
    response = api.user().get("/conversations/search", params=params)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in json.dumps(error)


# -- export ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("json", "application/json"), ("txt", "text/plain"), ("md", "text/markdown")],
)
def test_export_downloads_every_message_in_order(api: Api, fmt: str, media_type: str) -> None:
    user = api.user()
    cid = user.create(title="Rencana kuliah")["id"]
    user.send(cid, "pertanyaan pertama")
    user.send(cid, "pertanyaan kedua")
    messages = user.messages(cid)

    response = user.get(f"/conversations/{cid}/export", params={"format": fmt})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["content-type"].count("charset") <= 1
    assert response.headers["content-disposition"] == (
        f'attachment; filename="conversation-{cid}.{fmt}"'
    )
    if fmt == "json":
        document = response.json()
        assert document["conversation"]["id"] == cid
        assert [m["id"] for m in document["messages"]] == [m["id"] for m in messages]
        assert "exported_at" in document
    else:
        text = response.text
        assert "Rencana kuliah" in text
        assert text.index("pertanyaan pertama") < text.index("pertanyaan kedua")


def test_export_defaults_to_json_and_refuses_other_formats(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    assert (
        user.get(f"/conversations/{cid}/export")
        .headers["content-type"]
        .startswith("application/json")
    )
    error = assert_error(
        user.get(f"/conversations/{cid}/export", params={"format": "pdf"}), 400, "VALIDATION_ERROR"
    )
    assert "format" in json.dumps(error)


def test_a_deleted_conversation_is_not_exported(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    assert_ok(user.delete(f"/conversations/{cid}"))
    assert_error(user.get(f"/conversations/{cid}/export"), 404, "NOT_FOUND")


# -- reactions ------------------------------------------------------------------------


def _answer(user: User) -> tuple[str, str, str]:
    cid = user.create()["id"]
    sent = user.send(cid, "Apa kekuatanku?")
    return cid, sent["user_message"]["id"], sent["assistant_message"]["id"]


def _react(user: User, cid: str, mid: str, **body: object) -> list[dict[str, Any]]:
    url = f"/conversations/{cid}/messages/{mid}/reactions"
    data = assert_ok(user.post(url, json=body))
    assert data["message_id"] == mid
    reactions: list[dict[str, Any]] = data["reactions"]
    return reactions


def test_reactions_are_a_choice_of_one_per_pair(api: Api) -> None:
    user = api.user()
    cid, _, mid = _answer(user)
    [like] = _react(user, cid, mid, reaction="like", feedback="  jelas sekali  ")
    assert (like["reaction"], like["feedback"]) == ("like", "jelas sekali")

    kinds = [r["reaction"] for r in _react(user, cid, mid, reaction="helpful")]
    assert kinds == ["like", "helpful"]  # the other pair is left alone
    kinds = [r["reaction"] for r in _react(user, cid, mid, reaction="dislike")]
    assert sorted(kinds) == ["dislike", "helpful"]  # dislike replaced like

    again = _react(user, cid, mid, reaction="helpful", feedback="sangat membantu")
    helpful = next(r for r in again if r["reaction"] == "helpful")
    assert helpful["feedback"] == "sangat membantu"
    assert helpful["updated_at"] >= helpful["created_at"]
    assert len(again) == 2

    url = f"/conversations/{cid}/messages/{mid}/reactions"
    assert assert_ok(user.get(url))["reactions"] == again
    left = assert_ok(user.delete(f"{url}/dislike"))["reactions"]
    assert [r["reaction"] for r in left] == ["helpful"]
    assert assert_ok(user.delete(f"{url}/dislike"))["reactions"] == left  # nothing to remove


def test_only_answers_take_reactions(api: Api) -> None:
    user = api.user()
    cid, question, _ = _answer(user)
    response = user.post(
        f"/conversations/{cid}/messages/{question}/reactions", json={"reaction": "like"}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


def test_a_message_must_be_of_that_conversation(api: Api) -> None:
    user = api.user()
    cid, _, mid = _answer(user)
    elsewhere = user.create()["id"]
    for target in (
        f"/conversations/{elsewhere}/messages/{mid}",
        f"/conversations/{cid}/messages/{uuid.uuid4()}",
    ):
        assert_error(user.post(f"{target}/reactions", json={"reaction": "like"}), 404, "NOT_FOUND")
        assert_error(user.get(f"{target}/reactions"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reaction": "love"},
        {"reaction": None},
        {"reaction": "like", "feedback": 5},
        {"reaction": "like", "feedback": "x" * 4001},
        {"reaction": "like", "extra": True},
    ],
    ids=["missing", "unknown", "null", "feedback-type", "feedback-too-long", "unknown-field"],
)
def test_bad_reactions_are_400(api: Api, body: dict[str, object]) -> None:
    user = api.user()
    cid, _, mid = _answer(user)
    response = user.post(f"/conversations/{cid}/messages/{mid}/reactions", json=body)
    assert_error(response, 400, "VALIDATION_ERROR")
    assert assert_ok(user.get(f"/conversations/{cid}/messages/{mid}/reactions"))["reactions"] == []


def test_feedback_over_the_limit_after_trimming_is_400(api: Api) -> None:
    user = api.user()
    cid, _, mid = _answer(user)
    response = user.post(
        f"/conversations/{cid}/messages/{mid}/reactions",
        json={"reaction": "like", "feedback": "y" * 2001},
    )
    assert_error(response, 400, "VALIDATION_ERROR")
    ok = _react(user, cid, mid, reaction="like", feedback="  " + "y" * 2000 + "  ")
    assert ok[0]["feedback"] == "y" * 2000


def test_an_unknown_reaction_to_take_back_is_400(api: Api) -> None:
    user = api.user()
    cid, _, mid = _answer(user)
    response = user.delete(f"/conversations/{cid}/messages/{mid}/reactions/love")
    assert_error(response, 400, "VALIDATION_ERROR")
