"""The guard webhook's contract, sans IO: the JSON the gateway posts, the answer it accepts
(pass, mask with spans, reject), and masking texts with the answer's spans.

Published as `docs/guard-webhook.openapi.yaml`; `sample_webhook.py` is a service that
speaks it. The HTTP call itself lives in `webhook_client.py`.

`Collected` gathers the texts of one call from an adapter's texts, and writes an answer's
masks back: tool-call arguments (a `JsonSource`) go out as the tool reads them, token by
token with escapes decoded (one text each), or, when they are not JSON, as one text with
every escape decoded.

Offsets in a mask answer count Unicode code points (Python `str` indices). An answer that
breaks the contract in any way raises `MalformedAnswer`: the guard then fails open or
closed as configured, exactly as for a timeout or an unreachable service.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..codecs.jsonescape import decode_escapes, parses
from ..codecs.jsontext import JsonSource, read_texts, rewrite
from ..policy import MESSAGE_STARTED
from ..providers.values import json_bytes

VERSION = 1
DEFAULT_PLACEHOLDER = "<REDACTED>"
MAX_PLACEHOLDER = 64
MAX_REASON = 200
#: characters of already delivered text sent as `context` with a streamed segment
CONTEXT_CHARS = 256


@dataclass(frozen=True)
class WebhookSpec:
    """A webhook guard's settings (config key `guards.NAME.webhook`)."""

    url: str
    timeout_s: float = 0.3
    fail_open: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    #: streamed responses: check text once this many characters are held (at a word end)
    segment_chars: int = 200
    #: `fail: open` covers calls of at most this many bytes (the JSON the webhook reads: a
    #: client decides it by its text, and by how many texts it splits it into); a larger
    #: call that fails is refused (`CallTooLarge`)
    fail_open_max_bytes: int = 65536


@dataclass(frozen=True)
class Mask:
    text: int
    start: int
    end: int
    placeholder: str = DEFAULT_PLACEHOLDER


@dataclass(frozen=True)
class Verdict:
    action: str                      # pass | mask | reject
    masks: tuple[Mask, ...] = ()
    reason: str = ""


PASS = Verdict("pass")


class MalformedAnswer(ValueError):
    """The webhook's answer does not follow the contract."""


class WebhookError(Exception):
    """The webhook gave no usable verdict (down, slow, an error status, a bad answer)."""


#: how long the webhook calls made inside one ext_proc message may take together: they end
#: well before Envoy's message_timeout (5 s in the shipped configs), so a guard's fail mode
#: decides, not Envoy's 504
MESSAGE_BUDGET_MS = 4000
_clock = time.monotonic


def message_deadline() -> float:
    """When the webhook calls made for the ext_proc message being handled must be done
    (`ask_by`): `MESSAGE_BUDGET_MS` after it arrived (`policy.MESSAGE_STARTED`, set by the
    exchange; now, outside one), whichever guards and transforms make them."""
    started = MESSAGE_STARTED.get()
    return (_clock() if started is None else started) + MESSAGE_BUDGET_MS / 1000


async def ask_by(check: Callable[[Any], Awaitable[Verdict]], texts: Any,
                 deadline: float) -> Verdict:
    """`check(texts)`, a `WebhookError` once the monotonic `deadline` (the message's budget,
    shared by every call the message makes) has passed (found by review: one reply chunk of
    several segments made a call each, one after another, 9 s in all past Envoy's 5 s)."""
    left = deadline - _clock()
    if left <= 0:
        raise WebhookError("no time left for the call within this ext_proc message")
    try:
        async with asyncio.timeout(left):
            return await check(texts)
    except TimeoutError:
        raise WebhookError("no answer within what is left of this ext_proc message's "
                           "time") from None


class ClientSized(WebhookError):
    """A failure the size of the client's text decides, so never the outage a `fail: open`
    guard lets pass: the texts are refused (a 413 for a prompt)."""


class AnswerTooLarge(ClientSized):
    """The webhook's verdict is longer than the gateway reads. A client decides that (a
    mask verdict grows with the values it masks: about 70 bytes of answer for 7 of prompt)."""


class CallTooLarge(ClientSized):
    """The webhook refused the call's size (HTTP 413), or a `fail: open` guard's call longer
    than its `fail_open_max_bytes` failed: a client could send text a webhook cannot judge in
    time (found by review: 2 MiB of digit groups timed the sample out at 300 ms) to have it
    let through unread."""


@dataclass
class Text:
    role: str
    text: str
    context: str | None = None


@dataclass
class Call:
    """What one webhook call is about (everything but the texts)."""

    guard: str
    direction: str                   # request | response
    route: str
    provider: str
    model: str | None = None
    subject: str | None = None
    request_id: str | None = None
    stream: bool = False
    texts: list[Text] = field(default_factory=list)

    def body(self) -> bytes:
        texts = []
        for t in self.texts:
            item: dict[str, Any] = {"role": t.role, "text": t.text}
            if t.context is not None:
                item["context"] = t.context
            texts.append(item)
        doc = {"version": VERSION, "guard": self.guard, "direction": self.direction,
               "stream": self.stream, "route": self.route, "provider": self.provider,
               "model": self.model, "subject": self.subject, "request_id": self.request_id,
               "texts": texts}
        return json_bytes(doc)


def parse_answer(body: bytes, texts: list[Text]) -> Verdict:
    """The verdict in a 200 answer's body, checked against the texts it is about."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedAnswer("the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedAnswer("the answer is not a JSON object")
    action = doc.get("action")
    if action == "pass":
        return PASS
    if action == "reject":
        reason = doc.get("reason", "")
        if not isinstance(reason, str):
            raise MalformedAnswer("'reason' is not a string")
        return Verdict("reject", reason=_clean_reason(reason))
    if action != "mask":
        raise MalformedAnswer(f"unknown action {str(action)[:40]!r} (pass, mask or reject)")
    raw = doc.get("masks")
    if not isinstance(raw, list):
        raise MalformedAnswer("'masks' is not a list")
    masks = sorted((_mask(m, texts) for m in raw), key=lambda m: (m.text, m.start))
    for a, b in itertools.pairwise(masks):
        if a.text == b.text and b.start < a.end:
            raise MalformedAnswer(f"masks overlap in text {a.text}")
    return Verdict("mask", tuple(masks)) if masks else PASS


def _mask(raw: Any, texts: list[Text]) -> Mask:
    if not isinstance(raw, dict):
        raise MalformedAnswer("a mask is not an object")
    index, start, end = raw.get("text"), raw.get("start"), raw.get("end")
    for name, value in (("text", index), ("start", start), ("end", end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise MalformedAnswer(f"mask '{name}' is not an integer")
    assert isinstance(index, int) and isinstance(start, int) and isinstance(end, int)
    if not 0 <= index < len(texts):
        raise MalformedAnswer(f"mask refers to text {index}, but {len(texts)} were sent")
    if not 0 <= start < end <= len(texts[index].text):
        raise MalformedAnswer(f"mask span {start}..{end} is outside text {index} "
                              f"({len(texts[index].text)} characters)")
    placeholder = raw.get("placeholder", DEFAULT_PLACEHOLDER)
    if not isinstance(placeholder, str) or len(placeholder) > MAX_PLACEHOLDER:
        raise MalformedAnswer(f"mask placeholder is not a string of at most "
                              f"{MAX_PLACEHOLDER} characters")
    return Mask(index, start, end, placeholder)


def _clean_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason[:MAX_REASON]


def apply(text: str, masks: list[Mask] | tuple[Mask, ...]) -> str:
    """`text` with each span replaced by its placeholder (spans sorted, not overlapping)."""
    out: list[str] = []
    at = 0
    for m in masks:
        out.append(text[at:m.start])
        out.append(m.placeholder)
        at = m.end
    out.append(text[at:])
    return "".join(out)


def masks_by_text(verdict: Verdict) -> dict[int, list[Mask]]:
    out: dict[int, list[Mask]] = {}
    for m in verdict.masks:
        out.setdefault(m.text, []).append(m)
    return out


class Collected:
    """The texts one webhook call sends for a sequence of slots (an adapter's texts, in its
    order), and the way back: `add` each slot's text on the way out, then rewrite the same
    slots in the same order with `rewriter`'s function."""

    def __init__(self) -> None:
        self.texts: list[Text] = []
        self.counts: list[int] = []     # per slot: how many texts it sent

    def add(self, role: str | None, text: str) -> str:
        """Collect one slot's text (role None: not sent, the guard does not read it);
        returns the text unchanged, as a collecting rewriter does."""
        if role is None:
            self.counts.append(0)
            return text
        pieces = source_texts(text) if isinstance(text, JsonSource) else [text]
        self.texts.extend(Text(role, piece) for piece in pieces)
        self.counts.append(len(pieces))
        return text

    def rewriter(self, by_text: dict[int, list[Mask]]) -> Callable[[str], str]:
        """A function of each slot's text, in `add`'s order, to its masked text."""
        counts = iter(self.counts)
        sent = itertools.count()

        def masked(text: str) -> str:
            masks = [by_text.get(next(sent)) for _ in range(next(counts))]
            if not any(masks):
                return text
            if isinstance(text, JsonSource):
                return rewrite_source(text, masks)
            return apply(text, masks[0] or ())
        return masked


def source_texts(text: str) -> list[str]:
    """What a webhook gets of JSON source (tool-call arguments): its tokens, decoded
    (`codecs.jsontext.read_texts`); when it is not JSON, the text with every escape
    decoded, as one text."""
    return read_texts(text) if parses(text) else [decode_escapes(text)]


def rewrite_source(text: str, masks: list[list[Mask] | None]) -> str:
    """JSON source `text` with the masks of its `source_texts` applied: token by token,
    re-encoded as JSON (`codecs.jsontext.rewrite`); when it is not JSON, the whole text
    replaced by its masked decoded reading."""
    if not parses(text):
        first = masks[0] if masks else None
        return apply(decode_escapes(text), first) if first else text
    it = iter(masks)

    def token(piece: str) -> str:
        found = next(it, None)
        return apply(piece, found) if found else piece
    return rewrite(text, token)


def split_masked(pieces: list[str], masks: list[Mask]) -> list[str]:
    """Mask a text that arrived as `pieces`, keeping the piece boundaries: each piece gets
    its own unmasked characters, and a placeholder goes in the piece where its span starts
    (a span's characters in later pieces are dropped)."""
    out: list[str] = []
    at = 0                       # offset of the current piece in the whole text
    spans = list(masks)
    i = 0
    for piece in pieces:
        lo, hi = at, at + len(piece)
        parts: list[str] = []
        pos = lo
        while pos < hi:
            while i < len(spans) and spans[i].end <= pos:
                i += 1
            span = spans[i] if i < len(spans) else None
            if span is None or span.start >= hi:
                parts.append(piece[pos - lo:])
                break
            if span.start > pos:
                parts.append(piece[pos - lo:span.start - lo])
                pos = span.start
            if span.start == pos:
                parts.append(span.placeholder)
            pos = min(span.end, hi)
        out.append("".join(parts))
        at = hi
    return out
