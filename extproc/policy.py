"""The policy interface: what a route's policies may see and do to one HTTP exchange.

A `Policy` is built once per route when the config loads; per-request state lives on the
`Context` it is handed (`extproc.context`, which the `Exchange` implements) or in the
`BodyTransform` it returns, never on the policy. Policies declare which bodies they need,
so a route whose policies need no body costs Envoy no body messages (the servicer answers
with `mode_override`).

Built-in policies (auth, rate limits, guards) and custom ones loaded from config with
`plugins: [{class: "package.module:Class", options: {...}}]` share this interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context

#: when the ext_proc message being handled arrived (monotonic seconds; set by the exchange
#: for each message it awaits): the calls policies and transforms make while handling it
#: share the message's time (`guards.webhook.ask_by`), which Envoy's message_timeout bounds
MESSAGE_STARTED: ContextVar[float | None] = ContextVar("extproc_message_started",
                                                       default=None)


class PolicyCancelled(RuntimeError):
    """A policy's own wait was cancelled while the stream was not (`cancelled`)."""


def cancelled(exc: BaseException) -> PolicyCancelled:
    """`asyncio.CancelledError` raised in a policy while the stream goes on, as the failure
    it is (a 500, logged with it as the cause): a plugin's deadline that cancels its call
    out, or a shared task another request's end cancelled."""
    failure = PolicyCancelled("a policy's wait was cancelled while the stream was not")
    failure.__cause__ = exc
    return failure


class Reject(Exception):
    """Raised by a policy to answer the client itself, in the route provider's error format.

    `message` is shown to the client; never put request content or secrets in it.
    """

    def __init__(self, status: int, message: str, *, kind: str | None = None,
                 headers: Mapping[str, str] | None = None, details: str | None = None,
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code   # OpenAI's error `code` (other formats have none)
        self.param = param   # OpenAI's error `param`: the request field at fault, if one is
        self.headers = dict(headers or {})
        self.details = details


def sources_too_large(request: bool) -> Reject:
    """The refusal of a body whose tool-call arguments and JSON values (tool inputs and
    results) would take the gateway more than `jsoncap.MAX_SOURCE_STEPS` steps to read
    (`SourceTooLarge`): 413 for a request, 502 for a reply."""
    from .codecs.jsoncap import MAX_SOURCE_STEPS
    if request:
        return Reject(413, "the request's tool-call arguments and JSON tool inputs and "
                      f"results hold more than {MAX_SOURCE_STEPS} JSON quotes, brackets and "
                      "escapes together, more than the gateway reads; send less",
                      details="extproc_body_too_large")
    return Reject(502, "the provider's reply has tool-call arguments and JSON values of "
                  f"more than {MAX_SOURCE_STEPS} JSON quotes, brackets and escapes, more "
                  "than the gateway's reply guards read", details="extproc_unreadable_reply")


class Answer(Reject):
    """Raised by a policy to answer the request itself with a body of its own (a 200 the
    gateway serves, such as the unified front's model list): not a refusal."""

    def __init__(self, status: int, body: bytes, *, content_type: str = "application/json",
                 details: str = "extproc_answered") -> None:
        super().__init__(status, "", headers={"content-type": content_type}, details=details)
        self.body = body


class BodyTransform:
    """Rewrites a response body as it streams. Synchronous by default: it runs per chunk.

    `feed` returns the bytes to release now (possibly fewer or more than it was given: it may
    hold back a partial frame); `finish` returns whatever is still held at end of stream.
    Both must be fast and must not block. A transform that must call out (a guard webhook)
    sets `is_async` and overrides `feed_async`/`finish_async` instead.
    """

    #: the exchange awaits `feed_async`/`finish_async` instead of calling `feed`/`finish`
    is_async: bool = False

    #: the transform needs the whole body before it decides (it may raise `Reject` from
    #: `finish`): the exchange then asks Envoy for the body BUFFERED, holding the headers
    whole_body: bool = False
    #: it reads a body in parts as well (a whole-body transform that only prefers the
    #: whole): a reply Envoy sends in parts though asked to buffer it (it ignores
    #: `mode_override`) is read as it comes rather than refused
    parts_ok: bool = False

    #: the transform may end the response before the upstream does (a stream cut at its
    #: budget): the exchange then asks Envoy for the body FULL_DUPLEX_STREAMED, and ends the
    #: response (which closes the upstream) once `ended` turns true
    ends_early: bool = False
    #: nothing more may reach the client: the exchange finishes every transform and ends
    #: the response now
    ended: bool = False

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""

    @property
    def held_bytes(self) -> int:
        """What the transform holds back right now (for the held-bytes gauge)."""
        return 0

    async def feed_async(self, chunk: bytes) -> bytes:
        return self.feed(chunk)

    async def finish_async(self) -> bytes:
        return self.finish()


class Policy:
    """Base class of a route policy. Override only the hooks you need."""

    #: the policy reads or rewrites the request body (Envoy then sends it, buffered)
    needs_request_body: bool = False
    #: the policy reads or rewrites the response body (Envoy then streams it)
    needs_response_body: bool = False
    #: the policy's `on_finish` must run when the exchange ends
    needs_finish: bool = False
    #: its `on_finish` may wait (I/O): the hooks run on from it in a Task of their own,
    #: where a timeout inside them (`asyncio.timeout`) applies; False (it never waits) runs
    #: it in place as the stream ends (settling in memory), which costs no Task
    finish_waits: bool = True
    #: the policy reads the request body as the provider's JSON (the built-in LLM policies):
    #: the exchange then refuses a body that cannot be read one way only (extproc.reading)
    #: before any policy sees it; a plugin leaving it False reads the bytes its own way
    reads_json: bool = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: Mapping[str, Any] = options or {}

    @property
    def name(self) -> str:
        return type(self).__name__

    async def on_request_headers(self, ex: Context) -> None:
        """Inspect `ex.request_headers`; mutate with `ex.set_request_header`; raise `Reject`."""

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        """Inspect the whole request body; return a replacement, or None to keep it."""
        return None

    async def on_response_headers(self, ex: Context) -> None:
        """Inspect `ex.response_headers` and `ex.status`; mutate with `ex.set_response_header`."""

    def response_transform(self, ex: Context) -> BodyTransform | None:
        """Return a per-request transform for the response body, or None to leave it alone."""
        return None

    async def on_finish(self, ex: Context) -> None:
        """The exchange is over, however it ended (completed, rejected, client gone, Envoy
        or upstream reset). Runs after the ext_proc stream has closed, so it can no longer
        change the request or response; for settling accounts (set `needs_finish`)."""


class TransformChain(BodyTransform):
    """Transforms applied in order, as one (async when any part is)."""

    def __init__(self, parts: list[BodyTransform]) -> None:
        self.parts = parts
        self.is_async = any(p.is_async for p in parts)
        self.whole_body = any(p.whole_body for p in parts)
        self.parts_ok = all(p.parts_ok for p in parts)
        self.ends_early = any(p.ends_early for p in parts)

    @property
    def ended(self) -> bool:  # type: ignore[override]
        return any(p.ended for p in self.parts)

    @property
    def held_bytes(self) -> int:
        return sum(p.held_bytes for p in self.parts)

    def feed(self, chunk: bytes) -> bytes:
        return run_transforms(self.parts, chunk, False)

    def finish(self) -> bytes:
        return run_transforms(self.parts, b"", True)

    async def feed_async(self, chunk: bytes) -> bytes:
        return await run_transforms_async(self.parts, chunk, False)

    async def finish_async(self) -> bytes:
        return await run_transforms_async(self.parts, b"", True)


def run_transforms(parts: Sequence[BodyTransform], chunk: bytes, eos: bool) -> bytes:
    """`chunk` through each transform in turn; at the end of the body each one's `finish`
    output goes through the transforms after it."""
    data = chunk
    for t in parts:
        data = t.feed(data) if data else b""
        if eos:
            data += t.finish()
    return data


async def run_transforms_async(parts: Sequence[BodyTransform], chunk: bytes,
                               eos: bool) -> bytes:
    """`run_transforms`, awaiting transforms that call out."""
    data = chunk
    for t in parts:
        data = await t.feed_async(data) if data else b""
        if eos:
            data += await t.finish_async()
    return data


def chain(parts: list[BodyTransform]) -> BodyTransform | None:
    """None for no transform, the transform itself for one, else a `TransformChain`."""
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else TransformChain(parts)
