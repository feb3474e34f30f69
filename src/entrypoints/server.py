"""The ASGI server behind ``chatcore serve`` (Granian; see docs/decisions)."""

from __future__ import annotations

__all__ = ["APP_FACTORY", "run_server"]

APP_FACTORY = "entrypoints.http.app:create_app_from_env"


def run_server(*, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    from granian.constants import Interfaces  # noqa: PLC0415
    from granian.log import LogLevels  # noqa: PLC0415
    from granian.server import Server  # noqa: PLC0415

    Server(
        APP_FACTORY,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=max(1, workers),
        factory=True,
        log_access=False,
        log_level=LogLevels(log_level if log_level != "warning" else "warn"),
    ).serve()
