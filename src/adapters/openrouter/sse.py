"""An incremental Server-Sent Events parser (the WHATWG ``text/event-stream`` rules).

Pure: bytes in, events out, no I/O. Network chunks may cut the stream anywhere,
inside a field, inside a multi-byte UTF-8 character or between the ``\\r`` and the
``\\n`` of a line terminator; the events are the same as for the whole stream at
once. The rules followed (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* the stream is UTF-8, one leading byte-order mark is dropped, invalid bytes become
  U+FFFD;
* lines end with ``\\r\\n``, ``\\n`` or ``\\r``;
* a line starting with ``:`` is a comment (OpenRouter's ``: OPENROUTER PROCESSING``):
  ignored, but counted in :attr:`SSEParser.comments`;
* ``name: value`` sets a field (one space after the colon is dropped), a line
  without a colon is a field with an empty value; ``data`` lines accumulate (joined
  with ``\\n``), ``event`` sets the type, ``id`` the last event id (unless it holds a
  NUL), ``retry`` the reconnection time (digits only); other fields are ignored;
* a blank line dispatches the event, unless no ``data`` came (then only the type is
  reset); the last event id carries over to later events;
* an unfinished event at the end of the stream is discarded.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_MAX_LINE", "SSEError", "SSEEvent", "SSEParser"]

DEFAULT_MAX_LINE: Final = 16 * 1024 * 1024
"""Characters a line (or an event's data) may hold before :class:`SSEError`."""

_LINE_END: Final = re.compile(r"\r\n|\r|\n")


class SSEError(ValueError):
    """The stream cannot be parsed: a line or an event is larger than allowed."""


@dataclass(slots=True, frozen=True)
class SSEEvent:
    """One dispatched event.

    Attributes:
        data: The ``data`` lines joined with ``\\n``.
        event: The type (``event:`` field), ``"message"`` when none was given.
        id: The last event id at dispatch time (``""`` when none was ever set).
    """

    data: str
    event: str = "message"
    id: str = ""


class SSEParser:
    """Turns the bytes of an event stream into :class:`SSEEvent` objects, incrementally.

    Args:
        max_line: The most characters a pending line, or the data of one event, may
            hold; beyond it :meth:`feed` raises :class:`SSEError` (a stream that
            never ends its line would otherwise grow without bound).

    Attributes:
        comments: Comment lines seen so far.
        retry: The last valid ``retry`` value (milliseconds), ``None`` before any.
        last_event_id: The last event id of the stream as of the last blank line.

    Example:
        ::

            parser = SSEParser()
            async for chunk in response.aiter_bytes():
                for event in parser.feed(chunk):
                    handle(event.data)
            parser.close()
    """

    __slots__ = (
        "_closed",
        "_data",
        "_data_size",
        "_decoder",
        "_event",
        "_id",
        "_max_line",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "comments",
        "last_event_id",
        "retry",
    )

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._max_line = max_line
        self._pending: list[str] = []  # pieces of the unfinished last line
        self._pending_size = 0
        self._skip_lf = False  # the previous text ended with "\r": a "\n" next belongs to it
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._id = ""
        self._closed = False
        self.comments = 0
        self.retry: int | None = None
        self.last_event_id = ""

    @property
    def incomplete(self) -> bool:
        """Whether input was received that does not form a dispatched event yet."""
        return bool(self._pending or self._data or self._event)

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse the next bytes of the stream.

        Args:
            data: Any slice of the stream, following the previous one.

        Returns:
            The events completed by these bytes, in order (often none).

        Raises:
            SSEError: A line or an event's data is longer than ``max_line``.
            ValueError: The parser was closed.
        """
        if self._closed:
            raise ValueError("feed() after close()")
        return self._feed_text(self._decoder.decode(data))

    def close(self) -> None:
        """End the stream: an unfinished event is discarded (see :attr:`incomplete`).

        After it :meth:`feed` raises. Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        # An incomplete UTF-8 sequence at the very end becomes U+FFFD in the pending
        # line, which is then discarded with it: there is no terminator after it.
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._feed_text(tail)

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        has_cr = "\r" in text
        if not has_cr and "\n" not in text:
            # No line ends here: keep the piece (joined once, when its line ends).
            self._pending.append(text)
            self._pending_size += len(text)
            if self._pending_size > self._max_line:
                raise SSEError(f"an event-stream line is longer than {self._max_line} characters")
            return []
        if self._pending:
            self._pending.append(text)
            text = "".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
        if has_cr:
            lines = _LINE_END.split(text)
            # A final "\r" ends its line, but a "\n" in the next bytes would be part of it.
            self._skip_lf = text[-1] == "\r"
        else:
            lines = text.split("\n")
        rest = lines.pop()
        if rest:
            if len(rest) > self._max_line:
                raise SSEError(f"an event-stream line is longer than {self._max_line} characters")
            self._pending.append(rest)
            self._pending_size = len(rest)
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                self._dispatch(events)
            elif line[0] == ":":
                self.comments += 1
            else:
                self._field(line)
        return events

    def _field(self, line: str) -> None:
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max_line:
                raise SSEError(f"an event's data is longer than {self._max_line} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # Any other field name is ignored, as the specification says.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        self.last_event_id = self._id
        data = self._data
        if data:
            text = data[0] if len(data) == 1 else "\n".join(data)
            events.append(SSEEvent(text, self._event or "message", self._id))
            self._data = []
            self._data_size = 0
        self._event = ""
