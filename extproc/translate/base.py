"""The unified front's translation interface: OpenAI Chat Completions in front, another
provider's API behind (sans-IO; no gRPC, Envoy or network).

A backend module (`translate.anthropic`, `translate.google`, `translate.openai`) offers:

* ``translate_request(doc, backend, *, drop_unsupported=False) -> Translated``: the client's
  Chat Completions request (a parsed JSON object, already checked and guarded by the route's
  policies) as the backend's request: its body, its request target (path and query, e.g.
  ``/v1/messages`` or ``/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse``)
  and any headers the backend needs besides its credential. A field the backend cannot
  honour raises `Unsupported` naming it (the client gets a 400 in OpenAI's format); with
  ``drop_unsupported`` it is left out instead and named in ``Translated.dropped`` (logged).
  Unknown fields are unsupported too: nothing is silently ignored.
* ``max_output_tokens(doc, default) -> int``: the most one choice of the request
  ``translate_request`` would send may generate (the ``max_tokens`` Anthropic is sent,
  thinking included; Gemini's ``maxOutputTokens``), ``default`` (the route's
  ``default_max_tokens``) standing for what only the model bounds: what a token or spend
  budget reserves, before the request is translated.
* ``reply_translator(status, content_type, ctx) -> ReplyTranslator``: a per-response, incremental
  translator of the backend's reply into what OpenAI would have sent: a
  ``chat.completion`` JSON object, a stream of ``chat.completion.chunk`` SSE events ending
  with ``data: [DONE]``, or (any status other than 200) an OpenAI error object. It is fed the
  body in whatever chunks Envoy delivers and must give the same bytes for any chunking.

Conventions every translator keeps (so the route's later policies read the result as an
OpenAI reply: usage metering, the reply guards, the stream cut):

* Stream chunks are ``data: <compact JSON>\\n\\n`` with ``id``, ``object:
  "chat.completion.chunk"``, ``created``, ``model`` (``ReplyContext.model``), ``choices``
  (``[{"index", "delta", "logprobs": null, "finish_reason"}]``) and ``"usage": null``. The
  first chunk of a choice carries ``delta.role: "assistant"``. Text is ``delta.content``;
  thinking is ``delta.reasoning_content``; tool calls are ``delta.tool_calls[{index, id,
  type: "function", function: {name, arguments: ""}}]`` then argument deltas
  ``[{index, function: {arguments}}]``; a call whose arguments stream empty gets the delta
  ``"{}"`` (as OpenAI sends it: ``""`` is not JSON). The finish chunk has an empty delta and the
  ``finish_reason`` (stop, length, tool_calls, content_filter).
* With ``ReplyContext.include_usage`` the last chunk before ``[DONE]`` is
  ``{"choices": [], "usage": {...}}`` as OpenAI sends it. Usage is OpenAI's reading of the
  backend's counts, exact: ``prompt_tokens`` every prompt token billed (cached and cache
  writes included), ``completion_tokens`` output including reasoning, ``total_tokens``,
  ``prompt_tokens_details.cached_tokens`` (cache reads), ``completion_tokens_details.
  reasoning_tokens``, and, where the backend reports cache writes (Anthropic),
  ``prompt_tokens_details.cache_write_tokens`` (where OpenAI's newer usage reports its own;
  the gateway prices them apart). A backend that reported no counts at all gets no usage
  (no usage chunk, no ``usage`` member: zeros would read as a real report of nothing) and
  the translator sets ``usage_unread``, so budgets charge their worst case, as for a
  native route's reply without its usage report.
* A backend error before the stream starts is a non-200 status: translated whole into
  ``{"error": {"message", "type", "param", "code"}}``. An error event during a stream becomes
  ``data: {"error": {...}}\\n\\n`` (what the OpenAI SDK raises as ``APIError``) and the stream
  ends there, without ``[DONE]``; with ``include_usage``, counts the backend reported before
  it may come first in a usage chunk (Anthropic's: what a native route's meter reads).
* A reply the translator cannot read (not JSON, not the backend's shape, a truncated stream)
  never passes through untranslated: it becomes an OpenAI error (a whole reply) or a final
  error event (a stream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from extproc.providers.values import json_bytes

__all__ = [
    "DONE",
    "Backend",
    "ReplyContext",
    "ReplyTranslator",
    "Translated",
    "Unsupported",
    "chunk_event",
    "openai_error",
    "stop_sequences",
]

DONE = b"data: [DONE]\n\n"


class Unsupported(ValueError):
    """A request field the backend cannot honour (the client gets a 400 naming it)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Backend:
    """Where a front model is served: the provider and its own model name."""

    provider: str                  # openai | azure | anthropic | gemini | vertex
    model: str                     # the backend's model name (Azure: the deployment)
    project: str | None = None     # Vertex: the Google Cloud project ...
    location: str | None = None    # ... and region (e.g. us-central1, global)


@dataclass
class Translated:
    """The backend's request."""

    body: bytes
    path: str                      # request target, query included
    headers: dict[str, str] = field(default_factory=dict)   # besides the credential
    dropped: tuple[str, ...] = ()  # fields left out (drop_unsupported), for the log
    stream: bool = False


@dataclass(frozen=True)
class ReplyContext:
    """What a reply translator needs to know of its request."""

    model: str                     # the model name the chunks report
    stream: bool                   # the client asked for a stream
    include_usage: bool = False    # stream_options.include_usage (after the gateway's own)
    created: int = 0               # unix seconds, for `created`
    id: str | None = None          # the completion id (else made from the backend's)
    #: the backend was asked to think (Anthropic's thinking: `AnthropicTranslated.thinking`):
    #: a stream that ends before its final count may have billed thinking no count reported
    thinking: bool = False
    #: the largest stream event held to translate (the route's `streams.max_event_bytes`):
    #: a larger one ends the stream with an error event, as it cannot go out untranslated
    max_event_bytes: int = 16 << 20


class ReplyTranslator:
    """Incremental, sans-IO: `feed` returns what can be released now, `finish` the rest."""

    #: the content type of what it produces (set on the response headers)
    content_type: str = "application/json"
    #: the status the client should get when it is not the upstream's (a 200 whose body
    #: could not be translated: 502), known at `finish` for a whole reply; None: unchanged
    status: int | None = None
    #: a 200 reply could not be translated (what was produced is an OpenAI error instead)
    failed: bool = False
    #: the backend's reply ended without any usage count: none was made up (set by the
    #: time the reply's end is translated)
    usage_unread: bool = False

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        raise NotImplementedError

    @property
    def held_bytes(self) -> int:
        return 0


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                 403: "permission_error", 404: "not_found_error", 413: "invalid_request_error",
                 429: "rate_limit_error"}


def openai_error(status: int, message: str, kind: str | None = None,
                 code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object (the value of a body or of a stream event)."""
    if kind is None:
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500
                                 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def stop_sequences(value: Any) -> list[str] | None:
    """OpenAI's `stop` (a string or a list of strings) as a list; None when it names none."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value or None
    if value is not None:
        raise Unsupported("stop", "must be a string or a list of strings")
    return None


def chunk_event(doc: dict[str, Any]) -> bytes:
    """One SSE event holding `doc` as compact JSON."""
    return b"data: " + json_bytes(doc) + b"\n\n"
