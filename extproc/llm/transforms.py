"""Per-request response-body transforms: observe provider streams, re-frame them, rewrite them.

All of them are `BodyTransform`s fed the response body chunk by chunk. They collect usage
through the route's provider adapter and hand it to a `Meter` when the body ends, or, on an
OpenAI-style stream, at its `data: [DONE]`: the metadata then rides on the reply that carries
[DONE], which Envoy has before the client does (a client that closes the connection at [DONE],
as the OpenAI SDK may, would otherwise leave Envoy's access log without the usage):

* `SSEObserver`: SSE passed through untouched (every chunk returned as it came), events
  decoded alongside only to read usage;
* `SSEReframer`: SSE re-emitted event by event, so events can be dropped (OpenAI's extra
  usage-only chunk that the gateway itself asked for);
* `JsonBodyObserver`: a non-streamed JSON body passed through, parsed for usage;
* Gemini/Vertex's streamed JSON array, rewritten into SSE or observed: `llm.json_array`.

An SSE event or array element past the route's `streams.max_event_bytes` (a generated image,
speech) goes by without being held (`PastLimit`, `Part`s), read on the way for just the fields
the adapter reads (`Adapter.event_paths`, `codecs.jsonprune`): its usage and finish reason
are read exactly as the whole event's would be. One that is not whole, valid JSON (or whose
usage itself is past the bound, or too intricate to read on the way: `jsonprune.MAX_TOKENS`)
leaves the usage unread, unless a later event reports it:
the report says so (`StreamReport.unread`) and budgets charge their worst case. So does an
event held whole that may carry usage (its bytes name a count) but is not a JSON object
(`BROKEN_STREAM`); the valid report before it is still read.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from ..codecs import jsonunique
from ..codecs.sse import Event, SSEError
from ..codecs.sse_skim import PastLimit, SSESkimmer
from ..policy import BodyTransform
from ..providers.base import Adapter, Delta, Usage
from ..providers.values import load_json

log = logging.getLogger("extproc.llm")

Meter = Callable[["StreamReport"], None]
"""Called once with what the stream reported: at the end of the body, or at [DONE]."""

MAX_JSON_BODY = 16 * 1024 * 1024

#: why a reply's usage went unread, as `StreamReport.unread_kind` and the metric's label:
#: an event or array element past `streams.max_event_bytes` with no report after it, a
#: stream that broke (a JSON-array stream cut short, or with an element that is not a JSON
#: object; a usage report that is not JSON, with no report after it), a whole reply over
#: `MAX_JSON_BODY` or not JSON; `encoded`
#: (a reply in a content-encoding) is decided before any transform (`llm.policy`);
#: `no_usage`, a whole reply of an endpoint that generates output, parsed, with no usage
#: report in it (every such endpoint reports one: a reply without it was cut down on the
#: way, or comes from an upstream that is not the provider it claims to be)
OVERSIZED_EVENT = "oversized_event"
BROKEN_STREAM = "broken_stream"
TOO_LARGE = "too_large"
NOT_JSON = "not_json"
ENCODED = "encoded"
NO_USAGE = "no_usage"
#: a backend's 2xx reply the unified front could not translate before its usage was read
UNTRANSLATED = "untranslated"
UNREAD_KINDS = (OVERSIZED_EVENT, BROKEN_STREAM, TOO_LARGE, NOT_JSON, ENCODED, NO_USAGE,
                UNTRANSLATED)
#: how large a value read from an event too large to hold (its usage, an error) may be
MAX_FIELD_BYTES = 64 * 1024


class StreamReport:
    """What a stream reported: usage, finish reason, a mid-stream error.

    Only events that can carry one of them are parsed (substring prefilters, no JSON); with
    cumulative usage (Gemini) only the last report is parsed, once, at the end (and the one
    before it too, should the last not be JSON). A usage report that is not JSON leaves the
    usage unread (`BROKEN_STREAM`): with cumulative usage unless a later one is read.
    """

    def __init__(self, adapter: Adapter, cumulative: bool) -> None:
        self.adapter = adapter
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.cumulative = cumulative
        self._last: tuple[str, str | None] | None = None
        #: the report stored before `_last`: read instead, should `_last` not be JSON
        self._before: tuple[str, str | None] | None = None
        self.metered = False   # handed to the meter (at [DONE] or at the end)
        #: why the usage could not be read (an event past `max_event_bytes` with no usage
        #: read after it, a body that is not the JSON it claims): what it holds is then
        #: partial or nothing, and the meter's users (token limits, spend budgets) charge
        #: their worst case rather than trust it
        self.unread: str | None = None
        #: which of `UNREAD_KINDS` it is (a bounded label for the metric)
        self.unread_kind: str | None = None
        self._skipped: str | None = None   # why an event went by unread, if one did
        self._broken = False               # a usage report was not JSON
        self._lost = False                 # ... and no later one can stand for it
        self._reported = True              # a usage report was read after the last one
        self._closing = False              # a usage report came with or after the finish
        #: a whole (non-streamed) reply: its usage is its final report
        self.whole = False

    @property
    def final(self) -> bool:
        """Is its usage the provider's final report? A whole reply's is; a stream's only
        when it ended with a finish reason, a usage report came with it or after it, and no
        error (else budgets charge at least the output delivered: Anthropic's message_start
        says one output token, and a message_delta without its usage leaves it at that)."""
        return self.whole or (self.finish_reason is not None and self._closing
                              and self.error is None)

    def meter_once(self, meter: Meter) -> None:
        """Hand the report to `meter`, once."""
        if not self.metered:
            self.metered = True
            self.done()
            meter(self)

    def see_event(self, ev: Event) -> Delta | None:
        """An SSE event; its fields are decoded only when its bytes hold a needle. Returns
        what it said when it had to be parsed now."""
        raw = ev.raw
        for needle in self.adapter.needles:
            if needle in raw:
                if ev.has_data:
                    return self.see(ev.data, ev.event)
                return None
        return None

    def see_element(self, element: bytes) -> None:
        """A JSON-array element."""
        for needle in self.adapter.needles:
            if needle in element:
                self.see(element.decode("utf-8", "replace"), None)
                return

    def see(self, data: str, event: str | None) -> Delta | None:
        usage = self.adapter.may_carry_usage(data, event)
        other = event == "error" or '"error"' in data or '"finish_reason":"' in data \
            or '"finish_reason": "' in data
        if not usage and not other:
            return None
        if self.cumulative and not other:  # only the last report counts: parse it at the end
            self._before, self._last = self._last, (data, event)
            self._reported = True
            return None
        delta = self._apply(data, event)
        if usage and delta.usage is None and _not_an_object(data):
            self._unparsed()
        return delta

    def _unparsed(self) -> None:
        """A usage report was not JSON: with cumulative usage (each report repeats the ones
        before it) the usage is unread unless a later one is read; otherwise (Anthropic's
        `message_start` alone carries the prompt's count) it stays unread (found by review:
        a broken `message_start` was charged the output count alone)."""
        self._broken = True
        self._reported = False
        if not self.cumulative:
            self._lost = True

    def see_large(self, doc: Any, event: str | None, reason: str,
                  sticky: bool = False) -> None:
        """An event too large to hold went by (`reason`), read for the fields at the
        adapter's `event_paths` only: `doc` is what they make of it, read as the whole event
        would be; None when it was not whole, valid JSON (or a field was too large), and
        then, without a report after it, the usage is unread. With non-cumulative usage (or
        `sticky`: what went by was not read to its end) a later report cannot stand for it,
        and the usage stays unread (found by review: a large `message_start` not read was
        forgiven by `message_delta`'s output count)."""
        if doc is None:
            self._skipped = reason
            self._reported = False
            if sticky or not self.cumulative:
                self._lost = True
            return
        self.see(json.dumps(doc), event)

    def _apply(self, data: str, event: str | None) -> Delta:
        delta = self.adapter.stream_delta(data, event)
        if delta.usage is not None:
            self.usage = self.adapter.merge_usage(self.usage, delta.usage)
            self._reported = True
            # a report read now is later than one stored to be read at the end
            # (cumulative usage: that one must not win over it)
            self._last = self._before = None
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None and self.finish_reason is not None:
            self._closing = True
        if delta.error:
            self.error = delta.error
        return delta

    def done(self) -> Usage:
        if self._last is not None:   # (stored, and counted as reported, when it was seen)
            reported = self._reported
            last, before = self._last, self._before
            self._last = self._before = None
            if self._apply(*last).usage is None and _not_an_object(last[0]):
                # not JSON: the usage is unread, and the report before it still stands
                self._unparsed()
                reported = False
                if before is not None:
                    self._apply(*before)
            self._reported = reported
        if (not self._reported or self._lost) and self.unread is None:
            if self._broken:
                self.unread, self.unread_kind = "a usage report that is not JSON", BROKEN_STREAM
            elif self._skipped is not None:
                self.unread, self.unread_kind = self._skipped, OVERSIZED_EVENT
        return self.usage


def _not_an_object(data: str) -> bool:
    """Is an event's data not a JSON object (not JSON at all, or another JSON value)?"""
    return not isinstance(load_json(data), dict)


class SSEObserver(BodyTransform):
    """SSE passed through untouched; only the events that can report something are read."""

    def __init__(self, adapter: Adapter, meter: Meter, cumulative: bool,
                 max_event_bytes: int) -> None:
        self.acc = acc = StreamReport(adapter, cumulative)
        self.meter = meter
        see = acc.see_event  # not a bound method of self: no reference cycle
        done = adapter.done_event

        def observe(ev: Event) -> bool:
            if done and _is_done(ev):
                acc.meter_once(meter)
            else:
                see(ev)
            return False

        self.skimmer = SSESkimmer(_needles(adapter), observe, max_event_bytes)
        self.skim = PastLimit(self.skimmer, acc.see_large, adapter.event_paths,
                              MAX_FIELD_BYTES)

    def feed(self, chunk: bytes) -> bytes:
        self.skim.feed(chunk)   # (an event past the limit goes by unread)
        return chunk

    def finish(self) -> bytes:
        self.skim.finish()
        with contextlib.suppress(SSEError):
            self.skimmer.finish()
        self.acc.meter_once(self.meter)
        return b""


class SSEReframer(BodyTransform):
    """Drops the usage-only chunk the gateway asked for; everything else goes out byte for
    byte as it came (with the `"usage":null` that include_usage adds to each chunk: OpenAI's
    own chunk schema, which SDKs model).

    A partial event at the end of a chunk is held until it is whole (it could still turn out
    to be the usage-only chunk). A chunk of whole events with nothing dropped is returned as
    the very same object, so the servicer answers it with a plain CONTINUE.
    """

    def __init__(self, adapter: Adapter, meter: Meter, max_event_bytes: int) -> None:
        self.adapter = adapter
        self.acc = acc = StreamReport(adapter, cumulative=False)
        self.meter = meter
        see, usage_only = acc.see_event, adapter.is_usage_only_chunk

        done = adapter.done_event

        def drop(ev: Event) -> bool:  # closes over no `self`: no reference cycle
            if done and _is_done(ev):
                acc.meter_once(meter)
                return False
            delta = see(ev)  # the usage chunk is parsed once, for its usage and this verdict
            if delta is not None and delta.usage is not None:
                return delta.drop
            return b'"choices":[]' in ev.raw and usage_only(ev.data)

        self.skimmer = SSESkimmer((*_needles(adapter), b'"choices":[]'), drop,
                                  max_event_bytes, hold_partial=True,
                                  may_drop=self._may_be_usage_only)
        self.skim = PastLimit(self.skimmer, acc.see_large, adapter.event_paths,
                              MAX_FIELD_BYTES)

    @staticmethod
    def _may_be_usage_only(partial: bytes) -> bool:
        """A partial event that already shows a non-empty choices list is not the one to
        drop: forward it now instead of holding it (chunks then pass untouched)."""
        return b'"choices":[{' not in partial and b'"choices": [{' not in partial

    def feed(self, chunk: bytes) -> bytes:
        # (an event past max_event_bytes goes out as it comes, unread, never held whole)
        return self.skim.feed(chunk)

    def finish(self) -> bytes:
        self.skim.finish()
        tail = self.skimmer.finish()
        self.acc.meter_once(self.meter)
        return tail


DONE = b"[DONE]"


def _is_done(ev: Event) -> bool:
    """OpenAI's last event, `data: [DONE]`."""
    return DONE in ev.raw and ev.data.strip() == "[DONE]"


def _needles(adapter: Adapter) -> tuple[bytes, ...]:
    """The events a stream's observer decodes: the adapter's, and [DONE] where its streams
    end with it (no other stream pays for looking for it)."""
    return (*adapter.needles, DONE) if adapter.done_event else adapter.needles


#: where `JsonBodyObserver` leaves the reply it parsed, (body, doc), in the exchange's state:
#: a reply guard after it reads the same bytes and takes the parse instead of making its own
PARSED_REPLY = "_parsed_reply"


class JsonBodyObserver(BodyTransform):
    """A non-streamed JSON reply, passed through; usage read from it at the end (and its
    parse left in `state[PARSED_REPLY]` when a `state` is given)."""

    def __init__(self, adapter: Adapter, meter: Meter,
                 state: dict[str, Any] | None = None) -> None:
        self.adapter = adapter
        self.meter = meter
        self.state = state
        self.parts: list[bytes] = []
        self.size = 0

    def feed(self, chunk: bytes) -> bytes:
        if self.size <= MAX_JSON_BODY:
            self.parts.append(chunk)
            self.size += len(chunk)
        return chunk

    def finish(self) -> bytes:
        acc = StreamReport(self.adapter, cumulative=False)
        acc.whole = True
        if self.size > MAX_JSON_BODY:
            acc.unread = f"a JSON reply larger than {MAX_JSON_BODY} bytes"
            acc.unread_kind = TOO_LARGE
        else:
            try:
                body = b"".join(self.parts)
                doc = jsonunique.loads(body)   # a repeated key: read as not JSON
                if self.state is not None:
                    self.state[PARSED_REPLY] = (body, doc)
                _, acc.finish_reason, acc.usage = self.adapter.parse_response(doc)
                if acc.usage.is_empty() and getattr(self.adapter, "generates", True):
                    acc.unread = "a reply without its usage report"
                    acc.unread_kind = NO_USAGE
            except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
                log.debug("no usage in a non-JSON reply: %s", type(exc).__name__)
                acc.unread = "a reply that is not the JSON its content-type says"
                acc.unread_kind = NOT_JSON
        self.parts = []
        self.meter(acc)
        return b""
