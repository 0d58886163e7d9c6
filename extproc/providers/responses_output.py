"""Where the texts are in one OpenAI Responses API output item: the slots a reply guard reads
and rewrites, the media no guard reads, and the visible answer. Slots are as in
`responses_items` (the request side): ``(holder, key, piece)`` with ``holder[key]`` a string.

Output slots (label = the piece of the stream the text belongs to) cover the texts of one
output item: a message's ``output_text`` / ``refusal`` parts, ``("c", content_index)``;
``function_call`` / ``mcp_call`` ``arguments``, ``custom_tool_call`` ``input`` and
``code_interpreter_call`` ``code``, ``("a", 0)``; a reasoning item's ``summary[i].text``,
``("s", i)``, and ``content[i].text``, ``("r", i)``. The streamed-reply reframer keys its
maskers by the same pieces.
"""

from __future__ import annotations

from typing import Any

from extproc.providers.responses_items import (
    ARGUMENT_KEYS,
    MEDIA_KEYS,
    OPAQUE_KEYS,
    Slot,
    generic_slots,
    item_kind,
)
from extproc.providers.slots import string_slots, text_field
from extproc.providers.values import as_list


def output_slots(item: Any) -> list[Slot]:
    """The generated texts of one output item, as (holder, key, piece), in item order."""
    out: list[Slot] = []
    if not isinstance(item, dict):
        return out
    kind = item_kind(item)
    if kind == "message":
        cited = 0
        content = item.get("content")
        if isinstance(content, str):   # (as OpenAI-compatible servers may write it)
            out.append((item, "content", ("c", 0)))
        for index, part in enumerate(as_list(content)):
            if isinstance(part, dict):
                key = "refusal" if part.get("type") == "refusal" else "text"
                if isinstance(part.get(key), str):   # a part of any kind (`text`, newer)
                    out.append((part, key, ("c", index)))
                else:   # a list, an object, a number: unreadable (NotText; whole: a 502)
                    text_field(part, key)
                if part.get("annotations"):   # citations: titles, URLs, file names
                    for holder, field in string_slots(part, "annotations", OPAQUE_KEYS):
                        out.append((holder, field, ("o", cited)))
                        cited += 1
                if part.get("type") not in ("output_text", "refusal"):
                    _rest(part, (key, "annotations", "logprobs"), out)
        _rest(item, _MESSAGE_KEYS, out)
    elif kind in ARGUMENT_KEYS:
        key = ARGUMENT_KEYS[kind]
        if isinstance(item.get(key), str):
            out.append((item, key, ("a", 0)))
    elif kind == "reasoning":
        for field, piece in (("summary", "s"), ("content", "r")):
            for index, part in enumerate(as_list(item.get(field))):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append((part, "text", (piece, index)))
                    _rest(part, ("text",), out)
                elif isinstance(part, dict):
                    text_field(part, "text")   # (no string: NotText)
        _rest(item, ("summary", "content"), out)
    if kind not in ("message", "reasoning"):
        # everything else such an item says (an MCP call's output, code-interpreter logs, a
        # web search's query, an image's revised prompt, a kind newer than this code): the
        # provider or a tool wrote it, the client reads it; each string is masked on its own,
        # a tool's name (piece "n") as a name (`slots.Name`)
        covered = {id(holder) for holder, _, _ in out}
        rest: list[Slot] = []
        generic_slots(item, "assistant", rest)
        out.extend((holder, key, ("n" if key == "name" else "o", n))
                   for n, (holder, key, _) in enumerate(rest)
                   if not (id(holder) in covered and key == ARGUMENT_KEYS.get(kind))
                   and not (holder is item and key in MEDIA_KEYS.get(kind, ())))
        if isinstance(item.get("server_label"), str):   # an MCP server's name, echoed
            out.append((item, "server_label", ("n", len(rest))))
    return out


#: the fields of a message output item read field by field (`output_slots`)
_MESSAGE_KEYS = ("content",)


def _rest(obj: dict[str, Any], known: tuple[str, ...], out: list[Slot]) -> None:
    """Every string of a message or reasoning item (or of one of their parts) beyond the
    fields read field by field (`known`) and the opaque ones: a field or part kind newer
    than this code, the client reads it (found by review: they went out unmasked). Each
    string is masked on its own (piece "x", numbered by its place in `out`)."""
    for k in list(obj):
        if k in known or k in OPAQUE_KEYS:
            continue
        value = obj[k]
        if isinstance(value, str):
            out.append((obj, k, ("x", len(out))))
        elif isinstance(value, dict | list):
            rest: list[Slot] = []
            generic_slots({k: value}, "assistant", rest)   # (the strings' own holders)
            out.extend((holder, key, ("x", len(out) + n))
                       for n, (holder, key, _) in enumerate(rest))


def output_media(item: Any) -> list[str]:
    """The kinds of the media no guard reads (`providers.unread`) in one output item: a
    generated image (an ``image_generation_call``'s ``result``), an image the code
    interpreter made (an ``image`` output)."""
    if not isinstance(item, dict):
        return []
    kind = item_kind(item)
    if kind == "image_generation_call":
        return ["image"] if item.get("result") else []
    if kind == "code_interpreter_call":
        return ["image" for output in as_list(item.get("outputs"))
                if isinstance(output, dict) and output.get("type") == "image"]
    return []


def visible_text(item: Any) -> str:
    """What a reader of the reply reads as the answer in one output item: a message's
    ``output_text`` and ``refusal`` parts (not tool arguments, not reasoning)."""
    return "".join(holder[key] for holder, key, piece in output_slots(item) if piece[0] == "c")
