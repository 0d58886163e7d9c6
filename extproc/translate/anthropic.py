"""The Anthropic backend of the unified front: OpenAI Chat Completions in front, Anthropic
Messages behind. The request side lives in `anthropic_request`, the reply side in
`anthropic_reply`; this module is the interface `extproc.translate.base` describes, plus the
JSON-mode link between the two (``AnthropicTranslated.json_tool`` -> ``reply_translator(...,
json_tool=)``)."""

from __future__ import annotations

from extproc.translate.anthropic_reply import MAX_BODY, error_body, openai_usage, reply_translator
from extproc.translate.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    JSON_TOOL,
    THINKING_BUDGETS,
    AnthropicTranslated,
    translate_request,
)

__all__ = ["DEFAULT_MAX_TOKENS", "JSON_TOOL", "MAX_BODY", "THINKING_BUDGETS",
           "AnthropicTranslated", "error_body", "openai_usage", "reply_translator",
           "translate_request"]
