"""Whether a request may make the model reason where no reply shows it (sans-IO).

OpenAI's reasoning models (o-series, gpt-5, gpt-oss) and the Responses API's reasoning
think in tokens no stream carries, and Gemini 2.5 and later think by default, their
thoughts hidden unless `includeThoughts` asks for them. Those tokens are billed as output
and come before the first visible one. A stream of such a request that ends without the
provider's final usage report (the client left, the upstream broke) cannot be charged what
it delivered, which leaves the thinking out: budgets charge it its reservation instead
(`settle`). Anthropic streams its thinking (or its redacted data), which is counted as
delivered.
"""

from __future__ import annotations

import re
from typing import Any

from ..providers import google_config
from ..providers.values import as_dict

#: model names of OpenAI's reasoning families, as OpenAI or an OpenAI-compatible server names
#: them (`o3-mini`, `gpt-5.1`, `openai/gpt-oss-120b`, `o4-mini-2025-04-16`)
_OPENAI_REASONING = re.compile(r"(?:^|/)(?:o[1-9]|gpt-5(?!-chat)|gpt-oss)", re.IGNORECASE)
#: Google models that do not think (Gemini before 2.5, Gemma)
_GEMINI_PLAIN = re.compile(r"gemini-(?:1\.|2\.0)|gemma", re.IGNORECASE)
_OPENAI_ENDPOINTS = frozenset(("chat.completions", "responses"))
_GOOGLE_ENDPOINTS = frozenset(("generateContent", "streamGenerateContent"))


def hidden_reasoning(provider: str, endpoint: str | None, model: str | None,
                     body: Any) -> bool:
    """May this request's model think in tokens its reply does not show? (`endpoint` None:
    the unified front's chat request, sent to `provider` as its generating endpoint.)"""
    doc = as_dict(body)
    if provider in ("openai", "azure"):
        if endpoint is not None and endpoint not in _OPENAI_ENDPOINTS:
            return False
        if doc.get("reasoning_effort") is not None or doc.get("reasoning") is not None:
            return True
        return bool(model and _OPENAI_REASONING.search(model))
    if provider in ("gemini", "vertex"):
        if model and _GEMINI_PLAIN.search(model):
            return False
        if endpoint is not None and endpoint not in _GOOGLE_ENDPOINTS:
            return False
        if google_config.thinking_shown_or_off(doc):
            return False
        # the unified front's chat request: a `reasoning_effort` is sent as a thinking
        # budget with its thoughts shown (or, for `none`, none)
        return not (endpoint is None and doc.get("reasoning_effort") is not None)
    return False
