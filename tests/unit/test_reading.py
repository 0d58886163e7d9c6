"""The canonical reading of a request (extproc.reading) and the endpoint tables
(extproc.providers.endpoints): one form for every policy, equal to what the provider reads,
and a refusal for anything that could be read two ways."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any
from urllib.parse import quote

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.providers.endpoints import (
    BadQuery,
    Passthrough,
    Unknown,
    classify,
)
from extproc.providers.fieldcase import case_variant
from extproc.reading import (
    MAX_DEPTH,
    Unreadable,
    canonical_target,
    decode_body,
    encodings,
    strict_json,
)

# === the target ============================================================================


@pytest.mark.parametrize(("raw", "path", "params"), [
    ("/gemini/v1beta/models/g%3AstreamGenerateContent", "/gemini/v1beta/models/g:"
     "streamGenerateContent", {}),
    ("/x/v1beta/models/g:generateContent?%61lt=s%73e", "/x/v1beta/models/g:generateContent",
     {"alt": "sse"}),
    ("/a?x=1+2&y=&z", "/a", {"x": "1 2", "y": "", "z": ""}),
    ("/caf%C3%A9", "/café", {}),
])
def test_targets_are_read_as_the_provider_decodes_them(raw: str, path: str,
                                                       params: dict[str, str]) -> None:
    target = canonical_target(raw)
    assert (target.path, target.params) == (path, params)
    again = canonical_target(target.raw)          # what goes upstream reads the same
    assert (again.path, again.params, again.raw) == (path, params, target.raw)


@pytest.mark.parametrize("raw", [
    "/a%2Fb", "/a%2fb", "/a%5Cb", "/a%252F", "/a%25", "/a%3Fb", "/a%23b", "/a%00b", "/a%0Ab",
    "/a%FFb", "relative", "/a#frag", "/x?alt=sse&alt=json", "/x?key=1&k%65y=2",
    # dot segments, as written or encoded: one server resolves them, another does not
    "/v1/files/../chat/completions", "/v1/files/%2e%2e/chat/completions", "/v1/./x",
    "/v1/%2E/x", "/v1/x/..", "/v1/x/.", "/v1/.%2e/x", "/..", "/v1/files/x/..;/chat",
    "/v1/x/.;a=1/y",
    # segments a server may read as dot segments: trimmed of spaces, or normalised (NFKC)
    "/v1/files/..%20/chat/completions", "/v1/files/%20..%20/chat", "/v1/x/.%20/y",
    "/v1/files/%EF%BC%8E%EF%BC%8E/chat/completions", "/v1/files/\uff0e\uff0e/chat",
    "/v1/files/%E2%80%A5/chat", "/v1/x/%E2%80%A4/y", "/v1/x/%EF%B9%92%2e/y",
    # ... with any space Python trims, or a format character beside the dots (review)
    "/v1/x/..%C2%85/y", "/v1/x/..%E2%80%8B/y", "/v1/x/%EF%BB%BF../y", "/v1/x/..%C2%AD/y",
    "/v1/x/..%C2%A0/y", "/v1/x/%E3%80%80../y",
    "/v1/x/..%EF%B8%8F/y", "/v1/x/..%CD%8F/y", "/v1/x/..%E3%85%A4/y", "/v1/x/..%F3%A0%84%80/y",
    # a fullwidth '/', '%', '\\', '?' or '#': one more separator to a server normalising
    "/v1/files/a%EF%BC%8F..%EF%BC%8F..%EF%BC%8Fchat/completions", "/v1/files/a\uff0fb",
    "/v1/files/%EF%BC%85%EF%BC%92%EF%BD%85", "/v1/x/%EF%BC%BCy", "/v1/x/%EF%BC%9Fa=1",
    "/v1/x/%EF%BC%83y",
    # C1 controls, as C0 ones
    "/v1/x/a%C2%80b", "/v1/x/a%C2%9Fb",
])
def test_ambiguous_targets_are_refused(raw: str) -> None:
    with pytest.raises(Unreadable) as err:
        canonical_target(raw)
    assert err.value.status == 400


@pytest.mark.parametrize("raw", [
    "/x?key=x;$ct=application/x-protobuf", "/x?key=x;alt=media", "/x?a;b", "/x?a=1&b=2;c",
    "/x?alt=sse;key=K", "/x?%61=1;b", "/x?a=1+2;b", "/x?;",
])
def test_a_raw_semicolon_in_the_query_is_refused(raw: str) -> None:
    """`;` separates parameters for some servers and not for others: `?key=x;$ct=...` is one
    harmless parameter to one reading and a refused `$ct` to another. The gateway reads the
    query one way (`&`), so it refuses what another could read otherwise (deny audit)."""
    with pytest.raises(Unreadable) as err:
        canonical_target(raw)
    assert (err.value.status, err.value.details) == (400, "extproc_ambiguous_query")
    assert "';'" in err.value.message and "%3B" in err.value.message


def test_dot_segments_are_refused_before_a_passthrough_could_match_them() -> None:
    """`/v1/files/../chat/completions` matched a pass-through's `/v1/files/**` (unguarded,
    unmetered) while a server resolving dot segments reads a chat completion."""
    allowed = (Passthrough("/v1/files/**", ("GET", "POST", "DELETE")),)
    assert classify("openai", "POST", canonical_target("/v1/files/f1/content"),
                    allowed).passthrough
    for raw in ("/v1/files/../chat/completions", "/v1/files/%2e%2e/chat/completions",
                "/v1/files/x/../../responses", "/v1/files/x/..;/chat/completions"):
        with pytest.raises(Unreadable) as err:
            classify("openai", "POST", canonical_target(raw), allowed)
        assert (err.value.status, err.value.details) == (400, "extproc_bad_path")
        assert "'..'" in err.value.message
    for raw in ("/v1/files/..%20/chat/completions",
                "/v1/files/%EF%BC%8E%EF%BC%8E/chat/completions"):   # trimmed, normalised
        with pytest.raises(Unreadable) as err:
            classify("openai", "POST", canonical_target(raw), allowed)
        assert (err.value.status, err.value.details) == (400, "extproc_bad_path")
    # a dot inside a segment is no dot segment, in any form
    assert canonical_target("/v1/files/.env/a..b/...").path == "/v1/files/.env/a..b/..."
    assert canonical_target("/v1/files/a%20..%20b/%E2%80%A6").path == \
        "/v1/files/a .. b/\u2026"
    assert canonical_target("/v1/files/caf%C3%A9/%E2%80%A5x").path == \
        "/v1/files/caf\u00e9/\u2025x"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_a_reading_method_through_a_listing_may_carry_no_body(method: str) -> None:
    """A guarded route lets model listings through without `unguarded` for the methods that
    read (GET, HEAD, OPTIONS): none of them may carry a body, which no guard would read (an
    OPTIONS with a prompt passed, found by review); without a body it passes."""
    from extproc import loader
    from extproc import protocol as P
    from extproc.exchange import Exchange
    from tests.unit.test_exchange import request_headers, send
    cfg = loader.parse({"guards": {"pii": {"detectors": ["email"], "action": "reject"}},
                        "routes": [{"name": "o", "provider": "openai", "guards": ["pii"],
                                    "passthrough": [{"path": "/v1/models",
                                                     "methods": ["GET", "HEAD", "OPTIONS"]}]}]})
    for eos, status in ((False, 400), (True, None)):
        ex = Exchange(cfg.route("o"), "o", cfg.server.max_request_body_bytes)
        req = request_headers(path="/v1/models", req_mode=P.BUFFERED, eos=eos)
        [h] = [h for h in req.request_headers.headers.headers if h.key == ":method"]
        h.raw_value = method.encode()
        [reply] = await send(ex, req)
        if status is None:
            assert reply.WhichOneof("response") == "request_headers"
        else:
            assert reply.WhichOneof("response") == "immediate_response"
            assert reply.immediate_response.status.code == status
            assert f"a {method} request may not carry a body".encode() in \
                reply.immediate_response.body


@pytest.mark.parametrize("name", ["x-http-method-override", "x-http-method",
                                  "x-method-override"])
def test_a_method_override_header_is_refused(name: str) -> None:
    """A server honouring one acts on another method than the one the gateway classified."""
    from extproc.reading import read_endpoint
    headers = {":method": "POST", ":path": "/v1/chat/completions", name: "GET"}
    with pytest.raises(Unreadable) as err:
        read_endpoint("openai", (), headers)
    assert (err.value.status, err.value.details) == (400, "extproc_bad_method")
    assert name in err.value.message


def test_an_encoded_semicolon_is_a_semicolon_in_a_value() -> None:
    assert canonical_target("/x?a=1%3B2&b=%3b").params == {"a": "1;2", "b": ";"}
    assert canonical_target("/x/a;b?c=1").path == "/x/a;b"   # not the query's business


async def test_a_semicolon_query_is_refused_before_any_policy() -> None:
    """Through an exchange on a Gemini route with API keys, a query the credential strip
    could once have read as two parameters is refused before authentication even runs."""
    from extproc import loader
    from extproc import protocol as P
    from extproc.auth.apikeys import hash_key
    from extproc.exchange import Exchange
    from tests.unit.test_exchange import request_headers, send
    cfg = loader.parse({"auth": {"api_keys": [{"id": "k", "sha256": hash_key("gw-k")}]},
                        "routes": [{"name": "g", "provider": "gemini",
                                    "auth": {"api_keys": True}}]})
    ex = Exchange(cfg.route("g"), "g", cfg.server.max_request_body_bytes)
    path = "/v1beta/models/m:generateContent?key=gw-k;$ct=application/x-protobuf"
    [reply] = await send(ex, request_headers({"x-goog-api-key": "gw-k"}, path=path,
                                             req_mode=P.BUFFERED))
    assert reply.WhichOneof("response") == "immediate_response"
    assert reply.immediate_response.status.code == 400
    assert b"';'" in reply.immediate_response.body
    assert b"gw-k" not in reply.immediate_response.body


_SEGMENT = st.text(st.sampled_from("abcXYZ019-._~:@!$&'()*+,;="), min_size=1, max_size=12)


@given(st.lists(_SEGMENT, min_size=1, max_size=5), st.data())
def test_any_spelling_of_a_path_has_one_canonical_form(segments: list[str],
                                                       data: st.DataObject) -> None:
    """However a client percent-encodes the characters of a path, the gateway reads (and
    sends upstream) the same one."""
    path = "/" + "/".join(segments)
    spelled = "/" + "/".join(
        "".join(quote(ch, safe="") if data.draw(st.booleans()) else ch for ch in seg)
        for seg in segments)
    if any(seg.partition(";")[0] in (".", "..") for seg in segments):   # a dot segment
        for raw in (path, spelled):
            with pytest.raises(Unreadable):
                canonical_target(raw)
        return
    assert canonical_target(spelled).raw == canonical_target(path).raw
    assert canonical_target(spelled).path == path


# === endpoints =============================================================================


@pytest.mark.parametrize(("provider", "method", "raw", "name", "model", "stream", "array"), [
    ("openai", "POST", "/openai/v1/chat/completions", "chat.completions", None, None, False),
    ("azure", "POST", "/azure/openai/deployments/gpt4o/chat/completions?api-version=1",
     "chat.completions", "gpt4o", None, False),
    ("anthropic", "POST", "/anthropic/v1/messages", "messages", None, None, False),
    ("gemini", "POST", "/gemini/v1beta/models/gemini-2.5-flash%3AstreamGenerateContent",
     "streamGenerateContent", "gemini-2.5-flash", True, True),
    ("gemini", "POST", "/gemini/v1beta/models/m:streamGenerateContent?$alt=sse",
     "streamGenerateContent", "m", True, False),
    ("gemini", "POST", "/gemini/v1beta/models/m:generateContent?alt=json", "generateContent",
     "m", False, False),
    ("vertex", "POST", "/vertex/v1/projects/p/locations/us-central1/publishers/google/models/"
     "m:streamGenerateContent?alt=sse", "streamGenerateContent", "m", True, False),
])
def test_known_endpoints_are_classified(provider: str, method: str, raw: str, name: str,
                                        model: str | None, stream: bool | None,
                                        array: bool) -> None:
    ep = classify(provider, method, canonical_target(raw))
    assert (ep.name, ep.model, ep.path_stream, ep.json_array) == (name, model, stream, array)
    assert ep.adapter is not None and not ep.passthrough


@pytest.mark.parametrize(("provider", "method", "raw"), [
    ("openai", "GET", "/openai/v1/chat/completions"),
    ("openai", "POST", "/openai/v1/chat/completions/"),
    ("openai", "POST", "/openai/v1/chat/completions;x=1"),
    ("openai", "POST", "/openai/v1/files"),
    ("openai", "POST", "/openai/v1/messages"),
    ("anthropic", "POST", "/anthropic/v1/messages/batches"),
    ("anthropic", "POST", "/anthropic/v1/complete"),
    ("gemini", "POST", "/gemini/v1beta/models/m:predict"),
    ("gemini", "POST", "/gemini/v1beta/models/m"),
    ("gemini", "POST", "/gemini/v1beta/cachedContents"),
    ("azure", "POST", "/azure/openai/deployments/d/images/generations"),
])
def test_other_endpoints_are_unknown(provider: str, method: str, raw: str) -> None:
    with pytest.raises(Unknown) as err:
        classify(provider, method, canonical_target(raw))
    assert err.value.served


@pytest.mark.parametrize("query", ["alt=proto", "alt=media", "alt=sse&$alt=json", "alt=SSE"])
def test_google_alt_must_be_readable(query: str) -> None:
    with pytest.raises(BadQuery):
        classify("gemini", "POST",
                 canonical_target(f"/v1beta/models/m:streamGenerateContent?{query}"))


def test_passthrough_lets_only_what_it_names_through() -> None:
    allowed = (Passthrough("/openai/v1/models"), Passthrough("/openai/v1/models/*"),
               Passthrough("/openai/v1/files/**", ("GET", "DELETE")))

    def ok(method: str, raw: str) -> bool:
        try:
            return classify("openai", method, canonical_target(raw), allowed).passthrough
        except Unknown:
            return False

    assert ok("GET", "/openai/v1/models")
    assert ok("GET", "/openai/v1/models/gpt-4o")
    assert not ok("GET", "/openai/v1/models/gpt-4o/x")       # '*' stays in one segment
    assert not ok("POST", "/openai/v1/models")               # GET only, by default
    assert ok("DELETE", "/openai/v1/files/f1/content")
    assert ok("GET", "/openai/v1/files")
    assert not ok("GET", "/openai/v1/filesx")
    # a served endpoint is never a pass-through, whatever the list says
    wide = (Passthrough("/**", ("POST",)),)
    assert not classify("openai", "POST", canonical_target("/v1/chat/completions"),
                        wide).passthrough


# === body encodings ========================================================================

DOC = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
ENCODERS = {
    "gzip": gzip.compress, "x-gzip": gzip.compress, "deflate": zlib.compress,
    "br": brotli.compress, "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_supported_encoding_is_decoded_within_a_bound(coding: str) -> None:
    packed = ENCODERS[coding](DOC)
    assert decode_body(packed, encodings(coding.upper()), len(DOC)) == DOC
    with pytest.raises(Unreadable) as big:           # a decompression bomb stops at the bound
        decode_body(packed, [coding], len(DOC) - 1)
    assert big.value.status == 413
    with pytest.raises(Unreadable) as cut:
        decode_body(packed[:-8], [coding], len(DOC))
    assert cut.value.status == 400
    with pytest.raises(Unreadable) as junk:
        decode_body(b"not " + packed, [coding], len(DOC))
    assert junk.value.status == 400


def test_raw_deflate_and_stacked_encodings_decode() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    packed = raw.compress(DOC) + raw.flush()
    assert decode_body(packed, ["deflate"], len(DOC)) == DOC
    stacked = gzip.compress(brotli.compress(DOC))     # br applied first, then gzip
    assert decode_body(stacked, encodings("br, gzip"), len(DOC)) == DOC
    assert encodings("identity") == [] and encodings("") == []


def test_a_small_bomb_is_stopped_at_the_bound() -> None:
    bomb = gzip.compress(b"0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(Unreadable) as err:
        decode_body(bomb, ["gzip"], 1024 * 1024)
    assert err.value.status == 413


@pytest.mark.parametrize("header", ["compress", "gzip, lzma", "sdch"])
def test_unknown_encodings_are_415(header: str) -> None:
    with pytest.raises(Unreadable) as err:
        encodings(header)
    assert err.value.status == 415


# === strict JSON ===========================================================================


@pytest.mark.parametrize(("body", "says"), [
    (b'{"messages":[],"messages":[{"role":"user","content":"x"}]}', "repeats the key"),
    (b'{"a":{"b":1,"b":2}}', "repeats the key"),
    (b'{"a":NaN}', "not valid JSON"),
    (b'{"a":-Infinity}', "not valid JSON"),
    (b'{"a":1e999}', "overflows to Infinity"),       # Infinity in disguise (deny audit)
    (b'{"a":[-1.5E400]}', "overflows to Infinity"),
    (b'{"a":1.7976931348623159e308}', "overflows to Infinity"),   # just past the largest
    (b"[1,2]", "JSON object"),
    (b'"text"', "JSON object"),
    (b"", "not valid JSON"),
    (b'{"a":1} x', "not valid JSON"),
    (b'{"a":"\xff"}', "UTF-8"),
    (b"[" * 200_000, "nests deeper"),
    (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nests deeper"),
])
def test_bodies_read_two_ways_are_refused(body: bytes, says: str) -> None:
    with pytest.raises(Unreadable) as err:
        strict_json(body)
    assert err.value.status == 400
    assert says in err.value.message


def test_numbers_a_double_holds_read_as_themselves() -> None:
    assert strict_json(b'{"a":1e308,"b":-1.7976931348623157e308,"c":1e-999,"d":0.5}') == {
        "a": 1e308, "b": -1.7976931348623157e308, "c": 0.0, "d": 0.5}


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[{" * 500 + '\\"' + "\\\\" + "]}"
    body = json.dumps({"content": text}).encode()
    assert strict_json(body) == {"content": text}
    deep_ok = b'{"a":' * (MAX_DEPTH - 1) + b"1" + b"}" * (MAX_DEPTH - 1)
    assert strict_json(deep_ok)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=5))
def test_any_plain_json_object_reads_as_itself(doc: dict[str, Any]) -> None:
    """...unless a key, where the APIs put their own fields, differs from one only by case:
    then it is refused (a case-insensitive reader, Go's encoding/json, takes it for that
    field: `fieldcase`, tested on its own in test_folded_keys.py)."""
    for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False)):
        if case_variant(doc) is not None:
            with pytest.raises(Unreadable, match="only by case"):
                strict_json(text.encode())
        else:
            assert strict_json(text.encode()) == doc


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=200)
@given(st.integers(1, MAX_DEPTH + 20), st.text(alphabet='[]{}"\\ab', max_size=20))
def test_the_depth_bound_is_exact(depth: int, filler: str) -> None:
    doc: Any = filler
    for i in range(depth - 1):
        doc = [doc] if i % 2 else {"k": doc}
    body = json.dumps({"x": doc}).encode()
    if _depth({"x": doc}) <= MAX_DEPTH:
        assert strict_json(body) == {"x": doc}
    else:
        with pytest.raises(Unreadable):
            strict_json(body)


def _nested(depth: int, filler: str) -> Any:
    doc: Any = filler
    for i in range(depth):
        doc = [doc] if i % 2 else {"k": doc}
    return doc


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, MAX_DEPTH + 2), st.text(alphabet='[]{}"\\ab',
                                                                  max_size=6)),
                min_size=1, max_size=12))
def test_the_depth_bound_is_exact_over_siblings(pieces: list[tuple[int, str]]) -> None:
    """Many values side by side, some nested past the few levels the quick pass peels off:
    the depth of the deepest one decides, wherever it sits."""
    doc = {"x": [_nested(depth, filler) for depth, filler in pieces]}
    body = json.dumps(doc).encode()
    if _depth(doc) <= MAX_DEPTH:
        assert strict_json(body) == doc
    else:
        with pytest.raises(Unreadable, match="nests deeper"):
            strict_json(body)


@pytest.mark.parametrize("body", [   # (within MAX_CONTAINERS: more are refused, 413)
    b'{"a":[' + b",".join([b"{}"] * 130_000) + b"]}",
    b'{"a":[' + b",".join([b"[" * 126 + b"]" * 126] * 1_000) + b"]}",
    b'{"a":[' + b",".join([b'"[\\"{"'] * 100_000) + b"]}",
])
def test_bracket_heavy_bodies_within_the_bound_read(body: bytes) -> None:
    assert strict_json(body) == json.loads(body)


@pytest.mark.parametrize(("endpoint", "body", "wrong"), [
    ("chat.completions", {"messages": [], "max_tokens": "5"}, "max_tokens"),
    ("chat.completions", {"messages": [], "max_completion_tokens": -1}, "max_completion_tokens"),
    ("chat.completions", {"messages": [], "n": 2.5}, "n"),
    ("chat.completions", {"messages": [], "n": False}, "n"),
    ("completions", {"prompt": "hi", "best_of": "3"}, "best_of"),
    ("responses", {"input": "hi", "max_output_tokens": {"value": 9}}, "max_output_tokens"),
    ("messages", {"messages": [], "max_tokens": "1024"}, "max_tokens"),
    ("chat.completions", {"messages": [], "max_tokens": 5, "n": 2.0}, None),
    ("chat.completions", {"messages": [], "max_tokens": None}, None),
    ("messages", {"messages": [], "max_tokens": 1024}, None),
    ("generateContent", {"generationConfig": {"maxOutputTokens": "9"}}, None),
])
def test_counts_budgets_reserve_by_must_be_integers(endpoint: str, body: dict[str, Any],
                                                    wrong: str | None) -> None:
    from extproc.providers.shapes import check
    said = check(endpoint, body)
    assert said == (None if wrong is None else f"'{wrong}' must be a non-negative integer")
