"""One HTTP request's state, fed ext_proc messages and answering with ext_proc replies.

This is the protocol core, free of gRPC: `Exchange.handle(message)` returns the replies for
one ProcessingRequest (zero, one or two; serialised bytes or messages). A dispatch table maps
each message type to its handler. The rules it keeps (docs/architecture.md, "Protocol choices"):

* one reply per message, of the matching type, outside FULL_DUPLEX_STREAMED;
* in FULL_DUPLEX_STREAMED body mode only `streamed_response` replies, any number of them
  (N:M), always ending with `end_of_stream`; a request body a policy reads holds the request
  headers' reply until its verdict (Envoy holds the headers meanwhile: nothing goes upstream
  before every policy passed the body);
* `mode_override` in the headers replies, so bodies no policy needs are never sent to us;
* a response a transform may end early (`BodyTransform.ends_early`: a stream cut at its
  budget) is switched from STREAMED to FULL_DUPLEX_STREAMED; when the transform has `ended`,
  every transform is finished and our `end_of_stream` ends the response cleanly, and Envoy
  then closes the upstream (docs/spend.md, "The stream cut");
* a policy's `Reject` becomes an ImmediateResponse in the route provider's error format; any
  other exception becomes a 500 in that format, logged here, with no trace sent to the client.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from . import headerlimits, unshown
from . import protocol as P
from .codecs.jsoncap import SourceTooLarge
from .config import RouteConfig
from .context import succeeded
from .errors import error_body
from .policy import (
    MESSAGE_STARTED,
    Answer,
    BodyTransform,
    Policy,
    Reject,
    cancelled,
    sources_too_large,
)
from .providers import forget_request
from .providers.endpoints import Endpoint
from .providers.tokens import FIRST_TOKEN
from .request_body import Reply
from .response_body import ResponseBody
from .routing import ROUTING_HEADERS, unrouted

log = logging.getLogger("extproc.exchange")

Handler = Callable[["Exchange", Any], Coroutine[Any, Any, Sequence[Reply]]]
_JSON = "application/json"


class Exchange(ResponseBody):
    """State of one HTTP request/response pair as seen over one ext_proc stream (policies
    change headers with the `HeaderMutations` methods; the request body is `RequestBody`'s,
    the response body `ResponseBody`'s)."""

    def __init__(self, route: RouteConfig | None, route_name: str | None = None,
                 max_request_body: int = 8 * 1024 * 1024,
                 trust_override: bool = True,
                 header_limits: headerlimits.HeaderLimits | None = None) -> None:
        self.max_request_body = max_request_body
        #: Envoy's request header limits (`headerlimits`): a request whose headers the
        #: gateway's changes would take past them is refused with a 431 (None: unchecked)
        self.header_limits = header_limits
        self._held_headers: pb.HttpHeaders | None = None
        #: whether a body mode Envoy is configured NONE may be upgraded by mode_override
        #: (`server.trust_mode_override`; the servicer passes the config's, False by default)
        self.trust_override = trust_override
        self._declared = False       # the stream's first message carried protocol_config
        self._awaiting_body = False  # a request body asked for by override, not seen yet
        self._body_seen = False      # a request body message came
        self.request_headers: dict[str, str] = {}
        self.response_headers: dict[str, str] = {}
        self.status = 0
        self.request_id = ""
        self.metadata: dict[str, object] = {}   # sent with the next reply, then cleared
        self.state: dict[str, Any] = {}          # per-request scratch space for policies
        self.done = False
        self.request_ended = False               # the request had no body (headers only)
        self.released = False                    # the request's last reply let it go on
        self.request_mode: int = P.NONE
        self.response_mode: int = P.NONE
        self.request_body_bytes = 0
        self.response_body_bytes = 0
        # what happened, for metrics and the access log line (monotonic seconds)
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None       # first output from upstream
        self.first_delivered_at: float | None = None   # first output released to the client
        self.ended_at: float | None = None              # the response's last byte
        self.rejection: tuple[int, str | None] | None = None   # a policy's refusal
        self.failed = False
        # the first token: in what the upstream sends, and in what the client gets (they
        # differ where the unified front translates the reply)
        self._watch: re.Pattern[bytes] | None = None
        self._delivered_watch: re.Pattern[bytes] | None = None
        self._configured: tuple[int, int] | None = None
        super().__init__()   # HeaderMutations' (the body sides keep their state here)
        self._held: list[bytes] = []
        self._held_size = 0
        self._transforms: list[BodyTransform] = []
        self._async_transforms = False
        self._ends_early = False                 # a transform may end the response early
        self._cut = False                        # ...and did: nothing more is sent
        self._buffered_seen = False              # the one BUFFERED reply body message came
        self._buffered_part = False              # ...without end_of_stream (see _refusal)
        self.endpoint: Endpoint | None = None    # what the request is (reading.py)
        self._codings: list[str] = []            # the request body's content-encoding
        self.bind(route, route_name)

    def bind(self, route: RouteConfig | None, name: str | None,
             refusal: tuple[int, str] | None = None) -> None:
        """Set the route (`extproc.routing` finds it before the request headers are
        handled); with no route, the request is refused with `refusal` (status, message)."""
        self.route = route
        self.route_name = name
        self.provider = route.provider if route else "gateway"   # its error format
        self._unrouted = refusal
        self._needs_request_body = bool(route and route.needs_request_body)
        #: the policies that see bodies: all, but on a pass-through request none that reads
        #: the provider's JSON (`Policy.reads_json`: guards, usage, token budgets)
        self._body_policies = route.policies if route else ()

    @property
    def transforms(self) -> list[BodyTransform]:
        """The response transforms running now (empty before response headers)."""
        return self._transforms

    def close(self) -> None:
        """Drop per-request buffers and transforms (called when the stream ends, however)."""
        self._held.clear()
        self._held_size = 0
        self._transforms = []
        self.done = True

    # --- the protocol -------------------------------------------------------------------
    async def handle(self, req: pb.ProcessingRequest, kind: str | None = None
                     ) -> Sequence[Reply]:
        """Replies to one message from Envoy (`kind`: its oneof name, if already known)."""
        if self._configured is None:
            cfg = req.protocol_config
            self._configured = (cfg.request_body_mode, cfg.response_body_mode)
            self.request_mode, self.response_mode = self._configured
            self._declared = req.HasField("protocol_config")
            if req.observability_mode:
                unshown.observed(self.route_name or "unknown")
        kind = kind or req.WhichOneof("request")
        handler = _DISPATCH.get(kind)  # type: ignore[arg-type]
        if handler is None:
            return ()
        MESSAGE_STARTED.set(time.monotonic())   # (the calls made for it share its time)
        try:
            replies = await handler(self, getattr(req, kind))
        except Exception as exc:
            replies = self._refusal(kind, exc)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise   # the stream itself is cancelled: Envoy closed it
            # a policy's own wait cancelled (a plugin's deadline cancelling its call out, a
            # shared task another request's end cancelled) while Envoy waits for the reply:
            # a failure like any other. Let through, it would end the stream with gRPC's OK,
            # which Envoy takes for "processing complete" and sends the message on unread.
            replies = self._refusal(kind, cancelled(exc))
        if kind == "request_headers" and self.header_limits is not None:
            return headerlimits.enforce(self, req.request_headers, replies, self.header_limits)
        return replies

    def _refusal(self, kind: str, exc: Exception) -> Sequence[Reply]:
        """The reply when handling a message raised: a policy's Reject, or a 500."""
        if isinstance(exc, Answer):   # the gateway answers the request itself
            self.done = True
            self.status = exc.status
            self.ended_at = time.monotonic()
            return (self._with_metadata(P.immediate(exc.status, exc.body, exc.headers,
                                                    exc.details or "extproc_answered")),)
        if isinstance(exc, Reject) and self._buffered_part and \
                exc.details == "extproc_unreadable_reply" and self._transforms:
            # an unreadable part of a reply asked for BUFFERED, with more to come: most
            # likely Envoy ignored the override (trailers are the only other reason)
            exc = unshown.refuse_ignored_response_override(self.route_name or "unknown")
        if isinstance(exc, SourceTooLarge):   # read by a policy that does not refuse it
            exc = sources_too_large(kind.startswith("request"))   # itself (token limits)
        if isinstance(exc, Reject):
            # what it said, not the exception: its traceback's frames would hold this exchange
            self.rejection = (exc.status, exc.details)
            return (self._reject(exc),)
        log.error("policy failed on %s (route=%s request_id=%s)", kind, self.route_name,
                  self.request_id, exc_info=exc)
        self.failed = True
        return (self._reject(Reject(500, "internal error in the gateway",
                                    details="extproc_internal_error")),)

    def _reject(self, r: Reject) -> pb.ProcessingResponse:
        self.done = True
        headers = {"content-type": _JSON, **r.headers}
        body = error_body(self.provider, r.status, r.message, r.kind, r.code, r.param)
        return self._with_metadata(P.immediate(r.status, body, headers,
                                               r.details or f"extproc_{r.status}"))

    def _with_metadata(self, msg: pb.ProcessingResponse) -> pb.ProcessingResponse:
        if self.metadata:
            P.fill_metadata(msg.dynamic_metadata, self.metadata)
            self.metadata = {}
        return msg

    def _full_duplex(self) -> bool:
        return P.FULL_DUPLEX in (self._configured or ())

    async def _on_request_headers(self, h: pb.HttpHeaders) -> Sequence[Reply]:
        self.request_headers = headers = P.read_headers(h)
        self.request_id = headers.get("x-request-id", "")
        self.request_ended = h.end_of_stream
        if self.route is None:
            raise Reject(*(self._unrouted or unrouted(self.route_name)),
                         details="extproc_unknown_route")
        for name in ROUTING_HEADERS:
            if name in headers:   # the client's: the proxy in front may have routed by it
                raise Reject(400, f"the request carries {name}, a header only the gateway "
                             "sets; the proxy in front of it must remove a client's before "
                             "routing", details="extproc_routing_header")
        self._read(headers)
        if h.end_of_stream:
            self._needs_request_body = False
        configured = self._configured
        if configured is not None and P.NONE in configured:   # (rare: asked only then)
            # before any policy acts (a request limit would count it): bodies they cannot see
            missing = unshown.needs_unshown(
                configured, self._declared, self.trust_override, self._needs_request_body,
                any(p.needs_response_body for p in self._body_policies))   # pass-through: none
            if missing:
                raise unshown.refuse_unshown(self.route_name or self.route.name, missing)
        for policy in self.route.policies:
            await policy.on_request_headers(self)
        want_req = P.wanted_mode(self.request_mode, self._needs_request_body, P.BUFFERED)
        want_resp = P.wanted_mode(self.response_mode, self.route.needs_response_body,
                                  P.STREAMED)
        override = None
        if not self._full_duplex() and (want_req, want_resp) != (self.request_mode,
                                                                  self.response_mode):
            override = ProcessingMode(request_body_mode=want_req, response_body_mode=want_resp)
            # a body Envoy is configured not to send comes only if it honours the override
            self._awaiting_body = self.request_mode == P.NONE and want_req != P.NONE
            self.request_mode, self.response_mode = want_req, want_resp
        if self.request_mode == P.FULL_DUPLEX and self._needs_request_body:
            # Envoy sends the body at once and holds the headers until their reply: it
            # waits for the body's verdict (`_after_held_headers`), so the provider gets
            # nothing, the credential included, for a request a body policy refuses
            self._held_headers = h
            return ()
        if not self._needs_request_body:   # no policy reads the body: it follows unheld
            self.released = True
        return self._headers_reply(False, override)

    def _headers_reply(self, response: bool, override: ProcessingMode | None
                       ) -> Sequence[Reply]:
        """The one reply to a headers message, with what is pending for it (then cleared)."""
        sets, removes = (self._resp_set, self._resp_remove) if response \
            else (self._req_set, self._req_remove)
        clear = not response and self.clear_route_cache and bool(sets or removes)
        data = P.headers_reply(response, sets, removes, self.metadata, override, clear)
        sets.clear()
        removes.clear()
        self.metadata = {}
        if clear:
            self.clear_route_cache = False
        return (data,)


    async def _on_response_headers(self, h: pb.HttpHeaders) -> Sequence[Reply]:
        self.response_headers = P.read_headers(h)
        if self._awaiting_body:   # Envoy ignored the override: the request went unread
            self._awaiting_body = False
            raise unshown.refuse_ignored_override(self.route_name or "unknown")
        try:
            self.status = int(self.response_headers.get(":status", "0"))
        except ValueError:
            self.status = 0
        if self._held_headers is not None:
            # Envoy answered while the request's headers waited for the body's verdict (a
            # timeout, a request it refused itself): the request never went upstream
            self._held_headers = None
            self._common(False)   # the request's pending changes, never to be sent
            self.state["local_reply"] = True
            if self.status < 400:
                raise Reject(502, "the gateway got a reply to a request it never let "
                             "through", details="extproc_unseen_body")
        policies = self.route.policies if self.route is not None else self._unseen_request()
        if not (self.request_ended or self._body_seen) and self.request_mode != P.NONE:
            self.state["local_reply"] = True   # Envoy's own answer (a 413): sent nowhere
            if self.status < 400 and self._needs_request_body:
                # not Envoy's: the upstream answered a request whose body no policy saw
                # (an HTTP/2 body of trailers alone, which Envoy does not show us)
                raise Reject(502, "the gateway got a reply to a request whose body it "
                             "never saw", details="extproc_unseen_body")
        if h.end_of_stream:
            self.ended_at = time.monotonic()
        elif succeeded(self.status) and self.state.get("stream"):
            adapter = self.endpoint.adapter if self.endpoint else None
            self._watch = self._delivered_watch = getattr(adapter, "first_token", None) \
                or FIRST_TOKEN.get(self.provider)
            backend = self.state.get("backend_provider")   # the unified front: what the
            if backend is not None:                       # upstream sends is the backend's
                self._watch = FIRST_TOKEN.get(backend)
        for policy in policies:
            await policy.on_response_headers(self)
        if self.response_mode != P.NONE and not h.end_of_stream:
            self._transforms = [t for p in self._body_policies if p.needs_response_body
                                and (t := p.response_transform(self)) is not None]
            self._async_transforms = any(t.is_async for t in self._transforms)
            self._ends_early = any(t.ends_early for t in self._transforms)
        forget_request(self.state)
        override = None
        if not self._transforms and self.response_mode != P.NONE and not self._full_duplex():
            # nothing will touch this body: ask Envoy not to send it
            override = ProcessingMode(request_body_mode=self.request_mode,
                                      response_body_mode=P.NONE)
            self.response_mode = P.NONE
        elif self.response_mode == P.STREAMED and any(
                getattr(t, "whole_body", False) for t in self._transforms):
            # a transform decides on the whole body (and may still refuse it): buffered, the
            # response headers wait for its verdict
            override = ProcessingMode(request_body_mode=self.request_mode,
                                      response_body_mode=P.BUFFERED)
            self.response_mode = P.BUFFERED
        elif self.response_mode == P.STREAMED and self._ends_early:
            # a transform may end the response before the upstream does: only an
            # end_of_stream of our own (FULL_DUPLEX_STREAMED) ends it cleanly, and Envoy then
            # closes the upstream; in STREAMED it could only drop the rest, or reset
            override = ProcessingMode(request_body_mode=self.request_mode,
                                      response_body_mode=P.FULL_DUPLEX)
            self.response_mode = P.FULL_DUPLEX
        return self._headers_reply(True, override)

    def _unseen_request(self) -> tuple[Policy, ...]:
        """The policies of a reply to a request whose headers never reached the processor:
        none. Envoy answered it itself (it refuses a WebSocket upgrade on a route that
        allows none, before ext_proc sees the request): its refusal passes on as it is. A
        reply that is no refusal would be one no policy read the request of: refused."""
        if self.status < 400:
            raise Reject(502, "the gateway got a reply to a request it never saw",
                         details="extproc_unseen_request")
        return ()


_DISPATCH: dict[str, Handler] = {
    "request_headers": Exchange._on_request_headers,
    "request_body": Exchange._on_request_body,
    "request_trailers": Exchange._on_request_trailers,
    "response_headers": Exchange._on_response_headers,
    "response_body": Exchange._on_response_body,
    "response_trailers": Exchange._on_response_trailers,
}
