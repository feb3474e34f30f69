"""What the core spends per message on the history: finding the branch and building the prompt.

Every message walks the conversation's newest messages (the history window, 60) twice:
once to find the branch the question answers (``_branch``) and once to fit as much of
it as the budget allows into the prompt (``build_context``). This script makes a real
history with the in-memory system and the offline advisor (answers of a few hundred
characters, some with non-ASCII text), then times, per call:

- ``baseline``: one pass over the same messages reading what both steps read
  (content, sender, status, parent): the memory traffic no walk can avoid;
- ``branch``: ``_branch`` from the newest message;
- ``context``: ``build_context`` for the default budget (6000 estimated tokens);
- ``context, tight``: the same with a budget that drops most of the history.

    python benchmarks/prompt.py [--messages 80] [--window 60] [--repeat 5]

Figures are the best of ``--repeat`` rounds (microseconds per call), beside the
baseline's and their ratio to it; a busy neighbour shows as spread between rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import timeit
import uuid
from collections.abc import Callable

from chatcore.context import build_context, minimum_budget
from chatcore.domain import Message
from chatcore.limits import RatePolicy
from chatcore.services import CreateConversation
from chatcore.services.messages import _branch
from chatcore.testing import in_memory_system

QUESTIONS = (
    "Karier apa yang cocok untukku?",
    "What should I study if I like solving puzzles and working with people?",
    "Bagaimana cara mengetahui kekuatanku?",
    "Is data science a good fit for an introvert who likes statistics?",
    "Apa langkah pertama untuk magang di bidang desain?",
)


async def _history(messages: int, window: int) -> list[Message]:
    """The ``window`` newest messages (newest first) of a conversation of ``messages``
    questions and their answers."""
    system = in_memory_system(
        rate_policy=RatePolicy(messages_per_minute=10**9, conversations_per_day=10**9)
    )
    user = uuid.uuid4()
    conversation = await system.conversations.create(user, CreateConversation())
    for i in range(messages):
        await system.messages.send(user, conversation.id, QUESTIONS[i % len(QUESTIONS)])
    async with system.uow(user) as uow:
        return await uow.messages.recent(conversation.id, window)


def _touch(recent: list[Message]) -> int:
    seen = 0
    for message in recent:
        if message.content and message.sender_type and message.status:
            seen += message.parent_message_id is not None
    return seen


def _best(call: Callable[[], object], repeat: int) -> float:
    number = 2000
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=80, help="questions sent (default: 80)")
    parser.add_argument("--window", type=int, default=60, help="messages read (default: 60)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per figure (default: 5)")
    args = parser.parse_args()
    if not 1 <= args.messages <= 10_000 or not 1 <= args.window <= 1000:
        parser.error("--messages must be 1..10000 and --window 1..1000")

    recent = asyncio.run(_history(args.messages, args.window))
    branch = _branch(recent, recent[0].id)
    tight = minimum_budget("id") + 600

    def context(budget: int) -> Callable[[], object]:
        return lambda: build_context(
            question=QUESTIONS[0], history=branch, profile=None, language="id", budget=budget
        )

    built = build_context(
        question=QUESTIONS[0], history=branch, profile=None, language="id", budget=6000
    )
    dropped = build_context(
        question=QUESTIONS[0], history=branch, profile=None, language="id", budget=tight
    )
    chars = sum(len(m.content) for m in branch) / len(branch)
    print(
        f"history: {len(recent)} messages read, {len(branch)} on the branch, "
        f"{chars:.0f} characters on average, "
        f"{sum(not m.content.isascii() for m in branch)} with non-ASCII text"
    )
    print(
        f"prompt at 6000 tokens: {built.history_used} kept, {built.history_dropped} dropped; "
        f"at {tight}: {dropped.history_used} kept, {dropped.history_dropped} dropped"
    )
    baseline = _best(lambda: _touch(recent), args.repeat)
    rows = [
        ("branch", _best(lambda: _branch(recent, recent[0].id), args.repeat)),
        ("context", _best(context(6000), args.repeat)),
        ("context, tight", _best(context(tight), args.repeat)),
    ]
    print(f"\n{'step':<16}{'µs/call':>10}{'baseline':>10}{'ratio':>8}")
    for name, micros in rows:
        print(f"{name:<16}{micros:>10.1f}{baseline:>10.1f}{micros / baseline:>7.1f}x")


if __name__ == "__main__":
    main()
