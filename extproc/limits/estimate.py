"""Token estimates, before a request runs and for a stream cut short (sans-IO).

Before: the prompt text the provider adapter extracted, at `chars_per_token` characters per
token, plus the request's max output tokens (or a configured default). After a stream that
ended without the provider's usage report (the client went away, the upstream broke), the
output is estimated from the text delivered so far: a `DeliveredText` observer sums the
lengths of the text string literals in each body chunk with one C-speed regex pass, and
counts at least one token per text fragment (providers stream about a token per event).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from ..policy import BodyTransform

CHARS_PER_TOKEN = 4.0

#: a JSON string literal that holds streamed text, in any provider's format: OpenAI
#: `"content":"..."`, Anthropic `"text":"..."` (text_delta), Gemini `"text": "..."`
_TEXT = re.compile(rb'"(?:content|text|partial_json|arguments)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def prompt_tokens(texts: Iterable[str], chars_per_token: float = CHARS_PER_TOKEN) -> int:
    chars = sum(len(t) for t in texts)
    return math.ceil(chars / chars_per_token) if chars else 0


class DeliveredText(BodyTransform):
    """Observes a response body (returns every chunk untouched) and estimates the output
    tokens it carried. A string literal split across two chunks is missed: the estimate
    errs low by at most one fragment per chunk boundary."""

    def __init__(self, chars_per_token: float = CHARS_PER_TOKEN) -> None:
        self.chars_per_token = chars_per_token
        self.fragments = 0
        self.chars = 0
        self.complete = False

    def feed(self, chunk: bytes) -> bytes:
        for m in _TEXT.finditer(chunk):
            self.fragments += 1
            self.chars += m.end(1) - m.start(1)
        return chunk

    def finish(self) -> bytes:
        self.complete = True
        return b""

    @property
    def tokens(self) -> int:
        return max(self.fragments, math.ceil(self.chars / self.chars_per_token))
