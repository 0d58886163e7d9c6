"""Gemini/Vertex's streamed JSON array as response-body transforms (the rest are in
`llm.transforms`, whose `StreamReport` both read usage into):

* `JsonArrayToSSE`: the array rewritten into `text/event-stream`, each element sent as
  `data: ...\\r\\n\\r\\n` the moment it is complete; a stream cut before `]` ends with a
  final error event in Google's format;
* `JsonArrayObserver`: the array passed through, parsed for usage.

Every element held whole is checked to be a JSON object (strict UTF-8, no raw control
character in a string, not nested too deep to parse): one that is not is never sent on nor
altered. The stream ends there as it does when the array itself breaks (trailing garbage, a
second array): the elements before it went out, the rewrite then sends Google's error event,
and the usage is unread (`BROKEN_STREAM`), so budgets charge their worst case.

An element too large to hold whole comes in `Part`s (an inline image can be megabytes): it
is read for the adapter's `event_paths` only, as an SSE event's are, and goes out before it
is whole (so does one larger than that which arrives whole, as it would in parts): one that
turns out not to be a JSON object ends the stream after it (`BROKEN_STREAM`); one whose
value at a path is past what is read on the way (`jsonprune.JsonLimit`) leaves the usage
unread (`OVERSIZED_EVENT`) unless a later element reports it.
"""

from __future__ import annotations

import codecs
import json

from ..codecs.jsonarray import JsonArrayError, JsonArraySplitter, Part, SSEPieces, element_to_sse
from ..codecs.jsonprune import JsonPruner
from ..codecs.sse import encode
from ..policy import BodyTransform
from ..providers.base import Adapter
from .transforms import BROKEN_STREAM, MAX_FIELD_BYTES, Meter, StreamReport, log


def google_error_event(code: int, message: str, status: str) -> bytes:
    """A final SSE event in Google's error format, framed as Gemini frames its events."""
    doc = {"error": {"code": code, "message": message, "status": status}}
    return encode(json.dumps(doc, separators=(",", ": ")), terminator=b"\r\n\r\n")


class _JsonArray(BodyTransform):
    """Shared by the rewrite and the observer: split the array, note the usage element.

    An element too large to hold whole comes in `Part`s (an inline image can be
    megabytes): they are read for the adapter's `event_paths` only, as an SSE event's are."""

    def __init__(self, adapter: Adapter, meter: Meter, max_element_bytes: int) -> None:
        self.splitter = JsonArraySplitter(max_element_bytes)
        self.acc = StreamReport(adapter, cumulative=True)
        self.meter = meter
        self.failed: str | None = None
        self.max = max_element_bytes
        self._pruner: JsonPruner | None = None   # reading an element passing in parts
        self._utf8 = codecs.getincrementaldecoder("utf-8")()   # ... and its text
        self._not_utf8 = False
        self._top = b""
        self.count = 0                  # the elements seen so far (whole or in parts)

    def _break(self, why: str) -> None:
        """The stream broke (`why`): nothing more of it is read, and its usage is unread."""
        self.failed = self.acc.unread = why
        self.acc.unread_kind = BROKEN_STREAM

    def _elements(self, chunk: bytes) -> list[bytes | Part]:
        """The elements (and parts) the chunk completes that may go out, in order; the
        stream breaks at the first that is not an array element or not a JSON object."""
        if self.failed:
            return []
        try:
            elements = self.splitter.feed_parts(chunk)
        except JsonArrayError as exc:   # (the elements before the error still go out)
            self._break(str(exc))
            elements = exc.elements
        for i, e in enumerate(elements):
            if isinstance(e, bytes) and len(e) > self.max:
                # whole in this chunk, but larger than an element held whole: read as its
                # parts are under any other split (sent, then checked), so any split of the
                # stream gives the same output (found by review)
                e = elements[i] = Part(e, True, True)
            if isinstance(e, bytes):
                self.count += 1
                why = _not_an_object(e)
                if why is not None:      # (the elements before it still go out)
                    self._break(f"array element {self.count} is not a JSON object: {why}")
                    return elements[:i]
                self.acc.see_element(e)
            else:
                if e.first:
                    self.count += 1
                why = self._see_part(e)
                if why is not None:      # (it went out: the stream ends after it)
                    self._break(f"array element {self.count} is not a JSON object: {why}")
                    return elements[:i + 1]
        return elements

    def _see_part(self, part: Part) -> str | None:
        """Read a part of an element too large to hold (for the adapter's paths only);
        at its last, why the element was no JSON object, if it was none (checked as the
        parts pass: its text, UTF-8 and its top value)."""
        if part.first or self._pruner is None:
            self._pruner = JsonPruner(self.acc.adapter.event_paths, MAX_FIELD_BYTES,
                                      strict=True)
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
            self._not_utf8 = False
            self._top = b""   # its first byte but spaces: `{` for an object
        if not self._top:
            self._top = part.data.lstrip(b" \t\r\n")[:1]
        self._pruner.feed(part.data)
        try:
            self._utf8.decode(part.data, final=part.last)
        except UnicodeDecodeError:
            self._not_utf8 = True
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
        if not part.last:
            return None
        pruner, self._pruner = self._pruner, None
        doc = pruner.finish()
        if self._not_utf8:
            why: str | None = "not UTF-8"
        elif self._top != b"{":   # (known from its first byte, whatever limit came after)
            why = "not an object"
        elif pruner.invalid:
            why = "not valid JSON"
        elif pruner.error is None and not isinstance(doc, dict):
            why = f"a JSON {_KINDS.get(type(doc), 'value')}" if doc is not None \
                else "not an object"
        else:
            why = None
        if why is None:   # (a reader's limit hit: what followed it was not checked, and
            # no later report may stand for it)
            self.acc.see_large(doc, None, f"an array element larger than {self.max} bytes",
                               sticky=pruner.error is not None)
        return why

    def _end(self) -> str | None:
        if not self.failed:
            try:
                self.splitter.finish()
            except JsonArrayError as exc:   # (cut before its end: what it held is unread)
                self._break(str(exc))
        self.acc.done()
        self.meter(self.acc)
        return self.failed


def _not_an_object(element: bytes) -> str | None:
    """Why an array element is not a JSON object, or None when it is one. (JSON as RFC 8259
    has it: no NaN or Infinity, and numbers of any length, which Python's int would refuse
    past 4,300 digits: read as text here.)"""
    try:
        doc = json.loads(element.decode("utf-8"), parse_constant=_no_constant,
                         parse_int=str, parse_float=str)
    except UnicodeDecodeError:
        return "not UTF-8"
    except ValueError:    # (a raw control character in a string among them)
        return "not valid JSON"
    except RecursionError:
        return "nested too deeply"
    if not isinstance(doc, dict):
        return f"a JSON {_KINDS.get(type(doc), 'value')}"
    return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_KINDS: dict[type, str] = {list: "array", str: "string", int: "number", float: "number",
                           bool: "boolean", type(None): "null"}


class JsonArrayToSSE(_JsonArray):
    """Each element sent as one SSE event the moment it is complete; one too large to hold
    goes out as it comes, framed as one event piece by piece (`SSEPieces`)."""

    def __init__(self, adapter: Adapter, meter: Meter, max_element_bytes: int) -> None:
        super().__init__(adapter, meter, max_element_bytes)
        self.pieces = SSEPieces()

    def feed(self, chunk: bytes) -> bytes:
        was_ok = not self.failed
        frame = self.pieces.feed
        out = b"".join([element_to_sse(e) if isinstance(e, bytes) else frame(e)
                        for e in self._elements(chunk)])
        if was_ok and self.failed:
            return out + self._error_event()
        return out

    def finish(self) -> bytes:
        was_ok = not self.failed
        self._end()
        return self._error_event() if was_ok and self.failed else b""

    def _error_event(self) -> bytes:
        log.warning("Gemini stream broken: %s", self.failed)
        # (an element broken off in the middle of its parts: its event is ended where it
        # broke, so that the error is an event of its own after it; the broken one is not
        # JSON, and a client reading it fails there rather than take it for whole)
        cut = b"\r\n\r\n" if self._pruner is not None else b""
        return cut + google_error_event(502, f"upstream stream broken: {self.failed}",
                                        "UNAVAILABLE")


class JsonArrayObserver(_JsonArray):
    def feed(self, chunk: bytes) -> bytes:
        self._elements(chunk)
        return chunk

    def finish(self) -> bytes:
        self._end()
        return b""
