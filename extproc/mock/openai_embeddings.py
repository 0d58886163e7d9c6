"""OpenAI Embeddings wire format (``POST /v1/embeddings``): pure builders, no IO.

The ``list`` of ``embedding`` objects, one per input (a string, a list of strings, a token
array or a list of token arrays), deterministic vectors of ``dimensions`` values (default 8),
sent as JSON floats or, with ``encoding_format: "base64"`` (what the official SDKs ask for),
as base64 of little-endian float32; usage ``prompt_tokens`` and ``total_tokens``. Never
streamed.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from extproc.mock.common import RequestError, dump_compact, dump_pretty
from extproc.mock.openai_completions import input_tokens

DIMENSIONS = 8


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like an Embeddings request."""
    value = request.get("input")
    if value is None:
        raise RequestError("Missing required parameter: 'input'.", "input")
    if not isinstance(value, str | list) or value in ("", []):
        raise RequestError("'$.input' is invalid. Please check the API reference: "
                           "https://platform.openai.com/docs/api-reference.", "input")
    dims = request.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool)
                             or not 1 <= dims <= 4096):
        raise RequestError("Invalid 'dimensions'.", "dimensions")


def extract_echo(request: dict[str, Any]) -> str:
    """Nothing: an embedding has no reply text to echo into."""
    return ""


def inputs(request: dict[str, Any]) -> list[Any]:
    """The inputs, one per embedding: a string, a list of strings, one token array, or
    a list of token arrays."""
    value = request.get("input")
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(v, int) for v in value):
        return [value]
    return list(value) if isinstance(value, list) else []


def build_response(request: dict[str, Any], model: str) -> bytes:
    """The ``list`` body with one embedding per input and the usage."""
    dims = request.get("dimensions") or DIMENSIONS
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs(request)):
        vector = vector_for(dump_compact(item), dims)
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = input_tokens(request.get("input"))
    body = {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return (dump_pretty(body) + "\n").encode("utf-8")


def vector_for(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text`, values exact in float32."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 128 for b in digest)
        counter += 1
    raw = raw[:dims]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in raw]
