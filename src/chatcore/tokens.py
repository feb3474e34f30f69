"""A deterministic token estimator.

Exact counts depend on each model's tokenizer, which the core cannot know; the
budget only needs an estimate that is stable, cheap and errs high. Roughly four
characters make a token in English and Indonesian; scripts without spaces (CJK)
come close to one token per character, so those characters count fully.
"""

from __future__ import annotations

__all__ = ["MESSAGE_OVERHEAD_TOKENS", "estimate_message_tokens", "estimate_tokens"]

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat message costs besides its text (role markers, separators)."""


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text``: ceil(ascii/4) plus one per wide non-ASCII character."""
    if text.isascii():  # the common case, without a Python-level loop over characters
        return (len(text) + 3) // 4
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    narrow = len(text) - wide
    return (narrow + 3) // 4 + wide


def estimate_message_tokens(text: str) -> int:
    """Tokens of ``text`` sent as one chat message."""
    return estimate_tokens(text) + MESSAGE_OVERHEAD_TOKENS
