"""Provider adapters: sans-IO parsers of each LLM provider family's requests, replies and streams.

``adapter_for(name)`` returns the shared, stateless adapter for "openai", "azure",
"anthropic", "gemini" or "vertex" (case-insensitive). See ``base`` for the shapes
(Usage, Prompt, Delta) and the normalisation conventions, and ``slots`` for the guards' view
of stream events (which texts the model wrote, and where).
"""

from __future__ import annotations

import json
from typing import Any

from extproc.providers.anthropic import AnthropicAdapter
from extproc.providers.anthropic_extra import AnthropicCountTokensAdapter
from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.endpoints import EndpointSpec, Table, register
from extproc.providers.google import BLOCKED_PREFIX, GoogleAdapter
from extproc.providers.google_extra import GoogleCountTokensAdapter, GoogleEmbedAdapter
from extproc.providers.openai import OpenAIAdapter
from extproc.providers.openai_legacy import OpenAICompletionsAdapter, OpenAIEmbeddingsAdapter
from extproc.providers.openai_responses import OpenAIResponsesAdapter
from extproc.providers.unread import UNREAD_MEMO

_ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter("openai"),
    "azure": OpenAIAdapter("azure"),
    "anthropic": AnthropicAdapter("anthropic"),
    "gemini": GoogleAdapter("gemini"),
    "vertex": GoogleAdapter("vertex"),
}

PROVIDERS: tuple[str, ...] = tuple(_ADAPTERS)


def _spec(name: str, adapter: Adapter) -> EndpointSpec:
    return EndpointSpec(name, adapter, generates=getattr(adapter, "generates", True),
                        streams=getattr(adapter, "streams", True))


def _tables() -> None:
    """Each family's endpoints (see `endpoints`): the tail of the decoded path, by method."""
    for name in ("openai", "azure"):
        chat = _spec("chat.completions", _ADAPTERS[name])
        responses = _spec("responses", OpenAIResponsesAdapter(name))
        completions = _spec("completions", OpenAICompletionsAdapter(name))
        embeddings = _spec("embeddings", OpenAIEmbeddingsAdapter(name))
        if name == "openai":
            v1 = r"(?:^|/)v1/"
        else:   # Azure: the deployment API, and the v1 API (model in the body)
            v1 = r"(?:^|/)openai/v1/"
            deployment = r"(?:^|/)openai/deployments/(?P<model>[^/]+)/"
        rows = [("POST", v1 + "chat/completions$", chat),
                ("POST", v1 + "responses$", responses),
                ("POST", v1 + "completions$", completions),
                ("POST", v1 + "embeddings$", embeddings)]
        if name == "azure":
            rows += [("POST", deployment + "chat/completions$", chat),
                     ("POST", deployment + "completions$", completions),
                     ("POST", deployment + "embeddings$", embeddings),
                     ("POST", r"(?:^|/)openai/responses$", responses)]
        register(name, Table(rows))
    anthropic = _ADAPTERS["anthropic"]
    register("anthropic", Table([
        ("POST", r"(?:^|/)v1/messages$", _spec("messages", anthropic)),
        ("POST", r"(?:^|/)v1/messages/count_tokens$",
         _spec("count_tokens", AnthropicCountTokensAdapter("anthropic")))]))
    for name, prefix in (("gemini", r"(?:^|/)v1(?:beta|alpha)?/(?:tunedModels|models)/"),
                         ("vertex", r"(?:^|/)v1(?:beta1)?/projects/[^/]+/locations/[^/]+/"
                                    r"publishers/google/models/")):
        google = _ADAPTERS[name]
        methods = {"generateContent": EndpointSpec("generateContent", google, streams=False),
                   "streamGenerateContent": _spec("streamGenerateContent", google),
                   "countTokens": _spec("countTokens", GoogleCountTokensAdapter(name))}
        if name == "gemini":   # Vertex embeds with :predict, which is not read (refused)
            embed = GoogleEmbedAdapter(name)
            methods["embedContent"] = _spec("embedContent", embed)
            methods["batchEmbedContents"] = _spec("batchEmbedContents", embed)
        register(name, Table([("POST", prefix + rf"(?P<model>[^/:]+):{method}$", spec)
                              for method, spec in methods.items()]))


_tables()


def read_request(adapter: Adapter, path: str, body: bytes,
                 memo: dict[str, Any] | None = None
                 ) -> tuple[dict[str, Any], Prompt] | None:
    """A request body as JSON and as the adapter reads it; None when it is not a JSON
    object the adapter can read (the provider will then say so in its own words).

    With `memo` (the exchange's state), the policies of one request parse a body once: the
    next policy handed the very same bytes object gets the same result. A policy that
    changes the body hands on new bytes, which are parsed afresh."""
    if memo is not None:
        hit = memo.get("_read")
        if hit is not None and hit[0] is body:
            return hit[1]
    result = _read(adapter, path, body)
    if memo is not None:
        memo["_read"] = (body, result)
    return result


def forget_request(memo: dict[str, Any]) -> None:
    """Let go of the request as read (the parsed body in `memo`, the prompt the LLM policy
    left beside it, the unified front's bound on output, which holds the request) once the
    reply's headers are handled: what the reply side needs of them was taken by then, and an
    open stream would otherwise keep them for its whole reply (up to about 100 MiB for an
    8 MiB body of tiny messages)."""
    memo.pop("_read", None)
    memo.pop(UNREAD_MEMO, None)    # (`unread.inputs_of`: the parsed body beside its inputs)
    memo.pop("prompt", None)
    memo.pop("max_output", None)   # limits.policy.MAX_OUTPUT: the front's, over the request


def _read(adapter: Adapter, path: str, body: bytes) -> tuple[dict[str, Any], Prompt] | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    try:
        return doc, adapter.parse_request(path, doc)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None


def adapter_for(provider: str) -> Adapter:
    """The adapter for a provider name; ValueError for an unknown one."""
    adapter = _ADAPTERS.get(provider.lower()) if isinstance(provider, str) else None
    if adapter is None:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    return adapter


__all__ = [
    "BLOCKED_PREFIX",
    "PROVIDERS",
    "Adapter",
    "AnthropicAdapter",
    "Delta",
    "GoogleAdapter",
    "OpenAIAdapter",
    "Prompt",
    "Usage",
    "adapter_for",
    "read_request",
]
