"""Authentication and isolation on every authenticated route.

Every route of ``ROUTES`` (checked to be every authenticated route of the app) is
tried without a token, with each kind of bad token, and against another user's
conversation.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrypoints.auth import Authenticator, AuthError
from tests.unit.conftest import MakeApi
from tests.unit.http_support import (
    ID_ROUTES,
    ROUTES,
    SECRET,
    SERVICE_KEY,
    Api,
    Route,
    User,
    assert_error,
    assert_ok,
    claims_for,
    make_settings,
    route_templates,
    sign,
    token_for,
)


def _call(
    api: Api, route: Route, headers: dict[str, str], cid: str | None = None
) -> httpx.Response:
    return api.client.request(route.method, route.url(cid), json=route.body, headers=headers)


def test_the_route_table_covers_every_authenticated_route(shared_api: Api) -> None:
    assert route_templates(shared_api.app) == {(r.method, r.path) for r in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_no_token_is_401_unauthorized(shared_api: Api, route: Route) -> None:
    response = _call(shared_api, route, {})
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join(
        [
            part(json.dumps(header).encode()),
            part(json.dumps(claims).encode()),
            part(signature),
        ]
    )


def _alg_none(api: Api) -> str:
    return _unsigned({"alg": "none", "typ": "JWT"}, claims_for(api.settings, uuid.uuid4()))


def _rs256_looking(api: Api) -> str:
    return _unsigned(
        {"alg": "RS256", "typ": "JWT"}, claims_for(api.settings, uuid.uuid4()), b"\x01" * 256
    )


def _hs512(api: Api) -> str:
    # A long key so that PyJWT does not warn; still HS512, which is refused.
    return sign(claims_for(api.settings, uuid.uuid4()), SECRET * 2, "HS512")


def _tampered(api: Api) -> str:
    header, _, signature = sign(claims_for(api.settings, uuid.uuid4())).split(".")
    claims = claims_for(api.settings, uuid.uuid4(), type="admin")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


BAD_TOKENS: dict[str, tuple[Callable[[Api], str], str]] = {
    "other secret": (
        lambda a: sign(
            claims_for(a.settings, uuid.uuid4()), "another-secret-0123456789abcdef-0123"
        ),
        "INVALID_TOKEN",
    ),
    "tampered payload": (_tampered, "INVALID_TOKEN"),
    "alg none": (_alg_none, "INVALID_TOKEN"),
    "HS512": (_hs512, "INVALID_TOKEN"),
    "RS256 header": (_rs256_looking, "INVALID_TOKEN"),
    "expired": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), exp=int(time.time()) - 60)),
        "TOKEN_EXPIRED",
    ),
    "wrong issuer": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), iss="someone-else")),
        "INVALID_TOKEN",
    ),
    "no issuer": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), iss=None)),
        "INVALID_TOKEN",
    ),
    "wrong audience": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), aud="other-services")),
        "INVALID_TOKEN",
    ),
    "no audience": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), aud=None)),
        "INVALID_TOKEN",
    ),
    "missing exp": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), exp=None)),
        "INVALID_TOKEN",
    ),
    "not yet valid": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), nbf=int(time.time()) + 600)),
        "INVALID_TOKEN",
    ),
    "missing id": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), id=None)),
        "INVALID_TOKEN",
    ),
    "non-UUID id": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), id="user-1")),
        "INVALID_TOKEN",
    ),
    "numeric id": (lambda a: sign(claims_for(a.settings, uuid.uuid4(), id=42)), "INVALID_TOKEN"),
    "object id": (
        lambda a: sign(claims_for(a.settings, uuid.uuid4(), id={"uuid": str(uuid.uuid4())})),
        "INVALID_TOKEN",
    ),
    "garbage": (lambda a: "not-a-jwt", "INVALID_TOKEN"),
    "two segments": (lambda a: "a.b", "INVALID_TOKEN"),
}


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_is_401_on_every_route(shared_api: Api, route: Route, case: str) -> None:
    make, code = BAD_TOKENS[case]
    response = _call(shared_api, route, {"Authorization": f"Bearer {make(shared_api)}"})
    error = assert_error(response, 401, code)
    assert error["details"] is None
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic x", "Bearer a.b", "Token abc", "bearer", "Bearer a b"]
)
def test_a_malformed_authorization_header_is_401(
    shared_api: Api, route: Route, header: str
) -> None:
    response = _call(shared_api, route, {"Authorization": header})
    assert_error(response, 401, "INVALID_TOKEN")


def test_the_bearer_scheme_is_case_insensitive(shared_api: Api) -> None:
    token = token_for(shared_api.settings, uuid.uuid4())
    response = shared_api.client.get("/conversations", headers={"Authorization": f"bearer {token}"})
    assert_ok(response)


def test_the_audience_may_be_a_list_containing_ours(shared_api: Api) -> None:
    claims = claims_for(
        shared_api.settings, uuid.uuid4(), aud=["x", shared_api.settings.jwt_audience]
    )
    response = shared_api.client.get(
        "/conversations", headers={"Authorization": f"Bearer {sign(claims)}"}
    )
    assert_ok(response)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.body is not None], ids=str)
@pytest.mark.parametrize("body", [b"{not json", b"x" * 5000, b"[1, 2"])
def test_anonymous_requests_with_bad_bodies_are_401_not_400(
    shared_api: Api, route: Route, body: bytes
) -> None:
    response = shared_api.client.request(
        route.method,
        route.url(),
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_error(response, 401, "UNAUTHORIZED")


def test_anonymous_oversized_body_is_401(shared_api: Api) -> None:
    response = shared_api.client.post("/conversations", content=b"x" * 3_000_000)
    assert_error(response, 401, "UNAUTHORIZED")


# --- another user's conversation ----------------------------------------------------


def _snapshot(owner: User, cid: str) -> dict[str, Any]:
    return {
        "conversation": owner.conversation(cid),
        "messages": owner.messages(cid, include_usage="true"),
        "listed": [c["id"] for c in assert_ok(owner.get("/conversations"))["conversations"]],
    }


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
def test_another_users_conversation_is_404_and_left_unchanged(api: Api, route: Route) -> None:
    owner, intruder = api.user(), api.user()
    cid = owner.create(title="private", metadata={"k": "v"})["id"]
    answer = owner.send(cid, "my secret plans")["assistant_message"]["id"]
    before = _snapshot(owner, cid)

    # A message path names the owner's real answer.
    response = intruder.request(route.method, route.url(cid, answer), json=route.body)
    error = assert_error(response, 404, "NOT_FOUND")
    assert "private" not in response.text
    assert "secret" not in response.text

    # Exactly what a conversation that does not exist gets.
    unknown = intruder.request(route.method, route.url(uuid.uuid4(), answer), json=route.body)
    assert assert_error(unknown, 404, "NOT_FOUND") == error

    assert _snapshot(owner, cid) == before
    # Nothing was created on the intruder's side either.
    assert assert_ok(intruder.get("/conversations"))["conversations"] == []


@pytest.mark.parametrize("route", [r for r in ROUTES if r.admin], ids=str)
def test_admin_routes_are_403_for_users_and_open_to_admins(api: Api, route: Route) -> None:
    user, admin = api.user(), api.user(admin=True)
    response = user.request(route.method, route.url(), json=route.body)
    error = assert_error(response, 403, "FORBIDDEN")
    assert error["details"] is None
    assert admin.request(route.method, route.url(), json=route.body).status_code == 200


def test_internal_service_headers_act_for_the_named_user(make_api: MakeApi) -> None:
    api = make_api(env={"INTERNAL_SERVICE_KEY": SERVICE_KEY})
    owner = api.user()
    cid = owner.create(title="mine")["id"]
    internal = {
        "X-Internal-Service": "true",
        "X-Service-Key": SERVICE_KEY,
        "X-User-ID": str(owner.id),
    }
    listed = assert_ok(api.client.get("/conversations", headers=internal))
    assert [c["id"] for c in listed["conversations"]] == [cid]
    created = assert_ok(api.client.post("/conversations", json={}, headers=internal), 201)
    assert created["user_id"] == str(owner.id)
    sent = assert_ok(
        api.client.post(f"/conversations/{cid}/messages", json={"content": "hi"}, headers=internal),
        201,
    )
    assert sent["user_message"]["conversation_id"] == cid
    # Acting for another user shows that user's data only.
    other = {**internal, "X-User-ID": str(uuid.uuid4())}
    assert_error(api.client.get(f"/conversations/{cid}", headers=other), 404, "NOT_FOUND")


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize(
    "headers",
    [
        {"X-Internal-Service": "true", "X-Service-Key": "wrong-key-0123456789"},
        {"X-Internal-Service": "true"},
        {"X-Service-Key": SERVICE_KEY},
        {"X-Internal-Service": "false", "X-Service-Key": SERVICE_KEY},
    ],
    ids=["wrong key", "no key", "no flag", "flag false"],
)
def test_internal_headers_without_the_right_key_are_ignored(
    make_api: MakeApi, route: Route, headers: dict[str, str]
) -> None:
    api = make_api(env={"INTERNAL_SERVICE_KEY": SERVICE_KEY})
    owner = api.user()
    cid = owner.create()["id"]
    answer = owner.send(cid, "mine alone")["assistant_message"]["id"]
    spoofed = {**headers, "X-User-ID": str(owner.id)}
    assert_error(_call(api, route, spoofed, cid), 401, "UNAUTHORIZED")
    # With a token too, the token decides who is calling.
    intruder = api.user()
    body = route.body
    if route.path == "/assessment/from-assessment":
        body = {"assessment_id": api.archive_result(owner.id)}
    response = intruder.request(route.method, route.url(cid, answer), json=body, headers=spoofed)
    if route.has_id or route.path == "/assessment/from-assessment":
        assert_error(response, 404, "NOT_FOUND")
    elif route.admin:
        assert_error(response, 403, "FORBIDDEN")
    elif route.method == "POST":
        assert assert_ok(response, 201)["user_id"] == str(intruder.id)
    elif route.path == "/conversations":
        assert assert_ok(response)["conversations"] == []
    elif route.path == "/conversations/search":  # the caller's own messages: none
        assert assert_ok(response)["results"] == []
    else:  # the caller's own usage: none
        assert assert_ok(response)["totals"]["requests"] == 0


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_internal_headers_are_ignored_when_no_key_is_configured(
    shared_api: Api, route: Route
) -> None:
    assert shared_api.settings.internal_service_key is None
    headers = {
        "X-Internal-Service": "true",
        "X-Service-Key": "",
        "X-User-ID": str(uuid.uuid4()),
    }
    assert_error(_call(shared_api, route, headers), 401, "UNAUTHORIZED")
    headers["X-Service-Key"] = "anything-at-all"
    assert_error(_call(shared_api, route, headers), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("acting_user", ["not-a-uuid", "", "1234"])
def test_internal_calls_need_a_uuid_user(make_api: MakeApi, acting_user: str) -> None:
    api = make_api(env={"INTERNAL_SERVICE_KEY": SERVICE_KEY})
    headers = {
        "X-Internal-Service": "true",
        "X-Service-Key": SERVICE_KEY,
        "X-User-ID": acting_user,
    }
    assert_error(api.client.get("/conversations", headers=headers), 401, "UNAUTHORIZED")


def test_admin_and_email_claims_reach_the_principal(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    authenticator = Authenticator(
        secret=SECRET, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    user_id = uuid.uuid4()
    claims = claims_for(settings, user_id, type="admin", email="a@example.com")
    principal = authenticator.verify(sign(claims))
    assert principal.user_id == user_id
    assert principal.is_admin is True
    assert principal.email == "a@example.com"


def test_a_remembered_token_still_expires(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    now = [time.time()]
    authenticator = Authenticator(
        secret=SECRET,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        clock=lambda: now[0],
    )
    user_id = uuid.uuid4()
    token = sign(claims_for(settings, user_id, exp=int(now[0]) + 60))
    assert authenticator.verify(token).user_id == user_id
    assert authenticator.verify(token).user_id == user_id  # remembered
    now[0] += 61
    with pytest.raises(AuthError) as caught:
        authenticator.verify(token)
    assert caught.value.code == "TOKEN_EXPIRED"
    with pytest.raises(AuthError) as again:
        authenticator.verify(token)
    assert again.value.code == "TOKEN_EXPIRED"


def test_a_remembered_token_vouches_for_no_other_string(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    authenticator = Authenticator(
        secret=SECRET, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    token = sign(claims_for(settings, uuid.uuid4()))
    authenticator.verify(token)
    header, payload, signature = token.split(".")
    forged_claims = claims_for(settings, uuid.uuid4(), type="admin")
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    )
    for forged in (
        f"{header}.{forged_payload}.{signature}",  # someone else's claims, old signature
        f"{header}.{payload}.{signature[:-2]}AA",  # a damaged signature
        token + " ",
    ):
        with pytest.raises(AuthError) as caught:
            authenticator.verify(forged)
        assert caught.value.code == "INVALID_TOKEN"


def test_remembered_tokens_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("entrypoints.auth.VERIFIED_TOKENS_KEPT", 3)
    settings = make_settings(tmp_path)
    authenticator = Authenticator(
        secret=SECRET, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    tokens = [sign(claims_for(settings, uuid.uuid4())) for _ in range(5)]
    for token in tokens:
        authenticator.verify(token)
    assert list(authenticator._verified) == tokens[2:]  # the oldest forgotten first
