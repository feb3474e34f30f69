"""The principal dependency never hands out an anonymous caller, even on a route that
lacks the authentication guard."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from entrypoints.auth import Principal
from entrypoints.bootstrap import bootstrap
from entrypoints.http.deps import provide_container, provide_principal
from entrypoints.http.errors import EXCEPTION_HANDLERS
from tests.unit.http_support import make_settings, token_for


@get("/whoami", sync_to_thread=False)
def whoami(principal: Principal) -> dict[str, Any]:
    return {"user": str(principal.user_id)}


async def test_a_route_without_the_guard_still_authenticates(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    container = await bootstrap(settings)
    app = Litestar(
        route_handlers=[whoami],
        dependencies={
            "container": Provide(provide_container, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.container = container
    user = uuid.uuid4()
    try:
        async with AsyncTestClient(app) as client:
            assert (await client.get("/whoami")).status_code == 401
            bad = await client.get("/whoami", headers={"Authorization": "Bearer not-a-token"})
            assert bad.status_code == 401
            token = token_for(settings, user)
            ok = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
            assert ok.json() == {"user": str(user)}
    finally:
        await container.aclose()
