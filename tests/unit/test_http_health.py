"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path

import pytest
from litestar.testing import TestClient

import chatcore
from adapters.memory import InMemoryUnitOfWorkFactory
from entrypoints.bootstrap import Container, bootstrap
from entrypoints.http.app import GC_YOUNG_THRESHOLD, create_app
from entrypoints.metrics import CONTENT_TYPE_LATEST
from tests.unit.conftest import MakeApi
from tests.unit.http_support import Api, assert_ok, make_settings


@pytest.fixture
def container(tmp_path: Path) -> Container:
    return asyncio.run(bootstrap(make_settings(tmp_path), uow=InMemoryUnitOfWorkFactory()))


def test_without_an_openrouter_key_the_advisor_answers_in_process(container: Container) -> None:
    # So a message's question and answer are one write (decision 0018).
    assert container.gateway.in_process


def test_live_is_200_without_authentication(api: Api) -> None:
    data = assert_ok(api.client.get("/health/live"))
    assert data == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health/ready", "/health"])
def test_ready_is_200_when_every_check_passes(
    make_api: MakeApi, container: Container, path: str
) -> None:
    async def database_up() -> bool:
        return True

    container.readiness["database"] = database_up
    api = make_api(container=container)
    data = assert_ok(api.client.get(path))
    assert data["status"] == "ok"
    assert data["checks"] == {"database": True}
    assert data["version"] == chatcore.__version__
    assert data["components"]["model"] == "offline"


async def _down() -> bool:
    return False


async def _broken() -> bool:
    raise ConnectionError("connection refused")


async def _hanging_up() -> bool:
    raise OSError("network unreachable")


@pytest.mark.parametrize("path", ["/health/ready", "/health"])
@pytest.mark.parametrize("check", [_down, _broken, _hanging_up], ids=["false", "raises", "oserror"])
def test_ready_is_503_when_a_check_fails(
    make_api: MakeApi, container: Container, path: str, check: object
) -> None:
    async def up() -> bool:
        return True

    container.readiness["redis"] = up
    container.readiness["database"] = check  # type: ignore[assignment]
    api = make_api(container=container)
    response = api.client.get(path)
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["error"]["message"] == "not ready: database unavailable"
    assert body["error"]["details"]["status"] == "unavailable"
    assert body["error"]["details"]["checks"] == {"database": False, "redis": True}
    assert response.headers["x-request-id"]
    # Liveness does not depend on the database.
    assert_ok(api.client.get("/health/live"))


def test_readiness_follows_the_database_back_up(make_api: MakeApi, container: Container) -> None:
    state = {"up": False}

    async def database() -> bool:
        return state["up"]

    container.readiness["database"] = database
    api = make_api(container=container)
    assert api.client.get("/health/ready").status_code == 503
    state["up"] = True
    assert api.client.get("/health/ready").status_code == 200


def test_metrics_count_requests_by_route_template_with_latency(make_api: MakeApi) -> None:
    api = make_api()
    user = api.user()
    cid = user.create()["id"]
    user.send(cid, "hello")
    user.send(cid, "again")
    user.get(f"/conversations/{cid}/messages")
    api.client.get("/conversations")  # a 401
    response = api.client.get("/metrics")
    assert response.status_code == 200
    # Exactly prometheus_client's type: a parameter given twice fails a strict parser.
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    text = response.text
    route = 'route="/conversations/{conversation_id}/messages"'
    sent = re.search(
        r'chatcore_http_requests_total\{method="POST",'
        + re.escape(route)
        + r',status="201"\} (\S+)',
        text,
    )
    assert sent is not None, text
    assert float(sent.group(1)) == 2.0
    assert re.search(
        r'chatcore_http_requests_total\{method="GET",route="/conversations",status="401"\} 1\.0',
        text,
    )
    assert cid not in text  # ids never become label values
    assert "chatcore_http_request_duration_seconds_bucket{" in text
    count = re.search(
        r'chatcore_http_request_duration_seconds_count\{method="POST",'
        + re.escape(route)
        + r"\} (\S+)",
        text,
    )
    assert count is not None
    assert float(count.group(1)) == 2.0
    assert re.search(r'chatcore_answers_total\{model="offline",outcome="ok"\} 2\.0', text)


def test_the_openapi_document_lists_the_conversation_routes(api: Api) -> None:
    response = api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "chatcore"
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/conversations"])
    assert {"get", "put", "delete"} <= set(paths["/conversations/{conversation_id}"])
    assert {"get", "post"} <= set(paths["/conversations/{conversation_id}/messages"])
    parameter = paths["/conversations/{conversation_id}"]["get"]["parameters"]
    path_param = next(p for p in parameter if p["in"] == "path")
    assert path_param["schema"].get("format") == "uuid"
    assert "/metrics" not in paths


@pytest.mark.parametrize("path", ["/schema/swagger", "/schema"])
def test_the_api_docs_are_served(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_a_server_app_moves_its_start_up_objects_out_of_the_collectors_reach(
    tmp_path: Path,
) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        quiet = create_app(make_settings(tmp_path), uow=InMemoryUnitOfWorkFactory())
        with TestClient(quiet):
            # Tests and embedders keep a normal collector.
            assert gc.get_freeze_count() == 0
            assert gc.get_threshold() == thresholds
        server = create_app(
            make_settings(tmp_path), uow=InMemoryUnitOfWorkFactory(), freeze_gc=True
        )
        with TestClient(server) as client:
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *thresholds[1:])
            assert client.get("/health/live").status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
