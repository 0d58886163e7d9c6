"""Where the texts are in OpenAI Responses API items: the slots a guard reads and rewrites.

A slot is ``(holder, key, label)``: ``holder[key]`` is a string. Reading a slot and storing
a rewritten string back into it are then the same walk, so what the adapter reads and what a
masking guard rewrites can never drift apart. Slots are collected before anything is
rewritten; rewriting replaces string values only, so the slots stay valid.

Request slots (label = the normalised role) cover what the model reads: ``instructions`` (a
string, or a list of items as ``Response.instructions`` allows), ``input`` (a string, or a
list of items), ``prompt.variables`` values, function and custom tool descriptions,
parameter schemas and grammars, an MCP tool's ``server_description``, and a ``json_schema``
text format's description and schema. Known items are read field by field:

* ``message`` (with or without ``type``): string content, or parts ``input_text`` /
  ``output_text`` (``text``) and ``refusal`` (``refusal``); an ``input_file``'s
  ``filename`` (the model reads it with the file) and its data URL of a text media type
  are read, the data decoded; images, audio, other files and files by id or URL are
  `providers.unread` markers. Roles: developer -> system, others as given.
* ``function_call`` ``arguments``, ``custom_tool_call`` ``input``, ``function_call_output`` /
  ``custom_tool_call_output`` ``output`` (a string or parts, read as a message's): role
  "tool".
  Function and MCP call ``arguments`` strings are JSON source text (``is_arguments``): the
  adapter hands them to the guards as a ``JsonSource``.
* ``reasoning`` ``summary[].text`` and ``content[].text``, ``image_generation_call``
  ``revised_prompt`` (its ``result`` is a base64 image, an `Unread` image when asked for):
  role "assistant".
* ``computer_call_output``: a screenshot (an `Unread` image when asked for); ``item_reference`` and
  ``compaction_trigger``: no text.

Any other item type (MCP calls and listings, shell and apply_patch calls and outputs, tool
search, web and file search calls, programs, ...) is read whole: every string value at any
depth except identifiers, enums and binary payloads (``OPAQUE_KEYS``), role "tool". A new
item type the gateway does not know yet is therefore still read, never passed on unread.

The output items of replies are read in `responses_output`.
"""

from __future__ import annotations

from typing import Any

from extproc.providers.slots import string_slots
from extproc.providers.unread import Unread, file_holders, media_keys
from extproc.providers.values import as_dict, as_list, as_str

Slot = tuple[Any, Any, Any]

_ROLES = {"developer": "system"}
#: content part types that are text, and the key holding it
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "text": "text",
               "refusal": "refusal", "summary_text": "text", "reasoning_text": "text"}
_NO_TEXT_PARTS = frozenset({"input_image", "input_file", "input_audio", "image", "file"})
_NO_TEXT_ITEMS = frozenset({"item_reference", "compaction_trigger", "computer_call_output"})
#: keys of a part of an unknown kind that carry data or a file no guard reads
PAYLOADS = ("data", "file_id", "file_data", "file_url", "image_url")
_TOOL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})
#: keys whose string values are identifiers, enums or binary payloads, not text
OPAQUE_KEYS = frozenset({
    "type", "id", "call_id", "item_id", "status", "role", "approval_request_id",
    "caller_id", "container_id", "file_id", "file_data", "file_url", "image_url",
    "encrypted_content", "signature", "fingerprint", "mime_type", "detail",
    "phase", "execution", "server_label", "server_url", "connector_id", "authorization",
    "headers", "data", "vector_store_ids", "mode", "ttl",
})
#: output item types whose one generated text is streamed as argument deltas, and its key
ARGUMENT_KEYS = {"function_call": "arguments", "mcp_call": "arguments",
                  "custom_tool_call": "input", "code_interpreter_call": "code"}
#: output item types and their keys holding media, not text (`output_media`)
MEDIA_KEYS: dict[str | None, tuple[str, ...]] = {"image_generation_call": ("result",)}


def is_arguments(holder: Any, key: Any) -> bool:
    """True for the slot of a function or MCP call's (or MCP approval request's)
    ``arguments``, a string of JSON source text (custom tool input and interpreter code are
    plain text)."""
    return key == "arguments" and isinstance(holder, dict) \
        and holder.get("type") in ("function_call", "mcp_call", "mcp_approval_request")


def item_kind(obj: dict[str, Any]) -> str | None:
    """An item's or part's ``type``: None when absent, "?" (an unknown kind) when it is
    not a string."""
    kind = obj.get("type")
    return kind if kind is None or isinstance(kind, str) else "?"


# --------------------------------------------------------------------------- requests


def request_slots(body: dict[str, Any], inputs: bool = False) -> list[Slot]:
    """Every text of a ``POST /v1/responses`` body, as (holder, key, role), in body order
    of the fields: instructions, input, prompt variables, tools, text format; with `inputs`,
    `providers.unread` markers too."""
    out: list[Slot] = []
    if isinstance(body.get("instructions"), str):
        out.append((body, "instructions", "system"))
    else:
        for item in as_list(body.get("instructions")):
            item_slots(item, out, "system", inputs)
    if isinstance(body.get("input"), str):
        out.append((body, "input", "user"))
    else:
        for item in as_list(body.get("input")):
            item_slots(item, out, "user", inputs)
    variables = as_dict(as_dict(body.get("prompt")).get("variables"))
    for name in list(variables):
        value = variables[name]
        if isinstance(value, str):
            out.append((variables, name, "user"))
        elif isinstance(value, dict):
            _part_slots(value, "user", out, inputs)
    for tool in as_list(body.get("tools")):
        tool_slots(tool, out)
    if inputs:   # (the texts of tools an item gives are read with the item)
        for tool in given_tools(body):
            out.extend((Unread(kind), None, "system") for kind in tool_inputs(tool))
    text_format = as_dict(as_dict(body.get("text")).get("format"))
    if text_format.get("type") == "json_schema":
        if isinstance(text_format.get("description"), str):
            out.append((text_format, "description", "system"))
        _value(text_format, "schema", "system", out)
    return out


def item_slots(item: Any, out: list[Slot], default_role: str = "user",
               inputs: bool = False) -> None:
    """The slots of one input item (see the module docstring)."""
    if not isinstance(item, dict):
        return
    kind = item_kind(item)
    if kind == "message" or (kind is None and "role" in item):
        role = as_str(item.get("role")) or default_role
        role = _ROLES.get(role, role)
        if isinstance(item.get("content"), str):
            out.append((item, "content", role))
        else:
            for part in as_list(item.get("content")):
                _part_slots(part, role, out, inputs)
    elif kind == "function_call":
        _strings(item, "arguments", "tool", out)
    elif kind == "custom_tool_call":
        _strings(item, "input", "tool", out)
    elif kind == "image_generation_call":
        if isinstance(item.get("revised_prompt"), str):
            out.append((item, "revised_prompt", "assistant"))
        if inputs and item.get("result"):   # the image, sent back: the model sees it
            out.append((Unread("image"), None, "assistant"))
    elif kind in _TOOL_OUTPUTS:
        if isinstance(item.get("output"), str):
            out.append((item, "output", "tool"))
        else:
            for part in as_list(item.get("output")):
                _part_slots(part, "tool", out, inputs)
    elif kind == "computer_call_output":   # a screenshot
        if inputs:
            out.append((Unread("image"), None, "tool"))
    elif kind == "reasoning":
        for key in ("summary", "content"):
            for part in as_list(item.get(key)):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append((part, "text", "assistant"))
    elif kind not in _NO_TEXT_ITEMS:
        generic_slots(item, "tool", out)
        _item_values(item, kind, out)


def _item_values(item: dict[str, Any], kind: str | None, out: list[Slot]) -> None:
    """What `generic_slots` (strings only) leaves of the items that carry JSON values the model
    reads whole, keys and numbers included: tool definitions and schemas given as an item,
    a tool search's arguments, an MCP server's tool list, a shell call's environment."""
    if kind in ("additional_tools", "configuration_update"):
        for tool in as_list(item.get("tools")):
            tool_slots(tool, out)
        _value(as_dict(as_dict(item.get("text")).get("format")), "schema", "system", out)
    elif kind == "tool_search_call":
        _value(item, "arguments", "tool", out)
    elif kind == "mcp_list_tools":
        for tool in as_list(item.get("tools")):
            _value(as_dict(tool), "input_schema", "tool", out)
    elif kind == "local_shell_call":
        _value(as_dict(item.get("action")), "env", "tool", out)


def _part_slots(part: Any, role: str, out: list[Slot], inputs: bool) -> None:
    """A content part: its text, a text file's data, every string of an unknown kind; with
    `inputs`, an `Unread` marker for media and other files."""
    if isinstance(part, str):   # tolerated: a bare string in a content list
        return
    if not isinstance(part, dict):
        return
    kind = item_kind(part)
    key = _TEXT_PARTS.get(kind) if kind is not None else None
    if key is not None:
        if isinstance(part.get(key), str):
            out.append((part, key, role))
        media = media_keys(part) if inputs else ()
        if media:   # media keys beside the text: media to vLLM (`media_keys`)
            out.append((Unread(media[0]), None, role))
    elif kind in ("input_file", "file"):   # its name, and a text file, are read
        if isinstance(part.get("filename"), str):
            out.append((part, "filename", role))
        out.extend((holder, None, role) for holder in file_holders(part, inputs))
    elif kind in ("input_image", "image"):
        if inputs:
            out.append((Unread("image"), None, role))
    elif kind == "input_audio":
        if inputs:
            out.append((Unread("audio"), None, role))
    elif kind not in _NO_TEXT_PARTS:
        generic_slots(part, role, out)
        if inputs and any(key in part for key in PAYLOADS):   # and what it carries
            out.append((Unread("file"), None, role))


def tool_slots(tool: Any, out: list[Slot]) -> None:
    """A tool definition: any tool's description (a function's, a namespace's, a tool
    search's) and output schema, a function's or tool search's parameter schema, a custom
    tool's grammar, an MCP server's description (the model reads it), the tools of a
    namespace. Other hosted tools' settings (web search, file search, an MCP
    server's URL and headers, ...) are configuration, not prompt text."""
    if not isinstance(tool, dict):
        return
    kind = tool.get("type")
    # a description is shown to the model, whatever the tool (a function, a namespace, a
    # tool search); so are the schemas of what it takes and returns
    if isinstance(tool.get("description"), str):
        out.append((tool, "description", "system"))
    if kind in ("function", "tool_search"):
        _value(tool, "parameters", "system", out)
    elif kind == "custom":
        _value(tool, "format", "system", out)
    _value(tool, "output_schema", "system", out)
    for holder in (tool, as_dict(tool.get("environment"))):   # a shell's skills: shown
        for skill in as_list(holder.get("skills")):           # to the model by description
            if isinstance(skill, dict) and isinstance(skill.get("description"), str):
                out.append((skill, "description", "system"))
    if kind == "mcp" and isinstance(tool.get("server_description"), str):
        out.append((tool, "server_description", "system"))
    for inner in as_list(tool.get("tools")):
        tool_slots(inner, out)


def given_tools(body: Any) -> list[Any]:
    """Every tool a request gives the model: the top-level `tools`, and those an
    `additional_tools` or `configuration_update` item of `input` or `instructions` adds (a
    namespace's own tools are its, `tool_inputs` and `asks_media` look inside)."""
    body = as_dict(body)
    tools = list(as_list(body.get("tools")))
    for field in ("input", "instructions"):
        for item in as_list(body.get(field)):
            if as_dict(item).get("type") in ("additional_tools", "configuration_update"):
                tools.extend(as_list(as_dict(item).get("tools")))
    return tools


def tool_kinds(tool: Any) -> list[str]:
    """A tool's type and, at any depth, those of a namespace's tools."""
    if not isinstance(tool, dict):
        return []
    out = [tool["type"]] if isinstance(tool.get("type"), str) else []
    for inner in as_list(tool.get("tools")):
        out.extend(tool_kinds(inner))
    return out


def tool_inputs(tool: Any) -> list[str]:
    """What a hosted tool makes the provider load for the model by itself, which no guard
    reads (`providers.unread` kinds): files by id (code interpreter, a shell's container,
    and a container by id, which holds files uploaded to it or left by earlier runs),
    vector stores (file search), skills (inline, as a zip: a document; by reference), a
    remote MCP server's tools and results (`fetched`), at any depth of a namespace's
    tools."""
    if not isinstance(tool, dict):
        return []
    out: list[str] = []
    if tool.get("vector_store_ids"):
        out.append("file")
    if tool.get("type") == "mcp":   # a remote MCP server: its tools and results, unseen
        out.append("fetched")
    if isinstance(tool.get("container"), str):   # an existing container by id: its files
        out.append("file")                       # (uploaded, or left by earlier runs)
    for holder in (tool, as_dict(tool.get("container")), as_dict(tool.get("environment"))):
        if holder.get("file_ids") or holder.get("container_id"):   # (found by review)
            out.append("file")
        for skill in as_list(holder.get("skills")):
            out.append("document" if as_dict(skill).get("type") == "inline" else "file")
    for inner in as_list(tool.get("tools")):
        out.extend(tool_inputs(inner))
    return out


def _value(holder: dict[str, Any], key: str, role: str, out: list[Slot]) -> None:
    """``holder[key]`` as one slot, a string or a whole JSON value (a schema): read as its
    compact dump, so a guard reads its keys (property names) as the model does, and
    rewritten string value by string value (``rewrite_json_strings``)."""
    if isinstance(holder.get(key), str | dict | list):
        out.append((holder, key, role))


def _strings(holder: dict[str, Any], key: str, role: str, out: list[Slot]) -> None:
    """``holder[key]`` when it is a string, else every string value inside it (keys and
    non-strings left alone), in serialisation order."""
    if key in holder:
        out.extend((parent, slot, role) for parent, slot in string_slots(holder, key))


def generic_slots(obj: dict[str, Any], role: str, out: list[Slot]) -> None:
    """Every string value of an item or part of a kind not known field by field, except
    those under ``OPAQUE_KEYS`` (at any depth)."""
    stack: list[tuple[Any, Any]] = [(obj, k) for k in reversed(list(obj))
                                    if k not in OPAQUE_KEYS]
    seen: set[int] = {id(obj)}
    while stack:
        parent, slot = stack.pop()
        value = parent[slot]
        if isinstance(value, str):
            out.append((parent, slot, role))
        elif isinstance(value, dict) and id(value) not in seen:
            seen.add(id(value))
            stack.extend((value, k) for k in reversed(list(value)) if k not in OPAQUE_KEYS)
        elif isinstance(value, list) and id(value) not in seen:
            seen.add(id(value))
            stack.extend((value, i) for i in reversed(range(len(value))))
