"""The reply side of the `Guards` policy: which transforms a provider's reply goes through.

An error reply gets the error guard (its message may quote any text); a whole JSON reply the
`WholeJsonGuard`; an SSE stream the provider's masking reframer (`reframe*.py`, fed by one
`StreamMasker` per local reply guard) and then each webhook guard's stream guard. A reply the
guards cannot read (compressed, another media type, a stream whose adapter names no texts for
a webhook) is refused with a 502 before its headers go out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..context import succeeded
from ..policy import BodyTransform, Reject, chain
from ..providers import Adapter
from ..providers.endpoints import adapter_of
from .decisions import decide
from .errors import ErrorReplyGuard
from .event_stream import UNREAD as UNREAD_DETECTOR
from .reframe import SSEMaskingReframer
from .reframe_completions import CompletionsMaskingReframer
from .reframe_responses import ResponsesMaskingReframer
from .replies import Guards, WholeJsonGuard
from .settings import Guard
from .stream import StreamMasker
from .webhook import Text, Verdict
from .webhook_stream import WebhookStreamGuard

if TYPE_CHECKING:
    from ..context import Context


def reply_transform(guards: Guards, ex: Context) -> BodyTransform | None:
    """The transform the reply of `ex` goes through (`Guards.response_transform`), or None
    when the route has no reply guard; raises `Reject` for a reply they cannot read."""
    if not (guards.response_guards or guards.response_webhooks):
        return None
    if not succeeded(ex.status):   # an error's message may quote any text
        return ErrorReplyGuard(guards.response_guards, guards.stats, ex) \
            if guards.response_guards else None
    encoding = ex.response_headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):   # fail closed: a reply we cannot read
        raise Reject(502, f"the provider's reply is {encoding}-encoded, which the "
                     "gateway's reply guards cannot read", details="extproc_unreadable_reply")
    ctype = (ex.pending_response_header("content-type")
             or ex.response_headers.get("content-type", ""))
    ctype = ctype.split(";", 1)[0].strip().lower()
    if ctype == "text/event-stream":
        return chain(_stream_transforms(guards, ex))
    if ctype == "application/json":
        return WholeJsonGuard(guards, ex)
    raise Reject(502, f"the provider's reply is {ctype or 'untyped'}, which the gateway's "
                 "reply guards cannot read", details="extproc_unreadable_reply")


def _stream_transforms(guards: Guards, ex: Context) -> list[BodyTransform]:
    stats = guards.stats
    endpoint = ex.endpoint.name if ex.endpoint else ""
    adapter = adapter_of(ex, guards.adapter)
    if guards.response_webhooks and type(adapter).stream_texts is Adapter.stream_texts:
        # the webhook stream guard finds texts with the adapter's `stream_texts`; fail
        # closed on a stream whose adapter has none (the Responses API's) rather than
        # let it through unseen
        raise Reject(502, f"the gateway's webhook reply guards cannot read {endpoint} "
                     "streams; ask for a whole reply (stream: false)",
                     details="extproc_unreadable_reply")
    out: list[BodyTransform] = []
    if guards.response_guards:
        rejecting = [g for g in guards.response_guards if g.action == "reject"]
        made: list[tuple[str, StreamMasker]] = []
        # the media kinds (an image, audio) every local reply guard lets pass unread
        allowed = frozenset.intersection(*(g.allow_unread for g in guards.response_guards))

        def rejected(detector: str) -> None:
            stats["response_rejected"] += 1
            if detector.startswith(UNREAD_DETECTOR):   # media a guard does not allow
                kind = detector[len(UNREAD_DETECTOR):]
                name = next((g.name for g in guards.response_guards
                             if kind not in g.allow_unread), "guard")
            else:
                name = next((g.name for g in rejecting if g.scanner is not None and any(
                    d.name == detector for d in g.scanner.detectors)), "guard")
            decide(ex, name, "response", "rejected", detector)

        def done() -> None:
            for name in dict.fromkeys(n for n, m in made if m.found):
                found = {d for n, m in made if n == name for d in m.found}
                decide(ex, name, "response", "masked", ",".join(sorted(found)))

        if endpoint == "responses":
            out.append(ResponsesMaskingReframer(guards.provider, lambda: guards.maskers(made),
                                                guards.max_event_bytes, rejected, done,
                                                allowed))
        else:
            reframer = CompletionsMaskingReframer if endpoint == "completions" \
                else SSEMaskingReframer
            out.append(reframer(guards.provider, lambda: guards.maskers(made),
                                guards.max_event_bytes, rejected, done, adapter, allowed))

    def report(guard: str, outcome: str) -> None:
        if outcome in ("rejected", "error-closed"):
            stats["response_rejected"] += 1
        if outcome != "pass":
            decide(ex, guard, "response", outcome.replace("-", "_"))

    for guard in guards.response_webhooks:
        assert guard.webhook is not None

        async def check(texts: list[Text], guard: Guard = guard) -> Verdict:
            call = guards.webhook_call(ex, guard, "response", texts, True)
            return await guards.ask_webhook(guard, call)

        out.append(WebhookStreamGuard(guards.provider, guard.name, check,
                                      guard.webhook.segment_chars, guard.webhook.fail_open,
                                      guards.max_event_bytes, report, adapter,
                                      guard.allow_unread))
    return out
