"""An embedded PostgreSQL server (the ``pgserver`` package) for machines without one."""

from __future__ import annotations

import pathlib
import warnings
from typing import Any

__all__ = ["start_embedded", "stop_embedded"]

# Servers this process started, by pgdata path: pgserver's own handles, kept so that
# stop_embedded can release them.
_SERVERS: dict[pathlib.Path, Any] = {}


def _pgdata(data_dir: pathlib.Path) -> pathlib.Path:
    return (data_dir.expanduser().resolve()) / "pgdata"


def start_embedded(data_dir: pathlib.Path) -> str:
    """Start, or reuse, a PostgreSQL server kept in ``data_dir / "pgdata"``; return its URL.

    The server listens on a Unix socket only. It stops when the last process using it
    exits (pgserver's ``stop`` cleanup mode) or at :func:`stop_embedded`; the data stays
    for the next start. When run as root, pgserver runs the server as a system user
    ``pgserver`` (creating it if needed), gives it the data directory, and makes every
    parent directory traversable by others (``o+rx``).

    Returns:
        A URL such as ``postgresql://postgres:@/postgres?host=/path``, accepted by
        :func:`adapters.postgres.create_engine` and :func:`adapters.postgres.migrate`.
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (containers, CI) when pgserver
        # computes its lock directory at import; the /tmp fallback it uses is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - heavy, rarely needed

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = _pgdata(data_dir)
    server = get_server(pgdata, cleanup_mode="stop")
    _SERVERS[pgdata] = server
    url = server.get_uri()
    assert isinstance(url, str)
    return url


def stop_embedded(data_dir: pathlib.Path) -> None:
    """Release this process's hold on the server in ``data_dir``; stop it if no one else uses it.

    A no-op when this process did not start it. Without a call, the server stops at exit.
    """
    server = _SERVERS.pop(_pgdata(data_dir), None)
    if server is not None:
        server.cleanup()
