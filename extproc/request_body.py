"""The request body side of an `Exchange`: what reads the body (decided as the request is
classified: the policies a pass-through endpoint leaves, the codings to undo), held
STREAMED chunks, the size limit, the body as every policy reads it (`reading.read_body`,
decoded and parsed once), each policy's `on_request_body`, and the one reply that carries
the result (a body mutation with its content-length in BUFFERED, a `streamed_response` in
FULL_DUPLEX_STREAMED, after the request headers' reply held for the body's verdict), trailers
included. A request with no body to an endpoint whose body a
policy reads is refused, and such a body goes upstream labelled `application/json`, the way
the policies read it. A base class of `Exchange`, which owns the state it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from . import headerlimits, unshown
from . import protocol as P
from .mutations import HeaderMutations
from .policy import Policy, Reject
from .reading import Unreadable, encodings, read_body, read_endpoint

if TYPE_CHECKING:
    from .config import RouteConfig
    from .providers.endpoints import Endpoint

log = logging.getLogger("extproc.exchange")

Reply = P.Reply


class RequestBody(HeaderMutations):
    """The request body's handling; the attributes are the `Exchange`'s."""

    route: RouteConfig | None
    endpoint: Endpoint | None
    request_headers: dict[str, str]
    request_id: str
    state: dict[str, Any]
    metadata: dict[str, object]
    max_request_body: int
    request_body_bytes: int
    request_mode: int
    route_name: str | None
    _needs_request_body: bool
    _awaiting_body: bool
    request_ended: bool
    released: bool
    _body_seen: bool
    _body_policies: tuple[Policy, ...]
    _held: list[bytes]
    _held_size: int
    _codings: list[str]
    provider: str
    done: bool
    rejection: tuple[int, str | None] | None
    #: Envoy's request header limits, checked on the request headers reply (None: unchecked)
    header_limits: headerlimits.HeaderLimits | None
    #: the request headers message whose reply waits for the body (FULL_DUPLEX_STREAMED)
    _held_headers: pb.HttpHeaders | None

    def _with_metadata(self, msg: pb.ProcessingResponse) -> pb.ProcessingResponse:
        raise NotImplementedError   # the Exchange's: the pending metadata on a reply

    def _headers_reply(self, response: bool, override: Any) -> Sequence[Reply]:
        raise NotImplementedError   # the Exchange's: a headers reply with what is pending

    def _read(self, headers: dict[str, str]) -> None:
        """Classify the request by its canonical target (sent upstream if it differs), and
        commit to decoding a compressed body that a policy will read."""
        assert self.route is not None
        self.endpoint, path = read_endpoint(self.route.provider, self.route.passthrough,
                                            headers)
        if path is not None:
            headers[":path"] = path
            self.set_request_header(":path", path)
        if self.endpoint.passthrough and not self.request_ended \
                and headers.get(":method") in ("GET", "HEAD", "OPTIONS"):
            # (OPTIONS too, found by review: a listing's OPTIONS carried a prompt past the
            # guards, which let listings through without `unguarded` as reading methods)
            raise Unreadable(400, f"a {headers.get(':method')} request may not carry a body "
                             "here", "extproc_unexpected_body")
        if self.endpoint.passthrough:   # auth and request limits only; plugins as they like
            self._body_policies = tuple(p for p in self.route.policies if not p.reads_json)
            self._needs_request_body = any(p.needs_request_body for p in self._body_policies)
        elif self.route.reads_request_body:
            if self.request_ended:      # no body at all: nothing a policy could read
                raise Unreadable(400, f"the request has no body ({self.endpoint.name} takes "
                                 "a JSON body)", "extproc_no_body")
            self._codings = encodings(headers.get("content-encoding", ""))
            if self._codings:           # the provider gets the body as the policies read it
                self.remove_request_header("content-encoding")
            if headers.get("content-type", "") != "application/json":
                # (a parameter too: `charset=utf-7` makes a server that honours it, aiohttp's
                # `request.json()` or Express's body-parser, decode another text)
                # the provider picks its parser by it: it reads the body as the policies
                # read it, JSON, whatever the client labelled it (form data, protobuf)
                self.set_request_header("content-type", "application/json")

    async def _on_request_body(self, b: pb.HttpBody) -> Sequence[Reply]:
        self.request_body_bytes += len(b.body)
        self._awaiting_body = False
        self._body_seen = True
        if not self.request_headers:   # Envoy skips them: no policy classified the request
            raise unshown.refuse_skipped_headers(self.route_name or "unknown", "request")
        duplex = self.request_mode == P.FULL_DUPLEX
        if not self._needs_request_body:
            if duplex:
                return (P.streamed_reply(False, b.body, b.end_of_stream),)
            return (P.CONTINUE_REQUEST_BODY,)
        # BUFFERED sends the whole body in one message (end_of_stream is false only when
        # trailers follow); only STREAMED and FULL_DUPLEX chunks are held until the end.
        if self.request_mode == P.BUFFERED_PARTIAL and not b.end_of_stream:
            # the part Envoy buffered, the rest going upstream unseen: a policy that reads
            # the body would read part of it (a mesh's BufferedPartial), so it is refused
            raise Reject(413, "request body exceeds what the gateway's Envoy buffers for "
                         "the policies to read", details="extproc_body_too_large")
        final = b.end_of_stream or self.request_mode in (P.BUFFERED, P.BUFFERED_PARTIAL)
        if not final:
            self._hold(b.body)
            # STREAMED: drop the chunk for now (it is held); FULL_DUPLEX: answer nothing yet
            return () if duplex else (P.body_reply(False, b""),)
        return await self._finish_request_body(b.body, duplex)

    def _hold(self, chunk: bytes) -> None:
        self._held.append(chunk)
        self._held_size += len(chunk)
        self._within_limit(self._held_size)

    def _within_limit(self, size: int) -> None:
        if size > self.max_request_body:  # Envoy's own limit check is not exact
            raise Reject(413, "request body exceeds the gateway's limit of "
                         f"{self.max_request_body} bytes", details="extproc_body_too_large")

    async def _finish_request_body(self, last: bytes, duplex: bool) -> Sequence[Reply]:
        held = bool(self._held)
        if held:
            self._hold(last)
            body = b"".join(self._held)
            self._held, self._held_size = [], 0
        else:
            body = last
            self._within_limit(len(body))
        assert self.route is not None
        original = body
        new = self._readable(body)
        for policy in self._body_policies:
            if policy.needs_request_body:
                replaced = await policy.on_request_body(self, new)
                if replaced is not None:
                    new = replaced
        self.released = True   # every policy passed it: the replies below let it go on
        if duplex:
            return self._after_held_headers(P.streamed_reply(False, new, True))
        extra = None
        if new is not original and self.request_mode == P.BUFFERED:
            extra = {"content-length": str(len(new))}
        common = self._common(False, extra)
        if new is original and not held:
            if common is None:
                return (self._with_metadata(pb.ProcessingResponse(
                    request_body=pb.BodyResponse())),) if self.metadata \
                    else (P.CONTINUE_REQUEST_BODY,)
        else:
            common = common or pb.CommonResponse()
            common.body_mutation.body = new
        return (self._with_metadata(pb.ProcessingResponse(
            request_body=pb.BodyResponse(response=common))),)

    def _after_held_headers(self, last: Reply) -> Sequence[Reply]:
        """The last reply to a FULL_DUPLEX_STREAMED body a policy read, after the reply to the
        request headers, held for the body's verdict (`_on_request_headers`). Envoy holds
        the request's headers until that reply: the provider is sent nothing, the injected
        credential included, before every policy has passed the body, and a refusal is an
        answer the upstream never sees. The reply carries what the body's policies set too
        (the unified front's path, backend and credential), checked against Envoy's header
        limits as the headers reply always is."""
        held, self._held_headers = self._held_headers, None
        if held is None:
            return (last,)
        (head,) = self._headers_reply(False, None)
        if self.header_limits is not None:
            checked = headerlimits.enforce(self, held, (head,), self.header_limits)
            if checked[0] is not head:   # the 431 that replaces it: the request ends here
                return checked
        return (head, last)

    def _readable(self, body: bytes) -> bytes:
        """The body as every policy reads it (`reading.read_body`), parsed once: the parse
        is left where `providers.read_request` finds it."""
        endpoint = self.endpoint
        if endpoint is None or endpoint.adapter is None or self.route is None \
                or not self.route.reads_request_body:
            return body
        body, read = read_body(endpoint, body, self._codings, self.max_request_body,
                               self.request_headers.get(":path", ""), self.request_id)
        self.state["_read"] = (body, read)
        return body

    async def _on_request_trailers(self, t: pb.HttpTrailers) -> Sequence[Reply]:
        if self.request_mode != P.FULL_DUPLEX:
            if self._held:  # STREAMED with trailers: held chunks can no longer be released
                log.warning("request trailers after a held STREAMED body (request_id=%s); "
                            "use BUFFERED request bodies on this route", self.request_id)
            return (P.CONTINUE_REQUEST_TRAILERS,)
        # the body ends with the trailers: close our side of it
        if self._needs_request_body:
            body_replies = await self._finish_request_body(b"", True)
            if self.done:   # the held headers reply was refused (a 431): the request ends
                return body_replies
        else:
            body_replies = (P.streamed_reply(False, b"", True),)
        return (*body_replies, P.CONTINUE_REQUEST_TRAILERS)
