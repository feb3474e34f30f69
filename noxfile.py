"""Developer sessions: ``nox`` runs lint, typecheck and tests, exactly as CI does.

The sessions run in the environment nox is started from (the project's ``.venv``,
installed with ``pip install -e '.[dev]'``), so nothing is installed twice.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

# The tools live beside the Python that runs nox (the project's venv), which need not
# be on PATH when nox is started as .venv/bin/nox.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "none"

PATHS = [p for p in ("src", "tests", "benchmarks", "noxfile.py") if Path(p).exists()]


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff (rules and formatting) and import-linter (the layering contracts)."""
    session.run("ruff", "check", *PATHS)
    session.run("ruff", "format", "--check", *PATHS)
    session.run("lint-imports")


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, its tests and its benchmarks."""
    session.run("mypy")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Unit and integration tests (PostgreSQL: local server, else embedded)."""
    session.run("pytest", *session.posargs)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """The load benchmark against a freshly started service (prints figures)."""
    session.run("python", "benchmarks/load.py", *session.posargs)
