"""The token estimator: the same figure on every path, for any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatcore.tokens import MESSAGE_OVERHEAD_TOKENS, estimate_message_tokens, estimate_tokens


def _reference(text: str) -> int:
    """The definition, character by character: ceil(narrow / 4) + one per wide character."""
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return (len(text) - wide + 3) // 4 + wide


@given(st.text())
def test_any_text_is_estimated_by_the_definition(text: str) -> None:
    assert estimate_tokens(text) == _reference(text)
    # The second call may come from the cache; it must say the same.
    assert estimate_tokens(text) == _reference(text)


def test_examples_of_each_script() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("Investigative–Artistic") == 6  # one narrow non-ASCII dash
    assert estimate_tokens("職業") == 2  # wide: one token each
    assert estimate_tokens("a職b業c") == 1 + 2
    assert estimate_tokens("\u2e7f\u2e80") == 1 + 1  # just below and at the boundary
    assert estimate_tokens("😀") == 1


def test_a_message_adds_its_overhead() -> None:
    assert estimate_message_tokens("abcd") == 1 + MESSAGE_OVERHEAD_TOKENS
