"""``POST /assessment/from-assessment`` and ``GET /conversations/{id}/suggestions``."""

from __future__ import annotations

import uuid

import msgspec

from adapters.memory import InMemoryAssessmentSource
from chatcore.assessment import ArchiveResult
from tests.conftest import load_fixture
from tests.unit.http_support import Api, assert_error, assert_ok


def test_a_result_becomes_one_conversation_with_a_welcome(shared_api: Api) -> None:
    user = shared_api.user()
    result_id = shared_api.archive_result(user.id)
    first = user.post("/assessment/from-assessment", json={"assessment_id": result_id})
    data = assert_ok(first, 201)
    conversation = data["conversation"]
    assert conversation["context_type"] == "assessment"
    assert conversation["title"] == "Panduan Karier - Hasil Asesmen"
    assert conversation["context_data"]["result_id"] == result_id
    assert conversation["context_data"]["persona_profile"]["archetype"] == (
        "The Analytical Innovator"
    )
    welcome = data["welcome_message"]
    assert welcome["sender_type"] == "assistant"
    assert welcome["metadata"]["model"] == "template"
    assert welcome["metadata"]["finish_reason"] == "stop"
    assert welcome["metadata"]["processing_time_ms"] >= 0
    assert "IAS (Investigatif–Artistik–Sosial)" in welcome["content"]
    assert 3 <= len(data["suggestions"]) <= 5
    assert data["created"] is True
    again = assert_ok(
        user.post("/assessment/from-assessment", json={"assessment_id": result_id}), 200
    )
    assert again["conversation"]["id"] == conversation["id"]
    assert again["welcome_message"]["id"] == welcome["id"]
    assert again["created"] is False
    messages = user.messages(conversation["id"])
    assert [m["id"] for m in messages] == [welcome["id"]]
    suggestions = assert_ok(user.get(f"/conversations/{conversation['id']}/suggestions"))
    assert suggestions["suggestions"] == data["suggestions"]


def test_a_deleted_assessment_conversation_is_not_given_back_but_made_anew(
    shared_api: Api,
) -> None:
    user = shared_api.user()
    result_id = shared_api.archive_result(user.id)
    body = {"assessment_id": result_id}
    first = assert_ok(user.post("/assessment/from-assessment", json=body), 201)
    old = first["conversation"]["id"]
    assert_ok(user.delete(f"/conversations/{old}"))

    anew = assert_ok(user.post("/assessment/from-assessment", json=body), 201)
    assert anew["created"] is True
    assert anew["conversation"]["id"] != old
    assert anew["conversation"]["status"] == "active"
    assert anew["welcome_message"] is not None
    assert_error(user.get(f"/conversations/{old}"), 404, "NOT_FOUND")
    again = assert_ok(user.post("/assessment/from-assessment", json=body), 200)
    assert again["conversation"]["id"] == anew["conversation"]["id"]


def test_title_and_no_welcome(shared_api: Api) -> None:
    user = shared_api.user()
    result_id = shared_api.archive_result(user.id)
    data = assert_ok(
        user.post(
            "/assessment/from-assessment",
            json={"assessment_id": result_id, "title": "Hasil saya", "auto_start_message": False},
        ),
        201,
    )
    assert data["conversation"]["title"] == "Hasil saya"
    assert data["welcome_message"] is None
    assert user.messages(data["conversation"]["id"]) == []


def test_another_users_or_an_unknown_result_is_404(shared_api: Api) -> None:
    owner, intruder = shared_api.user(), shared_api.user()
    result_id = shared_api.archive_result(owner.id)
    for who, rid in ((intruder, result_id), (owner, "no-such-result")):
        response = who.post("/assessment/from-assessment", json={"assessment_id": rid})
        assert_error(response, 404, "NOT_FOUND")
    assert intruder.get("/conversations").json()["data"]["conversations"] == []


def test_a_result_not_completed_is_400(shared_api: Api) -> None:
    user = shared_api.user()
    data = {**load_fixture("archive_result_v1.json")["data"], "user_id": str(user.id)}
    data.update(id=f"pending-{uuid.uuid4()}", status="processing")
    source = shared_api.container.assessment_source
    assert isinstance(source, InMemoryAssessmentSource)
    source.add(msgspec.convert(data, ArchiveResult))
    response = user.post("/assessment/from-assessment", json={"assessment_id": data["id"]})
    assert_error(response, 400, "VALIDATION_ERROR")


def test_archive_down_is_503_and_nothing_is_created(shared_api: Api) -> None:
    user = shared_api.user()
    result_id = shared_api.archive_result(user.id)
    source = shared_api.container.assessment_source
    assert isinstance(source, InMemoryAssessmentSource)
    source.down = True
    try:
        response = user.post("/assessment/from-assessment", json={"assessment_id": result_id})
    finally:
        source.down = False
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"]
    assert user.get("/conversations").json()["data"]["conversations"] == []


def test_suggestions_of_a_plain_conversation_are_generic(shared_api: Api) -> None:
    user = shared_api.user()
    cid = user.create()["id"]
    data = assert_ok(user.get(f"/conversations/{cid}/suggestions"))
    assert len(data["suggestions"]) == 3


def test_bad_bodies_are_400(shared_api: Api) -> None:
    user = shared_api.user()
    for body in ({}, {"assessment_id": ""}, {"assessment_id": 5}, {"assessment_id": "x", "z": 1}):
        assert_error(user.post("/assessment/from-assessment", json=body), 400, "VALIDATION_ERROR")
