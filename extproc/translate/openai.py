"""The OpenAI and Azure OpenAI backends of the unified front: the client's Chat Completions
request goes on as it is, with the backend's model name (Azure: the deployment, on the v1 API
`/openai/v1/chat/completions`, which takes it in the body), and the reply needs no
translation.
"""

from __future__ import annotations

import json
from typing import Any

from ..providers.openai import OpenAIAdapter
from .base import Backend, ReplyContext, ReplyTranslator, Translated

_READER = OpenAIAdapter("openai")


def translate_request(doc: dict[str, Any], backend: Backend, *,
                      drop_unsupported: bool = False) -> Translated:
    """The request with `model` set to the backend's model name."""
    out = dict(doc)
    out["model"] = backend.model
    path = "/openai/v1/chat/completions" if backend.provider == "azure" \
        else "/v1/chat/completions"
    body = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    return Translated(body=body, path=path, stream=out.get("stream") is True)


def max_output_tokens(doc: dict[str, Any], default: int) -> int:
    """The most one choice of the request may generate, as on an OpenAI route: the larger of
    max_completion_tokens and max_tokens, else `default` (the route's
    ``default_max_tokens``)."""
    limit = _READER.parse_request("", doc).max_output_tokens
    return limit or default


def reply_translator(status: int, content_type: str, ctx: ReplyContext
                     ) -> ReplyTranslator | None:
    """None: an OpenAI-format reply reaches the client as it is."""
    return None
