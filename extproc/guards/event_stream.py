"""What every streamed-reply masker shares: it decodes SSE events, hands each to `_event`,
ends the stream with `_end` (what the maskers still hold goes out), and turns a reject
guard's hit into the provider's refusal events (`_rejected`), after which nothing more is
sent. An event whose data is not a JSON object ends the stream the same way (UNREADABLE):
what the guards cannot read is never passed on. The reframers (`reframe.py` for chat,
messages and Gemini; `reframe_responses.py` for the Responses API) implement those three."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..codecs.sse import Event, SSEDecoder
from ..policy import BodyTransform
from .stream import GuardTriggered

#: what a refusal names when an event is not the JSON object the guards read: the stream
#: ends there (fail closed) instead of passing on what no guard could check
UNREADABLE = "an_unreadable_event"


class EventMasker(BodyTransform):
    """The SSE loop of a masking reframer; subclasses give `_event`, `_end`, `_rejected`."""

    chains: dict[Any, Any]

    def __init__(self, max_event_bytes: int, on_reject: Callable[[str], None] | None,
                 on_done: Callable[[], None] | None) -> None:
        self.decoder = SSEDecoder(max_event_bytes)
        self.max_event_bytes = max_event_bytes
        self.on_reject = on_reject
        self.on_done = on_done
        self.stopped = False

    @property
    def held(self) -> int:
        return sum(c.held for c in self.chains.values())

    @property
    def held_bytes(self) -> int:
        """Held text (in characters) plus the partial event the decoder keeps."""
        return self.held + self.decoder.pending

    def feed(self, chunk: bytes) -> bytes:
        if self.stopped:
            return b""
        return self._events(self.decoder.feed(chunk))

    def finish(self) -> bytes:
        if self.stopped:
            return b""
        out = self._events(self.decoder.finish())
        if not self.stopped:
            try:
                out += self._end()
            except GuardTriggered as hit:   # a match made final only by the stream's end
                return out + self._rejected(hit.detector)
            if self.on_done is not None:
                self.on_done()
        return out

    def _events(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for ev in events:
            if self.stopped:
                break
            try:
                out.append(self._event(ev))
            except GuardTriggered as hit:
                out.append(self._rejected(hit.detector))
        return b"".join(out)

    @staticmethod
    def _parse(data: str) -> dict[str, Any] | None:
        """An event's data as the JSON object the guards read; None when it is not one
        (the caller then ends the stream with `_rejected(UNREADABLE)`)."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        return doc if isinstance(doc, dict) else None

    def _event(self, ev: Event) -> bytes:
        raise NotImplementedError

    def _end(self) -> bytes:
        """What is still held when the stream ends, as events."""
        raise NotImplementedError

    def _rejected(self, detector: str) -> bytes:
        raise NotImplementedError
