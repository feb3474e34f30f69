"""The incremental SSE parser: WHATWG event-stream rules, whatever the network cuts."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.openrouter.sse import SSEError, SSEEvent, SSEParser


def parse(*pieces: bytes) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    events = [event for piece in pieces for event in parser.feed(piece)]
    parser.close()
    return events, parser


def datas(*pieces: bytes) -> list[str]:
    return [event.data for event in parse(*pieces)[0]]


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at ``points`` (any order, duplicates allowed)."""
    bounds = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# Fields and dispatch ----------------------------------------------------------------


def test_one_event() -> None:
    assert parse(b"data: hello\n\n")[0] == [SSEEvent("hello", "message", "")]


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"data: x", "x"),
        (b"data:x", "x"),
        (b"data:  x", " x"),  # only one space is dropped
        (b"data: x ", "x "),
        (b"data:", ""),
        (b"data", ""),  # a line without a colon is a field with an empty value
        (b"data: a:b: c", "a:b: c"),  # only the first colon separates
        (b'data: {"a": 1}', '{"a": 1}'),
    ],
)
def test_data_values(line: bytes, value: str) -> None:
    assert datas(line + b"\n\n") == [value]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert datas(b"data: one\ndata: two\ndata\ndata: four\n\n") == ["one\ntwo\n\nfour"]
    assert datas(b"data\ndata\n\n") == ["\n"]


def test_event_type_and_id() -> None:
    events, parser = parse(
        b"event: delta\nid: 1\ndata: a\n\n"
        b"data: b\n\n"  # the type resets, the id carries over
        b"id\ndata: c\n\n"  # an empty id resets it
        b"event:\ndata: d\n\n"  # an empty type is "message"
    )
    assert events == [
        SSEEvent("a", "delta", "1"),
        SSEEvent("b", "message", "1"),
        SSEEvent("c", "message", ""),
        SSEEvent("d", "message", ""),
    ]
    assert parser.last_event_id == ""


def test_an_id_with_nul_is_ignored() -> None:
    events, _ = parse(b"id: 7\n\nid: bad\x00id\ndata: x\n\n")
    assert events == [SSEEvent("x", "message", "7")]


def test_last_event_id_updates_even_without_data() -> None:
    events, parser = parse(b"id: 42\n\n")
    assert events == []
    assert parser.last_event_id == "42"


def test_event_without_data_dispatches_nothing_and_resets_the_type() -> None:
    events, _ = parse(b"event: ping\n\ndata: x\n\n")
    assert events == [SSEEvent("x")]


@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 15x", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry:", None),
        ("retry: ١٢".encode(), None),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_retry(line: bytes, retry: int | None) -> None:
    events, parser = parse(line + b"\n\n")
    assert events == []
    assert parser.retry == retry


def test_unknown_fields_are_ignored() -> None:
    assert parse(b"foo: bar\nData: no\ndata: yes\n : x\n\n")[0] == [SSEEvent("yes")]


def test_comments_are_counted_and_ignored() -> None:
    events, parser = parse(
        b": OPENROUTER PROCESSING\n\n:\n: keep-alive\ndata: a\n: between\ndata: b\n\n"
    )
    assert events == [SSEEvent("a\nb")]
    assert parser.comments == 4


# Line endings -----------------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(end: bytes) -> None:
    stream = end.join([b": c", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    events, parser = parse(stream)
    assert [e.data for e in events] == ["a\nb", "c"]
    assert parser.comments == 1
    assert [e.data for e in parse(*bytewise(stream))[0]] == ["a\nb", "c"]


def test_mixed_line_endings() -> None:
    assert datas(b"data: a\rdata: b\r\ndata: c\n\r\n\rdata: d\n\r") == ["a\nb\nc", "d"]


def test_crlf_cut_between_cr_and_lf_is_one_line_end() -> None:
    # Were the "\n" taken as a blank line, "a" and "b" would be two events.
    assert datas(b"data: a\r", b"\ndata: b\r\n\r\n") == ["a\nb"]
    assert datas(b"data: a\r", b"", b"\n", b"\n") == ["a"]
    # A lone CR followed by something else still ends the line.
    assert datas(b"data: a\r", b"data: b\r\r") == ["a\nb"]


def test_unicode_line_separators_do_not_end_lines() -> None:
    data = "a\u2028b\x85c\u2029d\x0be\x0cf"
    assert datas(f"data: {data}\n\n".encode()) == [data]


# Encoding ---------------------------------------------------------------------------


def test_multibyte_characters_cut_anywhere() -> None:
    text = "Héllo — 日本語 🚀 👩‍💻"
    stream = f"data: {text}\n\n".encode()
    assert datas(*bytewise(stream)) == [text]


def test_leading_bom_is_dropped_once() -> None:
    assert datas(b"\xef\xbb\xbfdata: x\n\n") == ["x"]
    assert datas(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == ["x"]
    # A second BOM is part of the first line: "\ufeffdata" is an unknown field.
    assert datas(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == ["y"]
    # Not at the start: kept in the value.
    assert datas(b"data: \xef\xbb\xbfx\n\n") == ["\ufeffx"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert datas(b"data: a\xffb\xe6\x97\n\n") == ["a\ufffdb\ufffd"]


# End of stream ----------------------------------------------------------------------


def test_an_unfinished_event_is_discarded() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b\n") == [SSEEvent("a")]
    assert parser.incomplete
    parser.close()
    parser.close()  # harmless twice
    with pytest.raises(ValueError, match="close"):
        parser.feed(b"\n")


def test_a_line_without_terminator_is_not_a_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b\n\ndata: c") == [SSEEvent("a"), SSEEvent("b")]
    assert parser.incomplete
    parser.close()


def test_incomplete_is_false_between_events() -> None:
    parser = SSEParser()
    assert not parser.incomplete
    parser.feed(b"data: a\n\n: comment\n")
    assert not parser.incomplete
    parser.feed(b"event: x\n")
    assert parser.incomplete


def test_close_flushes_a_truncated_character_without_an_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: \xe6\x97") == [SSEEvent("a")]
    parser.close()


# Limits -----------------------------------------------------------------------------


def test_a_line_longer_than_the_limit_is_an_error() -> None:
    parser = SSEParser(max_line=10)
    parser.feed(b"data: 1234")
    with pytest.raises(SSEError):
        parser.feed(b"56789")
    with pytest.raises(SSEError):
        SSEParser(max_line=10).feed(b"data: 0123456789\ndata: 0123456789")


def test_data_longer_than_the_limit_is_an_error() -> None:
    parser = SSEParser(max_line=10)
    parser.feed(b"data: 1234\n")
    with pytest.raises(SSEError):
        parser.feed(b"data: 567890\n")


def test_max_line_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line"):
        SSEParser(max_line=0)


# Properties -------------------------------------------------------------------------

_LINE_END = re.compile(r"\r\n|\r|\n")


def reference(data: bytes) -> tuple[list[SSEEvent], int, int | None]:
    """The specification, read literally, over the whole stream at once."""
    text = data.decode("utf-8-sig", "replace")
    lines = _LINE_END.split(text)
    lines.pop()  # what follows the last line end is not a line
    events: list[SSEEvent] = []
    comments = 0
    retry: int | None = None
    buffer, kind, last_id = "", "", ""
    for line in lines:
        if line == "":
            if buffer:
                events.append(SSEEvent(buffer.removesuffix("\n"), kind or "message", last_id))
            buffer, kind = "", ""
            continue
        if line.startswith(":"):
            comments += 1
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            value = value.removeprefix(" ")
        else:
            name, value = line, ""
        if name == "data":
            buffer += value + "\n"
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and re.fullmatch(r"[0-9]+", value):
            retry = int(value)
    return events, comments, retry


_FIELD_LINES = st.one_of(
    st.tuples(
        st.sampled_from(["data", "event", "id", "retry", "x", ""]),
        st.sampled_from([":", ": ", "", ":  "]),
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12),
    ).map("".join),
    st.sampled_from(["", "", ":", ": OPENROUTER PROCESSING", "retry: 30", "id: 9", "data"]),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_FIELD_LINES, max_size=25))
    ends = st.sampled_from(["\n", "\r\n", "\r"])
    text = "".join(line + draw(ends) for line in lines)
    if draw(st.booleans()):
        text += draw(st.text(max_size=5))  # an unterminated tail
    data = text.encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = draw(st.lists(st.integers(0, len(data)), max_size=20))
    return cut(data, points)


@given(st.data())
def test_any_split_of_any_stream_matches_the_reference(data: st.DataObject) -> None:
    stream = data.draw(st.one_of(sse_streams(), st.binary(max_size=200)))
    pieces = data.draw(splits(stream))
    events, parser = parse(*pieces)
    expected, comments, retry = reference(stream)
    assert events == expected
    assert parser.comments == comments
    assert parser.retry == retry
    assert parse(*bytewise(stream))[0] == expected


# An OpenRouter stream, generated ---------------------------------------------------


def openrouter_stream(
    deltas: Sequence[str],
    usage: dict[str, Any],
    *,
    end: str,
    comment_every: int,
) -> bytes:
    prefix: dict[str, Any] = {"id": "gen-1", "object": "chat.completion.chunk", "model": "m"}
    out: list[str] = [": OPENROUTER PROCESSING" + end + end]
    for i, delta in enumerate(deltas):
        if i and i % comment_every == 0:
            out.append(": OPENROUTER PROCESSING" + end + end)
        chunk = {**prefix, "choices": [{"index": 0, "delta": {"content": delta}}]}
        out.append("data: " + json.dumps(chunk, ensure_ascii=False) + end + end)
    chunk = {**prefix, "choices": [], "usage": usage}
    out.append("data: " + json.dumps(chunk, ensure_ascii=False) + end + end)
    out.append("data: [DONE]" + end + end)
    return "".join(out).encode()


def digest(events: list[SSEEvent]) -> tuple[str, Any, bool]:
    """(joined text, usage, whether [DONE] came last) of OpenRouter's events."""
    text: list[str] = []
    usage = None
    for event in events[:-1]:
        chunk = json.loads(event.data)
        if chunk["choices"]:
            text.append(chunk["choices"][0]["delta"]["content"])
        else:
            usage = chunk["usage"]
    return "".join(text), usage, bool(events) and events[-1].data == "[DONE]"


_USAGE = st.fixed_dictionaries(
    {
        "prompt_tokens": st.integers(0, 10**6),
        "completion_tokens": st.integers(0, 10**6),
        "cost": st.floats(0, 100, allow_nan=False),
    }
)


@settings(max_examples=200)
@given(
    deltas=st.lists(st.text(min_size=1, max_size=8), max_size=30),
    usage=_USAGE,
    end=st.sampled_from(["\n", "\r\n"]),
    comment_every=st.integers(1, 6),
    data=st.data(),
)
def test_any_split_of_an_openrouter_stream_gives_the_same_answer(
    deltas: list[str],
    usage: dict[str, Any],
    end: str,
    comment_every: int,
    data: st.DataObject,
) -> None:
    stream = openrouter_stream(deltas, usage, end=end, comment_every=comment_every)
    whole, whole_parser = parse(stream)
    pieces = data.draw(splits(stream))
    events, parser = parse(*pieces)
    assert events == whole
    assert len(events) == len(deltas) + 2
    assert parser.comments == whole_parser.comments == 1 + max(len(deltas) - 1, 0) // comment_every
    assert digest(events) == ("".join(deltas), usage, True)
