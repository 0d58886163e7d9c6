"""The texts of a reply that are not the model's output but that a client still shows: an
error's message inside a 2xx reply or a stream (OpenAI's error chunk, Anthropic's `error`
event, Google's error object, the Responses API's `error` event and a failed response's
`error`), Anthropic's `stop_details` (a refusal's explanation) and the `content` of its
`message_start` (the SDK copies it into the message it builds), and Gemini's
`promptFeedback` (`blockReasonMessage`). A broken or hostile upstream can put any text
there, so the reply guards read each of them whole (sans-IO): `side_slots(doc)` gives every
text of them (strings, keys and numbers) as (holder, key) slots, `holder[key]` reading and
writing it, as `providers.values.value_slots` does.
"""

from __future__ import annotations

from typing import Any

from ..providers.values import value_slots

#: a Responses API `error` event's fields that are not its message (it has no `error` key)
_EVENT_FIELDS = frozenset(("type", "sequence_number"))


def side_slots(doc: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Every text of `doc`'s side texts (see the module docstring); empty for nearly every
    event (a few key lookups)."""
    out: list[tuple[Any, Any]] = []
    if doc.get("error") is not None:
        out += value_slots(doc, "error")
    elif doc.get("type") == "error":        # the Responses API's: its message at the top
        for name in list(doc):
            if name not in _EVENT_FIELDS:
                out += value_slots(doc, name)
    for name in ("promptFeedback", "prompt_feedback", "stop_details"):
        if doc.get(name) is not None:
            out += value_slots(doc, name)
    kind = doc.get("type")
    if kind == "message_start":
        message = doc.get("message")
        if isinstance(message, dict) and message.get("content"):
            out += value_slots(message, "content")
    elif kind == "message_delta":
        delta = doc.get("delta")
        if isinstance(delta, dict) and delta.get("stop_details") is not None:
            out += value_slots(delta, "stop_details")
    return [(holder, key) for holder, key in out if holder[key]]
