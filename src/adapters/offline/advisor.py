"""The offline advisor: a deterministic chat model grounded in the student's profile.

It runs when no OpenRouter key is configured, so it is what a new user meets first:
no network, no randomness, no clock — the same request always gets the same answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from adapters.offline.compose import compose_answer
from chatcore.domain.message import Usage
from chatcore.models import ChatReply, ChatRequest, StreamDelta, StreamEnd, StreamEvent
from chatcore.tokens import estimate_message_tokens, estimate_tokens

__all__ = ["OFFLINE_MODEL_NAME", "OfflineChatModel", "split_words"]

OFFLINE_MODEL_NAME = "offline"
"""What the offline advisor reports as ``ChatReply.model``."""

_PIECE_RE = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """Word-sized pieces of ``text`` that join back to exactly ``text`` (whitespace kept)."""
    return _PIECE_RE.findall(text)


class OfflineChatModel:
    """A :class:`chatcore.ports.ChatModel` that answers from the profile, without a network.

    The question is the last ``user`` message of the request. Its topics (careers,
    strengths, weaknesses, majors, skills, work environment, personality; in
    Indonesian or English) are answered from ``request.profile`` in
    ``request.language``; a question with no recognised topic gets an overview of
    the profile. A missing or partial profile gives general guidance instead.

    Args:
        delay_per_chunk: Seconds to sleep between streamed pieces, for demos that
            should look like a live model; 0 streams at once.

    Example:
        ::

            model = OfflineChatModel()
            reply = await model.complete(request)  # reply.model == "offline"
            async for event in model.stream(request):
                ...  # StreamDelta pieces, then StreamEnd(reply)
    """

    def __init__(self, *, delay_per_chunk: float = 0.0) -> None:
        if not delay_per_chunk >= 0:  # also refuses NaN
            raise ValueError("delay_per_chunk must be a non-negative number of seconds")
        self._delay = delay_per_chunk

    @property
    def delay_per_chunk(self) -> float:
        """Seconds slept between streamed pieces."""
        return self._delay

    def answer(self, request: ChatRequest) -> ChatReply:
        """The whole reply, computed synchronously (what :meth:`complete` returns).

        Args:
            request: The prompt; its profile and language ground the answer.

        Returns:
            The reply, with model ``offline`` and estimated, free usage.
        """
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        content = compose_answer(request.profile, question, request.language)
        usage = Usage(
            prompt_tokens=sum(estimate_message_tokens(m.content) for m in request.messages),
            completion_tokens=estimate_tokens(content),
            cost=0.0,
            is_free_model=True,
        )
        return ChatReply(
            content=content, model=OFFLINE_MODEL_NAME, usage=usage, finish_reason="stop"
        )

    async def complete(self, request: ChatRequest) -> ChatReply:
        """The whole answer at once.

        Args:
            request: The prompt; its profile and language ground the answer.

        Returns:
            The reply; the offline advisor never raises ``ModelError``.
        """
        return self.answer(request)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The answer as word-sized :class:`StreamDelta` pieces, then one :class:`StreamEnd`.

        Joining the deltas' text gives exactly the reply's content.

        Args:
            request: The prompt; its profile and language ground the answer.

        Yields:
            Deltas, then the end event carrying the same reply :meth:`complete` gives.
        """
        reply = self.answer(request)
        for index, piece in enumerate(split_words(reply.content)):
            if self._delay and index:
                await asyncio.sleep(self._delay)
            yield StreamDelta(piece)
        yield StreamEnd(reply)
