"""OpenAI chat stream deltas whose text fields are not strings: OpenAI-compatible servers
(the models served behind Azure's /openai/v1) stream ``content`` (and ``refusal``,
``reasoning_content``, ``reasoning``) as a list of parts, as a whole reply may hold them.
The guards read them as they read a string field: `part_slots`."""

from __future__ import annotations

from typing import Any

from extproc.providers.openai_prompts import OPAQUE, PAYLOADS
from extproc.providers.slots import EventTexts, TextSlot, field_strings

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
        if part.get(text) and isinstance(part[text], str):
            out.slots.append(TextSlot((index, key, 0), part, text))
        out.slots.extend(TextSlot((index, key, 1), h, k)
                         for h, k in field_strings(part, (text, *OPAQUE), OPAQUE) if h[k])
        if isinstance(kind, str) and kind in _PART_MEDIA:
            out.unread += (_PART_MEDIA[kind],)
        elif any(k in part for k in PAYLOADS):
            out.unread += ("file",)
