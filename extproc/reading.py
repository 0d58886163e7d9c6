"""The canonical reading of a request: the one form every policy and adapter reads, equal to
what the provider will act on (sans-IO).

* **Path.** `canonical_target(raw)` percent-decodes the path once, as the provider's server
  does, and re-encodes it minimally; a path that would decode to something else on a second
  look (an encoded `%`, `/`, `\\`, `?`, `#`, a control character, invalid UTF-8) is refused.
  The canonical path is what goes upstream whenever it differs from the client's, so the
  provider cannot read the path another way than the gateway did. The query is parsed the
  way providers parse it (`&` separated, `%XX` and `+` decoded) and sent on as it came; a
  parameter given twice, in any case, is ambiguous (is it the first `alt` or the last?) and
  refused, and so is a raw `;` anywhere in the query: some servers split parameters on it,
  others read it as part of a value, so `?key=x;$ct=...` could be one harmless parameter to
  the gateway and a refused one to the provider (`%3B` is a `;` in a value to every
  server). Everything that reads the query (the endpoint's checks, the credential strip of
  `auth.querycreds`) reads it this one way.
* **Body encoding.** `decode_body` undoes `content-encoding` (gzip, x-gzip, deflate, br, zstd,
  stacked in the order given), never producing more than a bound (no decompression bomb); an
  unknown encoding is a 415.
* **JSON.** `strict_json` parses a body as one JSON object, refusing what parsers disagree on:
  duplicate keys (Python keeps the last, others the first), NaN and Infinity (and a number
  too large for a double, `1e999`, which reads as Infinity), nesting deeper than
  `MAX_DEPTH`, a top-level value that is not an object, invalid UTF-8; and, before the
  parse, more objects, arrays or values than the parser and the guards should walk
  (`codecs.jsonbounds`, 413).

* **Endpoint.** `read_endpoint` classifies the canonical target (`providers.endpoints`).
* **The whole body.** `read_body` does all of the above for one endpoint, then checks the
  shapes of its text fields (`providers.shapes`) and has the endpoint's adapter read it.

Every refusal is an `Unreadable` (a `Reject` with the status to answer: 400, 413 or 415), or
a 404 `Reject` for an endpoint the route does not serve.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
import zlib
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from .codecs import jsonbounds
from .codecs.jsonbounds import MAX_CONTAINERS, MAX_DEPTH, MAX_VALUES
from .codecs.jsonunique import RepeatedKey, unique_pairs
from .pathsegments import dot_like_segment, dot_segment
from .policy import Reject
from .providers.base import Prompt
from .providers.endpoints import BadQuery, Endpoint, Passthrough, Unknown, classify
from .providers.fieldcase import case_variant, may_fold
from .providers.shapes import check as check_shape
from .target import PATH_SAFE, Target, fold_name

log = logging.getLogger("extproc.reading")
SUPPORTED_ENCODINGS = ("gzip", "x-gzip", "deflate", "br", "zstd", "identity")

#: a target with nothing to decode: no '%', no '+' (a space in a query), no '#', no controls
_PLAIN = re.compile(r"/[A-Za-z0-9/:@!$&'()*,;=._~-]*(?:\?[A-Za-z0-9/:@!$&'()*,;=._~?-]*)?")
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fF]|5[cC]|25)")
_BAD_DECODED = re.compile(r"[%\\?#\x00-\x1f\x7f-\x9f]")
#: headers a server may take for the request's method instead of ':method'
_METHOD_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")


class Unreadable(Reject):
    """A request the gateway cannot read the one way the provider would."""

    def __init__(self, status: int, message: str, details: str) -> None:
        super().__init__(status, message, details=details)


def _decode(raw: str, what: str, plus: bool = False) -> str:
    if plus:
        raw = raw.replace("+", " ")
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(400, f"the request {what} is not valid UTF-8 once decoded",
                         "extproc_bad_path") from None
    return text


def canonical_target(raw: str) -> Target:
    """The canonical reading of a `:path` value; `Unreadable` (400) for an ambiguous one."""
    if _PLAIN.fullmatch(raw):   # nothing encoded: read as is, sent as is
        path, _, query = raw.partition("?")
        if ";" in query or dot_segment(path):
            return _slow_target(raw)   # refused there
        pairs = [(n, v) for n, _, v in (item.partition("=") for item in query.split("&")
                                         if item)] if query else []
        if len({fold_name(n) for n, _ in pairs}) != len(pairs):
            return _slow_target(raw)   # a repeated name: refused there, with its name
        return Target(path, pairs, raw)
    return _slow_target(raw)


def _slow_target(raw: str) -> Target:
    if not raw.isascii():
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:   # a raw byte that is not UTF-8 (HTTP/2 passes one in
            # the query; `read_headers` keeps it as a surrogate): found by review, a 500
            raise Unreadable(400, "the request path holds a byte that is not UTF-8",
                             "extproc_bad_path") from None
    path, sep, query = raw.partition("?")
    if "#" in raw:
        raise Unreadable(400, "the request path carries a fragment ('#')", "extproc_bad_path")
    if not path.startswith("/"):
        raise Unreadable(400, "the request path must start with '/'", "extproc_bad_path")
    if _ENCODED_SEPARATOR.search(path):
        raise Unreadable(400, "the request path holds an encoded '/', '\\' or '%' that "
                         "servers read differently", "extproc_bad_path")
    if ";" in query:
        raise Unreadable(400, "the request query holds a ';', which servers read differently "
                         "(a parameter separator to some, part of a value to others); "
                         "encode it as %3B", "extproc_ambiguous_query")
    decoded = _decode(path, "path") if "%" in path else path
    if _BAD_DECODED.search(decoded):
        raise Unreadable(400, "the request path holds an encoded or control character that "
                         "servers read differently ('%', '\\', '?', '#')", "extproc_bad_path")
    if not decoded.isascii():
        folded = unicodedata.normalize("NFKC", decoded)
        if folded.count("/") != decoded.count("/") or _BAD_DECODED.search(folded):
            # a fullwidth solidus or percent sign (found by review): one '/' more to a
            # server that normalises, and `a<U+FF0F>..<U+FF0F>chat` a dot segment there
            raise Unreadable(400, "the request path holds a character a server may read as "
                             "'/', '%', '\\', '?' or '#' (a fullwidth form)",
                             "extproc_bad_path")
    if dot_like_segment(decoded):   # (`dot_segment`'s as written among them)
        # (found by review: left as written, /v1/files/../chat/completions matched a
        # pass-through's /v1/files/** while a server resolving it reads a chat completion;
        # Envoy's normalize_path resolves them first, a proxy in front may not)
        raise Unreadable(400, "the request path holds a '.' or '..' segment (or one a server "
                         "may read as one), which servers resolve differently (or not at "
                         "all)", "extproc_bad_path")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    if sep and query:
        for item in query.split("&"):
            if not item:
                continue
            name, _, value = item.partition("=")
            name = _decode(name, "query", plus=True)
            value = _decode(value, "query", plus=True)
            if fold_name(name) in seen:   # (in any case: servers differ on whether it counts)
                raise Unreadable(400, f"query parameter {name[:40]!r} is given more than once",
                                 "extproc_ambiguous_query")
            seen.add(fold_name(name))
            pairs.append((name, value))
    # the query goes upstream as sent: percent-decoding is read alike by every server, but
    # not '+' (a space to some, a plus to others); the values that matter (Google's alt)
    # are refused unless they read the same either way
    return Target(decoded, pairs, quote(decoded, safe=PATH_SAFE) + (sep + query if query else ""))


# ------------------------------------------------------------------------------ encodings


def encodings(header: str) -> list[str]:
    """The codings of a `content-encoding` value, in the order they were applied; identity
    dropped. `Unreadable` (415) names the first one the gateway cannot decode."""
    out = []
    for item in header.split(","):
        coding = item.strip().lower()
        if not coding or coding == "identity":
            continue
        if coding not in SUPPORTED_ENCODINGS:
            raise Unreadable(415, f"content-encoding {coding!r} is not supported; send the "
                             "body uncompressed or as gzip, deflate, br or zstd",
                             "extproc_unsupported_encoding")
        out.append(coding)
    return out


def decode_body(body: bytes, codings: list[str], limit: int) -> bytes:
    """`body` with `codings` undone (last applied first); at most `limit` bytes come out,
    past it a 413. A body that does not decode is a 400."""
    for coding in reversed(codings):
        try:
            body = _decode_one(body, coding, limit)
        except Unreadable:
            raise
        except Exception:  # zlib.error, brotli.error, zstd.ZstdError, EOFError...
            raise Unreadable(400, f"the request body is not valid {coding} data",
                             "extproc_bad_encoding") from None
    return body


def _too_big(limit: int) -> Unreadable:
    return Unreadable(413, f"the request body decompresses to more than the gateway's limit "
                      f"of {limit} bytes", "extproc_body_too_large")


def _decode_one(body: bytes, coding: str, limit: int) -> bytes:
    if coding in ("gzip", "x-gzip", "deflate"):
        if coding == "deflate":  # RFC 9110 deflate is zlib-wrapped; some clients send raw
            wbits = zlib.MAX_WBITS if body[:1] and (body[0] & 0x0F) == 8 and \
                int.from_bytes(body[:2], "big") % 31 == 0 else -zlib.MAX_WBITS
        else:
            wbits = 16 + zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise _too_big(limit)
        if not d.eof or d.unused_data:
            raise ValueError("truncated or trailing data")
        return out
    if coding == "br":
        import brotli  # type: ignore[import-untyped]

        b = brotli.Decompressor()
        out = b.process(body, output_buffer_limit=limit + 1)
        if len(out) > limit or not b.is_finished():
            if len(out) > limit:
                raise _too_big(limit)
            raise ValueError("truncated")
        return out
    if coding == "zstd":
        import zstandard  # type: ignore[import-untyped]

        with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True) as r:
            out = r.read(limit + 1)
            if len(out) > limit:
                raise _too_big(limit)
        z = zstandard.ZstdDecompressor().decompressobj()  # bounded now: checks the frame ends
        if z.decompress(body) != out or not z.eof or z.unused_data:
            raise ValueError("truncated or trailing data")
        return out
    raise _too_big(limit)  # not reached: encodings() refuses the rest


# ----------------------------------------------------------------------------------- JSON


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number with a fraction or an exponent, as a double; one too large for a double
    (`1e999`) would be read as infinity, which is `Infinity` in disguise: refused like it
    (written back, it would be the literal `Infinity`, which is not JSON)."""
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:24]} overflows to Infinity, which is not JSON")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=unique_pairs, parse_constant=_constant,
                            parse_float=_finite)


def strict_json(body: bytes) -> dict[str, Any]:
    """`body` as one JSON object, read the one way every parser agrees on; `Unreadable`
    (400) saying what is wrong otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(400, "the request body is not valid UTF-8", "extproc_bad_json") \
            from None
    if text.startswith("\ufeff"):
        text = text[1:]
    opening = body.count(b"[") + body.count(b"{")
    values = opening + body.count(b",")
    if opening > MAX_DEPTH or values > MAX_VALUES:
        try:
            jsonbounds.check(body, opening > MAX_CONTAINERS, values > MAX_VALUES)
        except jsonbounds.TooDeep:
            raise _too_deep() from None
        except jsonbounds.TooMany as exc:
            raise Unreadable(413, f"the request body holds {exc}",
                             "extproc_body_too_large") from None
    try:
        doc = _DECODER.decode(text)
    except RepeatedKey as exc:
        raise Unreadable(400, f"the request body repeats the key {exc.name!r}; providers "
                         "read such bodies differently", "extproc_bad_json") from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise Unreadable(400, f"the request body is not valid JSON ({_short(exc)})",
                         "extproc_bad_json") from None
    if not isinstance(doc, dict):
        raise Unreadable(400, "the request body must be a JSON object", "extproc_bad_json")
    variant = case_variant(doc) if may_fold(body) else None
    if variant is not None:   # one field to a reader that folds case (`fieldcase`)
        raise _folded(*variant)
    return doc


def _folded(key: str, field: str) -> Unreadable:
    return Unreadable(400, f"the request body's key {key[:40]!r} differs from the field "
                      f"{field!r} only by case, which servers that match keys "
                      "case-insensitively read as that field", "extproc_bad_json")


def _short(exc: ValueError) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def _too_deep() -> Unreadable:
    return Unreadable(400, f"the request body nests deeper than {MAX_DEPTH} levels",
                      "extproc_bad_json")


# ------------------------------------------------------------------------------ endpoints


def read_endpoint(provider: str, passthrough: tuple[Passthrough, ...],
                  headers: dict[str, str]) -> tuple[Endpoint, str | None]:
    """The endpoint of a request, from its canonical target, and the canonical `:path` to
    send upstream when it differs from the client's (else None). Raises `Unreadable` (400)
    for an ambiguous target and a `Reject` (404, in the provider's format) for an endpoint
    the route neither serves nor lets pass."""
    raw = headers.get(":path", "")
    target = canonical_target(raw)
    method = headers.get(":method", "GET")
    for name in _METHOD_OVERRIDES:   # Google honours the first: another method than ours
        if name in headers:          # (and frameworks the others, found by review)
            raise Unreadable(400, f"{name} is not accepted by the gateway",
                             "extproc_bad_method")
    if "x-goog-fieldmask" in headers:   # Google's field mask: it can drop the usage report
        raise Unreadable(400, "x-goog-fieldmask is not accepted by the gateway (a field mask "
                         "can drop the usage report the budgets settle on)", "extproc_bad_query")
    try:
        endpoint = classify(provider, method, target, passthrough)
    except Unknown as exc:
        raise Reject(404, f"the gateway does not serve {method} {target.path} on this route "
                     f"({provider} endpoints served: {', '.join(exc.served)})",
                     details="extproc_unknown_endpoint") from None
    except BadQuery as exc:
        raise Unreadable(400, str(exc), "extproc_bad_query") from None
    return endpoint, (target.raw if target.raw != raw else None)


#: the longest model name read (provider names are under 100 characters; an Azure
#: deployment's at most 64)
MAX_MODEL_CHARS = 256


def read_body(endpoint: Endpoint, body: bytes, codings: list[str], limit: int, path: str,
              request_id: str = "") -> tuple[bytes, tuple[dict[str, Any], Prompt]]:
    """A request body as the provider reads it: decoded (`codings`, at most `limit` bytes),
    one strict JSON object, its text fields in shapes the adapter reads, and the endpoint
    adapter's reading of it. Returns the decoded body and (JSON, Prompt); `Unreadable`
    refuses it otherwise."""
    assert endpoint.adapter is not None
    if codings:
        body = decode_body(body, codings, limit)
    doc = strict_json(body)
    wrong = check_shape(endpoint.name, doc)
    if wrong is not None:   # a text field in a shape no adapter reads: never unguarded
        raise Unreadable(400, f"the request body is not a valid {endpoint.name} request: "
                         f"{wrong}", "extproc_bad_shape")
    try:
        prompt = endpoint.adapter.parse_request(path, doc)
    except Exception:   # an adapter's reading must never pass a body on unread
        log.warning("request body unreadable by %s (request_id=%s)", endpoint.name,
                    request_id, exc_info=True)
        raise Unreadable(400, f"the request body is not a valid {endpoint.name} request",
                         "extproc_bad_json") from None
    model = getattr(prompt, "model", None)
    if isinstance(model, str) and (len(model) > MAX_MODEL_CHARS or not model.isprintable()):
        # no provider serves such a name; it would only fill logs, metadata and labels
        raise Unreadable(400, f"the model name is not one a provider serves (more than "
                         f"{MAX_MODEL_CHARS} characters, or a control character)",
                         "extproc_bad_model")
    return body, (doc, prompt)
