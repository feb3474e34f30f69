"""Fixtures of the HTTP tests (see http_support)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.unit.http_support import Api, running_api

MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[MakeApi]:
    """``make_api(env={...}, model=..., uow=..., container=...)`` starts an app;
    every app started is stopped at the end of the test."""
    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> Api:
            return stack.enter_context(contextlib.contextmanager(running_api)(tmp_path, **kwargs))

        yield make


@pytest.fixture
def api(shared_api: Api) -> Api:
    """The app with its defaults (in-memory storage, the offline advisor), shared by the
    tests of a module: each test works as its own users, so they cannot disturb one
    another. Tests that need their own settings or adapters use ``make_api``."""
    return shared_api


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app with the defaults for a whole module, for tests that each use their own
    users and so cannot disturb one another (an app costs ~20 ms to start)."""
    with contextlib.contextmanager(running_api)(tmp_path_factory.mktemp("shared")) as api:
        yield api


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure_logging: the root handlers and structlog's configuration."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
