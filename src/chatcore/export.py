"""Rendering a conversation transcript for download, as plain text or Markdown.

The HTTP layer renders ``json`` itself; this module does the two human-readable
formats. Both are pure functions of the conversation, its messages (oldest first,
rendered in that order), the language and the export time. Labels are Indonesian
(``id``, the default) or English (``en``); any other language falls back to ``id``.
Times are shown in UTC as ``YYYY-MM-DD HH:MM UTC`` (a naive time is taken as UTC).

Plain text (``txt``)::

    <title>
    Dibuat: 2026-01-01 09:00 UTC
    Diekspor: 2026-01-02 10:30 UTC

    [2026-01-01 09:00 UTC] Kamu: first line
      continuation lines indented by two spaces

    [2026-01-01 09:01 UTC] Penasihat Karier: an answer
      (dihentikan)

Markdown (``md``)::

    # <title, escaped so it stays one heading line>

    _Dibuat: 2026-01-01 09:00 UTC_

    _Diekspor: 2026-01-02 10:30 UTC_

    **Kamu** · 2026-01-01 09:00 UTC

    <content, as written>

    ---

    **Penasihat Karier** · 2026-01-01 09:01 UTC

    <content>

    _(dihentikan)_

A message that is not complete gets a note after it (stopped, failed or unfinished).
A conversation without messages renders its header and ``(tidak ada pesan)``. Every
output ends with exactly one newline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from chatcore.domain.conversation import Conversation
from chatcore.domain.message import Message, MessageStatus, SenderType
from chatcore.errors import ValidationError
from chatcore.prompts import LANGUAGES

__all__ = ["EXPORT_FORMATS", "export_filename", "render_markdown", "render_text"]

EXPORT_FORMATS: Final = ("json", "txt", "md")
"""The download formats a transcript can be exported in."""

_SENDER_LABELS: Final[Mapping[str, Mapping[SenderType, str]]] = {
    "id": {
        SenderType.USER: "Kamu",
        SenderType.ASSISTANT: "Penasihat Karier",
        SenderType.SYSTEM: "Sistem",
    },
    "en": {
        SenderType.USER: "You",
        SenderType.ASSISTANT: "Career Advisor",
        SenderType.SYSTEM: "System",
    },
}

_STATUS_NOTES: Final[Mapping[str, Mapping[MessageStatus, str]]] = {
    "id": {
        MessageStatus.CANCELLED: "(dihentikan)",
        MessageStatus.FAILED: "(gagal)",
        MessageStatus.STREAMING: "(belum selesai)",
    },
    "en": {
        MessageStatus.CANCELLED: "(stopped)",
        MessageStatus.FAILED: "(failed)",
        MessageStatus.STREAMING: "(unfinished)",
    },
}

_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "id": {
        "created": "Dibuat",
        "exported": "Diekspor",
        "empty": "(tidak ada pesan)",
        "untitled": "Percakapan",
    },
    "en": {
        "created": "Created",
        "exported": "Exported",
        "empty": "(no messages)",
        "untitled": "Conversation",
    },
}

_MARKDOWN_SPECIAL: Final = frozenset("\\`*_[]<>#")
"""Characters escaped in a Markdown heading (``#`` also covers a closing sequence)."""


def export_filename(conversation: Conversation, fmt: str) -> str:
    """Return the download name ``conversation-<uuid>.<fmt>``; refuse unknown formats."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
    return f"conversation-{conversation.id}.{fmt}"


def render_text(
    conversation: Conversation,
    messages: Sequence[Message],
    *,
    language: str,
    exported_at: datetime,
) -> str:
    """Render the transcript as plain text: title, header lines, then one block per message.

    A message block is ``[time] Label: `` and the content; its further lines (and the
    status note, if any) are indented by two spaces, so a blank line always separates
    two messages.
    """
    lang = _lang(language)
    lines = [_title(conversation, lang), *_header(conversation, lang, exported_at), ""]
    if not messages:
        lines.append(_TEXTS[lang]["empty"])
    for index, message in enumerate(messages):
        if index:
            lines.append("")
        body = _content_lines(message.content)
        note = _STATUS_NOTES[lang].get(message.status)
        if note is not None:
            body.append(note)
        first = body[0] if body else ""
        prefix = f"[{_time(message.created_at)}] {_SENDER_LABELS[lang][message.sender_type]}:"
        lines.append(f"{prefix} {first}" if first else prefix)
        lines.extend(f"  {line}" for line in body[1:])
    return "\n".join(lines) + "\n"


def render_markdown(
    conversation: Conversation,
    messages: Sequence[Message],
    *,
    language: str,
    exported_at: datetime,
) -> str:
    """Render the transcript as Markdown: a ``#`` heading, italic header lines, the messages.

    Each message is a ``**Label** · time`` line followed by its content as written
    (it is already Markdown-ish) and an italic status note if it is not complete;
    messages are separated by ``---`` lines.
    """
    lang = _lang(language)
    title = "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in _title(conversation, lang))
    blocks = [f"# {title}", *(f"_{line}_" for line in _header(conversation, lang, exported_at))]
    if not messages:
        blocks.append(_TEXTS[lang]["empty"])
    for index, message in enumerate(messages):
        if index:
            blocks.append("---")
        label = _SENDER_LABELS[lang][message.sender_type]
        blocks.append(f"**{label}** · {_time(message.created_at)}")
        content = "\n".join(_content_lines(message.content))
        if content:
            blocks.append(content)
        note = _STATUS_NOTES[lang].get(message.status)
        if note is not None:
            blocks.append(f"_{note}_")
    return "\n\n".join(blocks) + "\n"


def _lang(language: str) -> str:
    return language if language in LANGUAGES else "id"


def _time(moment: datetime) -> str:
    """Format a time in UTC as ``YYYY-MM-DD HH:MM UTC``; a naive time is taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _title(conversation: Conversation, lang: str) -> str:
    """The title on one line (whitespace, newlines included, collapsed to single spaces)."""
    return " ".join(conversation.title.split()) or _TEXTS[lang]["untitled"]


def _header(conversation: Conversation, lang: str, exported_at: datetime) -> list[str]:
    texts = _TEXTS[lang]
    return [
        f"{texts['created']}: {_time(conversation.created_at)}",
        f"{texts['exported']}: {_time(exported_at)}",
    ]


def _content_lines(content: str) -> list[str]:
    """The content's lines without leading or trailing blank lines."""
    lines = content.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
