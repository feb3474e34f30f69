"""Opening a robust RabbitMQ connection that may start before the broker is up."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from aio_pika.connection import make_url

__all__ = ["start_robust"]


async def start_robust(
    url: str,
    *,
    purpose: str,
    reconnect_interval: float,
    wait: float,
    declare: Callable[[AbstractRobustConnection], Coroutine[Any, Any, None]],
) -> tuple[AbstractRobustConnection, asyncio.Task[None], bool]:
    """Connect to ``url`` and run ``declare`` on the connection, waiting ``wait`` s.

    The connection keeps being attempted (every ``reconnect_interval`` seconds) when the
    broker is down, where aio-pika's default would give up; it is named after
    ``purpose``, the host and the process in the broker's management UI.

    Returns:
        The connection, the task that connects and declares, and whether that task
        finished within ``wait`` (check its ``exception()`` then); a task still
        running goes on in the background.
    """
    connection = RobustConnection(
        make_url(url),
        client_properties={
            "connection_name": f"chatcore {purpose} ({socket.gethostname()} pid {os.getpid()})"
        },
        fail_fast="0",
        reconnect_interval=reconnect_interval,
    )
    setup = asyncio.get_running_loop().create_task(declare(connection))
    done, _ = await asyncio.wait({setup}, timeout=wait)
    return connection, setup, bool(done)
