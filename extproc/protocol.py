"""Builders for ext_proc ProcessingResponse messages, and header reading.

Headers are read from `raw_value` and written to `raw_value` only (Envoy ignores `value` and
rejects both). Replies that never change are built and serialised once: the servicer sends
bytes for them, so the per-chunk pass-through path allocates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.protobuf.struct_pb2 import Struct, Value

NONE = ProcessingMode.NONE
STREAMED = ProcessingMode.STREAMED
BUFFERED = ProcessingMode.BUFFERED
BUFFERED_PARTIAL = ProcessingMode.BUFFERED_PARTIAL
FULL_DUPLEX = ProcessingMode.FULL_DUPLEX_STREAMED
MODE_NAMES = {v: k for k, v in ProcessingMode.BodySendMode.items()}
#: one reply to Envoy: a message, or its bytes serialised ahead
Reply = bytes | pb.ProcessingResponse
METADATA_NAMESPACE = "extproc"

_BAD = str.maketrans({"\r": " ", "\n": " ", "\0": " "})


def read_headers(msg: pb.HttpHeaders) -> dict[str, str]:
    """Header map as {lower-case name: value}; repeated headers are joined with ','.

    Values are UTF-8 with undecodable bytes kept as surrogates, so a value copied into a
    mutation is written back byte for byte."""
    headers = msg.headers.headers
    fast = {h.key: h.raw_value.decode("utf-8", "surrogateescape") for h in headers}
    if len(fast) == len(headers):
        return fast  # no repeated name (the common case): nothing to join
    out: dict[str, str] = {}
    for h in headers:
        value = h.raw_value.decode("utf-8", "surrogateescape")
        if h.key in out:
            out[h.key] = f"{out[h.key]},{value}"
        else:
            out[h.key] = value
    return out


def _header_bytes(value: str) -> bytes:
    """A header value's bytes: as read (`read_headers` keeps undecodable bytes as
    surrogates), a lone surrogate from elsewhere (a JSON `\\ud800` escape) written as its
    escape."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace")


def text(value: str) -> str:
    """`value` as protobuf can hold it: a lone surrogate (a JSON `\\ud800` escape in a
    model name or an upstream's error message, an undecodable header byte) written as its
    escape, where assigning it would raise."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def header_mutation(set_headers: Mapping[str, str],
                    remove: Iterable[str] = ()) -> pb.HeaderMutation:
    """A HeaderMutation; values are sanitised so no CR, LF or NUL can reach a header."""
    return pb.HeaderMutation(
        set_headers=[HeaderValueOption(header=HeaderValue(
            key=k, raw_value=_header_bytes(v.translate(_BAD))))
            for k, v in set_headers.items()],
        remove_headers=list(remove))


def immediate(status: int, body: bytes, headers: Mapping[str, str], details: str
              ) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(immediate_response=pb.ImmediateResponse(
        status=HttpStatus(code=status), body=body,
        headers=header_mutation(headers), details=details.replace(" ", "_")))


def _set_value(target: Value, v: object) -> None:
    """`Struct.update`'s conversion, without its per-value Python overhead."""
    if v is None:
        target.null_value = 0  # type: ignore[assignment]
    elif v is True or v is False:
        target.bool_value = v
    elif isinstance(v, int | float):
        target.number_value = v
    elif isinstance(v, str):
        target.string_value = text(v)
    elif isinstance(v, Mapping):
        fields = target.struct_value.fields
        target.struct_value.SetInParent()
        for key, item in v.items():
            _set_value(fields[text(key)], item)
    elif isinstance(v, list | tuple):
        values = target.list_value
        values.SetInParent()
        for item in v:
            _set_value(values.values.add(), item)
    else:
        raise ValueError(f"unexpected metadata value type {type(v).__name__}")


def fill_metadata(target: Struct, values: Mapping[str, object]) -> None:
    """Write `values` under our namespace into a ProcessingResponse's dynamic_metadata."""
    ours = target.fields[METADATA_NAMESPACE]
    ours.struct_value.SetInParent()
    fields = ours.struct_value.fields
    for key, v in values.items():  # mostly flat strings and numbers: set them right here
        cls = v.__class__
        if cls is str:
            try:
                fields[key].string_value = v  # type: ignore[assignment]
            except UnicodeEncodeError:   # (rare: see `text`)
                fields[key].string_value = text(v)  # type: ignore[arg-type]
        elif cls is int or cls is float:
            fields[key].number_value = v  # type: ignore[assignment]
        else:
            _set_value(fields[key], v)


def dynamic_metadata(values: Mapping[str, object]) -> Struct:
    s = Struct()
    fill_metadata(s, values)
    return s


def _bytes(msg: pb.ProcessingResponse) -> bytes:
    return msg.SerializeToString()


#: pass-through replies, serialised once
CONTINUE_REQUEST_HEADERS = _bytes(pb.ProcessingResponse(request_headers=pb.HeadersResponse()))
CONTINUE_RESPONSE_HEADERS = _bytes(pb.ProcessingResponse(response_headers=pb.HeadersResponse()))
CONTINUE_REQUEST_BODY = _bytes(pb.ProcessingResponse(request_body=pb.BodyResponse()))
CONTINUE_RESPONSE_BODY = _bytes(pb.ProcessingResponse(response_body=pb.BodyResponse()))
CONTINUE_REQUEST_TRAILERS = _bytes(pb.ProcessingResponse(request_trailers=pb.TrailersResponse()))
CONTINUE_RESPONSE_TRAILERS = _bytes(
    pb.ProcessingResponse(response_trailers=pb.TrailersResponse()))


def body_reply(response: bool, body: bytes | None) -> pb.ProcessingResponse:
    """One BodyResponse (BUFFERED/STREAMED): `body` replaces the chunk; None keeps it.

    Built in place: a message passed to a constructor is copied, so nesting constructors
    would copy the body once per level."""
    msg = pb.ProcessingResponse()
    common = (msg.response_body if response else msg.request_body).response
    if body is None:
        common.SetInParent()
    else:
        common.body_mutation.body = body
    return msg


def streamed_message(response: bool, body: bytes, end_of_stream: bool
                     ) -> pb.ProcessingResponse:
    """One FULL_DUPLEX_STREAMED BodyResponse carrying `streamed_response` (built in place,
    as `body_reply`)."""
    msg = pb.ProcessingResponse()
    out = (msg.response_body if response else msg.request_body
           ).response.body_mutation.streamed_response
    out.body = body
    out.end_of_stream = end_of_stream
    if not body and not end_of_stream:
        out.SetInParent()
    return msg


def streamed_reply(response: bool, body: bytes, end_of_stream: bool) -> bytes:
    """`streamed_message`, serialised."""
    return streamed_message(response, body, end_of_stream).SerializeToString()


#: serialised headers replies by everything they say (bounded; cleared when full): the
#: same identity's headers and metadata on every request of an authenticated client. Only
#: small replies are kept: one that carries a client's long path (rewritten to its canonical
#: form) is not worth keeping, and 4096 of them would let clients fill the memory
_HEADERS_REPLIES: dict[tuple[Any, ...], bytes] = {}
MEMO_SIZE = 4096
MEMO_MAX_BYTES = 2048


def headers_reply(response: bool, sets: Mapping[str, str], removes: Sequence[str],
                  metadata: Mapping[str, object], override: ProcessingMode | None,
                  clear_route_cache: bool = False) -> bytes:
    """The serialised reply to a headers message: a constant when it says nothing, and the
    memoised bytes when an earlier reply said the same. `clear_route_cache` (Envoy picks the
    route again) is set only with a header mutation, what it would route on."""
    if not sets and not removes and override is None and not metadata:
        return CONTINUE_RESPONSE_HEADERS if response else CONTINUE_REQUEST_HEADERS
    key = (response, tuple(sets.items()), tuple(removes), freeze(metadata),
           None if override is None else (override.request_body_mode,
                                          override.response_body_mode), clear_route_cache)
    cached = _HEADERS_REPLIES.get(key)
    if cached is not None:
        return cached
    headers = pb.HeadersResponse()
    if sets or removes:
        headers.response.header_mutation.CopyFrom(header_mutation(sets, removes))
        headers.response.clear_route_cache = clear_route_cache
    msg = pb.ProcessingResponse(response_headers=headers) if response \
        else pb.ProcessingResponse(request_headers=headers)
    if override is not None:
        msg.mode_override.CopyFrom(override)
    if metadata:
        fill_metadata(msg.dynamic_metadata, metadata)
    data = msg.SerializeToString()
    if len(data) > MEMO_MAX_BYTES:
        return data
    if len(_HEADERS_REPLIES) >= MEMO_SIZE:
        _HEADERS_REPLIES.clear()
    _HEADERS_REPLIES[key] = data
    return data


def wanted_mode(configured: int, needed: bool, preferred: int) -> int:
    """The body mode to ask for: NONE when no policy needs the body, else the configured
    mode (or `preferred` when the filter is configured NONE)."""
    if not needed:
        return NONE
    return configured if configured != NONE else preferred


def freeze(value: Any) -> Any:
    """A hashable stand-in for metadata values; scalars keep their type (True != 1 here)."""
    if isinstance(value, dict):
        return tuple((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return (list, *(freeze(v) for v in value))
    return (value.__class__, value)
