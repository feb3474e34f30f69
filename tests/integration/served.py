"""Serve an app in the test's event loop exactly as ``chatcore serve`` would: uvicorn
with ``entrypoints.server``'s settings, on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from entrypoints.server import server_config

__all__ = ["Served", "serving"]


@dataclass
class Served:
    """A running server: its base URL and the uvicorn server (to stop it early)."""

    url: str
    server: uvicorn.Server

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


@contextlib.asynccontextmanager
async def serving(app: Any, *, graceful_shutdown: int = 2) -> AsyncIterator[Served]:
    """Serve ``app`` for the block; the server stops (gracefully) at its end, unless
    the test stopped it already. ``graceful_shutdown`` replaces the 20 s of production
    so that a test that failed mid-stream ends quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(app, port=port)
    config.timeout_graceful_shutdown = graceful_shutdown
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.005)
        yield Served(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10 + graceful_shutdown)
        sock.close()
