"""Usage routes: per conversation, the caller's summary and series, and the service's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatcore.clock import FakeClock
from chatcore.models import FailureKind, ModelError
from tests.unit.conftest import MakeApi
from tests.unit.http_support import Api, User, assert_error, assert_ok, parse_sse
from tests.unit.models import ScriptedModel

A, B, PAID = "vendor/a:free", "vendor/b:free", "vendor/paid"
CHAIN_ENV = {
    "DEFAULT_MODEL": A,
    "FALLBACK_MODEL": B,
    "EMERGENCY_FALLBACK_MODEL": PAID,
    "USE_FREE_MODELS_ONLY": "false",
    "EMERGENCY_DAILY_BUDGET_USD": "5",
}
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 2026-03-02 is a Monday

TOTALS_FIELDS = {
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "free_requests",
    "fallback_requests",
    "fallback_rate",
    "free_model_share",
    "models",
}
MODEL_FIELDS = {
    "model",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "free_requests",
    "fallback_requests",
    "fallback_rate",
    "avg_processing_time_ms",
    "avg_time_to_first_token_ms",
}


def refused(model: str) -> ModelError:
    return ModelError(FailureKind.CONTENT_REFUSED, "scripted refusal", model=model)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def app(make_api: MakeApi, model: ScriptedModel, clock: FakeClock) -> Api:
    return make_api(env=CHAIN_ENV, model=model, clock=clock)


def usage(user: User, path: str, **params: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(user.get(path, params=params))
    return data


def by_model(totals: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["model"]: m for m in totals["models"]}


def check_totals(totals: dict[str, Any]) -> None:
    assert set(totals) == TOTALS_FIELDS
    assert totals["total_tokens"] == totals["prompt_tokens"] + totals["completion_tokens"]
    assert sum(m["requests"] for m in totals["models"]) == totals["requests"]
    for m in totals["models"]:
        assert set(m) == MODEL_FIELDS


# --- per conversation and summary -----------------------------------------------------


def test_usage_of_a_conversation_and_the_summary(app: Api) -> None:
    user = app.user()
    first, second = user.create()["id"], user.create()["id"]
    user.send(first, "one")
    user.send(first, "two")
    user.send(second, "three")

    data = usage(user, f"/conversations/{first}/usage")
    assert set(data) == {"conversation_id", "window", "totals"}
    assert data["conversation_id"] == first
    assert data["window"] == {"start": None, "end": None}
    totals = data["totals"]
    check_totals(totals)
    assert totals["requests"] == 2
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (20, 6)
    assert totals["total_tokens"] == 26
    assert totals["cost"] == 0
    assert totals["fallback_rate"] == 0
    assert totals["free_model_share"] == 1
    only = by_model(totals)[A]
    assert only["requests"] == 2
    assert only["free_requests"] == 2
    assert only["avg_processing_time_ms"] >= 0
    assert only["avg_time_to_first_token_ms"] is not None

    summary = usage(user, "/usage/summary")
    assert set(summary) == {"window", "totals"}
    check_totals(summary["totals"])
    assert summary["totals"]["requests"] == 3
    assert summary["totals"]["total_tokens"] == 39

    # Another user sees none of it.
    other = app.user()
    assert usage(other, "/usage/summary")["totals"]["requests"] == 0
    assert usage(other, "/usage/summary")["totals"]["models"] == []
    assert_error(other.get(f"/conversations/{first}/usage"), 404, "NOT_FOUND")


def test_a_new_conversation_has_zero_usage(app: Api) -> None:
    user = app.user()
    cid = user.create()["id"]
    totals = usage(user, f"/conversations/{cid}/usage")["totals"]
    check_totals(totals)
    assert totals["requests"] == 0
    assert totals["fallback_rate"] == 0
    assert totals["free_model_share"] == 0
    assert totals["models"] == []


def test_streamed_answers_count_with_their_time_to_first_token(app: Api) -> None:
    user = app.user()
    cid = user.create()["id"]
    frames = parse_sse(user.stream(cid, "stream me").text)
    assert frames[-1][0] == "complete"
    totals = usage(user, f"/conversations/{cid}/usage")["totals"]
    assert totals["requests"] == 1
    assert by_model(totals)[A]["avg_time_to_first_token_ms"] is not None
    assert totals["total_tokens"] == frames[-1][1]["usage"]["total_tokens"]


def test_failed_answers_are_not_usage(make_api: MakeApi, clock: FakeClock) -> None:
    model = ScriptedModel({A: [refused(A)], B: [refused(B)], PAID: [refused(PAID)]})
    user = make_api(env=CHAIN_ENV, model=model, clock=clock).user()
    cid = user.create()["id"]
    response = user.post(f"/conversations/{cid}/messages", json={"content": "no one home"})
    assert_error(response, 503, "AI_SERVICE_UNAVAILABLE")
    assert usage(user, f"/conversations/{cid}/usage")["totals"]["requests"] == 0


# --- fallback and free-model figures --------------------------------------------------


def test_fallback_rate_and_free_model_share_after_scripted_fallbacks(
    app: Api, model: ScriptedModel
) -> None:
    user = app.user()
    cid = user.create()["id"]
    # 1: A answers. 2: A refuses, B answers. 3: A and B refuse, the paid model answers.
    # 4: A answers.
    model.script = {A: ["one", refused(A), refused(A), "four"], B: ["two", refused(B)]}
    answers = [user.send(cid, f"question {n}") for n in range(1, 5)]
    assert [a["model"] for a in answers] == [A, B, PAID, A]
    assert answers[1]["assistant_message"]["metadata"]["fallback_from"] == [A]
    assert answers[2]["assistant_message"]["metadata"]["fallback_from"] == [A, B]
    assert "fallback_from" not in answers[3]["assistant_message"]["metadata"]

    for data in (usage(user, f"/conversations/{cid}/usage"), usage(user, "/usage/summary")):
        totals = data["totals"]
        check_totals(totals)
        assert totals["requests"] == 4
        assert totals["fallback_requests"] == 2
        assert totals["fallback_rate"] == 0.5
        assert totals["free_requests"] == 3
        assert totals["free_model_share"] == 0.75
        assert totals["cost"] == pytest.approx(0.002)
        models = by_model(totals)
        # Most requests first, ties by name.
        assert [m["model"] for m in totals["models"]] == [A, B, PAID]
        assert (models[A]["requests"], models[A]["fallback_requests"]) == (2, 0)
        assert models[A]["fallback_rate"] == 0
        assert (models[B]["requests"], models[B]["fallback_requests"]) == (1, 1)
        assert models[B]["fallback_rate"] == 1
        assert (models[PAID]["requests"], models[PAID]["free_requests"]) == (1, 0)
        assert models[PAID]["cost"] == pytest.approx(0.002)
        assert models[B]["cost"] == 0


def test_a_skipped_primary_counts_as_a_fallback(app: Api, model: ScriptedModel) -> None:
    user = app.user()
    cid = user.create()["id"]
    cooling = ModelError(FailureKind.RATE_LIMITED, "slow down", model=A, retry_after=60)
    model.script = {A: [cooling]}
    first = user.send(cid, "one")  # A rate-limited: B answers
    second = user.send(cid, "two")  # A cooling down, skipped: B answers
    assert [first["model"], second["model"]] == [B, B]
    assert [r.model for r in model.calls] == [A, B, B]
    totals = usage(user, "/usage/summary")["totals"]
    assert totals["fallback_rate"] == 1
    assert by_model(totals)[B]["fallback_requests"] == 2


# --- stats: series and windows --------------------------------------------------------


def _spread(app: Api, clock: FakeClock) -> User:
    """One answer on Mon 2 March, Tue 3 March, Tue 10 March and Wed 1 April 2026, 10:00."""
    user = app.user()
    cid = user.create()["id"]
    for day in (2, 3, 10, 32):
        moment = MONDAY + timedelta(days=day - 2)
        clock.advance(max(0.0, (moment - clock.now()).total_seconds()))
        user.send(cid, f"day {day}")
    return user


def _series(data: dict[str, Any]) -> list[tuple[str, int]]:
    return [(b["period_start"], b["totals"]["requests"]) for b in data["series"]]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "day",
            [
                ("2026-03-02T00:00:00Z", 1),
                ("2026-03-03T00:00:00Z", 1),
                ("2026-03-10T00:00:00Z", 1),
                ("2026-04-01T00:00:00Z", 1),
            ],
        ),
        (
            "week",
            [
                ("2026-03-02T00:00:00Z", 2),
                ("2026-03-09T00:00:00Z", 1),
                ("2026-03-30T00:00:00Z", 1),
            ],
        ),
        ("month", [("2026-03-01T00:00:00Z", 3), ("2026-04-01T00:00:00Z", 1)]),
    ],
)
def test_stats_group_by(
    app: Api, clock: FakeClock, group_by: str, expected: list[tuple[str, int]]
) -> None:
    user = _spread(app, clock)
    data = usage(user, "/usage/stats", group_by=group_by)
    assert set(data) == {"window", "group_by", "totals", "series"}
    assert data["group_by"] == group_by
    assert data["totals"]["requests"] == 4
    assert _series(data) == expected
    for bucket in data["series"]:
        check_totals(bucket["totals"])


def test_stats_group_by_defaults_to_day(app: Api, clock: FakeClock) -> None:
    user = _spread(app, clock)
    data = usage(user, "/usage/stats")
    assert data["group_by"] == "day"
    assert len(data["series"]) == 4


@pytest.mark.parametrize(
    ("params", "requests", "window"),
    [
        # Dates are whole UTC days, the end date included.
        (
            {"start_date": "2026-03-03", "end_date": "2026-03-10"},
            2,
            {"start": "2026-03-03T00:00:00Z", "end": "2026-03-11T00:00:00Z"},
        ),
        ({"start_date": "2026-03-03"}, 3, {"start": "2026-03-03T00:00:00Z", "end": None}),
        ({"end_date": "2026-03-02"}, 1, {"start": None, "end": "2026-03-03T00:00:00Z"}),
        # One day: start and end the same date.
        (
            {"start_date": "2026-04-01", "end_date": "2026-04-01"},
            1,
            {"start": "2026-04-01T00:00:00Z", "end": "2026-04-02T00:00:00Z"},
        ),
        # Every ISO form of a date is a whole day.
        (
            {"start_date": "20260303", "end_date": "20260310"},
            2,
            {"start": "2026-03-03T00:00:00Z", "end": "2026-03-11T00:00:00Z"},
        ),
        (
            {"start_date": "2026-W10-2", "end_date": "2026-W11"},  # Tue 3 to Mon 9 March
            1,
            {"start": "2026-03-03T00:00:00Z", "end": "2026-03-10T00:00:00Z"},
        ),
        # The last day there is: no end.
        ({"end_date": "9999-12-31"}, 4, {"start": None, "end": None}),
        ({"start_date": "0001-01-01"}, 4, {"start": "0001-01-01T00:00:00Z", "end": None}),
        # Date-times: the end is exclusive; no offset means UTC; offsets are
        # normalized to UTC.
        (
            {"start_date": "2026-03-02T10:00:00Z", "end_date": "2026-03-10T00:00:00Z"},
            2,
            {"start": "2026-03-02T10:00:00Z", "end": "2026-03-10T00:00:00Z"},
        ),
        (
            {"start_date": "2026-03-02T10:00:01", "end_date": "2026-04-01T00:00:00"},
            2,
            {"start": "2026-03-02T10:00:01Z", "end": "2026-04-01T00:00:00Z"},
        ),
        (
            {"start_date": "2026-03-03T07:00:00+07:00", "end_date": "2026-03-10T17:01:00+07:00"},
            2,
            {"start": "2026-03-03T00:00:00Z", "end": "2026-03-10T10:01:00Z"},
        ),
    ],
    ids=str,
)
def test_stats_window(
    app: Api,
    clock: FakeClock,
    params: dict[str, str],
    requests: int,
    window: dict[str, str | None],
) -> None:
    user = _spread(app, clock)
    data = usage(user, "/usage/stats", **params)
    assert data["totals"]["requests"] == requests
    assert sum(n for _, n in _series(data)) == requests
    assert data["window"] == window
    # The same window applies to the summary and to a conversation.
    assert usage(user, "/usage/summary", **params)["totals"]["requests"] == requests
    assert usage(user, "/usage/summary", **params)["window"] == window


@pytest.mark.parametrize(
    "path", ["/usage/stats", "/usage/summary", "/conversations/{id}/usage", "/usage/system"]
)
@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "yesterday"},
        {"start_date": "2026-13-01"},
        {"end_date": "2026-02-30"},
        {"end_date": "03/03/2026"},
        {"start_date": "2026-03-03T25:00:00"},
        {"start_date": "2026-03-10", "end_date": "2026-03-03"},
        {"start_date": "2026-03-03T10:00:00Z", "end_date": "2026-03-03T10:00:00Z"},
        {"start_date": "2026-03-03T10:00:00Z", "end_date": "2026-03-03T09:00:00Z"},
        {"start_date": "x" * 41},
        {"start_date": "0001-01-01T00:00:00+05:00"},
        {"end_date": "9999-12-31T23:00:00-05:00"},
    ],
    ids=str,
)
def test_bad_dates_are_400(app: Api, path: str, params: dict[str, str]) -> None:
    user = app.user(admin=path == "/usage/system")
    cid = user.create()["id"]
    response = user.get(path.replace("{id}", cid), params=params)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "start_date" in error["message"] or "end_date" in error["message"]


@pytest.mark.parametrize("path", ["/usage/stats", "/usage/system"])
@pytest.mark.parametrize("group_by", ["hour", "year", "DAY", "", "1"])
def test_a_bad_group_by_is_400(app: Api, path: str, group_by: str) -> None:
    user = app.user(admin=path == "/usage/system")
    response = user.get(path, params={"group_by": group_by})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "group_by" in error["message"]


def test_a_window_in_which_nothing_happened(app: Api, clock: FakeClock) -> None:
    user = _spread(app, clock)
    data = usage(user, "/usage/stats", start_date="2025-01-01", end_date="2025-12-31")
    assert data["totals"]["requests"] == 0
    assert data["series"] == []


# --- the service's figures (admins only) ----------------------------------------------


def test_system_usage_is_for_admins_only(app: Api) -> None:
    user = app.user()
    user.send(user.create()["id"], "hi")
    error = assert_error(user.get("/usage/system"), 403, "FORBIDDEN")
    assert "admin" in error["message"]


def test_system_usage_adds_up_every_user(app: Api, model: ScriptedModel, clock: FakeClock) -> None:
    alice, bob, admin = app.user(), app.user(), app.user(admin=True)
    model.script = {A: ["fine", refused(A)]}
    alice.send(alice.create()["id"], "one")
    clock.advance(86_400)
    bob_cid = bob.create()["id"]
    bob.send(bob_cid, "two")  # A refuses, B answers
    bob.send(bob_cid, "three")

    data = usage(admin, "/usage/system")
    assert set(data) == {"window", "group_by", "users", "totals", "series"}
    assert data["users"] == 2
    totals = data["totals"]
    check_totals(totals)
    assert totals["requests"] == 3
    assert totals["fallback_requests"] == 1
    assert totals["fallback_rate"] == pytest.approx(0.3333, abs=1e-4)
    assert totals["free_model_share"] == 1
    assert _series(data) == [("2026-03-02T00:00:00Z", 1), ("2026-03-03T00:00:00Z", 2)]

    day = usage(admin, "/usage/system", start_date="2026-03-03", end_date="2026-03-03")
    assert (day["users"], day["totals"]["requests"]) == (1, 2)
    month = usage(admin, "/usage/system", group_by="month")
    assert _series(month) == [("2026-03-01T00:00:00Z", 3)]

    # The admin's own usage stays the admin's own.
    assert usage(admin, "/usage/summary")["totals"]["requests"] == 0
    # Users' own figures are theirs only.
    assert usage(alice, "/usage/summary")["totals"]["requests"] == 1
    assert usage(bob, "/usage/summary")["totals"]["requests"] == 2


def test_an_internal_call_for_a_user_is_not_an_admin(make_api: MakeApi) -> None:
    key = "internal-service-key-0123456789"
    api = make_api(env={"INTERNAL_SERVICE_KEY": key})
    headers = {
        "X-Internal-Service": "true",
        "X-Service-Key": key,
        "X-User-ID": str(uuid.uuid4()),
    }
    assert_error(api.client.get("/usage/system", headers=headers), 403, "FORBIDDEN")


@pytest.mark.parametrize("path", ["/conversations/{cid}/usage", "/usage/summary"])
def test_group_by_adds_a_series_on_every_usage_route(shared_api: Api, path: str) -> None:
    user = shared_api.user()
    cid = user.create()["id"]
    user.send(cid, "Karier apa yang cocok?")
    plain = user.get(path.format(cid=cid)).json()["data"]
    assert "series" not in plain
    grouped = user.get(path.format(cid=cid) + "?group_by=month").json()["data"]
    assert grouped["group_by"] == "month"
    assert len(grouped["series"]) == 1
    assert grouped["series"][0]["totals"]["requests"] == grouped["totals"]["requests"] == 1
