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
from .event_stream import ANY_CHOICES, ASKED_CHOICES
from .event_stream import UNREAD as UNREAD_DETECTOR
from .reframe import SSEMaskingReframer
from .reframe_completions import CompletionsMaskingReframer
from .reframe_responses import ResponsesMaskingReframer
from .replies import Guards, WholeJsonGuard
from .settings import Guard
from .stops import GOOGLE
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
    ctype = (ex.pending_response_header("content-type")
             or ex.response_headers.get("content-type", ""))
    label = utf8_label(ctype)
    if label is not None:   # the client decodes the bytes the way the guards read them
        ex.set_response_header("content-type", label)
    if ex.status != 200 and succeeded(ex.status) \
            and adapter_of(ex, guards.adapter).name in GOOGLE:
        # google-genai takes every status but 200 for an error and shows its whole body,
        # which a reply is not read as: no Google API answers a call so
        raise Reject(502, f"the provider answered {ex.status}, which Google's SDK reads as "
                     "an error; the gateway's reply guards read Google replies of status 200",
                     details="extproc_unreadable_reply")
    if not succeeded(ex.status):   # an error's message may quote any text
        return ErrorReplyGuard(guards.response_guards, guards.stats, ex) \
            if guards.response_guards else None
    encoding = ex.response_headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):   # fail closed: a reply we cannot read
        raise Reject(502, f"the provider's reply is {encoding}-encoded, which the "
                     "gateway's reply guards cannot read", details="extproc_unreadable_reply")
    ctype = ctype.split(";", 1)[0].strip().lower()
    if ctype == "text/event-stream":
        return chain(_stream_transforms(guards, ex))
    if ctype == "application/json":
        return WholeJsonGuard(guards, ex)
    raise Reject(502, f"the provider's reply is {ctype or 'untyped'}, which the gateway's "
                 "reply guards cannot read", details="extproc_unreadable_reply")


def utf8_label(ctype: str) -> str | None:
    """The content type to send the client instead of `ctype` when it names a charset other
    than UTF-8 (or more than one), else None. The guards read a reply's bytes as UTF-8 (JSON
    also as UTF-16 or -32, as JSON readers detect it), while a client may decode it by the
    charset it is given (httpx's `response.text`, which google-genai reads whole replies
    with and every SDK reads error replies with): `+AEA-` is `@` in UTF-7. Relabelled, the
    client reads what the guards read."""
    if ";" not in ctype:
        return None
    media, _, params = ctype.partition(";")
    # every spelling of the parameter: RFC 2231's `charset*=''utf-7` and `charset*0=...`
    # too, which httpx's reading (`email.message`) takes (found by review)
    charsets = [(name, value.strip().strip('"').strip().lower())
                for name, eq, value in ((n.strip().strip("\"'").lower(), e, v) for n, e, v in
                                        (p.partition("=") for p in params.split(";")))
                if name.startswith("charset")]
    if not charsets or charsets == [("charset", "utf-8")]:
        return None
    return f"{media.strip()}; charset=utf-8"


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
    # text for a choice or candidate the request did not ask for ends the stream refused
    choices: int = ex.state.get(ASKED_CHOICES, ANY_CHOICES) if adapter.indexed_choices \
        else ANY_CHOICES
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
            masking = reframer(guards.provider, lambda: guards.maskers(made),
                               guards.max_event_bytes, rejected, done, adapter, allowed)
            masking.choices = choices
            out.append(masking)

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

        webhook = WebhookStreamGuard(guards.provider, guard.name, check,
                                     guard.webhook.segment_chars, guard.webhook.fail_open,
                                     guards.max_event_bytes, report, adapter,
                                     guard.allow_unread)
        webhook.choices = choices
        out.append(webhook)
    return out
