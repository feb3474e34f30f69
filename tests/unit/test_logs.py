"""Logging: lines below the configured level cost a level check, nothing more."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog

from entrypoints.logs import configure_logging, get_logger


@pytest.fixture
def processed(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> list[str]:
    """The events that went through the processor chain (its first shared step)."""
    seen: list[str] = []
    merge = structlog.contextvars.merge_contextvars

    def counting(logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        seen.append(str(event.get("event")))
        return merge(logger, name, event)

    monkeypatch.setattr(structlog.contextvars, "merge_contextvars", counting)
    return seen


def test_lines_below_the_level_are_dropped_before_any_processing(
    processed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("warning", "json")
    log = get_logger("chatcore.test")
    log.debug("a domain event", kind="AnswerProduced")
    log.info("request", status=201)
    log.warning("model call failed", model="m")
    assert processed == ["model call failed"]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [line["event"] for line in lines] == ["model call failed"]
    assert lines[0]["level"] == "warning"
    assert "timestamp" in lines[0]


def test_lines_at_the_level_are_logged(
    processed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    get_logger("chatcore.test").info("request", status=201)
    assert processed == ["request"]
    (line,) = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert line["status"] == 201
