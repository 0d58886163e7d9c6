"""What the model reads in a Gemini or Vertex AI generateContent request (countTokens'
and embedContent's inputs too), as text slots the guards read and rewrite, and the part
reading a reply's shares.

In ``request_slots`` order (``parse_request`` reads and ``rewrite_request_texts`` rewrites
the same slots): the system instruction (a Content or a bare string), tool declarations
(``tools[].functionDeclarations[]``: ``description``, and ``parameters`` /
``parametersJsonSchema`` / ``response`` / ``responseJsonSchema`` as compact JSON; role
"system"), the structured-output schema (``generationConfig.responseSchema`` /
``responseJsonSchema``, role "system"), then ``contents`` (role lower-cased, "model" ->
"assistant"): every part's ``text`` (thought parts too), inline data of a text media type
(decoded from base64, ``providers.inline``; other inline data and file data by URI are
`providers.unread` markers when asked for) and the ``displayName`` of either,
``functionCall.args`` and ``functionResponse.response`` and the text files of its
``parts`` (any other field of either, Vertex's ``partialArgs`` among them, read whole), a
server-side tool's ``toolCall.args`` and ``toolResponse.response`` (role "tool",
objects read whole and rewritten string value by string value), ``executableCode.code`` and
``codeExecutionResult.output`` (role "tool"); a part key this code does not know (a part
kind newer than it) has its value read whole, keys and numbers included (a reply's are read
string by string: ``other_part_slots``, shared with replies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from extproc.providers.inline import BLOBS, InlineText, is_text_blob
from extproc.providers.slots import field_strings
from extproc.providers.unread import Unread, media_kind
from extproc.providers.values import as_dict, as_list, lower_role

_ROLES = {"model": "assistant", "function": "tool"}
#: (role or kind, holder, key): a text at holder[key] (a string, or a JSON value read as
#: its compact dump and rewritten string value by string value)
Slot = tuple[str, Any, Any]
#: the spellings of a part's file data (a file the provider fetches by URI)
FILES = ("fileData", "file_data")
#: a part's data fields: inline data and file data, both spellings
DATA = (*BLOBS, *FILES)
#: parts holding a JSON value the model reads or writes: (part field, value field), both
#: spellings; read whole (``functionCall.args``), a string (code) or an object
VALUES = (("functionCall", "args"), ("function_call", "args"),
          ("functionResponse", "response"), ("function_response", "response"),
          ("toolCall", "args"), ("tool_call", "args"),      # a server-side tool's call
          ("toolResponse", "response"), ("tool_response", "response"),   # and its result
          ("executableCode", "code"), ("executable_code", "code"),
          ("codeExecutionResult", "output"), ("code_execution_result", "output"))
_DECLARATIONS = ("functionDeclarations", "function_declarations")
_SCHEMAS = ("parameters", "parametersJsonSchema", "parameters_json_schema", "response",
            "responseJsonSchema", "response_json_schema")
#: the spellings of the label of inline or file data
_LABELS = ("displayName", "display_name")
_OUTPUT_SCHEMAS = ("responseSchema", "response_schema", "responseJsonSchema",
                   "response_json_schema", "_responseJsonSchema", "_response_json_schema",
                   # its successor: a format (or a list of them) holding the text's schema
                   "responseFormat", "response_format")


#: what a candidate says besides its content that is no text a client reads: enums, token
#: log probabilities (refused unless asked, `unreadable_reply`) and binary payloads, at any
#: depth of its metadata (or of a part of a kind this code does not know)
NOT_TEXT = frozenset({"content", "index", "finishReason", "finish_reason", "safetyRatings",
                      "safety_ratings", "logprobsResult", "logprobs_result", "sdkBlob",
                      "sdk_blob"})
#: the keys of a part read field by field, or holding no text (a thought signature, binary
#: data or a file's URI, video offsets); any other key's strings are read whole
PART_KEYS = frozenset({"text", "thought", "thoughtSignature", "thought_signature",
                       *(name for name, _ in VALUES), *BLOBS, *FILES, "videoMetadata",
                       "video_metadata", "mediaResolution", "media_resolution"})


def other_part_slots(part: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(holder, key) of every string of a part under a key this code does not know (a part
    type newer than it): read whole, so it fails closed."""
    return field_strings(part, PART_KEYS, NOT_TEXT)


def part_slots(part: dict[str, Any], role: str, inputs: bool = False) -> Iterator[Slot]:
    """A part's text (thought or not) and its function call args, function response, code
    and code result (role "tool"), under either spelling."""
    if isinstance(part.get("text"), str):
        yield role, part, "text"
    yield from _data_slots(part, role, inputs)
    for name, key in VALUES:
        value = part.get(name)
        if isinstance(value, dict) and isinstance(value.get(key), str | dict | list):
            yield "tool", value, key   # a null or a number holds no text
        if isinstance(value, dict) and key == "response":   # a function response's files
            for inner in items(value.get("parts")):
                if isinstance(inner, dict):
                    yield from _data_slots(inner, "tool", inputs)


def _data_slots(part: dict[str, Any], role: str, inputs: bool) -> Iterator[Slot]:
    """A part's inline data (either spelling) of a text media type, read as the model reads
    it; the ``displayName`` of inline and file data (a label, read: a guard over-reading is
    harmless, one under-reading is not); with `inputs`, other inline data and file data (by
    URI) as `Unread` markers."""
    for name in DATA:
        data = part.get(name)
        if isinstance(data, dict):
            for key in _LABELS:
                if isinstance(data.get(key), str):
                    yield role, data, key
    for name in BLOBS:
        blob = part.get(name)
        if is_text_blob(blob):
            yield role, InlineText(blob), None
        elif blob is not None and inputs:
            yield from ((role, Unread(kind), None) for kind in data_kinds(name, blob))
    if not inputs:
        return
    for name in FILES:
        data = part.get(name)
        if data is not None:
            yield from ((role, Unread(kind), None) for kind in data_kinds(name, data))


def data_kinds(name: str, value: Any) -> list[str]:
    """The kinds of a part's `name` field (inline data or file data, either spelling) as an
    input no guard reads (`providers.unread`): one, or one per media type when `mimeType`
    and `mime_type` both state one and they differ (Google's parser keeps one of them, so
    the input is read as each: a PDF also labelled an image is a document too); empty when
    the gateway reads it (inline data of a text type) or it is neither (or null)."""
    if value is None:
        return []
    if name in BLOBS:
        if is_text_blob(value):
            return []
        return list(dict.fromkeys(media_kind(m) or "document" for m in media_types(value)))
    if name in FILES:
        return list(dict.fromkeys(media_kind(m, "file") or "file" for m in media_types(value)))
    return []


def part_media(part: dict[str, Any]) -> list[str]:
    """The kinds of a part's inputs no guard reads (its inline and file data)."""
    return [kind for name in DATA if name in part for kind in data_kinds(name, part[name])]


def media_types(blob: Any) -> list[Any]:
    """The media types inline or file data states, in either spelling (both when both are
    given and differ), or `[None]` when it states none."""
    if not isinstance(blob, dict):
        return [None]
    return list(dict.fromkeys(v for v in (blob.get("mimeType"), blob.get("mime_type")) if v)) \
        or [None]


def _content_slots(holder: Any, key: Any, role: str | None, inputs: bool) -> Iterator[Slot]:
    """A Content (or a bare string) at holder[key]; its own role unless ``role`` is given."""
    content = holder[key]
    if isinstance(content, str):  # tolerated for systemInstruction
        yield role or "user", holder, key
        return
    if not isinstance(content, dict):
        return
    if role is None:
        own = lower_role(content.get("role"))
        role = _ROLES.get(own, own)
    for part in items(content.get("parts")):
        if isinstance(part, dict):
            yield from content_part_slots(part, role, inputs)


#: the keys of the usual part: a text (thought or not, maybe signed), read at once
_PLAIN_PART = frozenset({"text", "thought", "thoughtSignature", "thought_signature"})


def content_part_slots(part: dict[str, Any], role: str, inputs: bool) -> Iterator[Slot]:
    """A part of a prompt's Content: the usual text part at once, any other as
    `all_part_slots` reads it (which finds the same in the usual one)."""
    if isinstance(part.get("text"), str) and part.keys() <= _PLAIN_PART:
        yield role, part, "text"
        return
    yield from all_part_slots(part, role, inputs)


#: the fields of a prompt's function call or response read on their own (its `args`, its
#: `response` and that one's `parts`: `VALUES`), or holding no text (its name, read by
#: `guards.names`, and its id); any other (Vertex's `partialArgs`, a field newer than this
#: code) has its value read whole
_CALL_KEYS = frozenset({"name", "id", "args", "response", "parts"})


def all_part_slots(part: dict[str, Any], role: str, inputs: bool) -> Iterator[Slot]:
    """A part of a prompt's Content, field by field."""
    yield from part_slots(part, role, inputs)
    for name in ("functionCall", "function_call", "functionResponse", "function_response"):
        call = part.get(name)
        if isinstance(call, dict):
            for key in call:
                if key not in _CALL_KEYS and isinstance(call[key], str | dict | list):
                    yield "tool", call, key
    for key in part:   # a part kind newer than this code: its value read whole (its
        if key not in PART_KEYS and isinstance(part[key], str | dict | list):
            yield role, part, key   # keys and numbers too, as a function's args are


def items(value: Any) -> list[Any]:
    """A repeated field of a request as Google's JSON parser reads it: a list, or a lone
    object as a list of one (`"parts": {"text": ...}` is a prompt, as Google's own examples
    send it)."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def request_slots(body: dict[str, Any], inputs: bool = False) -> Iterator[Slot]:
    """The texts of a request; with `inputs`, `providers.unread` markers too."""
    for key in ("systemInstruction", "system_instruction"):
        if body.get(key) is not None:
            yield from _content_slots(body, key, "system", inputs)
    for tool in items(body.get("tools")):
        if inputs and (any(as_dict(as_dict(tool).get(name)).get(stores)
                           for name in ("fileSearch", "file_search")
                           for stores in ("fileSearchStoreNames", "file_search_store_names"))
                       or as_dict(tool).get("retrieval") is not None):
            # stores of files Google searches itself; Vertex's retrieval (a RAG corpus, a
            # Vertex AI Search data store, an external API) loads documents the same way
            yield "system", Unread("file"), None
        if inputs and any(as_dict(tool).get(name) is not None
                          for name in ("urlContext", "url_context")):
            # URL context: Google fetches the pages the prompt names, for the model only
            # (neither the page nor its text ever crosses the gateway)
            yield "system", Unread("fetched"), None
        for name in _DECLARATIONS:
            for declaration in items(as_dict(tool).get(name)):
                if not isinstance(declaration, dict):
                    continue
                if isinstance(declaration.get("description"), str):
                    yield "system", declaration, "description"
                for key in _SCHEMAS:
                    if isinstance(declaration.get(key), dict | list):
                        yield "system", declaration, key
    for name in ("generationConfig", "generation_config"):
        config = body.get(name)
        if isinstance(config, dict):
            for key in _OUTPUT_SCHEMAS:     # structured output: the model reads the schema
                if isinstance(config.get(key), dict | list):
                    yield "system", config, key
    contents = body.get("contents")
    if isinstance(contents, dict):   # one Content: a list of one to Google
        yield from _content_slots(body, "contents", None, inputs)
    for index in range(len(as_list(contents))):
        yield from _content_slots(contents, index, None, inputs)
