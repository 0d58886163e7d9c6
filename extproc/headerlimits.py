"""Envoy's request header limits, kept by the server: a request whose headers would not fit
once the gateway has changed them is refused with a 431 in the provider's format.

Envoy checks an ext_proc header mutation against the limits of its codec
(`max_request_headers_kb`, `max_headers_count`: `server.max_request_headers_kb` and
`server.max_request_headers_count` here) on the whole header map: the pseudo-headers and what
Envoy added itself (x-forwarded-for, x-forwarded-proto, x-request-id, ...) count too. A request
just under the codec's limits therefore passes the codec, and then any header the gateway
sets makes Envoy answer a bare 500 (`header_mutation_result_exceeds_limit`). Sans-IO: the
check reads the headers message Envoy sent and the reply the exchange made, and swaps a
reply whose mutation would not fit for the 431. It keeps room for a later `content-length`
(set with a rewritten BUFFERED body), so the body reply cannot fail the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envoy.config.core.v3.base_pb2 import HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from . import protocol as P
from .errors import error_body, error_kind

if TYPE_CHECKING:
    from .config import ServerConfig
    from .context import Context
    from .protocol import Reply

DETAILS = "extproc_request_headers_too_large"
#: room kept for a header set with the request body (content-length): one header this long
RESERVE_COUNT = 1
RESERVE_BYTES = 64


@dataclass(frozen=True)
class HeaderLimits:
    max_bytes: int      # key + value bytes over every header, as Envoy counts them
    max_count: int


@functools.lru_cache(maxsize=8)
def of(server: ServerConfig) -> HeaderLimits:
    """The limits a server config names (the same values Envoy's config is rendered with)."""
    return HeaderLimits(max_bytes=server.max_request_headers_kb * 1024,
                        max_count=server.max_request_headers_count)


def after_mutation(headers: Sequence[HeaderValue], mutation: pb.HeaderMutation | None
                   ) -> tuple[int, int, int, int]:
    """(count, bytes) of the header map before and after Envoy applies `mutation`: a set
    replaces every header of its name with one, a removal drops them all."""
    count = len(headers)
    size = 0
    touched: dict[str, tuple[int, int]] = {}
    names: set[str] = set()
    if mutation is not None:
        names = {o.header.key.lower() for o in mutation.set_headers}
        names.update(n.lower() for n in mutation.remove_headers)
    for h in headers:
        n = len(h.key) + len(h.raw_value)
        size += n
        if h.key in names:
            c, b = touched.get(h.key, (0, 0))
            touched[h.key] = (c + 1, b + n)
    before = (count, size)
    if mutation is not None:
        for name in mutation.remove_headers:
            c, b = touched.pop(name.lower(), (0, 0))
            count, size = count - c, size - b
        for option in mutation.set_headers:
            key = option.header.key.lower()
            c, b = touched.pop(key, (0, 0))
            count, size = count - c + 1, size - b + len(key) + len(option.header.raw_value)
    return (*before, count, size)


def fits(headers: Sequence[HeaderValue], mutation: pb.HeaderMutation | None,
         limits: HeaderLimits) -> bool:
    """Whether Envoy will take `mutation` on these headers, with room left for a later
    content-length."""
    count0, size0, count1, size1 = after_mutation(headers, mutation)
    return (max(count0, count1) + RESERVE_COUNT <= limits.max_count
            and max(size0, size1) + RESERVE_BYTES <= limits.max_bytes)


def _quick_fit(msg: pb.HttpHeaders, read: Mapping[str, str], reply_size: int,
               limits: HeaderLimits) -> bool:
    """A cheap sufficient test (the path of nearly every request): the reply's encoded size
    bounds what it adds; the headers' bytes are bounded by the text already read from them
    (`read`: `protocol.read_headers(msg)`; a character is at most 4 bytes of UTF-8) when no
    name repeats, else by their encoded size."""
    count = len(msg.headers.headers)
    if count + reply_size // 4 + RESERVE_COUNT > limits.max_count:
        return False
    if count == len(read):
        bound = 4 * (sum(map(len, read)) + sum(map(len, read.values())))
    else:
        bound = msg.ByteSize()
    return bound + reply_size + RESERVE_BYTES <= limits.max_bytes


def enforce(ex: Context, msg: pb.HttpHeaders, replies: Sequence[Reply],
            limits: HeaderLimits) -> Sequence[Reply]:
    """`replies` to a request headers message, or the 431 that replaces them when the
    request's headers, as the reply would leave them, exceed Envoy's limits."""
    if len(replies) != 1:
        return replies
    reply = replies[0]
    if reply.__class__ is bytes:
        if _quick_fit(msg, ex.request_headers, len(reply), limits):  # type: ignore[arg-type]
            return replies
        parsed = pb.ProcessingResponse.FromString(reply)  # type: ignore[arg-type]
    else:
        parsed = reply  # type: ignore[assignment]
        if parsed.WhichOneof("response") != "request_headers":
            # a refusal already, and it stays (a 401, a 429 say more), unless it is a 400
            # about the request's shape (no body, say) while its headers by themselves are
            # past the limits: the 431 is the more specific answer
            if parsed.WhichOneof("response") != "immediate_response" \
                    or parsed.immediate_response.status.code != 400 \
                    or fits(msg.headers.headers, None, limits):
                return replies
            return (refusal(ex, parsed, limits),)
        if _quick_fit(msg, ex.request_headers, parsed.ByteSize(), limits):
            return replies
    if parsed.WhichOneof("response") != "request_headers":
        return replies
    common = parsed.request_headers.response
    mutation = common.header_mutation if common.HasField("header_mutation") else None
    if fits(msg.headers.headers, mutation, limits):
        return replies
    return (refusal(ex, parsed, limits),)


def refusal(ex: Context, reply: pb.ProcessingResponse, limits: HeaderLimits
            ) -> pb.ProcessingResponse:
    """The 431 in the route provider's error format, with the metadata `reply` carried."""
    message = (f"request headers too large: they must fit in {limits.max_bytes // 1024} KiB "
               f"and {limits.max_count} headers with what the gateway adds")
    ex.done = True
    ex.rejection = (431, DETAILS)
    body = error_body(ex.provider, 431, message, error_kind(ex.provider, 400))
    out = P.immediate(431, body, {"content-type": "application/json"}, DETAILS)
    if reply.HasField("dynamic_metadata"):
        out.dynamic_metadata.CopyFrom(reply.dynamic_metadata)
    return out
