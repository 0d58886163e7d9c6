"""Inputs of a prompt that no guard can read: binary media sent inline (an image, audio,
video, a PDF or another binary document) and files the provider fetches itself (a file id,
a URL, a Cloud Storage URI).

The model reads them (it sees an image's text, the provider extracts a PDF's), so on a route
whose guards read prompts they are a way around every guard. Default deny: such a request is
refused unless each guard that would have to read the input lets its kind pass unread
(`allow_unread` in the guard's config, `guards.settings`).

The request walkers of the adapters (`openai_prompts`, `responses_items`,
`anthropic_prompts`, `google_prompts`), asked for inputs (``request_slots(body,
inputs=True)``), also yield an `Unread` marker where they meet such an input, as a slot of its
own; the same walk as the guards' reading, so the two cannot drift apart. Reading a marker
gives the empty string and storing into it does nothing. `unread_inputs` picks the markers
out of a walk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from extproc.providers.inline import file_data_slot, is_text_type

#: what an unread input can be, as `allow_unread` names it (`file`: a file by id, URL or URI
#: of no stated type, or the data of a part kind newer than the adapters; `fetched`: what a
#: hosted tool loads from a URL the request names, which no guard sees before the model)
KINDS = ("image", "audio", "video", "document", "file", "fetched")
#: how an error message names one
NAMES = {"image": "an image", "audio": "audio", "video": "a video",
         "document": "a binary document (a PDF, an office file)",
         "file": "a file the provider fetches by id or URL, or data of a kind the gateway "
                 "does not know",
         "fetched": "what a tool fetches for the model from a URL the request names (URL "
                    "context, web fetch, an MCP server)"}


class Unread:
    """A marker slot for an input no guard can read: ``marker[key]`` is ``""`` (no text)
    and storing into it changes nothing."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __getitem__(self, _key: Any) -> str:
        return ""

    def __setitem__(self, _key: Any, _value: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"Unread({self.kind!r})"


def media_kind(mime: Any, default: str = "document") -> str | None:
    """The kind of an input of media type `mime`: None for a text type (the gateway reads
    it: `providers.inline`), image, audio or video by the type's family, `default` for any
    other or no type."""
    if is_text_type(mime):
        return None
    family = mime.split("/", 1)[0].strip().lower() if isinstance(mime, str) else ""
    return family if family in ("image", "audio", "video") else default


def data_url_kind(value: Any, default: str = "document") -> str | None:
    """The kind of a ``data:`` URL's content (None for a text type, which is read);
    `default` for a value that is no data URL (a URL the provider fetches, bare base64)."""
    if not isinstance(value, str) or not value.startswith("data:"):
        return default
    return media_kind(value[5:].split(",", 1)[0].split(";", 1)[0])


def file_holders(file: Any, inputs: bool) -> list[Any]:
    """The slot holders of an OpenAI file (a chat ``file`` part's ``file``, a Responses
    ``input_file`` part): its ``file_data`` when a data URL of a text type (read, decoded);
    with `inputs`, an `Unread` marker for other data (of its media type) and for a
    ``file_id`` or ``file_url`` (a file the provider fetches)."""
    if not isinstance(file, dict):
        return []
    out: list[Any] = []
    data = file.get("file_data")
    if isinstance(data, str):
        text = file_data_slot(file)
        if text is not None:
            out.append(text)
        elif inputs:
            out.append(Unread(data_url_kind(data) or "document"))
    if inputs and (isinstance(file.get("file_id"), str) or isinstance(file.get("file_url"), str)):
        out.append(Unread("file"))
    return out


def unread_inputs(slots: Iterable[tuple[Any, Any]]) -> list[tuple[str, str]]:
    """(role, kind) of every `Unread` marker among (role, holder) pairs, in walk order."""
    return [(role, holder.kind) for role, holder in slots if holder.__class__ is Unread]


#: where `inputs_of` keeps its answer in the exchange's state (`forget_request` drops it)
UNREAD_MEMO = "_unread_inputs"


def inputs_of(adapter: Any, body: bytes, doc: Any,
              memo: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(role, kind) of each input of the request `doc` no guard can read, as its adapter
    finds them (`unread_inputs`); none at once for a body whose bytes cannot hold one (the
    adapter's `unread_needles`). With `memo` (the exchange's state), the policies that ask
    (the guards refuse them, budgets count them) walk one request once."""
    if memo is not None:
        hit = memo.get(UNREAD_MEMO)
        if hit is not None and hit[0] is doc:
            return hit[1]   # type: ignore[no-any-return]
    find = getattr(adapter, "unread_inputs", None)
    found: list[tuple[str, str]] = []
    if find is not None and any(n in body for n in getattr(adapter, "unread_needles", ())):
        found = find(doc)
    if memo is not None:
        memo[UNREAD_MEMO] = (doc, found)
    return found


#: the keys by which vLLM reads a content part as media, whatever its `type` says, when the
#: part has a `uuid` or no type (`chat_utils._parse_chat_message_content_mm_part`; its
#: request model keeps them on a text part), and the kind of media each loads
MEDIA_KEYS = {"image_url": "image", "image_embeds": "image", "audio_embeds": "audio",
              "prompt_embeds": "file", "audio_url": "audio", "input_audio": "audio",
              "video_url": "video", "video_embeds": "video"}


def media_keys(part: dict[str, Any]) -> list[str]:
    """The kinds of media a part carries by its keys (`MEDIA_KEYS`), read as such whatever
    its type (found by review: `{"type": "text", "uuid": ..., "video_url": ...}` is a video
    to vLLM, and was text to the guards). A key that is null counts only beside a `uuid`
    (vLLM's branch that reads parts by their keys, some by presence alone): a client that
    writes its unset fields as null sends text parts with `"image_url": null`."""
    vllm = "uuid" in part
    return [kind for key, kind in MEDIA_KEYS.items()
            if part.get(key) is not None or (vllm and key in part)]
