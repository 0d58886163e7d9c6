"""OpenAI chat text fields that are not strings, and what a chat reply carries that no guard
reads. OpenAI-compatible servers (the models served behind Azure's /openai/v1) stream
``content`` (and ``refusal``, ``reasoning_content``, ``reasoning``) as a list of parts, as a
whole reply may hold them: the guards read them as they read a string field (`part_slots`);
a part carrying an image, audio or a file, like a message's audio, is media no guard reads
(`part_media`, `reply_media`)."""

from __future__ import annotations

from typing import Any

from extproc.providers.openai_prompts import OPAQUE, PAYLOADS
from extproc.providers.slots import EventTexts, TextSlot, field_strings, text_field
from extproc.providers.values import as_dict, as_list

#: a chat message's or a stream delta's text fields (each a string, or parts: `part_slots`)
DELTA_TEXT_FIELDS = ("content", "refusal", "reasoning_content", "reasoning")
#: what a content part of these kinds (or with these keys) carries that no guard reads
_PART_MEDIA = {"image_url": "image", "input_audio": "audio"}


def part_slots(out: EventTexts, index: int, key: str, value: Any) -> None:
    """A delta text field that is not a string (OpenAI-compatible servers behind Azure's
    /openai/v1 stream content as a list of parts): each string part and each part's text
    (a refusal part's refusal) continue the field's piece, as a string's text does; the
    part's other strings (a thinking part's texts, a kind this code does not know) continue
    a piece of their own, (index, key, 1); a part carrying data no guard reads (an image,
    audio, a file) ends the stream refused (`EventTexts.unread`). An object is read as a
    list of one."""
    parts = value if isinstance(value, list) else [value]
    for i, part in enumerate(parts):
        if isinstance(part, str):
            if part:
                out.slots.append(TextSlot((index, key, 0), parts, i))
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        text = "refusal" if kind == "refusal" else "text"
        if text_field(part, text):   # (a list or an object: NotText, the event unreadable)
            out.slots.append(TextSlot((index, key, 0), part, text))
        out.slots.extend(TextSlot((index, key, 1), h, k)
                         for h, k in field_strings(part, (text, *OPAQUE), OPAQUE) if h[k])
        out.unread += tuple(part_media(part))


def part_media(part: Any) -> list[str]:
    """What a part carries that no guard reads: an image, audio, a file (or nothing)."""
    if not isinstance(part, dict):
        return []
    kind = part.get("type")
    if isinstance(kind, str) and kind in _PART_MEDIA:
        return [_PART_MEDIA[kind]]
    return ["file"] if any(k in part for k in PAYLOADS) else []


def has_audio(message: dict[str, Any]) -> bool:
    """Whether a reply message (or a stream delta) carries audio data, which no guard
    reads."""
    audio = message.get("audio")
    return isinstance(audio, dict) and bool(audio.get("data"))


def reply_media(body: Any) -> list[str]:
    """What a whole chat reply carries that no guard reads: audio, for every choice whose
    message carries audio data (its transcript is read as text), and what a text field
    given as parts carries (an image, audio, a file)."""
    out: list[str] = []
    for choice in as_list(as_dict(body).get("choices")):
        message = as_dict(as_dict(choice).get("message"))
        if has_audio(message):
            out.append("audio")
        for field in DELTA_TEXT_FIELDS:
            value = message.get(field)
            for part in value if isinstance(value, list) else [value]:
                out += part_media(part)
    return out
