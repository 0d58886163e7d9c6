"""Gemini / Vertex AI ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents``: pure
builders, no IO.

* countTokens: ``{"totalTokens": N, "promptTokensDetails": [...]}`` (Vertex adds
  ``totalBillableCharacters``), N counted over the body's ``systemInstruction`` and
  ``contents`` and those of a ``generateContentRequest``.
* embedContent: ``{"embedding": {"values": [...]}}``; Vertex adds ``usageMetadata``
  (``promptTokenCount``) and ``truncated``.
* batchEmbedContents: ``{"embeddings": [{"values": [...]}, ...]}``, one per ``requests[]``.

Vectors are deterministic (``outputDimensionality`` values, default 8). Nothing streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from extproc.mock import google
from extproc.mock.common import (
    RequestError,
    count_prompt_tokens,
    dump_compact,
    dump_pretty,
    texts_of_parts,
)
from extproc.mock.openai_embeddings import DIMENSIONS, vector_for

METHODS = ("countTokens", "embedContent", "batchEmbedContents")

_GEMINI_PATH = re.compile(r"^/(?P<ver>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>\w+)$")
_VERTEX_PATH = re.compile(
    r"^/(?P<ver>v1|v1beta1)/(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)


@dataclass(frozen=True)
class Route:
    """A parsed countTokens / embedContent / batchEmbedContents path."""

    model: str
    method: str
    vertex: bool

    def validate(self, request: dict[str, Any]) -> None:
        """Raise RequestError unless the body fits the method."""
        if self.method == "embedContent":
            _content(request, "EmbedContentRequest")
        elif self.method == "batchEmbedContents":
            requests = request.get("requests")
            if not isinstance(requests, list) or not requests:
                raise RequestError("* BatchEmbedContentsRequest.requests: requests must not "
                                   "be empty\n", "requests")
            for item in requests:
                _content(item if isinstance(item, dict) else {}, "EmbedContentRequest")
        else:
            contents = request.get("contents")
            if contents is not None and not isinstance(contents, list):
                raise RequestError("* CountTokensRequest.contents: must be a list\n")

    def extract_echo(self, request: dict[str, Any]) -> str:
        """Nothing: neither method has reply text to echo into."""
        return ""

    def build(self, request: dict[str, Any]) -> bytes:
        """The reply body of the method."""
        if self.method == "countTokens":
            return _count(request, self.vertex)
        if self.method == "embedContent":
            body: dict[str, Any] = {"embedding": {"values": _vector(request)}}
            if self.vertex:
                body["usageMetadata"] = {"promptTokenCount": _tokens([request])}
                body["truncated"] = False
            return (dump_pretty(body) + "\n").encode("utf-8")
        requests = [r for r in request.get("requests") or [] if isinstance(r, dict)]
        body = {"embeddings": [{"values": _vector(r)} for r in requests]}
        return (dump_pretty(body) + "\n").encode("utf-8")


def parse_path(path: str) -> Route | None:
    """Parse a Gemini or Vertex path of one of ``METHODS``; None otherwise."""
    for pattern, vertex in ((_GEMINI_PATH, False), (_VERTEX_PATH, True)):
        match = pattern.match(path)
        if match and match["method"] in METHODS:
            return Route(match["model"], match["method"], vertex)
    return None


def _content(request: dict[str, Any], name: str) -> None:
    if not isinstance(request.get("content"), dict | str):
        raise RequestError(f"* {name}.content: content is not specified\n", "content")


def _content_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return texts_of_parts(content.get("parts")) if isinstance(content, dict) else []


def _tokens(requests: list[dict[str, Any]]) -> int:
    texts: list[str] = []
    for request in requests:
        texts += _content_texts(request.get("content"))
    return count_prompt_tokens(texts)


def _vector(request: dict[str, Any]) -> list[float]:
    config = request.get("embedContentConfig")
    config = config if isinstance(config, dict) else {}
    dims = request.get("outputDimensionality") or config.get("outputDimensionality")
    dims = dims if isinstance(dims, int) and not isinstance(dims, bool) and dims > 0 \
        else DIMENSIONS
    return vector_for(dump_compact(request.get("content")), dims)


def _count(request: dict[str, Any], vertex: bool) -> bytes:
    total = google.prompt_tokens(request)
    inner = request.get("generateContentRequest")
    if isinstance(inner, dict):
        total += google.prompt_tokens(inner)
    body: dict[str, Any] = {"totalTokens": total}
    if vertex:
        chars = sum(len(t) for c in request.get("contents") or [] for t in _content_texts(c))
        body["totalBillableCharacters"] = chars
    body["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": total}]
    return (dump_pretty(body) + "\n").encode("utf-8")
