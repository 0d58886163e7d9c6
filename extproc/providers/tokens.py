"""Where a provider's stream carries its first generated token: a cheap byte pattern, run on
response chunks only until it first matches (time to first token, upstream and delivered)."""

from __future__ import annotations

import re

#: a non-empty piece of generated output in a provider's stream (text, tool arguments,
#: thinking): where the first token is, upstream and as delivered
_OPENAI_TOKEN = re.compile(rb'"(?:content|refusal|arguments|reasoning_content)":\s*"[^"]')
FIRST_TOKEN: dict[str, re.Pattern[bytes]] = {
    "openai": _OPENAI_TOKEN, "azure": _OPENAI_TOKEN,
    "anthropic": re.compile(rb'"(?:text|partial_json|thinking)":\s*"[^"]'),
    "gemini": re.compile(rb'"text":\s*"[^"]|"functionCall"'),
    "vertex": re.compile(rb'"text":\s*"[^"]|"functionCall"'),
}
