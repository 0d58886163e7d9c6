"""Budgets and input the provider keeps or fetches: a request that has the provider add input
that never crosses the gateway is billed for it as input, but the prompt estimate leaves it
out (sans-IO). Such input is context the provider stored earlier (the Responses API's
`previous_response_id`, `conversation` and `item_reference` inputs, a stored `prompt` by id,
an assistant message's `audio.id` in Chat Completions, Gemini's `cachedContent`) and files
given by id or URL (`fetched_file`: an OpenAI `file` / `input_file` part's `file_id` or
`file_url`, an Anthropic block whose source is a file id or a URL, a Gemini or Vertex part's
`fileData`, an OpenAI-compatible server's `video_url` / `audio_url` that is not a data URL):
the provider extracts a PDF of hundreds of pages into hundreds of thousands of input tokens,
a video by URI into a million. Settling charges the real usage afterwards, but admission has
reserved next to nothing: any number of such requests sent at once each fit the budget, and
together they spend many times it before the first one settles (found by the spend audit:
2,000 concurrent follow-ups to a 200k-token conversation charged 2,000 USD against a 1 USD
budget).

Default deny, as for replies made later (`deferred`): on a route with token or spend budgets
such a request is refused (400, in the provider's format, naming the field) unless the route
sets `allow_stored_context: true`, which accepts that overshoot (bounded by how many such
requests a client sends at once; each is still charged in full when it settles).

Left alone, by design:

* images by URL or file id (an `image_url` / `input_image`, an Anthropic image block, a
  Gemini `fileData` of an image type, as the request declares it): a provider bills an image
  at a bounded count whatever its size (about 1,600 tokens on Claude, 258 to 1,120 on
  Gemini, at most a few thousand on most OpenAI models; gpt-4o-mini counts up to about
  48,000, at a far lower price per token), and the estimate reserves nothing for an image
  sent inline either: refusing the URL would not close that, a reservation per image would
  (docs/rate-limits.md);
* inline data (a base64 PDF, `file_data`, `inlineData`): it crosses the gateway, its size is
  bounded by the request body's, and the estimate leaves it out as it does all input media;
* files a hosted tool works on (code execution containers and `container_upload`, file
  search stores, skills, URL context, web fetch): a tool's result is input of the tool's
  own, as for every hosted tool (docs/spend-budgets.md);
* token counts (`count_tokens`, `countTokens`): free, a file in one costs nothing.

The walk (on every request of a budget route) looks at the content parts of messages only,
passing most at a glance by their `type` (Gemini parts by their keys), and builds a field's
path only for the one it refuses: it never reads a text, so a long prompt costs nothing more,
and a body of many small parts a fraction of its parse.
"""

from __future__ import annotations

from typing import Any

from ..policy import Reject
from ..providers.google_prompts import items, media_types

_STORED = "a file stored at the provider"
#: an OpenAI file's fields naming a file the provider gets itself, and what they are
_OPENAI_FILES = (("file_id", _STORED), ("file_url", "a file the provider fetches from a URL"))
#: OpenAI-compatible servers' (vLLM's) media parts a server fetches by URL
_OPENAI_MEDIA = {"video_url": "a video", "audio_url": "audio"}
#: Anthropic blocks that hold blocks
_ANTHROPIC_RESULTS = ("tool_result", "mcp_tool_result")
#: Anthropic blocks with a source left alone: an image (bounded), a container upload (a
#: file the code execution tool works on)
_ANTHROPIC_LEFT = ("image", "container_upload")
#: a Gemini part's file data, both spellings, and its URI's
_GOOGLE_FILES = (("fileData", "fileUri"), ("file_data", "file_uri"))
#: deeper than tool results nest in a real request
_MAX_DEPTH = 8


def stored_context(endpoint: str | None, doc: dict[str, Any]) -> str | None:
    """What of `doc` the provider adds from its own storage or fetches, as a refusal names
    it; None for a request that carries its whole input."""
    if endpoint == "responses":
        if doc.get("previous_response_id") is not None:
            return "previous_response_id (an earlier response's whole conversation)"
        if doc.get("conversation") is not None:
            return "conversation (a stored conversation's items)"
        prompt = doc.get("prompt")
        if isinstance(prompt, dict) and prompt.get("id") is not None:
            return "prompt.id (a stored prompt)"
        for field in ("input", "instructions"):
            given = doc.get(field)
            if isinstance(given, list) and any(_item_reference(item) for item in given):
                return f"an item_reference in {field} (a stored item)"
    elif endpoint in ("generateContent", "streamGenerateContent", "countTokens"):
        for key in ("cachedContent", "cached_content"):
            if doc.get(key) is not None:
                return f"{key} (content cached at the provider)"
    elif endpoint == "messages":
        found = _compaction(doc.get("context_management"))
        if found is not None:
            return found
    return fetched_file(endpoint, doc)


def _item_reference(item: Any) -> bool:
    """A Responses API input item that names a stored item: `type: item_reference`, or an
    `id` with no type (null or absent: OpenAI's `ItemReference` makes `type` optional) and
    no `role` (a message's type is optional too, its role is not; found by review)."""
    if item.__class__ is not dict:
        return False
    kind = item.get("type")
    return kind == "item_reference" or (kind is None and "id" in item and "role" not in item)


def _compaction(config: Any) -> str | None:
    """An Anthropic compaction edit (`context_management.edits[]` of a `compact_*` type, or
    one of a type this code does not know): the provider runs a pass of its own over the
    whole conversation to summarise it, and reports that pass apart from the message's
    usage (`usage.iterations`), which the budgets do not settle on (found by review)."""
    if config.__class__ is not dict:
        return None
    for i, edit in enumerate(_list(config.get("edits"))):
        kind = edit.get("type") if edit.__class__ is dict else None
        if not (isinstance(kind, str) and kind.startswith(_CLEARING_EDITS)):
            return (f"context_management.edits[{i}] (a {kind if isinstance(kind, str) else ''}"
                    " edit: compaction runs a pass of the provider's own, billed apart from "
                    "the usage the budgets read)")
    return None


#: the context edits that only clear parts of the conversation (no pass of their own)
_CLEARING_EDITS = ("clear_tool_uses_", "clear_thinking_")


def fetched_file(endpoint: str | None, doc: dict[str, Any]) -> str | None:
    """The first file of `doc` the provider reads by id or URL as input (not an image), as
    its field's path and what it is: ``input[2].content[0].file_id (a file stored at the
    provider)``; None when there is none, or on an endpoint that takes none."""
    if endpoint == "chat.completions":
        return _openai_items(doc.get("messages"), "messages", ("content",), False)
    if endpoint == "responses":
        return _openai_items(doc.get("input"), "input", ("content", "output"), True) or \
            _openai_items(doc.get("instructions"), "instructions", ("content", "output"),
                          True)
    if endpoint == "messages":
        for i, message in enumerate(_list(doc.get("messages"))):
            if message.__class__ is dict:
                found = _anthropic_blocks(message.get("content"), 0)
                if found is not None:
                    return f"messages[{i}].content{found}"
        return None
    if endpoint in ("generateContent", "streamGenerateContent"):
        for key in ("systemInstruction", "system_instruction"):
            found = _google_content(doc.get(key))
            if found is not None:
                return key + found
        for i, content in enumerate(items(doc.get("contents"))):
            found = _google_content(content)
            if found is not None:
                return f"contents[{i}]{found}"
        return None
    if endpoint == "embedContent":
        found = _google_content(doc.get("content"))
        return None if found is None else "content" + found
    if endpoint == "batchEmbedContents":
        for k, request in enumerate(_list(doc.get("requests"))):
            if request.__class__ is dict:
                found = _google_content(request.get("content"))
                if found is not None:
                    return f"requests[{k}].content{found}"
    return None


def _list(value: Any) -> list[Any]:
    return value if value.__class__ is list else []


# --- OpenAI: Chat Completions and the Responses API ------------------------------------
#: OpenAI part kinds that hold no file by id or URL, or an image (bounded: left to settle):
#: passed at a glance
_OPENAI_PLAIN = frozenset({"text", "input_text", "output_text", "refusal", "summary_text",
                           "reasoning_text", "image_url", "input_image", "image",
                           "input_audio"})


def _openai_items(value: Any, name: str, keys: tuple[str, ...], bare: bool) -> str | None:
    """Messages or input items: each one's parts (under `keys`), an earlier audio reply by
    id, and, with `bare`, an item that is no message (a part given as an item)."""
    if value.__class__ is not list:
        return None
    for i, item in enumerate(value):
        if item.__class__ is not dict:
            continue
        audio = item.get("audio")   # a chat message's earlier audio reply, by id
        if audio.__class__ is dict and audio.get("id") is not None:
            return f"{name}[{i}].audio.id (an earlier audio reply stored at the provider)"
        if bare and "role" not in item:
            found = _openai_part(item)
            if found is not None:
                return f"{name}[{i}]{found}"
        for key in keys:
            parts = item.get(key)
            if parts.__class__ is not list:
                continue
            for j, part in enumerate(parts):
                if part.__class__ is not dict:
                    continue
                kind = part.get("type")
                if kind.__class__ is str and kind in _OPENAI_PLAIN \
                        and _OPENAI_MEDIA.keys().isdisjoint(part):
                    continue
                found = _openai_part(part)
                if found is not None:
                    return f"{name}[{i}].{key}[{j}]{found}"
    return None


def _openai_part(part: dict[str, Any]) -> str | None:
    """A chat `file` part's `file.file_id`, a Responses `input_file`'s `file_id` or
    `file_url`, the same fields on a part of a kind newer than this code, a video or audio
    by URL (the rest of its path and what it is); not an image, not inline data."""
    kind = part.get("type")
    if not (kind.__class__ is str and kind in _OPENAI_PLAIN):
        for holder, where in ((part, ""), (part.get("file"), ".file")):
            if holder.__class__ is dict:
                for key, what in _OPENAI_FILES:
                    if holder.get(key) is not None:
                        return f"{where}.{key} ({what})"
    # by its key, whatever its type: vLLM reads a part with a `uuid`, or without a type,
    # as the media its keys name (found by review: a `text` part with a `video_url`)
    for key, what in _OPENAI_MEDIA.items():
        value = part.get(key)
        # (null beside a uuid: vLLM's media cached under it, stored context too)
        if value is not None or (key in part and "uuid" in part):
            url = value.get("url") if isinstance(value, dict) else value
            if not (isinstance(url, str) and url.startswith("data:")):
                return f".{key} ({what} the server fetches from a URL)"
    return None


# --- Anthropic Messages ----------------------------------------------------------------
def _anthropic_blocks(value: Any, depth: int) -> str | None:
    """A document (or a block of a kind newer than this code) whose source is a file id or
    a URL, in a message's blocks or a tool result's (the rest of its path and what it is)."""
    for j, block in enumerate(_list(value)):
        if block.__class__ is not dict:
            continue
        kind = block.get("type")
        if kind == "text":
            continue
        if kind.__class__ is not str:
            kind = ""
        if kind in _ANTHROPIC_RESULTS:
            if depth < _MAX_DEPTH:
                found = _anthropic_blocks(block.get("content"), depth + 1)
                if found is not None:
                    return f"[{j}].content{found}"
            continue
        source = block.get("source")
        if kind in _ANTHROPIC_LEFT or source.__class__ is not dict:
            continue
        what = "a document" if kind == "document" else "a file"
        if source.get("type") == "file":
            return f"[{j}].source.file_id ({_STORED})"
        if source.get("type") == "url":
            return f"[{j}].source.url ({what} the provider fetches from a URL)"
    return None


# --- Gemini and Vertex AI --------------------------------------------------------------
def _google_content(content: Any) -> str | None:
    """A Content's parts: file data that is no image, in a part or a function response's
    parts (the rest of its path and what it is)."""
    if content.__class__ is not dict:
        return None
    for j, part in enumerate(items(content.get("parts"))):
        if part.__class__ is not dict or ("text" in part and len(part) == 1):
            continue
        found = _google_part(part)
        if found is not None:
            return f".parts[{j}]{found}"
        for name in ("functionResponse", "function_response"):
            response = part.get(name)
            if response.__class__ is dict:
                for k, inner in enumerate(items(response.get("parts"))):
                    if inner.__class__ is dict:
                        found = _google_part(inner)
                        if found is not None:
                            return f".parts[{j}].{name}.parts[{k}]{found}"
    return None


def _google_part(part: dict[str, Any]) -> str | None:
    for name, uri in _GOOGLE_FILES:
        data = part.get(name)
        if data is None:
            continue
        # both spellings of its type when they differ (Google keeps one): an image only
        # when each says so
        mime = next((m for m in media_types(data) if not _image(m)), "")
        if mime == "":
            continue
        key = next((k for k in (uri, "fileUri", "file_uri")
                    if isinstance(data, dict) and k in data), None)
        kind = mime if isinstance(mime, str) and mime else "of no stated type"
        return f".{name}{'.' + key if key else ''} (a file the provider fetches, {kind})"
    return None


def _image(mime: Any) -> bool:
    return isinstance(mime, str) and mime.split("/", 1)[0].strip().lower() == "image"


def refuse_stored_context(why: str, refused: Any) -> None:
    """Refuse a request whose input the provider keeps (`refused`: the decision's metric)."""
    refused()
    raise Reject(400, f"request refused: {why}; the provider adds it as input the gateway "
                 "never sees, so this route's token and spend budgets cannot reserve it "
                 "(send the input in the request, or set allow_stored_context on the route)",
                 details="extproc_stored_context")
