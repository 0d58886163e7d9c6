"""Anthropic ``POST /v1/messages/count_tokens`` adapter.

The request body has the Messages shape (``model``, ``system``, ``messages``, ``tools``, ...)
without ``max_tokens`` or ``stream``, and is read and rewritten exactly as the Messages
adapter reads it (delegated, so both stay the same). The reply is ``{"input_tokens": N}``:
nothing is generated, nothing streams, and the count is free (the provider bills no tokens
for it), so the usage reported is zero; ``counted_tokens`` gives N.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from extproc.providers.anthropic import AnthropicAdapter
from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.values import as_dict, as_int, as_str, load_json

FREE = Usage(input_tokens=0, output_tokens=0, total_tokens=0)


def _free() -> Usage:
    return Usage(FREE.input_tokens, FREE.output_tokens, FREE.total_tokens)


class AnthropicCountTokensAdapter(Adapter):
    """Anthropic's token counting endpoint: reads like Messages, generates nothing."""

    needles = (b'"error"',)
    streams = False
    generates = False
    text_marker = None
    first_token = None

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.messages = AnthropicAdapter(name)

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        read = self.messages.parse_request(path, body)
        return Prompt(read.model, False, None, lambda: read.texts)

    def is_stream_request(self, path: str, body: dict[str, Any] | None) -> bool:
        return False

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        return self.messages.rewrite_request_texts(path, body, fn)

    # what the model would read but no guard can: as Messages reads it
    inline_needles = AnthropicAdapter.inline_needles
    unread_needles = AnthropicAdapter.unread_needles

    def undecodable_inputs(self, body: dict[str, Any]) -> list[str]:
        return self.messages.undecodable_inputs(body)

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        return self.messages.unread_inputs(body)

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        return "", None, _free()

    def counted_tokens(self, body: dict[str, Any]) -> int | None:
        """The count the reply gives."""
        return as_int(as_dict(body).get("input_tokens"))

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        return False   # a number only

    def stream_delta(self, data: str, event: str | None) -> Delta:
        """Never streamed; an error body handed in anyway gives its message."""
        obj = load_json(data)
        if isinstance(obj, dict) and obj.get("type") == "error":
            error = obj.get("error")
            message = as_str(as_dict(error).get("message")) or as_str(error)
            return Delta(error=message or "error")
        return Delta()

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        return False
