"""Translation between the unified front's OpenAI Chat Completions API and each backend's
own API (sans-IO). `base` holds the interface and the conventions; `module_for(provider)`
returns the backend's module, which offers `translate_request` and `reply_translator`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .base import Backend, ReplyContext, ReplyTranslator, Translated, Unsupported

_MODULES = {"openai": "openai", "azure": "openai", "anthropic": "anthropic",
            "gemini": "google", "vertex": "google"}


def module_for(provider: str) -> ModuleType:
    """The translator module of a backend provider (ValueError for an unknown one)."""
    name = _MODULES.get(provider)
    if name is None:
        raise ValueError(f"no translator for provider {provider!r}")
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["Backend", "ReplyContext", "ReplyTranslator", "Translated", "Unsupported",
           "module_for"]
