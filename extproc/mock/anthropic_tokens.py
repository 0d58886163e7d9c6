"""Anthropic token counting (``POST /v1/messages/count_tokens``): pure builders, no IO.

The request has the Messages shape (validated as Messages are, ``max_tokens`` not needed);
the reply is ``{"input_tokens": N}``, N the mock's deterministic count of the system prompt
and the messages. Nothing is generated or streamed.
"""

from __future__ import annotations

from typing import Any

from extproc.mock.anthropic import prompt_tokens
from extproc.mock.anthropic import validate as validate_messages
from extproc.mock.common import dump_compact


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like a Messages request."""
    validate_messages(request)


def extract_echo(request: dict[str, Any]) -> str:
    """Nothing: a count has no reply text to echo into."""
    return ""


def build_response(request: dict[str, Any]) -> bytes:
    """The ``{"input_tokens": N}`` body."""
    return dump_compact({"input_tokens": prompt_tokens(request)}).encode("utf-8")
