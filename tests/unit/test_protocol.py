"""The ext_proc message builders and header reading (extproc.protocol)."""

from __future__ import annotations

import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.struct_pb2 import Struct
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc import protocol as P


def http_headers(*pairs: tuple[str, bytes]) -> pb.HttpHeaders:
    return pb.HttpHeaders(headers=HeaderMap(
        headers=[HeaderValue(key=k, raw_value=v) for k, v in pairs]))


# --- reading -----------------------------------------------------------------------------

def test_read_headers_uses_raw_value() -> None:
    h = http_headers((":method", b"POST"), (":path", b"/v1/x?y=1"), ("x-a", b"1"))
    assert P.read_headers(h) == {":method": "POST", ":path": "/v1/x?y=1", "x-a": "1"}


def test_read_headers_ignores_value_field() -> None:
    h = pb.HttpHeaders(headers=HeaderMap(headers=[
        HeaderValue(key="x-a", value="from-value", raw_value=b"from-raw")]))
    assert P.read_headers(h) == {"x-a": "from-raw"}


def test_read_headers_joins_repeated_headers() -> None:
    h = http_headers(("x-multi", b"a"), ("x-other", b"z"), ("x-multi", b"b"),
                     ("x-multi", b"c"))
    assert P.read_headers(h) == {"x-multi": "a,b,c", "x-other": "z"}


def test_read_headers_never_fails_on_arbitrary_bytes() -> None:
    h = http_headers(("x-bin", bytes(range(256))))
    assert len(P.read_headers(h)["x-bin"]) == 256


def test_read_headers_empty() -> None:
    assert P.read_headers(pb.HttpHeaders()) == {}


# --- writing -----------------------------------------------------------------------------

def test_header_mutation_writes_raw_value_only() -> None:
    m = P.header_mutation({"x-a": "1", "x-b": "two"}, remove=["x-gone"])
    got = {o.header.key: o.header.raw_value for o in m.set_headers}
    assert got == {"x-a": b"1", "x-b": b"two"}
    assert all(o.header.value == "" for o in m.set_headers)
    assert list(m.remove_headers) == ["x-gone"]


@pytest.mark.parametrize(("value", "expected"), [
    ("a\r\nb", b"a  b"),
    ("a\nb", b"a b"),
    ("a\rb", b"a b"),
    ("a\0b", b"a b"),
    ("\r\n\r\nx-injected: 1", b"    x-injected: 1"),
])
def test_header_mutation_sanitises_cr_lf_nul(value: str, expected: bytes) -> None:
    (opt,) = P.header_mutation({"x-a": value}).set_headers
    assert opt.header.raw_value == expected
    assert not {0, 10, 13} & set(opt.header.raw_value)


def test_header_mutation_empty() -> None:
    m = P.header_mutation({})
    assert not m.set_headers and not m.remove_headers


# --- replies -----------------------------------------------------------------------------

@pytest.mark.parametrize(("constant", "kind"), [
    (P.CONTINUE_REQUEST_HEADERS, "request_headers"),
    (P.CONTINUE_RESPONSE_HEADERS, "response_headers"),
    (P.CONTINUE_REQUEST_BODY, "request_body"),
    (P.CONTINUE_RESPONSE_BODY, "response_body"),
    (P.CONTINUE_REQUEST_TRAILERS, "request_trailers"),
    (P.CONTINUE_RESPONSE_TRAILERS, "response_trailers"),
])
def test_continue_constants(constant: bytes, kind: str) -> None:
    assert isinstance(constant, bytes)
    msg = pb.ProcessingResponse.FromString(constant)
    assert msg.WhichOneof("response") == kind
    inner = getattr(msg, kind)
    assert inner.ListFields() == []  # no mutation of any kind: pass through
    assert not msg.HasField("mode_override")
    assert not msg.HasField("dynamic_metadata")


@pytest.mark.parametrize(("response", "kind"), [(True, "response_body"),
                                                (False, "request_body")])
def test_body_reply(response: bool, kind: str) -> None:
    keep = P.body_reply(response, None)
    assert keep.WhichOneof("response") == kind
    assert not getattr(keep, kind).response.HasField("body_mutation")

    replace = P.body_reply(response, b"new")
    mutation = getattr(replace, kind).response.body_mutation
    assert mutation.WhichOneof("mutation") == "body"
    assert mutation.body == b"new"


def test_body_reply_empty_body_drops_the_chunk_after_serialisation() -> None:
    """b"" must be an explicit (empty) replacement, not 'no mutation'."""
    msg = pb.ProcessingResponse.FromString(P.body_reply(True, b"").SerializeToString())
    mutation = msg.response_body.response.body_mutation
    assert mutation.WhichOneof("mutation") == "body"
    assert mutation.body == b""


@pytest.mark.parametrize(("response", "kind"), [(True, "response_body"),
                                                (False, "request_body")])
@pytest.mark.parametrize("eos", [True, False])
def test_streamed_reply(response: bool, kind: str, eos: bool) -> None:
    raw = P.streamed_reply(response, b"chunk", eos)
    assert isinstance(raw, bytes)
    msg = pb.ProcessingResponse.FromString(raw)
    assert msg.WhichOneof("response") == kind
    mutation = getattr(msg, kind).response.body_mutation
    assert mutation.WhichOneof("mutation") == "streamed_response"
    assert mutation.streamed_response.body == b"chunk"
    assert mutation.streamed_response.end_of_stream is eos


def test_streamed_reply_empty_end_of_stream() -> None:
    msg = pb.ProcessingResponse.FromString(P.streamed_reply(True, b"", True))
    sr = msg.response_body.response.body_mutation.streamed_response
    assert msg.response_body.response.body_mutation.WhichOneof("mutation") == (
        "streamed_response")
    assert sr.body == b"" and sr.end_of_stream


def test_immediate() -> None:
    msg = P.immediate(429, b'{"x":1}', {"content-type": "application/json",
                                        "retry-after": "1\r\n"}, "too many requests")
    ir = msg.immediate_response
    assert msg.WhichOneof("response") == "immediate_response"
    assert ir.status.code == 429
    assert ir.body == b'{"x":1}'
    assert ir.details == "too_many_requests"
    headers = {o.header.key: o.header.raw_value for o in ir.headers.set_headers}
    assert headers == {"content-type": b"application/json", "retry-after": b"1  "}
    assert all(o.header.value == "" for o in ir.headers.set_headers)


def test_dynamic_metadata_uses_the_extproc_namespace() -> None:
    s = P.dynamic_metadata({"route": "openai", "tokens": 3})
    assert list(s.fields) == [P.METADATA_NAMESPACE] == ["extproc"]
    inner = s.fields["extproc"].struct_value
    assert inner.fields["route"].string_value == "openai"
    assert inner.fields["tokens"].number_value == 3


_LEAF = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
         | st.floats(allow_nan=False) | st.text())
_VALUE = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _VALUE, max_size=6))
def test_dynamic_metadata_matches_struct_update(values: dict[str, object]) -> None:
    """The direct writer builds exactly what protobuf's own Struct.update builds."""
    expected = Struct()
    expected.update({P.METADATA_NAMESPACE: values})
    assert P.dynamic_metadata(values) == expected
    msg = pb.ProcessingResponse()
    P.fill_metadata(msg.dynamic_metadata, values)
    assert msg.dynamic_metadata == expected


def test_dynamic_metadata_refuses_unknown_types() -> None:
    with pytest.raises(ValueError, match="object"):
        P.dynamic_metadata({"x": object()})


def test_read_headers_repeated_name_after_many() -> None:
    h = http_headers(*[(f"x-{i}", b"v") for i in range(5)], ("x-2", b"w"))
    assert P.read_headers(h)["x-2"] == "v,w"
    assert len(P.read_headers(h)) == 5


def test_mode_names() -> None:
    assert P.MODE_NAMES[P.NONE] == "NONE"
    assert P.MODE_NAMES[P.STREAMED] == "STREAMED"
    assert P.MODE_NAMES[P.BUFFERED] == "BUFFERED"
    assert P.MODE_NAMES[P.BUFFERED_PARTIAL] == "BUFFERED_PARTIAL"
    assert P.MODE_NAMES[P.FULL_DUPLEX] == "FULL_DUPLEX_STREAMED"


def test_a_lone_surrogate_is_written_as_its_escape_never_raised() -> None:
    """A JSON `\\ud800` escape in a model name or an upstream's error message decodes to a
    lone surrogate, which protobuf cannot hold: it is written as its escape."""
    s = Struct()
    P.fill_metadata(s, {"model": "gpt\ud800", "error": {"message": "boom \udfff", "k\ud800": 1},
                      "list": ["\ud800"]})
    ours = s.fields[P.METADATA_NAMESPACE].struct_value.fields
    assert ours["model"].string_value == "gpt\\ud800"
    assert ours["error"].struct_value.fields["message"].string_value == "boom \\udfff"
    assert ours["error"].struct_value.fields["k\\ud800"].number_value == 1
    assert ours["list"].list_value.values[0].string_value == "\\ud800"
    m = P.header_mutation({"x-model": "gpt\ud800", "x-raw": "caf\udce9"})
    assert [h.header.raw_value for h in m.set_headers] == [b"gpt\\ud800", b"caf\xe9"]


def test_large_headers_replies_are_not_memoised() -> None:
    """Found by the protocol audit: each memoised reply kept the client's rewritten path, so
    4096 requests with 90 KB paths held about 750 MB. Small replies are still memoised."""
    P._HEADERS_REPLIES.clear()
    small = P.headers_reply(False, {"authorization": "Bearer k"}, (), {}, None)
    assert P.headers_reply(False, {"authorization": "Bearer k"}, (), {}, None) is small
    assert len(P._HEADERS_REPLIES) == 1
    for i in range(50):
        path = "/v1/chat/completions?" + "a" * 90_000 + str(i)
        data = P.headers_reply(False, {":path": path}, (), {}, None)
        assert path.encode() in data
    assert len(P._HEADERS_REPLIES) == 1
    assert sum(len(v) for v in P._HEADERS_REPLIES.values()) <= P.MEMO_MAX_BYTES
