"""Setup (l)'s masking guardrail: LiteLLM's nearest equivalent of our reference PII guard.

Loaded by LiteLLM's proxy (in its own virtualenv, bench/.venv-litellm) from the config that
bench/litellm_peer.py writes, as `litellm_guard.PiiMask`, on by default for every request.
It uses LiteLLM's native lifecycle hooks of a `CustomGuardrail` (it does not define
`apply_guardrail`, so LiteLLM calls these hooks directly):

- pre-call: masks the text of every chat message of the request (string content, and the
  `text` of content parts) before LiteLLM calls the provider;
- post-call: masks every choice's `message.content` of a whole reply;
- streamed replies: masks each chunk's `delta.content` as it passes.

What it masks: e-mail addresses, phone numbers (North American shape, optional country
code), card numbers (13 to 19 digits, spaces or dashes allowed, Luhn-checked), US SSNs
(ddd-dd-dddd) and IBANs (mod-97-checked), each replaced by `<EMAIL>`, `<PHONE>`, `<CARD>`,
`<SSN>` or `<IBAN>`, like our guard's `mask` action, with one regex pass per text.

What it does not do, next to ours: a value split across two streamed chunks is not masked
(each chunk is scanned alone; ours holds back a chunk's tail until it can decide); it reads
only chat-completion message text (not tool calls, refusals or other endpoints' shapes);
its patterns are simpler than ours (fewer phone shapes, no context rules around numbers).
It never refuses: with nothing to mask, the request and reply pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

try:
    from litellm.integrations.custom_guardrail import CustomGuardrail
except ImportError:   # outside LiteLLM's virtualenv: `mask` alone, for the unit tests
    CustomGuardrail = object  # type: ignore[assignment,misc]

_PATTERN = re.compile(
    r"(?P<EMAIL>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<IBAN>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b)"
    r"|(?P<SSN>(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-]))"
    r"|(?P<CARD>(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-]))"
    r"|(?P<PHONE>(?<![\w+])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\d))"
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _replace(m: re.Match[str]) -> str:
    kind = m.lastgroup or ""
    value = m.group()
    if kind == "CARD" and not _luhn(re.sub(r"[ -]", "", value)):
        return value
    if kind == "IBAN" and not _iban_ok(value):
        return value
    return f"<{kind}>"


def mask(text: str) -> str:
    """`text` with every recognised value replaced by its placeholder."""
    return _PATTERN.sub(_replace, text) if text else text


class PiiMask(CustomGuardrail):
    """Masks PII in chat prompts (pre-call) and replies, whole or streamed (post-call)."""

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict,
                                  call_type: Any) -> dict:
        for message in data.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = mask(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        part["text"] = mask(part["text"])
        return data

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any,
                                           response: Any) -> Any:
        for choice in getattr(response, "choices", None) or []:
            message = getattr(choice, "message", None)
            if message is not None and isinstance(message.content, str):
                message.content = mask(message.content)
        return response

    async def async_post_call_streaming_iterator_hook(
            self, user_api_key_dict: Any, response: Any, request_data: dict
    ) -> AsyncGenerator[Any, None]:
        async for chunk in response:
            for choice in getattr(chunk, "choices", None) or []:
                delta = getattr(choice, "delta", None)
                if delta is not None and isinstance(delta.content, str):
                    delta.content = mask(delta.content)
            yield chunk
