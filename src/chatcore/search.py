"""Full-text search over a student's messages: the pure part.

A *word* is a maximal run of Unicode letters or digits (``[^\\W_]+``, so ``_`` and
punctuation split words), lowercased character by character after it is cut out of the
text (the order PostgreSQL's parser and the ``simple`` dictionary use). A query's words are
its *terms*, and every term is a prefix: ``"kar"`` finds ``"karier"``. A text matches
when every term is a prefix of at least one of its words.

The PostgreSQL store matches with
``to_tsvector('simple', content) @@ to_tsquery('simple', tsquery(terms))``; the in-memory
store matches with :func:`matches`. Both agree on plain words.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Final

from chatcore.errors import ValidationError

__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "SNIPPET_LENGTH",
    "matches",
    "search_terms",
    "snippet",
    "tsquery",
]

MAX_QUERY_LENGTH: Final = 200
"""The most characters a query ``q`` may have."""
MAX_TERMS: Final = 8
"""The most distinct terms a query keeps; further words are ignored."""
SNIPPET_LENGTH: Final = 160
"""Characters of snippet text (before the ellipses, escaping and marks)."""

_SNIPPET_LEAD: Final = 40
"""About how many characters of context the snippet shows before the first hit."""
_ELLIPSIS: Final = "…"
_WORD: Final = re.compile(r"[^\W_]+")


def _fold(text: str) -> str:
    """:meth:`str.lower`, character by character: a capital sigma is always "σ", never the
    final "ς" (as in PostgreSQL), so the fold of a word's prefix is a prefix of its fold."""
    if "Σ" not in text:
        return text.lower()
    return "".join(ch.lower() for ch in text)


def _words(text: str) -> list[str]:
    return [_fold(m.group()) for m in _WORD.finditer(text)]


def search_terms(query: str) -> tuple[str, ...]:
    """The distinct folded words of ``query`` in first-seen order, at most ``MAX_TERMS``.

    Raises:
        ValidationError: ``query`` is longer than ``MAX_QUERY_LENGTH`` or has no word.
    """
    if len(query) > MAX_QUERY_LENGTH:
        raise ValidationError(
            f"q must be at most {MAX_QUERY_LENGTH} characters",
            details={"field": "q", "max_length": MAX_QUERY_LENGTH},
        )
    terms: dict[str, None] = {}
    for word in _words(query):
        terms.setdefault(word, None)
        if len(terms) == MAX_TERMS:
            break
    if not terms:
        raise ValidationError("q must contain a word", details={"field": "q"})
    return tuple(terms)


def _lexeme(term: str) -> str:
    # Inside a quoted tsquery lexeme a quote is doubled and a backslash escapes the next
    # character, so both are doubled: nothing in ``term`` can end the literal.
    escaped = term.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}':*"


def tsquery(terms: Sequence[str]) -> str:
    """The ``to_tsquery('simple', ...)`` text for "every term as a prefix", ANDed.

    ``tsquery(("kar", "data")) == "'kar':* & 'data':*"``.

    Raises:
        ValueError: no terms, or an empty term (neither is a query PostgreSQL can run;
            :func:`search_terms` never returns them).
    """
    if not terms:
        raise ValueError("a tsquery needs at least one term")
    if any(not term for term in terms):
        raise ValueError("a tsquery term must not be empty")
    return " & ".join(_lexeme(term) for term in terms)


def matches(content: str, terms: Sequence[str]) -> bool:
    """True when every term is a prefix of at least one word of ``content``."""
    words = _words(content)
    return all(any(word.startswith(term) for word in words) for term in map(_fold, terms))


def _window(text: str, first_hit: re.Match[str] | None) -> tuple[int, int]:
    """``text[start:end]``: about ``SNIPPET_LENGTH`` characters, cut at spaces if possible,
    starting a little before ``first_hit`` and holding all of its word."""
    length = len(text)
    if length <= SNIPPET_LENGTH:
        return 0, length
    start = 0
    if first_hit is not None:
        # A little context before the hit, more when the text ends soon after it.
        desired = max(0, min(first_hit.start() - _SNIPPET_LEAD, length - SNIPPET_LENGTH))
        if desired > 0:
            # Forward to the next word boundary (the text has single spaces only),
            # never past the hit.
            space = text.find(" ", desired - 1, first_hit.start())
            start = space + 1 if space >= 0 else first_hit.start()
    end = start + SNIPPET_LENGTH
    if end >= length:
        return start, length
    # Back to the last space inside the window, keeping the hit's word whole.
    keep_after = first_hit.start() if first_hit is not None else start
    space = text.rfind(" ", start, end + 1)
    if space > keep_after:
        end = space
    return start, end


def snippet(content: str, terms: Sequence[str]) -> str:
    """An HTML-safe excerpt of ``content`` around the first hit, each hit word marked.

    The content is put on one line (whitespace runs become one space); the window of
    about ``SNIPPET_LENGTH`` characters starts a little before the first word that a term
    prefixes, is cut at word boundaries where possible and shows ``…`` where it cuts the
    content. The text is escaped with :func:`html.escape` and every word that a term
    prefixes is wrapped in ``<mark>…</mark>``, the only tags of the result. Without a
    hit, the window is the start of the content and nothing is marked.
    """
    text = " ".join(content.split())
    folded_terms = [_fold(term) for term in terms]
    hits = [
        m
        for m in _WORD.finditer(text)
        if any(_fold(m.group()).startswith(term) for term in folded_terms)
    ]
    start, end = _window(text, hits[0] if hits else None)

    parts: list[str] = [_ELLIPSIS] if start > 0 else []
    position = start
    for hit in hits:
        if hit.start() >= end:
            break
        # A word cut at the window's end is marked if what is shown still matches.
        shown = text[hit.start() : min(hit.end(), end)]
        if not any(_fold(shown).startswith(term) for term in folded_terms):
            continue
        parts.append(html.escape(text[position : hit.start()], quote=True))
        parts.append(f"<mark>{html.escape(shown, quote=True)}</mark>")
        position = hit.start() + len(shown)
    parts.append(html.escape(text[position:end], quote=True))
    if end < len(text):
        parts.append(_ELLIPSIS)
    return "".join(parts)
