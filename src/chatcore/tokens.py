"""A deterministic token estimator.

Exact counts depend on each model's tokenizer, which the core cannot know; the
budget only needs an estimate that is stable, cheap and errs high. Roughly four
characters make a token in English and Indonesian; scripts without spaces (CJK)
come close to one token per character, so those characters count fully.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MESSAGE_OVERHEAD_TOKENS", "estimate_message_tokens", "estimate_tokens"]

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat message costs besides its text (role markers, separators)."""


# Runs of wide characters: CJK radicals (U+2E80) and everything above.
_WIDE_RUNS = re.compile("[\u2e80-\U0010ffff]+")


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text``: ceil(narrow/4) plus one per wide character (>= U+2E80)."""
    if text.isascii():  # the common case, without a Python-level loop over characters
        return (len(text) + 3) // 4
    return _estimate_non_ascii(text)


# A conversation's history is estimated again on every turn, and an answer with one
# non-ASCII character (a dash, an accent) takes the slow path; remembering recent
# texts makes the next turn a dictionary lookup. Bounded, so memory stays small.
@functools.lru_cache(maxsize=4096)
def _estimate_non_ascii(text: str) -> int:
    wide = sum(map(len, _WIDE_RUNS.findall(text)))
    return (len(text) - wide + 3) // 4 + wide


def estimate_message_tokens(text: str) -> int:
    """Tokens of ``text`` sent as one chat message."""
    return estimate_tokens(text) + MESSAGE_OVERHEAD_TOKENS
