"""``chatcore demo``: the whole assessment journey in one process, printed readably.

A sample ``analysis.completed`` (the bundled persona v2 result, under a fresh result id
so that every run creates its conversation) goes through the same code as the consumer:
the archive answers from the bundled result, the progress notifications print, the
welcome message and the suggestions print, then the first suggestion is asked and the
answer streams to the terminal.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TextIO
from uuid import UUID

import msgspec

from adapters.memory import InMemoryAssessmentSource, InMemoryIntegrationPublisher
from adapters.offline import OfflineChatModel
from chatcore.assessment import AnalysisEvent, ArchiveResult, decode_analysis_event
from chatcore.domain import Conversation
from chatcore.fallback import ModelChain
from chatcore.services.messages import StreamCompleted, StreamFailed, StreamText
from entrypoints.bootstrap import Container, bootstrap
from entrypoints.settings import Settings

__all__ = ["run_demo"]


def _bundled(name: str) -> dict[str, Any]:
    text = resources.files("entrypoints.demo_data").joinpath(name).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class _PrintingNotifier:
    """Shows what the student's sockets would receive."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        if event == "assessment_progress":
            line = f"[{data['progress']:>3}%] {data['title']} — {data['message']}"
        else:
            line = f"[ws] {event} {json.dumps(data, ensure_ascii=False)}"
        print(f"  {line}", file=self._out, flush=True)


def _sample() -> tuple[ArchiveResult, AnalysisEvent, AnalysisEvent]:
    """The bundled result under a fresh id, and the worker's two events for it."""
    result_data = _bundled("archive_result_v2.json")["data"]
    result_id = f"demo-{uuid.uuid4()}"
    result_data["id"] = result_id
    event_body = _bundled("event_analysis_completed.json")
    event_body.update(
        resultId=result_id, timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z")
    )
    started = {**event_body, "eventType": "analysis.started", "resultId": None}
    return (
        msgspec.convert(result_data, ArchiveResult),
        decode_analysis_event(json.dumps(started).encode()),
        decode_analysis_event(json.dumps(event_body).encode()),
    )


async def _ask(container: Container, conversation: Conversation, question: str, out: TextIO) -> int:
    """Stream the answer to ``question`` to ``out``."""
    updates = await container.messages.stream(conversation.user_id, conversation.id, question)
    print("   ", end="", file=out, flush=True)
    async for update in updates:
        if isinstance(update, StreamText):
            print(update.delta.replace("\n", "\n   "), end="", file=out, flush=True)
        elif isinstance(update, StreamCompleted):
            usage = update.usage
            print(
                f"\n\n   (model {update.model}, {usage.prompt_tokens} prompt + "
                f"{usage.completion_tokens} completion tokens)",
                file=out,
                flush=True,
            )
        elif isinstance(update, StreamFailed):
            print(f"\n   the answer failed: {update.code} {update.message}", file=out)
            return 1
    return 0


async def run_demo(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run the journey; returns the process exit code."""
    result, started, completed = _sample()
    overrides: dict[str, Any] = {
        "source": InMemoryAssessmentSource({result.id: result}),
        "notifier": _PrintingNotifier(out),
        "hub": None,
        # One process: what would go to the broker stays in it.
        "publisher": InMemoryIntegrationPublisher(),
    }
    if settings.openrouter_api_key is None:
        # The offline advisor, slowed a little so that the answer visibly streams.
        overrides["model"] = OfflineChatModel(delay_per_chunk=0.015)
        overrides["chain"] = ModelChain(primary="offline")
    container = await bootstrap(settings, **overrides)

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    try:
        say("chatcore demo — the assessment journey")
        say(f"  database: {container.info.get('database')}; model: {container.info.get('model')}")
        say()
        say("1. The analysis worker publishes analysis.started, then analysis.completed")
        say(f"   for result {result.id}")
        name = completed.metadata.assessmentName if completed.metadata else None
        say(f"   (user {completed.userId}, {name})")
        await container.assessment.handle(started)
        made = await container.assessment.handle(completed)
        if made is None:
            say("   nothing was created (see the log)")
            return 1
        say()
        say(f"2. Conversation {made.conversation.id}: {made.conversation.title!r}")
        say()
        say("3. Welcome message")
        say()
        for line in (made.welcome_message.content if made.welcome_message else "").splitlines():
            say(f"   {line}")
        say()
        say("4. Suggested questions")
        for question in made.suggestions:
            say(f"   - {question}")
        say()
        say(f"5. The student asks: {made.suggestions[0]}")
        say()
        return await _ask(container, made.conversation, made.suggestions[0], out)
    finally:
        await container.aclose()
