"""What the model reads in an Anthropic Messages request, as text slots the guards read and
rewrite, and the block tables and helpers a reply's reading shares.

In ``request_slots`` order (``parse_request`` reads and ``rewrite_request_texts`` rewrites
the same slots): ``system`` (a string or blocks), tool definitions (``tools[].description``,
and ``input_schema`` and ``input_examples``, the example inputs shown to the model with the
tool, as compact JSON; role "system"), then each message's content (role
lower-cased): a string, or blocks -- text, ``thinking`` (its thinking text), documents
(``title``, ``context``, a text source's ``data``, a base64 source of a text media type
decoded, a content source's blocks), ``search_result`` (``source``, ``title``, its content
blocks), tool_result / mcp_tool_result content in any of these shapes (role "tool"),
tool_use / server_tool_use / mcp_tool_use ``input`` (an object rewritten string value by
string value, role "tool"); images, other document sources (a PDF, a URL, a file id) and
container uploads are `providers.unread` markers (when asked for), redacted thinking
carries no text; a block of any other kind (web search and fetch results, code execution
and text editor results, kinds to come) is read whole: every string value but identifiers
and binary payloads. A text block's ``citations`` are not read: the API does not give their
``cited_text`` to the model (it is not counted as input). A block nested deeper than real
requests nest them (8 levels of tool results and documents) is read whole, as its compact
JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from extproc.providers.inline import InlineText, is_text_type
from extproc.providers.slots import field_strings, string_slots
from extproc.providers.unread import Unread, media_kind
from extproc.providers.values import as_list, lower_role

TOOL_USE = ("tool_use", "server_tool_use", "mcp_tool_use")
_TOOL_RESULT = ("tool_result", "mcp_tool_result")
#: blocks that hold no text the gateway can read (an image, encrypted thinking, a file id)
_NO_TEXT = ("image", "redacted_thinking", "container_upload")
#: block kinds read field by field; any other kind is read whole (`_other_slots`); tuples,
#: as a malformed `type` may be a list
KNOWN = (*TOOL_USE, *_TOOL_RESULT, *_NO_TEXT, "text", "thinking", "document",
         "search_result")
#: in a block of another kind: keys whose string values are identifiers, enums or binary
#: payloads, not text
OPAQUE = frozenset({"type", "id", "tool_use_id", "signature", "data", "media_type",
                    "file_id", "encrypted_content", "encrypted_index", "cache_control"})
#: keys of a block of an unknown kind that carry data or a file no guard reads
PAYLOADS = ("data", "file_id", "source")
#: deeper than any real request nests blocks (a tool result holding a document holding
#: content blocks): below it a block is read whole, as its compact JSON
_MAX_DEPTH = 8
#: (role or kind, holder, key): a text at holder[key] (a string, or a JSON value read as
#: its compact dump and rewritten string value by string value)
Slot = tuple[str, Any, Any]


def _blocks_slots(holder: Any, key: Any, role: str, depth: int = 0,
                  inputs: bool = False) -> Iterator[Slot]:
    """A string, or a list of blocks, at holder[key]."""
    content = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(content, str):
        yield role, holder, key
        return
    for index, block in enumerate(as_list(content)):
        if depth >= _MAX_DEPTH:
            yield role, content, index
        elif isinstance(block, dict) and block.get("type") == "text" \
                and isinstance(block.get("text"), str):
            yield role, block, "text"   # the usual block, at once (as _block_slots reads it)
        else:
            yield from _block_slots(block, role, depth, inputs)


def _block_slots(block: Any, role: str, depth: int, inputs: bool) -> Iterator[Slot]:
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind in TOOL_USE:
        if "input" in block:
            yield "tool", block, "input"
    elif kind in _TOOL_RESULT:
        yield from _blocks_slots(block, "content", "tool", depth + 1, inputs)
    elif kind == "thinking":
        if isinstance(block.get("thinking"), str):
            yield role, block, "thinking"
    elif kind == "document":
        for key in ("title", "context"):
            if isinstance(block.get(key), str):
                yield role, block, key
        source = block.get("source")
        if isinstance(source, dict):
            if source.get("type") == "text":
                if isinstance(source.get("data"), str):
                    yield role, source, "data"
            elif source.get("type") == "content":
                yield from _blocks_slots(source, "content", role, depth + 1, inputs)
            elif source.get("type") == "base64" and is_text_type(source.get("media_type")) \
                    and isinstance(source.get("data"), str):   # a text file, in base64
                yield role, InlineText(source), None
            elif inputs:   # a PDF, a file by URL or id: the provider reads it, no guard can
                kind = media_kind(source.get("media_type")) \
                    if source.get("type") == "base64" else "document"
                yield role, Unread(kind or "document"), None
    elif kind == "search_result":
        for key in ("source", "title"):
            if isinstance(block.get(key), str):
                yield role, block, key
        yield from _blocks_slots(block, "content", role, depth + 1, inputs)
    elif kind == "text":
        if isinstance(block.get("text"), str):
            yield role, block, "text"
    elif kind == "image":
        if inputs:
            yield role, Unread("image"), None
    elif kind == "container_upload":
        if inputs:
            yield role, Unread("file"), None
    elif kind not in _NO_TEXT:
        yield from _other_slots(block, role, depth, inputs)
        if inputs and any(key in block for key in PAYLOADS):   # and what it carries
            yield role, Unread("file"), None


#: reply blocks that carry no media (`block_media` need not walk them)
_PLAIN = (*TOOL_USE, "text", "thinking", "redacted_thinking")


def block_media(block: Any) -> list[str]:
    """The kinds of the media no guard reads in a reply's content block (`providers.unread`:
    a PDF or an image a server tool fetched, an image, data of a kind newer than this code),
    as the prompt walk marks them."""
    if not isinstance(block, dict) or block.get("type") in _PLAIN:
        return []
    return [holder.kind for _, holder, _ in _block_slots(block, "assistant", 0, True)
            if holder.__class__ is Unread]


#: the reply blocks the reply readers read field by field (`providers.anthropic`); every
#: other block of a reply is read whole (`result_slots`)
REPLY_FIELDS = (*TOOL_USE, "text", "thinking")


def result_slots(block: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(holder, key) of every text of a reply block of a kind not in `REPLY_FIELDS`: a
    tool's result an MCP connector or a server tool put in the reply (``mcp_tool_result``,
    ``tool_result``: a string or blocks), a server tool's result (web search, fetch, code
    execution), a document, a kind newer than this code. Read as a prompt reads such a block
    (a text document's data, a base64 text file decoded), then every other string in it
    but ids and payloads (`text_leaves`), so no shape the prompt walk does not know goes
    unread; a string is read once."""
    out: list[tuple[Any, Any]] = []
    for _, holder, key in _block_slots(block, "assistant", 0, False):
        if holder.__class__ is InlineText or isinstance(holder[key], str):
            out.append((holder, key))
        else:   # a value read whole (a block nested past the depth): each of its strings
            out.extend(string_slots(holder, key))
    read = {(id(h), k) for h, k in out if h.__class__ is not InlineText}
    out += [(h, k) for h, k in text_leaves(block) if (id(h), k) not in read]
    return out


def text_leaves(block: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(holder, key) of every string in a block, at any depth, but those under `OPAQUE`
    keys (ids, signatures, encrypted or binary payloads a client sends back unchanged), in
    serialisation order. Iterative and cycle-safe."""
    return field_strings(block, OPAQUE, OPAQUE)


def _other_slots(block: dict[str, Any], role: str, depth: int, inputs: bool
                 ) -> Iterator[Slot]:
    """A block of a kind not read field by field (server tool results: web search and fetch,
    code execution output, text editor views; kinds to come): every string value at any
    depth but those under `OPAQUE` keys, a nested block of a known kind read as such."""
    for key in list(block):
        if key not in OPAQUE:
            yield from _value_slots(block, key, role, depth + 1, inputs)


def _value_slots(holder: Any, key: Any, role: str, depth: int, inputs: bool
                 ) -> Iterator[Slot]:
    value = holder[key]
    if isinstance(value, str):
        yield role, holder, key
    elif isinstance(value, dict | list) and depth >= _MAX_DEPTH:
        for parent, slot in string_slots(holder, key):   # iterative: no depth is a crash
            yield role, parent, slot
    elif isinstance(value, dict):
        if value.get("type") in KNOWN:
            yield from _block_slots(value, role, depth, inputs)
        else:
            yield from _other_slots(value, role, depth, inputs)
    elif isinstance(value, list):
        for index in range(len(value)):
            yield from _value_slots(value, index, role, depth + 1, inputs)


def request_slots(body: dict[str, Any], inputs: bool = False) -> Iterator[Slot]:
    """The texts of a request; with `inputs`, `providers.unread` markers too (skills the
    container loads for the model: files no guard reads)."""
    yield from _blocks_slots(body, "system", "system", 0, inputs)
    container = body.get("container")
    if inputs and isinstance(container, dict):
        for _ in as_list(container.get("skills")):
            yield "system", Unread("file"), None
    if inputs and as_list(body.get("mcp_servers")):
        # MCP servers the request names: their tools and results reach the model unseen
        yield "system", Unread("fetched"), None
    for tool in as_list(body.get("tools")):
        if isinstance(tool, dict):
            if inputs and str(tool.get("type", "")).startswith("web_fetch"):
                yield "system", Unread("fetched"), None   # pages at URLs the prompt names
            if isinstance(tool.get("description"), str):
                yield "system", tool, "description"
            for key in ("input_schema", "input_examples"):   # examples: shown to the model
                if isinstance(tool.get(key), dict | list):
                    yield "system", tool, key
    # structured outputs: the schema the model writes to (and the beta spelling)
    config = body.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("format"), dict | list):
        yield "system", config, "format"
    if isinstance(body.get("output_format"), dict | list):
        yield "system", body, "output_format"
    # a compaction edit's instructions: the prompt the model summarises the conversation
    # with (found by review; the budgets refuse compaction, `limits.stored`)
    management = body.get("context_management")
    if isinstance(management, dict):
        for edit in as_list(management.get("edits")):
            if isinstance(edit, dict) and isinstance(edit.get("instructions"), str):
                yield "system", edit, "instructions"
    for message in as_list(body.get("messages")):
        if isinstance(message, dict):
            yield from _blocks_slots(message, "content", lower_role(message.get("role")), 0,
                                     inputs)
