"""What the model wrote in a whole OpenAI Chat Completions reply, as the guards read it:
every choice's text fields (`reply_slots`: content, refusal, reasoning, the audio transcript,
tool-call arguments and names, and the strings of any other message field, read whole) and
the text the user reads (`visible`). The stream's counterpart is
`OpenAIAdapter.stream_texts`, which shares these field sets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from extproc.providers.openai_prompts import OPAQUE, Slot, call_slots, content_slots, extra_slots
from extproc.providers.slots import field_strings, string_slots
from extproc.providers.values import as_dict, as_list, as_str

#: keys whose string values are enumerations, ids or opaque payloads (an encrypted
#: reasoning's data, a signature), not text
ENUMS = frozenset({"type", "id", "data", "signature", "encrypted_content", "format"})
#: the fields of a stream delta read one by one (or holding no text); any other field's
#: strings (web search ``annotations``, a field newer than this code) are read whole, each
#: on its own
DELTA_FIELDS = frozenset({"role", "content", "refusal", "reasoning_content", "reasoning",
                          "audio", "tool_calls", "function_call"})
#: the same for a whole reply's message (``audio`` holds base64 data and its transcript)
MESSAGE_FIELDS = DELTA_FIELDS | {"name"}


def call_names(message: dict[str, Any]) -> Iterator[Slot]:
    """The names of a reply message's tool calls and legacy function call (kind "name")."""
    for call in as_list(message.get("tool_calls")):
        call = as_dict(call)
        for holder in (as_dict(call.get("function")), as_dict(call.get("custom"))):
            yield from _name(holder)
    yield from _name(as_dict(message.get("function_call")))


def _name(holder: dict[str, Any]) -> Iterator[Slot]:
    """A call's name (kind "name"); one that is no string (a list, an object: not what a
    provider writes, but what a client shows), each string of it, as a "result"."""
    if isinstance(holder.get("name"), str):
        yield "name", holder, "name"
    elif _json_value(holder.get("name")):   # whole: its keys and numbers too
        yield "result", holder, "name"


def _json_value(value: Any) -> bool:
    """A value that is no string but holds text a client shows: a non-empty list or object,
    or a number."""
    return (isinstance(value, dict | list) and bool(value)) or (
        isinstance(value, int | float) and not isinstance(value, bool))


def reply_slots(body: Any) -> Iterator[Slot]:
    """(kind, holder, key) of every text the model wrote, choice by choice."""
    for choice in as_list(as_dict(body).get("choices")):
        message = as_dict(as_dict(choice).get("message"))
        for _, holder, key in content_slots(message, "text"):
            yield "text", holder, key
        for part in as_list(message.get("content")):   # a part's text that is no string:
            for field in ("text", "refusal"):          # whole, its keys and numbers too
                if isinstance(part, dict) and _json_value(part.get(field)):
                    yield "result", part, field
        if isinstance(message.get("content"), dict):   # one part, not in a list
            for holder, key in string_slots(message, "content", OPAQUE):
                yield "text", holder, key
        yield from extra_slots(message)   # refusal and reasoning: strings, parts, objects
        audio = as_dict(message.get("audio"))
        if isinstance(audio.get("transcript"), str | dict | list):   # (any value: whole)
            yield "text", audio, "transcript"
        # any other field (web search annotations, a field newer than this code): every
        # string, read whole
        for holder, field in field_strings(message, MESSAGE_FIELDS, ENUMS):
            yield "result", holder, field
        yield from call_names(message)
        yield from call_slots(message)


def visible(message: dict[str, Any]) -> str:
    """What the user reads of one reply message: its content, then its refusal."""
    text = "".join(holder[key] for _, holder, key in content_slots(message, ""))
    return text + (as_str(message.get("refusal")) or "")
