"""Whole (non-streamed) JSON replies on guarded routes: Envoy buffers them (their headers
wait), so a guard can still refuse one with an error in the provider's format, or mask its
texts in one pass; local guards first, then webhooks (which see the masked text). The texts
are every text the model wrote (the adapter's `response_texts`: visible text, refusals,
thinking, tool-call arguments and the calls' names, of every choice or candidate), checked
whatever a guard's `roles` (those filter prompt text). A Gemini/Vertex stream left as a JSON
array is read by the local guards as the stream it is (its elements' texts joined, as a
client joins them)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ..codecs import jsonunique
from ..codecs.jsoncap import MAX_SOURCE_STEPS, SourceTooLarge, check_sources, raw_steps
from ..codecs.jsontext import JsonSource, read_texts, rewrite
from ..codecs.sse import SSEDecoder
from ..llm.transforms import PARSED_REPLY
from ..policy import BodyTransform, Reject, sources_too_large
from ..providers.endpoints import adapter_of
from ..providers.slots import Name, UnreadableEvent
from ..providers.values import MaskingFn, json_bytes
from .decisions import decide
from .joined import Cut, mask_joined, split_joined
from .names import mask_name, name_readings
from .reframe import SSEMaskingReframer
from .settings import Guard
from .side_texts import lists_tokens, side_slots
from .unread import refuse_reply_media
from .webhook import Collected, Text, Verdict, masks_by_text

if TYPE_CHECKING:
    from ..context import Context
    from ..providers.base import Adapter
    from .stream import StreamMasker
    from .webhook import Call


class Guards(Protocol):
    """What a whole reply's guard uses of the route's reply-guarding policy
    (`extproc.guards.policy.Guards`), named here so the two modules do not import each
    other."""

    provider: str
    adapter: Adapter
    response_guards: tuple[Guard, ...]
    response_webhooks: tuple[Guard, ...]
    stats: dict[str, int]
    max_event_bytes: int

    def webhook_call(self, ex: Context, guard: Guard, direction: str, texts: list[Text],
                     stream: bool = False, model: str | None = None) -> Call: ...

    async def ask_webhook(self, guard: Guard, call: Call) -> Verdict: ...

    async def webhook_verdict(self, guard: Guard, call: Call, ex: Context) -> Verdict | None: ...

    def maskers(self, made: list[tuple[str, StreamMasker]]) -> list[StreamMasker]: ...


def _unreadable() -> Reject:
    return Reject(502, "the provider's reply is not a JSON object the gateway's reply guards "
                  "can read", details="extproc_unreadable_reply")


def _too_large() -> Reject:
    return sources_too_large(False)


class WholeJsonGuard(BodyTransform):
    """A whole JSON reply, buffered by Envoy (so its headers wait): refused with a 400 in the
    provider's format (as a prompt would be: SDKs do not retry it) if it carries media no
    guard reads that a reply guard does not let pass, or a reject guard or a webhook refuses
    its text, else masked with the adapter (local guards, then webhooks)."""

    whole_body = True

    def __init__(self, policy: Guards, ex: Context) -> None:
        self.policy = policy
        self.guards = policy.response_guards
        self.is_async = bool(policy.response_webhooks)
        self.ex: Context | None = ex      # dropped at finish: no cycle outlives the reply
        self.parts: list[bytes] = []
        self.adapter = adapter_of(ex, policy.adapter)
        self.arrays = policy.provider in ("gemini", "vertex")

    def feed(self, chunk: bytes) -> bytes:
        self.parts.append(chunk)
        return b""

    def _doc(self, ex: Context | None) -> tuple[bytes, dict[str, Any] | list[Any] | None]:
        """The reply as JSON: an object, or (Gemini/Vertex streams left as JSON arrays) an
        array of objects; None for an empty body. Anything else fails closed: a reply the
        guards cannot read is never delivered unguarded, nor one carrying media they do not
        all let pass (`unread.refuse_reply_media`). The usage meter's parse of the same
        bytes (`PARSED_REPLY`) is taken when there is one."""
        body, self.parts = b"".join(self.parts), []
        if not body.strip():
            return body, None
        parsed = ex.state.pop(PARSED_REPLY, None) if ex is not None else None
        if parsed is not None and parsed[0] == body:
            doc = parsed[1]
        else:
            try:   # (a repeated key is unreadable: `codecs.jsonunique`)
                doc = jsonunique.loads(body)
            except (ValueError, RecursionError):
                doc = None
        if isinstance(doc, dict) or (isinstance(doc, list) and self.arrays and all(
                isinstance(item, dict) for item in doc)):
            if any(lists_tokens(d) for d in (doc if isinstance(doc, list) else [doc])):
                raise Reject(502, "the provider's reply lists its tokens one by one (log "
                             "probabilities), which no reply guard can read",
                             details="extproc_unreadable_reply")
            refuse_reply_media(ex, (*self.guards, *self.policy.response_webhooks),
                               self.policy.stats, self.adapter, doc)
            if raw_steps(body) > MAX_SOURCE_STEPS:   # (else its sources cannot pass it)
                try:   # the guards would walk them all: the body's cap, as a request's
                    check_sources(t for d in (doc if isinstance(doc, list) else [doc])
                                  for _, t in self.adapter.response_texts(d))
                except SourceTooLarge:
                    raise _too_large() from None
            return body, doc
        raise Reject(502, "the provider's reply is not a JSON object the gateway's reply "
                     "guards can read", details="extproc_unreadable_reply")

    def finish(self) -> bytes:
        ex, self.ex = self.ex, None
        try:
            body, doc = self._doc(ex)
            if doc is None or not self._local(doc, ex):
                return body
        except SourceTooLarge:
            raise _too_large() from None
        except UnreadableEvent:   # a text field holding no text (`slots.NotText`)
            raise _unreadable() from None
        return json_bytes(doc)

    async def finish_async(self) -> bytes:
        ex, self.ex = self.ex, None
        try:
            body, doc = self._doc(ex)
            if doc is None or ex is None:
                return body
            changed = self._local(doc, ex)
            for guard in self.policy.response_webhooks:
                changed = await self._webhook(doc, ex, guard) or changed
        except SourceTooLarge:
            raise _too_large() from None
        except UnreadableEvent:   # a text field holding no text (`slots.NotText`)
            raise _unreadable() from None
        if not changed:
            return body
        return json_bytes(doc)

    async def _webhook(self, doc: dict[str, Any] | list[Any], ex: Context, guard: Guard) -> bool:
        """One webhook call on the reply: raise `Reject`, or mask; True if it masked. Texts
        a client reads joined (`joined`) are sent as one text per group, in the same call,
        instead of one by one (found by review: a webhook read them apart; a second call
        then doubled the wait on the webhook)."""
        adapter = self.adapter
        groups = [g for g in adapter.joined_reply_texts(doc) if len(g) > 1] \
            if isinstance(doc, dict) else []
        # a grouped text goes in its group's joined text alone (one- and no-character
        # strings are shared objects: nothing to hide in them, sent as they are)
        grouped = {id(h[k]) for g in groups for h, k in g if len(h[k]) > 1}
        collected = Collected()
        # keys and numbers of JSON values too, each a text of its own (MaskingFn), and
        # tool-call arguments as the tool reads them; the two passes visit the same texts
        # in the same order
        adapter.rewrite_response_texts(doc, MaskingFn(lambda t: collected.add(
            None if id(t) in grouped else "assistant", t)))
        side = side_slots(doc) if isinstance(doc, dict) else []   # (an error's message...)
        for holder, key in side:
            collected.add("assistant", holder[key])
        first = len(collected.texts)   # the groups' joined texts after the others
        texts = [*collected.texts,
                 *(Text("assistant", "".join(h[k] for h, k in g)) for g in groups)]
        if not texts:
            return False
        verdict = await self.policy.webhook_verdict(
            guard, self.policy.webhook_call(ex, guard, "response", texts), ex)
        if verdict is None or verdict.action == "pass":
            return False
        if verdict.action == "reject":
            self.policy.stats["response_rejected"] += 1
            refuse(ex, guard, "response", verdict)
        masks = masks_by_text(verdict)
        rewrite = collected.rewriter(masks)
        adapter.rewrite_response_texts(doc, MaskingFn(rewrite))
        for holder, key in side:   # after the others, in the order they were collected
            holder[key] = rewrite(holder[key])
        for i, group in enumerate(groups):   # untouched by the rewrite: their texts went
            found = masks.get(first + i)     # in the joined text alone
            if found:
                new = split_joined([h[k] for h, k in group], sorted(
                    (Cut(m.start, m.end, m.placeholder) for m in found),
                    key=lambda c: c.start))
                for (holder, key), text in zip(group, new, strict=True):
                    holder[key] = text
        decide(ex, guard.name, "response", "masked")
        return True

    def _local(self, doc: dict[str, Any] | list[Any], ex: Context | None) -> bool:
        """Local guards on the reply: raise `Reject`, or mask; True if anything changed."""
        if not self.guards:
            return False
        if isinstance(doc, list):
            return self._elements(doc, ex)
        adapter = self.adapter
        rejecting = [g for g in self.guards if g.action == "reject"]
        # texts a client reads joined (a candidate's parts, a message's blocks): read
        # joined too, as a stream's masker reads them (`joined`)
        groups = [g for g in adapter.joined_reply_texts(doc) if len(g) > 1]
        # the texts, read once for every reject guard; a JSON value (a tool's input) as its
        # JSON text, keys and numbers included, as the client reads it
        side = side_slots(doc)    # an error's message, a feedback: a client shows them
        texts = [(None, t) for _, t in adapter.response_texts(doc)] \
            + [(None, holder[key]) for holder, key in side] \
            + [(None, "".join(h[k] for h, k in g)) for g in groups] if rejecting else []
        for guard in rejecting:
            hits = found(guard, texts)
            if hits:
                self.policy.stats["response_rejected"] += 1
                if ex is not None:
                    decide(ex, guard.name, "response", "rejected", ",".join(hits))
                raise Reject(400, f"response blocked by guard '{guard.name}': it contains "
                             f"{describe(hits)}", details="extproc_guard_rejected")
        masking = [g for g in self.guards if g.action == "mask"]

        masked: dict[str, set[str]] = {}
        changed = False
        for group in groups if masking else ():
            old = [holder[key] for holder, key in group]
            new = mask_joined(masking, old, masked)
            if new != old:
                for (holder, key), text in zip(group, new, strict=True):
                    holder[key] = text
                changed = True
        if masking:   # each text on its own too, keys and numbers of JSON values included
            changed = adapter.rewrite_response_texts(
                doc, MaskingFn(lambda text: mask_text(masking, text, masked))) or changed
        for holder, key in side if masking else ():
            text = holder[key]
            new = mask_text(masking, text, masked)
            if new != text:
                holder[key] = new
                changed = True
        if ex is not None:
            for name, detectors in masked.items():
                decide(ex, name, "response", "masked", ",".join(sorted(detectors)))
        return changed


    def _elements(self, items: list[Any], ex: Context | None) -> bool:
        """A buffered Gemini/Vertex JSON-array stream: its elements are a stream's events,
        and a client joins their texts, so they are masked (or refused) as one stream is (a
        value split across elements is caught as in one element); the elements are replaced
        by the masked events."""
        made: list[tuple[str, Any]] = []
        hits: list[str] = []
        events = b"".join(b"data: " + json_bytes(item) + b"\n\n" for item in items)
        reframer = SSEMaskingReframer(self.policy.provider, lambda: self.policy.maskers(made),
                                      len(events) + 1, hits.append)
        out = reframer.feed(events) + reframer.finish()
        if hits:
            detector = hits[0]
            name = next((g.name for g in self.guards if g.action == "reject"
                         and g.scanner is not None
                         and any(d.name == detector for d in g.scanner.detectors)), "guard")
            self.policy.stats["response_rejected"] += 1
            if ex is not None:
                decide(ex, name, "response", "rejected", detector)
            raise Reject(400, f"response blocked by guard '{name}': it contains "
                         f"{describe([detector])}", details="extproc_guard_rejected")
        if ex is not None:
            for name in dict.fromkeys(n for n, m in made if m.found):
                found_here = {d for n, m in made if n == name for d in m.found}
                decide(ex, name, "response", "masked", ",".join(sorted(found_here)))
        decoder = SSEDecoder(len(out) + 1)   # masked events may be longer than they came
        masked = [json.loads(ev.data) for ev in decoder.feed(out) + decoder.finish()
                  if ev.has_data]
        if masked == items:
            return False
        items[:] = masked
        return True


def mask_text(guards: list[Guard] | tuple[Guard, ...], text: str,
              masked: dict[str, set[str]]) -> str:
    """`text` masked by each local guard in turn; what each found is added to `masked`. A
    `JsonSource` (tool-call arguments) is masked token by token, escapes decoded, as the
    tool reads it (`codecs.jsontext.rewrite`); a call's `Name` as `names.mask_name` says."""
    if isinstance(text, JsonSource):
        return rewrite(text, lambda token: _mask(guards, token, masked))
    if isinstance(text, Name):
        return mask_name(text, lambda reading: _mask(guards, reading, masked))
    return _mask(guards, text, masked)


def _mask(guards: list[Guard] | tuple[Guard, ...], text: str,
          masked: dict[str, set[str]]) -> str:
    for guard in guards:
        assert guard.scanner is not None
        spans = guard.scanner.find(text)
        if spans:
            masked.setdefault(guard.name, set()).update(s.detector for s in spans)
            text = guard.scanner.mask(text, spans)
    return text


def refuse(ex: Context, guard: Guard, direction: str, verdict: Verdict) -> NoReturn:
    """A webhook refused the text: record it and answer 400 with the webhook's reason."""
    decide(ex, guard.name, direction, "rejected")
    reason = f": {verdict.reason}" if verdict.reason else ""
    raise Reject(400, f"{direction} blocked by guard '{guard.name}'{reason}",
                 details="extproc_guard_rejected")


def found(guard: Guard, texts: list[tuple[str, str]] | list[tuple[None, str]]) -> list[str]:
    """The detectors of a local guard that match any of the texts: of the roles it reads
    (`Guard.reads`), or all of them when the role is None (a reply's texts). A `JsonSource`
    is read as `codecs.jsontext.read_texts` reads it (the tokens the tool reads, decoded), a
    call's `Name` in its `names.name_readings`."""
    assert guard.scanner is not None
    names: list[str] = []
    for role, text in texts:
        if role is None or guard.reads(role):
            for piece in read_texts(text) if isinstance(text, JsonSource) \
                    else name_readings(text) if isinstance(text, Name) else (text,):
                for span in guard.scanner.find(piece):
                    if span.detector not in names:
                        names.append(span.detector)
    return names


def read_once(texts: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """`texts` with each `JsonSource` and `Name` replaced by what `found` reads of it: read
    once for every guard that looks (found by review: each reject guard read a body's JSON
    source again, so three of them took 7 readings)."""
    out: list[tuple[Any, str]] = []
    for role, text in texts:
        if isinstance(text, JsonSource):
            out.extend((role, piece) for piece in read_texts(text))
        elif isinstance(text, Name):
            out.extend((role, piece) for piece in name_readings(text))
        else:
            out.append((role, text))
    return out


def describe(names: list[Any]) -> str:
    """'email', 'email and phone', 'email, phone and card'."""
    kinds = [str(n).replace("_", " ") for n in names]
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
