"""Regenerating an answer: a sibling of the original, the knobs, the model, refusals."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chatcore.models import FailureKind, ModelError
from tests.unit.conftest import MakeApi
from tests.unit.http_support import Api, User, assert_error, assert_ok, parse_sse
from tests.unit.models import FailingModel, RecordingModel, ScriptedModel

PRIMARY, FALLBACK = "vendor/primary:free", "vendor/fallback:free"
CHAIN_ENV = {"DEFAULT_MODEL": PRIMARY, "FALLBACK_MODEL": FALLBACK}


def regenerate(
    user: User, cid: str, mid: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return user.post(f"/conversations/{cid}/messages/{mid}/regenerate", json=body)


def regenerated(
    user: User, cid: str, mid: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(regenerate(user, cid, mid, body), 201)
    return data


@pytest.fixture
def recording() -> RecordingModel:
    return RecordingModel()


@pytest.fixture
def recorded_api(make_api: MakeApi, recording: RecordingModel) -> Api:
    return make_api(env=CHAIN_ENV, model=recording)


@pytest.fixture
def scripted() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def scripted_api(make_api: MakeApi, scripted: ScriptedModel) -> Api:
    return make_api(env=CHAIN_ENV, model=scripted)


# --- the sibling ----------------------------------------------------------------------


def test_regenerate_creates_a_sibling_and_keeps_the_original(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    sent = user.send(cid, "Apa kekuatan saya?")
    question, original = sent["user_message"], sent["assistant_message"]
    before = user.messages(cid)

    data = regenerated(user, cid, original["id"])

    assert set(data) == {"message", "usage", "original_message_id"}
    assert data["original_message_id"] == original["id"]
    message = data["message"]
    assert message["id"] != original["id"]
    assert message["conversation_id"] == cid
    assert message["sender_type"] == "assistant"
    assert message["status"] == "complete"
    assert message["parent_message_id"] == question["id"] == original["parent_message_id"]
    assert message["metadata"]["regenerated_from"] == original["id"]
    assert message["metadata"]["model"] == "offline"
    assert message["content"].strip()
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    after = user.messages(cid, include_usage="true")
    assert [m["id"] for m in after] == [question["id"], original["id"], message["id"]]
    # The original is untouched.
    assert {k: v for k, v in after[1].items() if k != "usage"} == before[1]
    assert "regenerated_from" not in after[1]["metadata"]
    assert {k: v for k, v in after[2].items() if k != "usage"} == message
    assert after[2]["usage"] == data["usage"]


def test_a_regenerated_answer_can_be_regenerated_again(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    sent = user.send(cid, "Bagaimana cara memulai karier?")
    first = regenerated(user, cid, sent["assistant_message"]["id"])["message"]
    second = regenerated(user, cid, first["id"])["message"]
    assert second["parent_message_id"] == sent["user_message"]["id"]
    assert second["metadata"]["regenerated_from"] == first["id"]
    assert len(user.messages(cid)) == 4


def test_the_next_message_follows_the_newest_answer(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    sent = user.send(cid, "one")
    sibling = regenerated(user, cid, sent["assistant_message"]["id"])["message"]
    follow = user.send(cid, "two")
    assert follow["user_message"]["parent_message_id"] == sibling["id"]


def test_an_empty_body_is_the_defaults(recorded_api: Api, recording: RecordingModel) -> None:
    user = recorded_api.user()
    cid = user.create()["id"]
    mid = user.send(cid, "hi")["assistant_message"]["id"]
    bodies: tuple[dict[str, Any] | None, ...] = (None, {})
    for body in bodies:
        regenerated(user, cid, mid, body)
        assert recording.requests[-1].temperature == 0.3
        assert recording.requests[-1].max_tokens == 1000
        assert recording.requests[-1].model == PRIMARY


# --- what reaches the model -----------------------------------------------------------


def test_temperature_and_max_tokens_reach_the_model(
    recorded_api: Api, recording: RecordingModel
) -> None:
    user = recorded_api.user()
    cid = user.create()["id"]
    user.send(cid, "first question")
    second = user.send(cid, "second question")
    regenerated(
        user, cid, second["assistant_message"]["id"], {"temperature": 1.2, "max_tokens": 77}
    )
    request = recording.requests[-1]
    assert request.temperature == 1.2
    assert request.max_tokens == 77
    # Same question, same branch history; the answer being replaced is not in the prompt.
    contents = [m.content for m in request.messages]
    assert request.messages[-1].role == "user"
    assert "second question" in request.messages[-1].content
    assert any("first question" in c for c in contents)
    assert "answer 1" in contents
    assert "answer 2" not in contents
    assert len(recording.requests) == 3


@pytest.mark.parametrize("temperature", [0, 2])
def test_temperature_bounds_are_allowed(
    recorded_api: Api, recording: RecordingModel, temperature: float
) -> None:
    user = recorded_api.user()
    cid = user.create()["id"]
    mid = user.send(cid, "hi")["assistant_message"]["id"]
    regenerated(user, cid, mid, {"temperature": temperature})
    assert recording.requests[-1].temperature == temperature


def test_a_named_model_of_the_chain_is_used_alone(
    scripted_api: Api, scripted: ScriptedModel
) -> None:
    user = scripted_api.user()
    cid = user.create()["id"]
    mid = user.send(cid, "hi")["assistant_message"]["id"]
    scripted.calls.clear()

    data = regenerated(user, cid, mid, {"model": FALLBACK})

    assert [r.model for r in scripted.calls] == [FALLBACK]
    assert data["message"]["metadata"]["model"] == FALLBACK
    assert data["message"]["content"] == f"answer from {FALLBACK}"

    # When it fails there is no falling back to the others.
    scripted.calls.clear()
    scripted.script[FALLBACK] = [ModelError(FailureKind.CONTENT_REFUSED, "no", model=FALLBACK)]
    response = regenerate(user, cid, mid, {"model": FALLBACK})
    assert_error(response, 503, "AI_SERVICE_UNAVAILABLE")
    assert [r.model for r in scripted.calls] == [FALLBACK]


def test_a_paid_model_of_the_chain_still_obeys_free_only(
    scripted_api: Api, scripted: ScriptedModel
) -> None:
    user = scripted_api.user()
    cid = user.create()["id"]
    mid = user.send(cid, "hi")["assistant_message"]["id"]
    scripted.calls.clear()
    paid = scripted_api.settings.models.emergency_model
    assert paid is not None
    error = assert_error(regenerate(user, cid, mid, {"model": paid}), 503, "AI_SERVICE_UNAVAILABLE")
    assert scripted.calls == []
    assert error["details"]["reasons"] == [f"{paid}: skipped (paid models are disabled)"]


# --- refusals -------------------------------------------------------------------------


def test_a_model_not_in_the_chain_is_400(scripted_api: Api, scripted: ScriptedModel) -> None:
    user = scripted_api.user()
    cid = user.create()["id"]
    mid = user.send(cid, "hi")["assistant_message"]["id"]
    scripted.calls.clear()
    response = regenerate(user, cid, mid, {"model": "vendor/other:free"})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "model" in error["message"]
    assert PRIMARY in error["details"]["models"]
    assert FALLBACK in error["details"]["models"]
    assert scripted.calls == []
    assert len(user.messages(cid)) == 2


def test_regenerating_a_user_message_is_400(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    question = user.send(cid, "hi")["user_message"]
    assert_error(regenerate(user, cid, question["id"]), 400, "VALIDATION_ERROR")
    assert len(user.messages(cid)) == 2


def test_an_unknown_message_is_404(api: Api) -> None:
    user = api.user()
    cid = user.create()["id"]
    user.send(cid, "hi")
    assert_error(regenerate(user, cid, str(uuid.uuid4())), 404, "NOT_FOUND")


def test_a_message_of_another_conversation_is_404(api: Api) -> None:
    user = api.user()
    first, second = user.create()["id"], user.create()["id"]
    mid = user.send(first, "hi")["assistant_message"]["id"]
    assert_error(regenerate(user, second, mid), 404, "NOT_FOUND")
    assert user.messages(second) == []


def test_another_users_answer_is_404_and_untouched(api: Api) -> None:
    owner, intruder = api.user(), api.user()
    cid = owner.create()["id"]
    mid = owner.send(cid, "private")["assistant_message"]["id"]
    before = owner.messages(cid)
    response = regenerate(intruder, cid, mid)
    assert_error(response, 404, "NOT_FOUND")
    assert "private" not in response.text
    assert owner.messages(cid) == before


@pytest.mark.parametrize(
    "body",
    [
        {"temperature": 3},
        {"temperature": -0.1},
        {"temperature": "hot"},
        {"max_tokens": 0},
        {"max_tokens": -5},
        {"max_tokens": 1.5},
        {"max_tokens": 10**9},
        {"model": ""},
        {"model": 7},
        {"surprise": True},
        {"temperature": 0.5, "top_p": 0.9},
    ],
    ids=str,
)
def test_a_bad_body_is_400(recorded_api: Api, recording: RecordingModel, body: Any) -> None:
    user = recorded_api.user()
    cid = user.create()["id"]
    mid = user.send(cid, "hi")["assistant_message"]["id"]
    error = assert_error(regenerate(user, cid, mid, body), 400, "VALIDATION_ERROR")
    assert next(iter(body)) in error["message"] or "top_p" in error["message"]
    assert len(recording.requests) == 1
    assert len(user.messages(cid)) == 2


def test_no_model_answering_is_503_and_nothing_is_added(make_api: MakeApi) -> None:
    model = ScriptedModel()
    user = make_api(env=CHAIN_ENV, model=model).user()
    cid = user.create()["id"]
    sent = user.send(cid, "hi")
    before = user.messages(cid)
    refused = ModelError(FailureKind.CONTENT_REFUSED, "upstream said no", model="x")
    model.script = {PRIMARY: [refused], FALLBACK: [refused]}

    response = regenerate(user, cid, sent["assistant_message"]["id"])

    error = assert_error(response, 503, "AI_SERVICE_UNAVAILABLE")
    assert error["details"]["user_message_id"] == sent["user_message"]["id"]
    assert error["details"]["reasons"][:2] == [
        f"{PRIMARY}: failed (content_refused)",
        f"{FALLBACK}: failed (content_refused)",
    ]
    assert "upstream said no" not in response.text
    assert user.messages(cid) == before


def test_a_failed_streamed_answer_can_be_regenerated(make_api: MakeApi) -> None:
    model = ScriptedModel()
    user = make_api(env=CHAIN_ENV, model=model).user()
    cid = user.create()["id"]
    refused = ModelError(FailureKind.CONTENT_REFUSED, "no", model="x")
    model.script = {PRIMARY: [refused], FALLBACK: [refused]}
    frames = parse_sse(user.stream(cid, "try me").text)
    assert frames[-1][0] == "error"
    failed = user.messages(cid)[1]
    assert failed["status"] == "failed"

    data = regenerated(user, cid, failed["id"])

    assert data["message"]["content"] == f"answer from {PRIMARY}"
    assert data["message"]["parent_message_id"] == failed["parent_message_id"]
    assert [m["status"] for m in user.messages(cid)] == ["complete", "failed", "complete"]


def test_regenerate_counts_against_the_message_rate_limit(make_api: MakeApi) -> None:
    user = make_api(env={"FREE_MODEL_RATE_LIMIT_PER_MINUTE": "2"}).user()
    cid = user.create()["id"]
    mid = user.send(cid, "one")["assistant_message"]["id"]
    regenerated(user, cid, mid)
    response = regenerate(user, cid, mid)
    assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert response.headers["retry-after"].isdigit()
    assert len(user.messages(cid)) == 3


def test_the_failing_model_gives_503_for_regenerate_too(make_api: MakeApi) -> None:
    api = make_api(env=CHAIN_ENV, model=FailingModel())
    user = api.user()
    cid = user.create()["id"]
    # A failed stream leaves an assistant row to regenerate.
    parse_sse(user.stream(cid, "hi").text)
    failed = user.messages(cid)[1]
    assert_error(regenerate(user, cid, failed["id"]), 503, "AI_SERVICE_UNAVAILABLE")
