"""Shared fixtures: the assessment fixtures from ../shared/fixtures (or a bundled copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
BUNDLED = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> Any:
    """Read a fixture from shared/fixtures beside the checkout, else the bundled copy."""
    for folder in (FIXTURES, BUNDLED):
        path = folder / name
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


@pytest.fixture
def archive_v1() -> dict[str, Any]:
    data: dict[str, Any] = load_fixture("archive_result_v1.json")["data"]
    return data


@pytest.fixture
def archive_v2() -> dict[str, Any]:
    data: dict[str, Any] = load_fixture("archive_result_v2.json")["data"]
    return data
