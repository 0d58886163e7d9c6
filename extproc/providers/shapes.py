"""The shapes of the request fields that carry prompt text, and of the counts budgets
reserve by (max tokens, choices), checked before any policy reads them (sans-IO). An adapter
reads what it understands and passes over the rest; a field the provider would read in a
shape the adapter passes over (a message's content as an object, a text part whose text is
not a string) would then reach the provider unguarded. Such a body is refused instead (the
provider would refuse it too): `check(endpoint, body)` says what is wrong, or None. Google's
repeated fields accept a lone object and are read so (`google._items`); they need no check
here.
"""

from __future__ import annotations

from typing import Any

#: a chat message's text fields besides its content: the adapter reads them as strings
_CHAT_STRINGS = ("refusal", "reasoning_content", "reasoning")
_TEXT_KEYS = {"text": "text", "input_text": "text", "output_text": "text",
              "refusal": "refusal", "thinking": "thinking"}


def _parts(value: Any, where: str, strings: bool) -> str | None:
    """Content: a string, null, or a list of parts (objects; strings too when `strings`)
    whose text fields, when present, are strings."""
    if value is None or isinstance(value, str):
        return None
    if not isinstance(value, list):
        return f"{where} must be a string or a list of parts"
    for i, part in enumerate(value):
        if isinstance(part, str) and strings:
            continue
        if not isinstance(part, dict):
            return f"{where}[{i}] must be an object"
        key = _TEXT_KEYS.get(part.get("type")) if isinstance(part.get("type"), str) else None
        if key is not None and key in part and not isinstance(part[key], str):
            return f"{where}[{i}].{key} must be a string"
    return None


def _messages(body: dict[str, Any], key: str, strings: bool) -> str | None:
    messages = body.get(key)
    if not isinstance(messages, list):
        return f"'{key}' must be a list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"{key}[{i}] must be an object"
        error = _parts(message.get("content"), f"{key}[{i}].content", strings)
        if error:
            return error
        if strings:   # chat: a message's refusal and reasoning are strings (or null)
            for name in _CHAT_STRINGS:
                if message.get(name) is not None and not isinstance(message[name], str):
                    return f"{key}[{i}].{name} must be a string"
    return None


def _token_input(value: Any, where: str) -> str | None:
    """A string, a list of strings, a list of token ids, or a list of lists of token ids."""
    if isinstance(value, str):
        return None
    if isinstance(value, list) and (all(isinstance(v, str) for v in value)
                                    or all(isinstance(v, int) for v in value)
                                    or all(isinstance(v, list) and all(
                                        isinstance(t, int) for t in v) for v in value)):
        return None
    return f"'{where}' must be a string, a list of strings or token ids"


#: the counts budgets reserve by, per endpoint (Gemini's are proto3 integers, which Google
#: also takes as strings: `google_config.count` reads them so)
_COUNTS = {"chat.completions": ("max_tokens", "max_completion_tokens", "n"),
           "completions": ("max_tokens", "n", "best_of"),
           "responses": ("max_output_tokens",),
           "messages": ("max_tokens",)}


def _counts(body: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """Each count given (not null) is a non-negative integer: one the adapters cannot read
    (a string "5000", which a lenient OpenAI-compatible server or a pydantic model may take
    as 5000) would make budgets reserve the default for a reply that may run longer."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"'{name}' must be a non-negative integer"
    return None


def check(endpoint: str, body: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a request's text fields or of the counts budgets
    reserve by, or None."""
    error = _counts(body, _COUNTS.get(endpoint, ()))
    if error:
        return error
    if endpoint == "chat.completions":
        return _messages(body, "messages", strings=True)
    if endpoint in ("messages", "count_tokens"):
        system = body.get("system")
        if system is not None:
            error = _parts(system, "system", strings=False)
            if error:
                return error
        return _messages(body, "messages", strings=False)
    if endpoint == "responses":
        items = body.get("input")
        if items is None or isinstance(items, str):
            return None
        if not isinstance(items, list):
            return "'input' must be a string or a list of items"
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                return f"input[{i}] must be an object"
            if "content" in item:
                error = _parts(item["content"], f"input[{i}].content", strings=False)
                if error:
                    return error
        return None
    if endpoint == "completions":
        return _token_input(body.get("prompt", ""), "prompt")
    if endpoint == "embeddings":
        return _token_input(body.get("input"), "input")
    return None
