"""The output bound a token or spend budget writes into a request that names none (sans-IO).

A request that names no maximum output reserves `limits.default_max_tokens` (plus a thinking
budget it names) for each reply, but the provider's own bound is then the model's: up to
tens of thousands of tokens. When such a request's usage never comes back (the client left
while the provider generated a whole reply, a stream of a model that thinks unseen was cut
after its first token), settling can only charge the reservation, which then bounds nothing
the provider bills. So on a route with token or spend budgets the gateway writes the
reservation into the request, in the field the endpoint reads (`limits.write_max_tokens`,
on by default): what it reserved is what the provider may generate.

* OpenAI and Azure chat: `max_completion_tokens` (it bounds reasoning too; reasoning models
  refuse `max_tokens`), or `max_tokens` for a model known not to reason (some older Azure
  API versions and OpenAI-compatible servers know only that one);
* the Responses API: `max_output_tokens`;
* Gemini and Vertex: `generationConfig.maxOutputTokens` (it bounds thinking too), at most
  65536, which they take; a value of 0 (or `"0"`), which Gemini reads as unset, is
  replaced, and with both spellings of the config given, each gets it;
* legacy completions: `max_tokens`, and the bound is OpenAI's own default for them,
  `LEGACY_COMPLETIONS_MAX` (16 tokens), not `default_max_tokens`: a request naming none
  gets from OpenAI what it always did, and an OpenAI-compatible server whose default is the
  rest of the context (llama.cpp, Ollama) is held to it too; a `max_tokens` of 0 (with
  `echo`, the prompt's log probabilities alone) is named and left as it is;
* Anthropic always names `max_tokens`, and embeddings and token counts generate nothing:
  nothing to write.
* The unified front: the bound is left in the exchange's state (`WRITE_MAX`) for the front,
  which writes it as the client's `max_completion_tokens` before translating for an OpenAI,
  Azure, Gemini or Vertex backend (the Anthropic backend is always sent a limit).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..providers import google_config, read_request
from ..providers.values import json_bytes
from .reasoning import plain_openai_model

if TYPE_CHECKING:
    from ..context import Context
    from ..providers.base import Adapter

_EMPTY = re.compile(rb"\s*}")
#: where the bound for a unified front's request waits for the front (`front.policy`)
WRITE_MAX = "write_max_output"
#: the endpoints a bound is written for
ENDPOINTS = frozenset(("chat.completions", "completions", "responses", "generateContent",
                       "streamGenerateContent"))
#: OpenAI's `max_tokens` for a legacy completion that names none (its API reference), which
#: budgets reserve and write for such a request
LEGACY_COMPLETIONS_MAX = 16


def _named(value: Any) -> bool:
    return value is not None and value != 0


#: the most Gemini and Vertex take as `maxOutputTokens` (a larger one is a 400)
GEMINI_MAX_OUTPUT = 65536


def bounded(endpoint: str, doc: dict[str, Any], n: int,
            model: str | None) -> dict[str, Any] | None:
    """`doc` with `n` written as its maximum output per reply, or None when it names one
    (or the endpoint takes none)."""
    if endpoint == "chat.completions":
        if _named(doc.get("max_completion_tokens")) or _named(doc.get("max_tokens")):
            return None
        key = "max_tokens" if plain_openai_model(model) else "max_completion_tokens"
        out = {k: v for k, v in doc.items() if k not in ("max_tokens", "max_completion_tokens")}
        out[key] = n
        return out
    if endpoint == "completions":
        if doc.get("max_tokens") is not None:
            return None
        return {**doc, "max_tokens": n}
    if endpoint == "responses":
        if _named(doc.get("max_output_tokens")):
            return None
        return {**doc, "max_output_tokens": n}
    if endpoint in ("generateContent", "streamGenerateContent"):
        # (null is proto3 JSON's absent; a config that is no object the provider refuses)
        present = [k for k in ("generationConfig", "generation_config")
                   if doc.get(k) is not None]
        configs = [k for k in present if isinstance(doc[k], dict)]
        if len(configs) < len(present):
            return None
        # named as the estimate reads it (`"0"` is 0, which Gemini reads as unset, in any
        # spelling: the bound then replaces every spelling)
        if google_config.max_output(doc):
            return None
        out = dict(doc)
        for key in configs or ["generationConfig"]:   # both spellings: the bound in each
            config = {f: v for f, v in (doc[key] if configs else {}).items()
                      if f not in ("maxOutputTokens", "max_output_tokens")}
            config["maxOutputTokens"] = min(n, GEMINI_MAX_OUTPUT)
            out[key] = config
        return out
    return None


def write(ex: Context, adapter: Adapter, body: bytes, doc: dict[str, Any], n: int,
          model: str | None) -> bytes | None:
    """The request body with `n` written as its bound, for a request that names none
    (`bounded`); None to send it as it is. `doc` is the request as first read: where it
    has none of the fields, they are put in front of the body as it is now (no second parse
    or dump of a body a guard may have masked); else the body as it is now is read and
    written again."""
    endpoint = ex.endpoint
    if endpoint is None or endpoint.name not in ENDPOINTS:
        return None
    name = endpoint.name
    insert: bytes | None = None
    if name == "chat.completions" and "max_tokens" not in doc \
            and "max_completion_tokens" not in doc:
        key = "max_tokens" if plain_openai_model(model) else "max_completion_tokens"
        insert = b'"%s":%d,' % (key.encode(), n)
    elif name == "completions" and "max_tokens" not in doc:
        insert = b'"max_tokens":%d,' % n
    elif name == "responses" and "max_output_tokens" not in doc:
        insert = b'"max_output_tokens":%d,' % n
    elif name in ("generateContent", "streamGenerateContent") \
            and "generationConfig" not in doc and "generation_config" not in doc:
        insert = b'"generationConfig":{"maxOutputTokens":%d},' % min(n, GEMINI_MAX_OUTPUT)
    start = len(body) - len(body.lstrip())
    if insert is not None and body[start:start + 1] == b"{":
        if _EMPTY.match(body, start + 1):   # an empty object: no comma after the field
            insert = insert[:-1]
        return body[:start + 1] + insert + body[start + 1:]
    now = read_request(adapter, ex.request_headers.get(":path", ""), body, ex.state)
    new = bounded(name, now[0], n, model) if now is not None else None
    return json_bytes(new) if new is not None else None   # (a lone surrogate stays escaped)
