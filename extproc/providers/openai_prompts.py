"""What the model reads in an OpenAI Chat Completions request (and Azure's), as text slots
the guards read and rewrite, and the slot helpers a reply's reading shares.

In ``request_slots`` order (``parse_request`` reads and ``rewrite_request_texts`` rewrites
the same slots): tool definitions (``tools[].function`` / ``tools[].custom`` and legacy
``functions[]``: ``description``, and ``parameters`` / a custom tool's grammar ``format`` as
compact JSON, role "system"), the ``response_format`` JSON schema and its description (role
"system"), the predicted output ``prediction.content`` (role "user"), then per message (role
lower-cased, "developer" -> "system", "function" -> "tool"): ``name``, content (string,
string parts, the ``text`` of any part, the ``refusal`` of refusal parts, a ``file`` part's
``filename`` (OpenAI passes it to the model with the file) and its data URL of a text media
type, decoded: ``providers.inline``; images, audio, binary files and
files by id are `providers.unread` markers when asked for), a non-empty ``refusal`` and
``reasoning_content`` / ``reasoning``, and the arguments of tool calls and of the legacy
``function_call`` (a JSON string, passed whole as a ``JsonSource``; a non-string value is
rewritten string value by string value), a custom tool call's ``input`` (an earlier audio
reply sent back by ``audio.id`` is an unread audio input); a content part of
a kind this code does not know, or a message field it does not know, has every string read,
ids and payloads aside (it fails closed). Function and tool names are identifiers, not
texts (``guards.names`` reads them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from extproc.providers.slots import field_strings, string_slots
from extproc.providers.unread import Unread, file_holders, media_keys
from extproc.providers.values import (
    as_dict,
    as_list,
    as_str,
    lower_role,
    read_arguments,
    read_value,
    rewrite_arguments,
    rewrite_json_strings,
)

_ROLES = {"developer": "system", "function": "tool"}
#: content part kinds read field by field; a part of any other kind has every string read
PART_TYPES = frozenset({"text", "refusal", "image_url", "input_audio", "file"})
#: message fields read field by field, or holding no text (ids, an earlier audio reply's id);
#: any other field's strings are read whole
MESSAGE_KEYS = frozenset({"role", "content", "name", "refusal", "reasoning_content",
                          "reasoning", "tool_calls", "function_call", "tool_call_id", "audio"})
#: in a part or field read whole: keys whose strings are ids, enums or payloads, not text
#: (not ``file``: a file's ``filename`` is text the model reads, its data and id are opaque)
OPAQUE = frozenset({"type", "id", "data", "signature", "encrypted_content", "format",
                    "detail", "file_id", "file_data", "file_url", "cache_control",
                    "image_url", "input_audio"})
_READ_OR_OPAQUE = MESSAGE_KEYS | OPAQUE
#: keys of a part that carry data or a file no guard reads (an `Unread` input)
PAYLOADS = ("data", "file_id", "file_data", "image_url", "input_audio", "file")
#: part kinds OpenAI-compatible servers load as media (vLLM's): not OpenAI's own, read as
#: the media they are
MEDIA_PARTS = {"video_url": "video", "audio_url": "audio", "image_embeds": "image",
               "audio_embeds": "audio", "video_embeds": "video"}
#: a message's or a delta's texts besides its content: (field, reply kind)
EXTRA = (("refusal", "text"), ("reasoning_content", "thinking"), ("reasoning", "thinking"))
#: (role or kind, holder, key): a text at holder[key] (a string, or a JSON value read as
#: its compact dump and rewritten string value by string value)
Slot = tuple[str, Any, Any]


def _url(value: Any) -> bool:
    """A part's value that names what a server would fetch: `{"url": ...}` or a URL."""
    if isinstance(value, dict):
        return "url" in value
    return isinstance(value, str) and value.startswith(("http://", "https://", "data:"))


def content_slots(holder: dict[str, Any], role: str, inputs: bool = False) -> Iterator[Slot]:
    """String content, string parts, and the text (a refusal part's refusal) of any part;
    with `inputs`, an `Unread` marker for each image, audio and binary or fetched file."""
    content = holder.get("content")
    if isinstance(content, str):
        yield role, holder, "content"
        return
    for index, part in enumerate(as_list(content)):
        if isinstance(part, str):
            yield role, content, index
        elif isinstance(part, dict):
            kind = part.get("type")
            if not isinstance(kind, str) or kind not in PART_TYPES:   # a kind newer than
                # this code (or malformed): every string in it is read
                yield from ((role, h, k) for h, k in field_strings(part, OPAQUE, OPAQUE))
                if not inputs:
                    continue
                media = media_keys(part)
                if isinstance(kind, str) and kind in MEDIA_PARTS:   # (a type may be any
                    yield role, Unread(MEDIA_PARTS[kind]), None      # value: unhashable)
                elif media:                     # a part without a type: media by its keys
                    yield role, Unread(media[0]), None
                elif any(key in part for key in PAYLOADS) or (   # what it carries: data, or
                        role != "assistant" and any(_url(v) for v in part.values())):  # a URL
                    yield role, Unread("file"), None   # a server may fetch (not a citation
                continue                               # an earlier reply made)
            key = "refusal" if kind == "refusal" else "text"
            if isinstance(part.get(key), str):
                yield role, part, key
            file = part.get("file")
            if isinstance(file, dict) and isinstance(file.get("filename"), str):
                yield role, file, "filename"   # the model reads a file's name with it
            for holder in file_holders(file, inputs):   # a text file is read
                yield role, holder, None
            if not inputs:
                continue
            if kind == "image_url":
                yield role, Unread("image"), None
            elif kind == "input_audio":
                yield role, Unread("audio"), None
            else:   # a text part carrying media keys besides: media to vLLM
                media = media_keys(part)
                if media:
                    yield role, Unread(media[0]), None


def extra_slots(message: dict[str, Any]) -> Iterator[Slot]:
    """A reply message's refusal and reasoning (`EXTRA`, as (kind, holder, key)): a
    non-empty string; a list of parts, read as content is (OpenAI-compatible servers write
    them so); any other value's strings, each whole (never skipped)."""
    for key, kind in EXTRA:
        value = message.get(key)
        if isinstance(value, str):
            if value:
                yield kind, message, key
        elif isinstance(value, list):
            yield from content_slots({"content": value}, kind)
        elif isinstance(value, dict):
            yield from ((kind, h, k) for h, k in string_slots(message, key, OPAQUE))


def call_slots(message: dict[str, Any]) -> Iterator[Slot]:
    """Tool call and legacy function_call arguments, custom tool call input (role "tool")."""
    for call in as_list(message.get("tool_calls")):
        call = as_dict(call)
        for holder, key in ((as_dict(call.get("function")), "arguments"),
                            (as_dict(call.get("custom")), "input")):
            if key in holder:
                yield "tool", holder, key
    legacy = as_dict(message.get("function_call"))
    if "arguments" in legacy:
        yield "tool", legacy, "arguments"


def read_text(holder: Any, key: Any) -> str:
    """A slot's text: arguments as JSON source, any other string as it is, an object value
    as its compact dump (the key "arguments" is only ever that of a call's arguments)."""
    return read_arguments(holder[key]) if key == "arguments" else read_value(holder[key])


def rewrite_text(holder: Any, key: Any, role: str, fn: Callable[[str, str], str]) -> bool:
    if key == "arguments":
        return rewrite_arguments(holder, key, role, fn)
    return rewrite_json_strings(holder, key, role, fn)


#: the fields of the usual message: `message_slots` reads one of only these, content a string,
#: at once (what `all_message_slots` would find in it: its name, then its content)
_PLAIN = frozenset({"role", "content", "name"})


def message_slots(message: Any, inputs: bool = False) -> Iterator[Slot]:
    if not isinstance(message, dict):
        return
    role = lower_role(message.get("role"))
    role = _ROLES.get(role, role)
    if isinstance(message.get("content"), str) and message.keys() <= _PLAIN:
        if isinstance(message.get("name"), str):
            yield role, message, "name"
        yield role, message, "content"
        return
    yield from all_message_slots(message, role, inputs)


def all_message_slots(message: dict[str, Any], role: str, inputs: bool = False
                      ) -> Iterator[Slot]:
    """A message's slots, field by field (`role` lower-cased and mapped already)."""
    if isinstance(message.get("name"), str):
        yield role, message, "name"
    yield from content_slots(message, role, inputs)
    for key, _ in EXTRA:
        if as_str(message.get(key)):
            yield role, message, key
    yield from call_slots(message)
    if inputs and isinstance(message.get("audio"), dict):   # an earlier audio reply, by id:
        yield role, Unread("audio"), None                   # the model hears it again
    # a field newer than this code: every string in it is read
    yield from ((role, h, k) for h, k in field_strings(message, _READ_OR_OPAQUE, OPAQUE))


def spec_slots(spec: Any) -> Iterator[Slot]:
    """A tool definition's description, parameters schema and (a custom tool's) grammar
    (role "system")."""
    if isinstance(spec, dict):
        if isinstance(spec.get("description"), str):
            yield "system", spec, "description"
        for key in ("parameters", "format"):
            if isinstance(spec.get(key), dict | list):
                yield "system", spec, key


def request_slots(body: dict[str, Any], inputs: bool = False) -> Iterator[Slot]:
    """The texts of a request; with `inputs`, `providers.unread` markers too."""
    for tool in as_list(body.get("tools")):
        if isinstance(tool, dict):
            yield from spec_slots(tool.get("function"))
            yield from spec_slots(tool.get("custom"))
    for spec in as_list(body.get("functions")):
        yield from spec_slots(spec)
    # structured outputs: the model reads the schema, and its description
    schema = as_dict(as_dict(body.get("response_format")).get("json_schema"))
    if isinstance(schema.get("description"), str):
        yield "system", schema, "description"
    if isinstance(schema.get("schema"), dict | list):
        yield "system", schema, "schema"
    # predicted output: sent to the provider, which matches the reply against it
    prediction = body.get("prediction")
    if isinstance(prediction, dict):
        yield from content_slots(prediction, "user")
    for message in as_list(body.get("messages")):
        yield from message_slots(message, inputs)
    # what OpenAI-compatible servers render into the prompt with their chat template (vLLM's
    # `documents`, a template of the client's own, its arguments): every string, read
    for key, role in (("documents", "user"), ("chat_template", "system"),
                      ("chat_template_kwargs", "system")):
        if key in body:
            yield from ((role, h, k) for h, k in string_slots(body, key, OPAQUE))
    # Azure On Your Data: instructions to the model, and documents Azure retrieves itself
    for source in as_list(body.get("data_sources")):
        parameters = as_dict(as_dict(source).get("parameters"))
        if isinstance(parameters.get("role_information"), str):
            yield "system", parameters, "role_information"
        if inputs:
            yield "system", Unread("file"), None
