"""Whether a request may make the model reason where no reply shows it (sans-IO).

OpenAI's reasoning models (o-series, gpt-5 and later, gpt-oss: any model not known to be
plain) and the Responses API's reasoning think in tokens no stream carries, and Gemini 2.5
and later think by default, their thoughts hidden unless `includeThoughts` asks for them.
Those tokens are billed as output and come before the first visible one. A stream of such a
request that ends without the provider's final usage report (the client left, the upstream
broke) cannot be charged what it delivered, which leaves the thinking out: budgets charge it
its reservation instead (`settle`). Anthropic's extended thinking (`thinking` enabled or
adaptive) counts too, and so do Gemini's thoughts when `includeThoughts` shows them: what
streams is a summary (or, with Anthropic's `display: omitted`, nothing until the block's
signature), and the provider bills the whole thinking (found by review: a client that left
while the model thought was charged a few tokens of a 32,000-token reservation). Only
thinking turned off (`thinkingBudget: 0`, Anthropic's `disabled` or no `thinking`) is not.
"""

from __future__ import annotations

import re
from typing import Any

from ..providers import google_config
from ..providers.values import as_dict

#: OpenAI models known not to reason (GPT-3.5, Azure's `gpt-35` among them, and GPT-4
#: families, `chatgpt-4o`, `gpt-5-chat`, the legacy completion models), after any `ft:` and
#: `provider/` prefix. Default deny: any other name may (a new family, a fine-tune of
#: o4-mini, a model of an OpenAI-compatible server), so a cut stream of it pays its
#: reservation, not only what it delivered.
_OPENAI_PLAIN = re.compile(
    r"(?:gpt-3\.?5|gpt-4(?:o|\.1|\.5|-|$)|chatgpt-4o|gpt-5-chat|babbage|davinci|text-)",
    re.IGNORECASE)
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
        return not plain_openai_model(model)
    if provider in ("gemini", "vertex"):
        if model and _GEMINI_PLAIN.search(model):
            return False
        if endpoint is not None and endpoint not in _GOOGLE_ENDPOINTS:
            return False
        if endpoint is None:   # the unified front's chat request: `none` sends no thinking
            return doc.get("reasoning_effort") != "none"
        return not google_config.thinking_off(doc)   # shown thoughts are a summary
    if provider == "anthropic":
        if endpoint is None:   # the unified front's chat request: an effort turns it on
            return doc.get("reasoning_effort") not in (None, "none")
        if endpoint != "messages":
            return False
        thinking = doc.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") != "disabled"
    return False


def plain_openai_model(model: str | None) -> bool:
    """Is this an OpenAI model known not to reason (`_OPENAI_PLAIN`)?"""
    return bool(model and _OPENAI_PLAIN.match(_base_model(model)))


def _base_model(model: str) -> str:
    """The model a name stands for: `ft:gpt-4o-mini:acme::x` is gpt-4o-mini's fine-tune,
    `openai/gpt-4o` an OpenAI-compatible server's name for gpt-4o."""
    if model[:3].lower() == "ft:":
        model = model[3:].partition(":")[0]
    return model.rpartition("/")[2]
