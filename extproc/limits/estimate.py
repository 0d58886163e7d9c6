"""Token estimates, before a request runs and for a stream cut short (sans-IO).

Before: the prompt text the provider adapter extracted, at `chars_per_token` characters per
token, plus the request's max output tokens (or a configured default). After a stream that
ended without the provider's usage report (the client went away, the upstream broke), the
output is estimated from what was delivered (`DeliveredText`): one token per text fragment
(providers stream about a token per event), or the stream's text characters per byte,
measured on a sample, at `chars_per_token`, whichever is larger.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from ..policy import BodyTransform

#: the byte string that starts each streamed text fragment, by provider
TEXT_MARKERS = {"openai": b'"content"', "azure": b'"content"', "anthropic": b'"text_delta"',
                "gemini": b'"text"', "vertex": b'"text"'}

CHARS_PER_TOKEN = 4.0

#: a JSON string literal that holds streamed text, in any provider's format: OpenAI
#: `"content":"..."`, Anthropic `"text":"..."` (text_delta), Gemini `"text": "..."`
TEXT_VALUE = re.compile(rb'"(?:content|text|partial_json|arguments)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def prompt_tokens(texts: Iterable[str], chars_per_token: float = CHARS_PER_TOKEN) -> int:
    chars = sum(len(t) for t in texts)
    return math.ceil(chars / chars_per_token) if chars else 0


class DeliveredText(BodyTransform):
    """Observes a response stream (returns every chunk untouched) and estimates the output
    tokens it carried, at almost no cost per chunk: one `bytes.count` of the provider's text
    marker (every text fragment delivered counts at least one token), and the stream's text
    characters per byte, measured on a sample (the first `SAMPLE` bytes) and scaled to every
    byte delivered (at `chars_per_token`). The estimate is the larger of the two. A full
    regex scan of every chunk cost about 50 us per stream."""

    SAMPLE = 1024

    def __init__(self, marker: bytes = b'"content"',
                 chars_per_token: float = CHARS_PER_TOKEN) -> None:
        self.marker = marker
        self.chars_per_token = chars_per_token
        self.fragments = 0
        self.size = 0
        self.sampled = 0            # bytes looked at
        self.sample_chars = 0       # text characters in them

    def feed(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        self.fragments += chunk.count(self.marker)
        if self.sampled < self.SAMPLE:
            sample = chunk[:self.SAMPLE - self.sampled]
            for m in TEXT_VALUE.finditer(sample):
                self.sample_chars += m.end(1) - m.start(1)
            self.sampled += len(sample)
        return chunk

    @property
    def tokens(self) -> int:
        if not self.sampled:
            return 0
        chars = self.sample_chars * self.size / self.sampled
        return max(self.fragments, math.ceil(chars / self.chars_per_token))
