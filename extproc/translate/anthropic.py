"""The Anthropic backend of the unified front: OpenAI Chat Completions in front, Anthropic
Messages behind. The request side lives in `anthropic_request` (and `anthropic_messages`),
the reply side in `anthropic_reply` (whole replies, errors) and `anthropic_stream`
(streams); this module is the interface `extproc.translate.base` describes, plus the
JSON-mode link between the two (``AnthropicTranslated.json_tool`` -> ``reply_translator(...,
json_tool=)``; and ``AnthropicTranslated.thinking`` -> ``ReplyContext.thinking``)."""

from __future__ import annotations

from extproc.translate.anthropic_reply import (
    MAX_BODY,
    ErrorReply,
    WholeReply,
    error_body,
    media_type,
    openai_usage,
)
from extproc.translate.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    JSON_TOOL,
    THINKING_BUDGETS,
    AnthropicTranslated,
    max_output_tokens,
    translate_request,
)
from extproc.translate.anthropic_stream import StreamReply
from extproc.translate.base import ReplyContext, ReplyTranslator

__all__ = ["DEFAULT_MAX_TOKENS", "JSON_TOOL", "MAX_BODY", "THINKING_BUDGETS",
           "AnthropicTranslated", "error_body", "max_output_tokens", "openai_usage",
           "reply_translator", "translate_request"]


def reply_translator(status: int, content_type: str, ctx: ReplyContext, *,
                     json_tool: str | None = None) -> ReplyTranslator:
    """The translator of one Anthropic reply; `json_tool` is the request's
    ``AnthropicTranslated.json_tool`` (JSON mode)."""
    if status != 200:
        return ErrorReply(status)
    if media_type(content_type) == "text/event-stream":
        return StreamReply(ctx, json_tool)
    return WholeReply(ctx, json_tool)
