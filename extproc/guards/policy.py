"""`Guards`: the built-in route policy that rejects or masks sensitive content in prompts
and in responses.

Requests: it reads every text the model reads, the way the provider adapter extracts it
(all roles, or the guard's `roles`, compared case-insensitively; a role outside the four
known ones is read by every guard), runs reject guards first (a 400 in the provider's format
that names the guard and what it found, never the matched text; they read a JSON value such
as a tool schema both as its JSON text, keys included, and string value by string value, so
an escape cannot hide a value), then mask guards, rewriting each text in place with the
adapter and re-serialising the body. Tool and function names (`names.py`) are read by both,
whatever the guards' `roles`: a match there is refused, as a name cannot be masked.

Responses: every text the model writes (visible text, refusals, thinking, tool-call
arguments, of every choice or candidate), whatever the guard's `roles`. A request that asks
for reply parts repeating the text where no guard can mask it (token log probabilities) is
refused with a 400 on a route whose guards read replies, and so is a request for a reply
in media no guard reads (audio, a generated image) unless every guard that reads replies
lets its kind pass (`allow_unread`); a reply carrying such media anyway is refused whole
(400) or ends its stream refused. Streamed responses
(SSE, including Gemini JSON-array streams rewritten to SSE): every text piece goes through
the streaming maskers (`stream.py`) and is re-framed as the provider's
events (`reframe.py`); a reject guard ends the stream with the provider's finish and error
events. Whole JSON responses are asked for BUFFERED (their headers wait): a reject guard
refuses them with an error in the provider's format, mask guards mask them in one pass.
Which transform a reply gets is `reply_side.py`'s choice.

Local guards read tool-call arguments (JSON source text in a string, both ways) and the
compact dumps of JSON values as the tool reads them: token by token, escapes decoded
(`codecs.jsontext`; `replies.found` / `mask_text` on a `JsonSource`), so `\u0040` or a `\n`
escape cannot hide a value; a masked value keeps the text valid JSON.

Webhook guards (`webhook.py`) run after the local ones, so the remote service only ever sees
text that local guards have already masked: on requests and whole responses with one call
each, on streamed responses in segments (`webhook_stream.py`). A webhook error lets the text
through (`fail: open`) or refuses it with a 503 (`fail: closed`, the default). Webhooks get
tool-call arguments as the tool reads them, escapes decoded (`webhook.source_texts`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..codecs.jsoncap import SourceTooLarge
from ..policy import BodyTransform, Policy, Reject, sources_too_large
from ..providers import Adapter, adapter_for, read_request
from ..providers.endpoints import adapter_of
from ..providers.values import MaskingFn, json_bytes
from . import webhook_client
from .decisions import decide
from .event_stream import ASKED_CHOICES
from .names import identifiers, readings
from .replies import describe, found, mask_text, read_once, refuse
from .reply_side import reply_transform
from .request_fields import field_texts, refuse_field_matches
from .settings import ROLES, Guard
from .stream import StreamMasker
from .unread import refuse_asked_media, refuse_deferred_reply, refuse_unread_inputs
from .webhook import (
    AnswerTooLarge,
    Call,
    ClientSized,
    Collected,
    Text,
    Verdict,
    WebhookError,
    ask_by,
    masks_by_text,
    message_deadline,
)

log = logging.getLogger("extproc.guards")

MAX_EVENT_BYTES = 1024 * 1024
if TYPE_CHECKING:
    from ..context import Context


class Guards(Policy):
    reads_json = True
    needs_request_body = True

    def __init__(self, provider: str, guards: tuple[Guard, ...],
                 side: str = "request", route: str = "",
                 max_event_bytes: int = MAX_EVENT_BYTES,
                 allow_background: bool = False) -> None:
        """`side`: the request side runs before the LLM traffic policy (a refused prompt
        costs no budget); the response side after it (it sees Gemini JSON-array streams
        already rewritten to SSE, and rate limits count the masked text delivered).
        `allow_background`: the route lets a reply made later and fetched elsewhere through
        unread (`unread.refuse_deferred_reply`)."""
        super().__init__({})
        self.allow_background = allow_background
        self.provider = provider
        self.side = side
        #: the largest stream event read (the route's `streams.max_event_bytes`): a larger
        #: one ends the stream refused
        self.max_event_bytes = max_event_bytes
        self.route = route
        self.adapter = adapter_for(provider)
        requests = tuple(g for g in guards if "request" in g.apply_to) \
            if side == "request" else ()
        self.rejecting = tuple(g for g in requests if g.action == "reject")
        self.masking = tuple(g for g in requests if g.action == "mask")
        self._masking_by_role = {role: tuple(g for g in self.masking if g.reads(role))
                                 for role in ROLES}
        self.request_webhooks = tuple(g for g in requests if g.webhook is not None)
        self.prompt_guards = requests
        #: the local ones (`request_fields`: read once per request, not built each time)
        self._local_prompt_guards = tuple(g for g in (*self.rejecting, *self.masking)
                                          if g.scanner is not None)
        responses = tuple(g for g in guards if "response" in g.apply_to) \
            if side == "response" else ()
        # reject guards first: a value they stop must never be masked and sent
        self.response_guards = tuple(sorted((g for g in responses if g.webhook is None),
                                            key=lambda g: g.action != "reject"))
        self.response_webhooks = tuple(g for g in responses if g.webhook is not None)
        #: request side: the first guard that reads replies, if any: a request for reply
        #: parts no guard can read (log probabilities repeat the reply's tokens) is refused
        self.reads_replies = next((g.name for g in guards if "response" in g.apply_to),
                                  None) if side == "request" else None
        #: request side: the guards that will read the reply (a request for reply media
        #: one of them does not let pass unread is refused before it is sent)
        self.reply_guards = tuple(g for g in guards if "response" in g.apply_to) \
            if side == "request" else ()
        self.needs_request_body = bool(requests) or self.reads_replies is not None
        self.needs_response_body = bool(responses)
        self.stats = {"rejected": 0, "masked": 0, "response_rejected": 0,
                      "webhook_calls": 0, "webhook_errors": 0, "webhook_failed_open": 0}
        self._last_warning = 0.0

    # --- webhooks -----------------------------------------------------------------------
    def webhook_call(self, ex: Context, guard: Guard, direction: str, texts: list[Text],
                     stream: bool = False, model: str | None = None) -> Call:
        identity = ex.state.get("identity")
        model = model or ex.state.get("model")
        return Call(guard=guard.name, direction=direction, route=self.route,
                    provider=self.provider, model=model if isinstance(model, str) else None,
                    subject=getattr(identity, "subject", None),
                    request_id=ex.request_id or None, stream=stream, texts=texts)

    async def ask_webhook(self, guard: Guard, call: Call) -> Verdict:
        """The webhook's verdict; a failure is counted, logged (rate-limited) and raised."""
        assert guard.webhook is not None
        self.stats["webhook_calls"] += 1
        spec = guard.webhook
        try:   # (the message's calls share its time: a route's guards one after another)
            return await ask_by(lambda c: webhook_client.check(spec, c), call,
                                message_deadline())
        except WebhookError as exc:
            self._failed(guard, exc)
            raise

    async def webhook_verdict(self, guard: Guard, call: Call, ex: Context) -> Verdict | None:
        """The webhook's verdict; None when it failed and the guard fails open; a 503
        `Reject` when it failed and the guard fails closed."""
        assert guard.webhook is not None
        try:
            return await self.ask_webhook(guard, call)
        except ClientSized as exc:          # the client's doing, not an outage: refused
            decide(ex, guard.name, call.direction, "error_closed")
            request = call.direction == "request"
            why = "its verdict would be too long" if isinstance(exc, AnswerTooLarge) \
                else "it failed on a call this large, which it does not let through unread"
            raise Reject(413 if request else 502,
                         f"guard '{guard.name}' cannot judge this much text at once ({why})"
                         f"{'; send less' if request else ''}",
                         details="extproc_guard_too_large") from None
        except WebhookError:
            if guard.webhook.fail_open:
                decide(ex, guard.name, call.direction, "error_open")
                return None
            decide(ex, guard.name, call.direction, "error_closed")
            raise Reject(503, f"guard '{guard.name}' is unavailable; try again later",
                         details="extproc_guard_unavailable") from None

    def _failed(self, guard: Guard, exc: Exception) -> None:
        assert guard.webhook is not None
        self.stats["webhook_errors"] += 1
        opens = guard.webhook.fail_open and not isinstance(exc, ClientSized)
        if opens:
            self.stats["webhook_failed_open"] += 1
        now = time.monotonic()
        if now - self._last_warning >= 10:       # one line per 10 s, not one per request
            self._last_warning = now
            log.warning("guard webhook %r failed (%s); failing %s", guard.name, exc,
                        "open" if opens else "closed")

    def maskers(self, made: list[tuple[str, StreamMasker]]) -> list[StreamMasker]:
        """A fresh masker per local reply guard (the mask guards' also listed in `made`)."""
        out = []
        for g in self.response_guards:
            assert g.scanner is not None
            masker = StreamMasker(g.scanner, action=g.action)
            if g.action == "mask":
                made.append((g.name, masker))
            out.append(masker)
        return out

    def response_transform(self, ex: Context) -> BodyTransform | None:
        return reply_transform(self, ex)

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        try:
            return await self._on_request_body(ex, body)
        except SourceTooLarge:
            raise sources_too_large(True) from None

    async def _on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        path = ex.request_headers.get(":path", "")
        adapter = adapter_of(ex, self.adapter)
        read = read_request(adapter, path, body, ex.state)
        if read is None:   # the exchange refuses unreadable bodies before any policy
            raise Reject(400, "the request body is not readable",
                         details="extproc_bad_json")
        doc, texts, model = read[0], read[1].texts, read[1].model
        opaque = getattr(adapter, "opaque_tokens", None)
        if opaque is not None and opaque(doc):
            raise Reject(400, "the request gives its input as token ids, which the gateway's "
                         "guards cannot read; send text", details="extproc_unreadable_input")
        undecodable = getattr(adapter, "undecodable_inputs", None)   # a text file inline
        unread = undecodable(doc) if undecodable is not None and any(
            needle in body for needle in getattr(adapter, "inline_needles", ())) else []
        if unread:
            raise Reject(400, f"the request carries {describe(unread)}, which the gateway's "
                         "guards cannot read", details="extproc_unreadable_input")
        if self.prompt_guards:
            refuse_unread_inputs(ex, self.prompt_guards, self.stats, adapter, doc, body)
        if self.reply_guards:
            refuse_asked_media(ex, self.reply_guards, self.stats, adapter, doc)
        refuse_deferred_reply(ex, self.reads_replies, self.stats, adapter, doc,
                              self.allow_background)
        if self.reads_replies and adapter.indexed_choices:
            ex.state[ASKED_CHOICES] = adapter.output_choices(doc)
        check = getattr(adapter, "unreadable_reply", None) if self.reads_replies else None
        unreadable = check(doc) if check is not None else []
        if unreadable:
            self.stats["rejected"] += 1
            decide(ex, self.reads_replies, "request", "rejected", "unreadable_reply")
            raise Reject(400, f"request refused: the reply would carry {describe(unreadable)}, "
                         "which the route's guards cannot check; ask without it",
                         details="extproc_guard_unreadable")
        strings: list[tuple[str, str]] | None = None
        names: list[tuple[None, str]] | None = None
        read = read_once(texts) if len(self.rejecting) > 1 else texts
        for guard in self.rejecting:
            hits = found(guard, read)
            if not hits:
                if strings is None:   # JSON values string by string, escapes undone
                    strings = read_once(_strings(adapter, path, doc))
                hits = found(guard, strings)
            if not hits:
                if names is None:     # tool and function names: read whatever the roles
                    names = readings(doc, body)
                hits = found(guard, names)
            if hits:
                self.stats["rejected"] += 1
                decide(ex, guard.name, "request", "rejected", ",".join(hits))
                raise Reject(400, f"request blocked by guard '{guard.name}': the prompt "
                             f"contains {describe(hits)}", details="extproc_guard_rejected")
        refuse_field_matches(ex, self._local_prompt_guards, self.stats, doc)
        if not self.masking and not self.request_webhooks:
            return None
        masked: dict[str, set[str]] = {}

        def mask(role: str, text: str) -> str:
            guards = self._masking_by_role.get(role)
            if guards is None:       # a role spelled otherwise, or unknown: see Guard.reads
                guards = tuple(g for g in self.masking if g.reads(role))
            return mask_text(guards, text, masked)

        # keys too: a schema's property name or a tool input's field is read by the model
        changed = bool(self.masking) and adapter.rewrite_request_texts(path, doc,
                                                                        MaskingFn(mask))
        if changed:
            self.stats["masked"] += 1
            for name, detectors in masked.items():
                decide(ex, name, "request", "masked", ",".join(sorted(detectors)))
        if self.masking:
            if changed or names is None:   # else the reject guards' reading still holds
                names = readings(doc, None if changed else body)
            self._unmaskable_names(ex, names)
        for guard in self.request_webhooks:
            changed = await self._request_webhook(ex, guard, path, doc, model, adapter) \
                or changed
        if not changed:
            return None
        return json_bytes(doc)

    def _unmaskable_names(self, ex: Context, names: list[tuple[None, str]]) -> None:
        """Refuse a prompt in which a mask guard finds something in a name (`names.py`; read
        after masking, so a name that is also a text, such as a tool input's field, counts as
        masked there): a name cannot be masked, so it is refused rather than sent in clear."""
        for guard in self.masking:
            hits = found(guard, names)
            if hits:
                self.stats["rejected"] += 1
                decide(ex, guard.name, "request", "rejected", ",".join(hits))
                raise Reject(400, f"request blocked by guard '{guard.name}': a name in the "
                             f"request (a tool's, a function's) contains {describe(hits)}, "
                             "which cannot be masked in a name; rename it",
                             details="extproc_guard_rejected")

    async def _request_webhook(self, ex: Context, guard: Guard, path: str,
                               doc: dict[str, Any], model: str | None,
                               adapter: Adapter) -> bool:
        """Ask one webhook about the prompt (as local guards left it); True if it masked."""
        collected = Collected()

        def collect(role: str, text: str) -> str:
            # the contract names four roles: any other is sent as "user"
            return collected.add((role if role in ROLES else "user") if guard.reads(role)
                                 else None, text)

        # keys and numbers of JSON values too, each a text of its own (MaskingFn), and
        # tool-call arguments as the tool reads them; the two passes visit the same texts
        # in the same order
        adapter.rewrite_request_texts(path, doc, MaskingFn(collect))
        texts = collected.texts
        # then the tool and function names, whatever the guard's roles (as local guards read
        # them): the webhook may refuse for one, but not mask it
        first_name = len(texts)
        texts.extend(Text("tool", name) for name in dict.fromkeys(identifiers(doc)))
        # then the fields beside the prompt (`request_fields`): it may refuse for one too
        texts.extend(Text(role, text) for role, text in field_texts(doc))
        if not texts:
            return False
        verdict = await self.webhook_verdict(guard, self.webhook_call(ex, guard, "request", texts,
                                                        model=model), ex)
        if verdict is None or verdict.action == "pass":
            return False
        if verdict.action == "reject":
            self.stats["rejected"] += 1
            refuse(ex, guard, "request", verdict)
        by_text = masks_by_text(verdict)
        if any(index >= first_name for index in by_text):
            self.stats["rejected"] += 1
            decide(ex, guard.name, "request", "rejected")
            raise Reject(400, f"request blocked by guard '{guard.name}': it would mask a name "
                         "in the request (a tool's, a function's) or a field sent beside the "
                         "prompt (a stop sequence, a user id, metadata), which cannot be "
                         "masked", details="extproc_guard_rejected")
        masked = collected.rewriter(by_text)
        adapter.rewrite_request_texts(path, doc, MaskingFn(lambda _role, text: masked(text)))
        self.stats["masked"] += 1
        decide(ex, guard.name, "request", "masked")
        return True


def _strings(adapter: Adapter, path: str, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The prompt's texts as mask guards read them: a JSON value (a tool schema, a tool
    call's input) string value by string value, not as its JSON text, where an escape glues
    its letter to a value (`\\nAKIA...` holds no key); keys stay read in the JSON text."""
    out: list[tuple[str, str]] = []

    def collect(role: str, text: str) -> str:
        out.append((role, text))
        return text

    adapter.rewrite_request_texts(path, doc, collect)
    return out
