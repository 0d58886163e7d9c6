"""Incremental, sans-IO Server-Sent Events codec (WHATWG event-stream interpretation).

``SSEDecoder`` is fed response-body chunks and returns every event each chunk completes, keeping
each event's exact bytes (``Event.raw``) so untouched events can be forwarded as they came.
``encode`` builds one event. Line ends may be CRLF, LF or CR, mixed; a leading UTF-8 BOM is
ignored for parsing. Blank lines are found with bytes searches (re, find) that never rescan
bytes; fields are decoded once per completed event.
"""

from __future__ import annotations

import re

__all__ = ["Event", "SSEDecoder", "SSEError", "encode"]

_BOM = b"\xef\xbb\xbf"
_CR, _LF = 13, 10
# A CR directly followed by LF is one CRLF line end, never CR then LF.
_BLANK = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")  # two line ends
_LF_PAIR = re.compile(rb"\n[\r\n]")  # a literal first byte lets re skip ahead fast
_STR_LINE_END = re.compile(r"\r\n|\r|\n")


Fields = tuple[str, str | None, str | None, int | None, bool]


class Event:
    """One event: its exact bytes and its fields as the WHATWG algorithm interprets them.

    The decoder makes events lazily: the fields are decoded from ``raw`` on first access, so a
    caller that forwards ``raw`` and looks only at some events pays nothing for the others.
    """

    __slots__ = ("_fields", "_span", "raw", "terminated")

    def __init__(self, raw: bytes, data: str, event: str | None, id: str | None,
                 retry: int | None, has_data: bool, terminated: bool = True) -> None:
        self.raw = raw  # exact bytes, terminating blank line (and any leading BOM) included
        self.terminated = terminated  # False only for the unterminated tail from finish()
        self._fields: Fields | None = (data, event, id, retry, has_data)
        self._span = (0, 0)

    @classmethod
    def lazy(cls, raw: bytes, start: int, stop: int, terminated: bool = True) -> Event:
        """An event whose field lines (no blank line among them) are raw[start:stop]."""
        ev = cls(raw, "", None, None, None, False, terminated)
        ev._fields, ev._span = None, (start, stop)
        return ev

    def _get(self) -> Fields:
        fields = self._fields
        if fields is None:
            fields = self._fields = _parse(self.raw, *self._span)
        return fields

    @property
    def data(self) -> str:
        """The data field values joined with "\n" ("" when none)."""
        return self._get()[0]

    @property
    def event(self) -> str | None:
        """The last `event` field value."""
        return self._get()[1]

    @property
    def id(self) -> str | None:
        """The last `id` field value without NUL."""
        return self._get()[2]

    @property
    def retry(self) -> int | None:
        """The last `retry` field value made only of ASCII digits."""
        return self._get()[3]

    @property
    def has_data(self) -> bool:
        """At least one `data` field (WHATWG dispatches only such events)."""
        return self._get()[4]

    def __eq__(self, other: object) -> bool:
        # compiled (mypyc): a bool method returns a bool, not NotImplemented; and the fields
        # compare as objects (mypyc's code for `==` of two nested tuples of optional strings
        # releases a value it never set)
        if not isinstance(other, Event):
            return False
        mine: object = self._get()
        theirs: object = other._get()
        return self.raw == other.raw and self.terminated == other.terminated and mine == theirs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        data, event, id_, retry, has_data = self._get()
        return (f"Event(raw={self.raw!r}, data={data!r}, event={event!r}, id={id_!r}, "
                f"retry={retry!r}, has_data={has_data}, terminated={self.terminated})")


class SSEError(ValueError):
    """The stream cannot be decoded (an event exceeds the size limit). `events` are the
    events the same chunk completed before it: a caller that goes on past the error (or
    ends the stream cleanly at it) still has them to send."""

    def __init__(self, message: str, events: list[Event] | None = None) -> None:
        super().__init__(message)
        self.events: list[Event] = events if events is not None else []


def _parse(raw: bytes, start: int, stop: int) -> Fields:
    """The fields of an event whose field lines (no blank line among them) are
    raw[start:stop]."""
    if start == stop:
        return ("", None, None, None, False)
    text = raw[start:stop].decode("utf-8", "replace")
    if text.startswith("data:") and "\n" not in text and "\r" not in text:  # the common case
        return (text[6:] if text.startswith(" ", 5) else text[5:], None, None, None, True)
    lines = _STR_LINE_END.split(text) if "\r" in text else text.split("\n")
    data: list[str] = []
    event = id_ = retry = None
    for line in lines:
        colon = line.find(":")
        if colon == 0:
            continue  # comment
        if colon < 0:
            name, value = line, ""
        else:
            name = line[:colon]
            value = line[colon + 2:] if line.startswith(" ", colon + 1) else line[colon + 1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            if "\0" not in value:
                id_ = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return ("\n".join(data), event, id_, retry, bool(data))


class SSEDecoder:
    """Feed body chunks, get completed events; ``finish()`` at end of stream returns the tail.

    Every blank line ends one Event, so a blank line right after another (or at the start of the
    stream) is an Event with no fields: concatenating ``raw`` reproduces the input exactly. An
    event (complete or not) longer than ``max_event_bytes`` raises SSEError; discard the decoder
    then. After ``finish()`` the decoder is reset for a new stream.
    """

    __slots__ = ("_buf", "_first", "_max", "_scan", "_skip", "fast")

    def __init__(self, max_event_bytes: int = 1 << 20, fast: bool = True,
                 start: bool = True) -> None:
        """`fast`: take `_feed_lf` for a chunk it can cut (False: always the plain way, for
        the tests). `start`: the bytes fed begin the stream (a BOM there is the stream's);
        False for a decoder fed a stretch from its middle (`sse_skim`)."""
        self._max = max_event_bytes
        self.fast = fast
        self._reset()
        self._first = start

    def _reset(self) -> None:
        self._buf = bytearray()  # the current, incomplete event starts at offset 0
        self._scan = -1  # where to resume looking for a blank line; -1: first line not seen yet
        self._skip = 0  # 3 when the current event starts with the stream's BOM
        self._first = True  # still at the start of the stream (BOM undecided)

    @property
    def pending(self) -> int:
        """Bytes held back: an incomplete event."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Event]:
        """Every event completed by ``chunk``."""
        if not chunk:
            return []
        if self.fast and not self._buf and b"\r" not in chunk:
            if self._first and chunk[0] != _BOM[0]:
                self._first = False   # the stream does not start with a BOM
            if not self._first:
                return self._feed_lf(chunk)
        self._buf += chunk
        events = self._drain(False)
        if len(self._buf) > self._max:
            size = len(self._buf)
            self._reset()
            raise SSEError(f"SSE event exceeds max_event_bytes={self._max} ({size}+ bytes "
                           "without a blank line)", events)
        return events

    def whole_lf(self, chunk: bytes) -> list[bytes] | None:
        """The events of `chunk` as their bytes, when nothing is held and the chunk is only
        whole events of the form `_feed_lf` cuts (no CR, none starting with a line end, the
        last ended by LF LF): what `feed` would return, without making `Event`s. None, with
        nothing consumed, for any other chunk (`feed` it then)."""
        if not self.fast or self._buf or not chunk.endswith(b"\n\n") or b"\r" in chunk \
                or (self._first and chunk[0] == _BOM[0]):
            return None
        out: list[bytes] = []
        find, n, pos, limit = chunk.find, len(chunk), 0, self._max
        while pos < n:
            if chunk[pos] == _LF:
                return None
            q = find(b"\n\n", pos)
            if q + 2 - pos > limit:
                return None
            out.append(chunk[pos:q + 2])
            pos = q + 2
        self._first = False
        return out

    def _feed_lf(self, chunk: bytes) -> list[Event]:
        """`feed` of a chunk without CR that starts a new event, the common chunk of an LLM
        stream: each event ends at the first LF LF, found with one `find`. An event that
        starts with a line end, or the partial event at the end, goes the plain way."""
        events: list[Event] = []
        find, n, pos, limit = chunk.find, len(chunk), 0, self._max
        while pos < n and chunk[pos] != _LF:
            q = find(b"\n\n", pos)
            if q < 0 or q + 2 - pos > limit:
                break
            events.append(Event.lazy(chunk[pos:q + 2], 0, q - pos))
            pos = q + 2
        if pos < n:
            self._buf += chunk[pos:] if pos else chunk
            try:
                events += self._drain(False)
            except SSEError as exc:
                exc.events = events + exc.events   # the events before the one too large
                raise
            if len(self._buf) > limit:
                size = len(self._buf)
                self._reset()
                raise SSEError(f"SSE event exceeds max_event_bytes={limit} ({size}+ bytes "
                               "without a blank line)", events)
        return events

    def finish(self) -> list[Event]:
        """End of stream: the remaining events, then any bytes not ending with a blank line as
        one Event with ``terminated=False`` (its fields parsed as if it were terminated)."""
        events = self._drain(True)
        buf = self._buf
        if buf:
            stop = len(buf)
            if buf.endswith(b"\r\n"):
                stop -= 2
            elif buf[-1] in b"\r\n":
                stop -= 1
            events.append(Event.lazy(bytes(buf), min(self._skip, stop), stop, False))
        self._reset()
        return events

    def _drain(self, final: bool) -> list[Event]:
        """Cut the complete events off the buffer; ``final``: no more bytes will come."""
        buf = self._buf
        n = len(buf)
        out: list[Event] = []
        pos = 0  # start of the current event
        scan = self._scan
        limit = self._max
        lf = cr = -1  # next LF-LF/LF-CR pair and next CR-CR pair at or after `scan` (n: none)
        while pos < n:
            body = pos + self._skip
            if scan < 0:  # at the first line: a line end here is a blank line on its own
                if self._first:
                    head = bytes(buf[:3])
                    if head == _BOM:
                        self._skip = 3
                        body += 3
                    elif _BOM.startswith(head) and not final:
                        break  # maybe a BOM cut by the chunk boundary
                    self._first = False
                if body >= n:
                    break
                c = buf[body]
                if c == _LF or c == _CR:
                    end = body + 1
                    if c == _CR:  # CR or CRLF: needs the next byte
                        if end < n:
                            end += buf[end] == _LF
                        elif not final:
                            break
                    out.append(Event.lazy(bytes(buf[pos:end]), body - pos, body - pos))
                    pos = end
                    self._skip = 0
                    continue
                scan = body
            # Every blank line holds one of LF LF, LF CR, CR CR at the last byte of the line end
            # before it (a lone CR is never followed by LF), and each such pair is one. Find the
            # first; `lf` and `cr` cache the next hits so no byte is searched twice.
            if lf < scan:
                m = _LF_PAIR.search(buf, scan)
                lf = m.start() if m is not None else n
            if cr < scan:
                cr = buf.find(b"\r\r", scan)
                if cr < 0:
                    cr = n
            q = lf if lf < cr else cr
            if q >= n:
                scan = max(scan, n - 1)  # a pair may start at the last byte
                break
            stop = q - 1 if buf[q - 1] == _CR else q  # the line ended with CRLF (q is its LF)
            end = q + 2
            if buf[q + 1] == _CR:  # the blank line is CR or CRLF: needs the byte after the CR
                if end < n:
                    end += buf[end] == _LF
                elif not final:
                    scan = q
                    break
            if end - pos > limit:
                self._reset()
                raise SSEError(f"SSE event of {end - pos} bytes exceeds "
                               f"max_event_bytes={limit}", out)
            out.append(Event.lazy(bytes(buf[pos:end]), body - pos, stop - pos))
            pos = end
            scan = -1
            self._skip = 0
        self._scan = scan - pos if scan >= 0 else -1
        if pos:
            del buf[:pos]
        return out


def encode(data: str, *, event: str | None = None, id: str | None = None,
           retry: int | None = None, terminator: bytes = b"\n\n") -> bytes:
    """One event: ``event``, ``id``, ``retry`` then one ``data: `` line per line of ``data``
    (split at CRLF, LF and CR); lines end with LF, and ``terminator`` (a line end followed by
    a blank line, e.g. b"\\r\\n\\r\\n") ends the last one."""
    if not _BLANK.fullmatch(terminator):
        raise ValueError(f"terminator must be two line ends, got {terminator!r}")
    lines = []
    if event is not None:
        if "\r" in event or "\n" in event:
            raise ValueError("SSE event name cannot contain a line end")
        lines.append(f"event: {event}")
    if id is not None:
        if "\r" in id or "\n" in id or "\0" in id:
            raise ValueError("SSE id cannot contain a line end or NUL")
        lines.append(f"id: {id}")
    if retry is not None:
        if retry < 0:
            raise ValueError("SSE retry must be >= 0")
        lines.append(f"retry: {retry}")
    lines.extend(f"data: {line}" for line in _STR_LINE_END.split(data))
    return "\n".join(lines).encode() + terminator
