"""Transcript export renders conversations as plain text and Markdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from chatcore.domain.conversation import Conversation
from chatcore.domain.message import Message, MessageStatus, SenderType
from chatcore.errors import ValidationError
from chatcore.export import EXPORT_FORMATS, export_filename, render_markdown, render_text

USER = uuid4()
CONV_ID = UUID("01890000-0000-7000-8000-000000000001")
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
EXPORTED = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def _conversation(title: str = "Rencana Karier") -> Conversation:
    return Conversation(id=CONV_ID, user_id=USER, title=title, created_at=T0, updated_at=T0)


def _message(
    content: str,
    sender: SenderType = SenderType.USER,
    *,
    minutes: int = 0,
    status: MessageStatus = MessageStatus.COMPLETE,
) -> Message:
    return Message(
        id=uuid4(),
        conversation_id=CONV_ID,
        user_id=USER,
        sender_type=sender,
        content=content,
        status=status,
        metadata={"model": "m"} if sender is SenderType.ASSISTANT else {},
        created_at=T0 + timedelta(minutes=minutes),
    )


def _dialogue() -> list[Message]:
    return [
        _message("Ada sistem?", SenderType.SYSTEM, minutes=0),
        _message("Halo, aku bingung pilih jurusan.", SenderType.USER, minutes=1),
        _message("Coba ceritakan minatmu.", SenderType.ASSISTANT, minutes=2),
    ]


def _text(messages: list[Message], language: str = "id", title: str = "Rencana Karier") -> str:
    return render_text(_conversation(title), messages, language=language, exported_at=EXPORTED)


def _md(messages: list[Message], language: str = "id", title: str = "Rencana Karier") -> str:
    return render_markdown(_conversation(title), messages, language=language, exported_at=EXPORTED)


def test_formats_and_filename() -> None:
    assert EXPORT_FORMATS == ("json", "txt", "md")
    conv = _conversation()
    assert export_filename(conv, "txt") == f"conversation-{CONV_ID}.txt"
    assert export_filename(conv, "md") == f"conversation-{CONV_ID}.md"
    assert export_filename(conv, "json") == f"conversation-{CONV_ID}.json"


def test_filename_refuses_unknown_format() -> None:
    with pytest.raises(ValidationError):
        export_filename(_conversation(), "pdf")


def test_text_layout_in_indonesian() -> None:
    assert _text(_dialogue()) == (
        "Rencana Karier\n"
        "Dibuat: 2026-01-05 09:30 UTC\n"
        "Diekspor: 2026-02-01 12:00 UTC\n"
        "\n"
        "[2026-01-05 09:30 UTC] Sistem: Ada sistem?\n"
        "\n"
        "[2026-01-05 09:31 UTC] Kamu: Halo, aku bingung pilih jurusan.\n"
        "\n"
        "[2026-01-05 09:32 UTC] Penasihat Karier: Coba ceritakan minatmu.\n"
    )


def test_text_labels_in_english() -> None:
    out = _text(_dialogue(), language="en")
    assert "Created: 2026-01-05 09:30 UTC\n" in out
    assert "Exported: 2026-02-01 12:00 UTC\n" in out
    assert "] System: Ada sistem?" in out
    assert "] You: Halo" in out
    assert "] Career Advisor: Coba" in out
    assert "Kamu" not in out
    assert "Dibuat" not in out


@pytest.mark.parametrize("language", ["fr", "", "EN", "id-ID"])
def test_unknown_language_falls_back_to_indonesian(language: str) -> None:
    assert _text(_dialogue(), language=language) == _text(_dialogue(), language="id")
    assert _md(_dialogue(), language=language) == _md(_dialogue(), language="id")
    assert "**Penasihat Karier**" in _md(_dialogue(), language=language)


def test_order_is_kept_as_given() -> None:
    messages = [
        _message("pertama", minutes=5),
        _message("kedua", SenderType.ASSISTANT, minutes=1),
        _message("ketiga", minutes=3),
    ]
    for out in (_text(messages), _md(messages)):
        assert out.index("pertama") < out.index("kedua") < out.index("ketiga")


def test_times_are_shown_in_utc() -> None:
    jakarta = timezone(timedelta(hours=7))
    message = _message("x")
    message.created_at = datetime(2026, 1, 5, 8, 15, tzinfo=jakarta)
    out = render_text(
        _conversation(),
        [message],
        language="en",
        exported_at=datetime(2026, 2, 1, 0, 5, tzinfo=jakarta),
    )
    assert "[2026-01-05 01:15 UTC] You: x" in out
    assert "Exported: 2026-01-31 17:05 UTC" in out


def test_text_multiline_content_is_indented() -> None:
    message = _message("Pilihan:\n- Data\n\n- Desain", SenderType.ASSISTANT)
    out = _text([message, _message("oke", minutes=1)])
    assert (
        "[2026-01-05 09:30 UTC] Penasihat Karier: Pilihan:\n"
        "  - Data\n"
        "  \n"
        "  - Desain\n"
        "\n"
        "[2026-01-05 09:31 UTC] Kamu: oke\n"
    ) in out


@pytest.mark.parametrize(
    ("status", "note_id", "note_en"),
    [
        (MessageStatus.CANCELLED, "(dihentikan)", "(stopped)"),
        (MessageStatus.FAILED, "(gagal)", "(failed)"),
        (MessageStatus.STREAMING, "(belum selesai)", "(unfinished)"),
    ],
)
def test_status_notes(status: MessageStatus, note_id: str, note_en: str) -> None:
    messages = [_message("Jawaban sebagian", SenderType.ASSISTANT, status=status)]
    assert "Penasihat Karier: Jawaban sebagian\n  " + note_id + "\n" in _text(messages)
    assert "Career Advisor: Jawaban sebagian\n  " + note_en + "\n" in _text(messages, "en")
    assert "Jawaban sebagian\n\n_" + note_id + "_\n" in _md(messages)
    assert "Jawaban sebagian\n\n_" + note_en + "_\n" in _md(messages, "en")


def test_complete_message_has_no_note() -> None:
    out = _text(_dialogue()) + _md(_dialogue())
    for note in ("(dihentikan)", "(gagal)", "(belum selesai)"):
        assert note not in out


def test_empty_cancelled_message_keeps_note_on_label_line() -> None:
    message = _message("", SenderType.ASSISTANT, status=MessageStatus.CANCELLED)
    assert _text([message]).endswith("] Penasihat Karier: (dihentikan)\n")


def test_markdown_layout() -> None:
    messages = [
        _message("Halo **semua**", minutes=0),
        _message("## Saran\n\n1. Coba magang", SenderType.ASSISTANT, minutes=1),
    ]
    assert _md(messages) == (
        "# Rencana Karier\n"
        "\n"
        "_Dibuat: 2026-01-05 09:30 UTC_\n"
        "\n"
        "_Diekspor: 2026-02-01 12:00 UTC_\n"
        "\n"
        "**Kamu** · 2026-01-05 09:30 UTC\n"
        "\n"
        "Halo **semua**\n"
        "\n"
        "---\n"
        "\n"
        "**Penasihat Karier** · 2026-01-05 09:31 UTC\n"
        "\n"
        "## Saran\n"
        "\n"
        "1. Coba magang\n"
    )


def test_markdown_separators_only_between_messages() -> None:
    out = _md(_dialogue())
    lines = out.splitlines()
    assert lines.count("---") == 2
    assert lines[-1] != "---"
    assert lines[0].startswith("# ")


def test_markdown_english_labels() -> None:
    out = _md(_dialogue(), language="en")
    assert "_Created: 2026-01-05 09:30 UTC_" in out
    assert "_Exported: 2026-02-01 12:00 UTC_" in out
    assert "**You** · 2026-01-05 09:31 UTC" in out
    assert "**Career Advisor** · 2026-01-05 09:32 UTC" in out
    assert "**System** · 2026-01-05 09:30 UTC" in out


def test_empty_conversation() -> None:
    assert _text([]) == (
        "Rencana Karier\n"
        "Dibuat: 2026-01-05 09:30 UTC\n"
        "Diekspor: 2026-02-01 12:00 UTC\n"
        "\n"
        "(tidak ada pesan)\n"
    )
    assert _text([], "en").endswith("Exported: 2026-02-01 12:00 UTC\n\n(no messages)\n")
    md = _md([], "en")
    assert md.endswith("_Exported: 2026-02-01 12:00 UTC_\n\n(no messages)\n")
    assert "---" not in md
    assert _md([]).endswith("\n\n(tidak ada pesan)\n")


@pytest.mark.parametrize("content", ["akhir", "akhir\n", "akhir\n\n\n", "\n\nakhir  \n \n"])
def test_output_ends_with_exactly_one_newline(content: str) -> None:
    messages = [_message(content, SenderType.ASSISTANT)]
    for out in (_text(messages), _md(messages), _text([]), _md([])):
        assert out.endswith("\n")
        assert not out.endswith("\n\n")


def test_title_with_newlines_and_hashes_stays_one_heading_line() -> None:
    title = "# Karier\n## *Pilihan* [1] #"
    md = _md([_message("x")], title=title)
    first, second = md.split("\n", 2)[:2]
    assert first == r"# \# Karier \#\# \*Pilihan\* \[1\] \#"
    assert second == ""
    assert md.count("\n# ") == 0
    text = _text([_message("x")], title=title)
    assert text.splitlines()[0] == "# Karier ## *Pilihan* [1] #"
    assert text.splitlines()[1].startswith("Dibuat: ")
