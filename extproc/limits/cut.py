"""Ending a stream at its budget: `StreamCut`, the response transform that counts the output
delivered and, when it reaches the request's allowance, ends the stream there in the
provider's own format (sans-IO; the terminal events are `cut_events`).

The allowance is what the admission left for this request's output (`ex.state
["output_allowance"]`, an int, set by the rate-limit policy for a limit with `cut_streams`).
The output is counted event by event, on the events the client gets (the transform runs
after the usage reframer, the JSON-array rewrite and the masking guards):

* exactly where the provider reports running usage: Gemini/Vertex `usageMetadata`
  `candidatesTokenCount + thoughtsTokenCount` (cumulative), plus the estimate of any event
  delivered since the last report (Vertex's intermediate chunks may carry none);
* otherwise by the delivered output: every character of generated output of every event
  delivered (the JSON values that carry text, thinking, refusals, tool arguments, as
  `estimate.OutputScan` reads them) at chars_per_token, at least one token per output event
  (`Adapter.output_markers`), and generated media at one token per
  `estimate.MEDIA_BYTES_PER_TOKEN` base64 bytes. Unlike the settlement's `DeliveredText`,
  which samples the first KiB of a stream to stay cheap, every event is read: a budget is
  cut on what was delivered, not on what the stream's first events suggest.

The event that reaches the allowance is delivered whole (the overshoot is at most that one
event), then the terminal events, then nothing (an event it cannot count, past
`max_event_bytes`, ends the stream the same way before it, `cut: "unreadable"`): `ended`
turns true, and the exchange ends the response there (FULL_DUPLEX_STREAMED
`end_of_stream`), which makes Envoy close the upstream stream, so the provider stops
generating. A stream that already ended by itself
(every choice finished) is not cut. Chunking does not matter: events are cut whole.

At the end the usage the stream reported is made true to what was delivered (a cut stream
never gets the provider's final usage: Anthropic's `message_start` says 1 output token),
so the settlement and the metadata charge the output delivered; `cut: "budget"` goes in the
metadata.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

from ..codecs.jsonarray import JsonArrayError, JsonArraySplitter
from ..codecs.sse import Event, SSEDecoder, SSEError
from ..context import succeeded
from ..policy import BodyTransform
from ..providers.base import Adapter, Usage
from .cut_events import Format, format_for
from .estimate import (
    CHARS_PER_TOKEN,
    MEDIA_BYTES_PER_TOKEN,
    TEXT_MARKERS,
    count_markers,
    output_of,
    prompt_tokens,
)

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("extproc.limits")

ALLOWANCE = "output_allowance"
MAX_EVENT_BYTES = 1 << 20


class _Text:
    """The output tokens of the events fed: their output characters at chars_per_token, at
    least one per output event (the larger of the legacy text marker's count and the
    adapter's output markers'), plus their media bytes at `MEDIA_BYTES_PER_TOKEN`."""

    __slots__ = ("chars", "chars_per_token", "counted", "legacy", "marker", "markers",
                 "media")

    def __init__(self, marker: bytes, chars_per_token: float,
                 markers: tuple[bytes, ...] = ()) -> None:
        self.marker = marker
        self.markers = markers
        self.chars_per_token = chars_per_token
        self.legacy = 0
        self.counted = 0
        self.chars = 0
        self.media = 0

    def feed(self, raw: bytes) -> None:
        self.legacy += raw.count(self.marker)
        if self.markers:
            self.counted += count_markers(raw, self.markers)
        chars, media = output_of(raw)
        self.chars += chars
        self.media += media

    @property
    def fragments(self) -> int:
        return max(self.legacy, self.counted)

    @property
    def tokens(self) -> int:
        return max(self.fragments, math.ceil(self.chars / self.chars_per_token)) \
            + math.ceil(self.media / MEDIA_BYTES_PER_TOKEN)


class StreamCut(BodyTransform):
    """Counts the output delivered, event by event, and ends the stream at `allowance`."""

    #: the exchange asks Envoy for FULL_DUPLEX_STREAMED, so that it can end the response
    #: before the upstream does (and Envoy then closes the upstream)
    ends_early = True

    def __init__(self, fmt: Format, allowance: int, marker: bytes | None,
                 chars_per_token: float = CHARS_PER_TOKEN, prompt: int | None = None,
                 max_event_bytes: int = MAX_EVENT_BYTES,
                 on_cut: Any = None, markers: tuple[bytes, ...] = ()) -> None:
        self.fmt = fmt
        self.allowance = allowance
        self.prompt = prompt
        self.marker = marker or b'"content"'
        self.markers = markers
        self.chars_per_token = chars_per_token
        self.on_cut = on_cut
        self.exact = 0                              # the provider's last running report
        self.since = _Text(self.marker, chars_per_token, markers)   # estimated since then
        self.media_bytes = 0                        # generated media delivered, in all
        self.ended = False
        self.unreadable: str | None = None          # why it ended at an event it cannot count
        self.decoder = SSEDecoder(max_event_bytes) if not fmt.array else None
        self.splitter = JsonArraySplitter(max_event_bytes) if fmt.array else None
        self.elements = 0

    @property
    def tokens(self) -> int:
        """The output delivered so far, in tokens (exact + estimated since)."""
        return self.exact + self.since.tokens

    @property
    def media(self) -> bool:
        """Generated media was delivered (the settlement then charges at least the
        reservation: its tokens cannot be sized)."""
        return self.media_bytes > 0

    @property
    def held_bytes(self) -> int:
        if self.decoder is not None:
            return self.decoder.pending
        return 0

    # --- the stream ----------------------------------------------------------------------
    def feed(self, chunk: bytes) -> bytes:
        if self.ended:
            return b""
        try:
            if self.splitter is not None:
                return self._elements(self.splitter.feed(chunk))
            assert self.decoder is not None
            return self._events(self.decoder.feed(chunk))
        except (SSEError, JsonArrayError) as exc:
            # an event it cannot count (past max_event_bytes, or no event at all): the
            # budget cannot be kept past it, so the stream ends here, as at the allowance
            # (default deny), after the events before it; nothing of that event is sent
            out = self._events(exc.events) if isinstance(exc, SSEError) \
                else self._elements(exc.elements)
            if self.ended:
                return out
            log.warning("stream cut at an event it cannot count: %s", exc)
            self.unreadable = str(exc)[:200]
            if self.splitter is not None:
                return out + (b"," if self.elements else b"[") + self._cut() + b"]"
            return out + self._cut()

    def finish(self) -> bytes:
        if self.ended:
            return b""
        if self.splitter is not None:
            try:
                self.splitter.finish()
            except JsonArrayError:
                return b""   # the array never closed: the client sees it as it came
            return b"]" if self.elements else b"[]"
        assert self.decoder is not None
        return self._events(self.decoder.finish())

    def _events(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for ev in events:
            out.append(ev.raw)
            if self._count(ev.data if ev.has_data else "", ev.event, ev.raw):
                out.append(self._cut())
                break
        return b"".join(out)

    def _elements(self, elements: list[bytes]) -> bytes:
        out: list[bytes] = []
        for e in elements:
            out.append((b"," if self.elements else b"[") + e)
            self.elements += 1
            if self._count(e.decode("utf-8", "replace"), None, e):
                out.append(b"," + self._cut() + b"]")
                break
        return b"".join(out)

    def _count(self, data: str, event: str | None, raw: bytes) -> bool:
        """Count one delivered event; True when it reaches the allowance (and the stream
        has not ended by itself)."""
        doc = _json(data)
        if doc is not None:
            self.fmt.see(doc, event)
            reported = self.fmt.reported(doc)
            if reported is not None:
                self.exact = reported
                self.since = _Text(self.marker, self.chars_per_token, self.markers)
                self.media_bytes += output_of(raw)[1]
            else:
                media = self.since.media
                self.since.feed(raw)
                self.media_bytes += self.since.media - media
        return self.tokens >= self.allowance and not self.fmt.finished()

    def _cut(self) -> bytes:
        self.ended = True
        if self.on_cut is not None:
            self.on_cut(self)
        return self.fmt.terminal(self.tokens, self.prompt)


def _json(data: str) -> dict[str, Any] | None:
    if not data.startswith("{"):
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def settle_cut_usage(ex: Context, cut: StreamCut) -> None:
    """Make the usage the stream reported true to what a cut stream delivered: its output
    is what was counted (a provider's partial report, such as Anthropic's message_start,
    says less), and totals follow. A stream that reported nothing is left unreported: the
    settlement then charges the prompt estimate plus the delivered output."""
    usage: Usage | None = ex.state.get("usage")
    ex.metadata["cut"] = ex.state["cut"] = "budget" if cut.unreadable is None else "unreadable"
    ex.metadata["output_allowance"] = cut.allowance
    if usage is None or usage.is_empty():
        return
    usage.output_tokens = cut.tokens
    if usage.reasoning_tokens is not None:
        usage.reasoning_tokens = min(usage.reasoning_tokens, cut.tokens)
    if usage.input_tokens is not None:
        usage.total_tokens = usage.input_tokens + cut.tokens
    ex.metadata.update(usage.as_dict())
    report = ex.state.get("reprice_usage")    # the cost follows the corrected usage
    if report is not None:
        report.publish(ex.state, ex.metadata, usage)


class _Settling(StreamCut):
    """`StreamCut` bound to an exchange: fixes its usage and metadata when the body ends."""

    def __init__(self, ex: Context, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ex: Context | None = ex

    def finish(self) -> bytes:
        out = super().finish()
        ex, self.ex = self.ex, None     # no reference cycle past the end
        if ex is not None and self.ended:
            settle_cut_usage(ex, self)
        return out


def _include_usage(ex: Context) -> bool:
    """Did the client itself ask for OpenAI's usage chunk (stream_options.include_usage)?"""
    llm = ex.state.get("llm")
    if llm is not None and getattr(llm, "drop_usage_chunk", False):
        return False    # the gateway added the option; the client never sees that chunk
    read = ex.state.get("_read")
    doc = read[1][0] if isinstance(read, tuple) and isinstance(read[1], tuple) else None
    options = doc.get("stream_options") if isinstance(doc, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def _prompt_estimate(ex: Context, chars_per_token: float) -> int | None:
    prompt = ex.state.get("prompt")
    if prompt is None:
        return None
    return prompt_tokens((t for _, t in prompt.texts), chars_per_token)


def cut_transform(ex: Context, adapter: Adapter,
                  chars_per_token: float = CHARS_PER_TOKEN,
                  max_event_bytes: int = MAX_EVENT_BYTES) -> BodyTransform | None:
    """The stream cut for this exchange, or None: no allowance (`ex.state
    ["output_allowance"]`), not a 2xx, or not a stream (a whole JSON reply is not cut).
    Put it after every other response transform of the request, and before the
    settlement's `DeliveredText` (which then counts exactly what was delivered)."""
    allowance = ex.state.get(ALLOWANCE)
    if allowance is None or not succeeded(ex.status):
        return None
    # the content type the client gets (the JSON-array rewrite sets text/event-stream)
    ctype = ex.pending_response_header("content-type") \
        or ex.response_headers.get("content-type", "")
    ctype = ctype.split(";", 1)[0].strip().lower()
    array = False
    if ctype != "text/event-stream":
        endpoint = ex.endpoint
        array = ctype == "application/json" and bool(getattr(endpoint, "json_array", False))
        if not array:
            return None
    provider = ex.provider
    fmt = format_for(adapter, provider, include_usage=_include_usage(ex), array=array)
    marker = getattr(adapter, "text_marker", None) or TEXT_MARKERS.get(provider)
    return _Settling(ex, fmt, int(allowance), marker, chars_per_token,
                     _prompt_estimate(ex, chars_per_token), max_event_bytes,
                     markers=adapter.output_markers)
