"""Keys a case-insensitive reader takes for an API's own fields (sans-IO).

Go's encoding/json, which OpenAI-compatible servers written in Go decode requests with
(Ollama's `/v1/chat/completions` into its `ChatCompletionRequest`), matches a JSON key to a
struct field case-insensitively, at every depth, and keeps the last key that matches. So to
such a server `Messages` is the `messages` field, `tool_calls[].Function` the call's
function and `tools[].function.Description` its description, while the gateway, reading
keys exactly, takes them for unknown keys and passes them on unread (found by review: an
e-mail in a tool description or in earlier tool-call arguments went upstream unmasked,
`Max_Tokens` past the bound the gateway wrote).

`case_variant` finds a key that differs only by case from a field the gateway reads, at the
places of a request where the APIs put their own fields (the top level, messages and their
parts, tool calls and tool definitions, Responses items, the response format): there the
gateway refuses it. User data (a tool's parameter schema, `metadata`, a tool call's input)
is not looked into: a server decodes it into a map, with its keys as they are, and a schema
may well have both `ID` and `id`. Folded with `str.casefold` (the long s, U+017F, is `s`; the
Kelvin sign is `k`), a little wider than Go's fold.
"""

from __future__ import annotations

import re
from typing import Any

#: fields of an object at one place (folded: as named), their names, and the places below it
#: by field name (a child applies to an object value, or to each object of a list value)
Node = tuple[dict[str, str], frozenset[str], dict[str, "Node"]]


def _node(fields: str, **children: Node) -> Node:
    names = (*fields.split(), *children)
    return {name.casefold(): name for name in names}, frozenset(names), children


_FUNCTION = _node("name arguments description parameters strict")
_CALL = _node("id type index", function=_FUNCTION)
_PART = _node("type text refusal image_url input_audio file url detail source id name "
              "tool_use_id is_error cache_control citations file_id file_data filename "
              "image_url thinking signature data", content=_node("type text"))
_MESSAGE = _node("role name tool_call_id refusal reasoning reasoning_content audio type id "
                 "status call_id output arguments", content=_PART, tool_calls=_CALL,
                 function_call=_FUNCTION)
_TOOL = _node("type name description input_schema parameters strict", function=_FUNCTION)
_FORMAT = _node("type name description schema strict", json_schema=_node(
    "name description schema strict"))
#: a request's top level: every field the gateway reads or writes in an OpenAI, Azure or
#: Anthropic request, and the places below it
REQUEST: Node = _node(
    "model prompt suffix instructions functions tool_choice function_call text stop user "
    "metadata max_tokens max_completion_tokens max_output_tokens n best_of stream "
    "logprobs top_logprobs modalities audio reasoning reasoning_effort thinking "
    "previous_response_id conversation background store include prediction container "
    "context_management mcp_servers return_token_ids safety_identifier prompt_cache_key",
    messages=_MESSAGE, input=_MESSAGE, system=_PART, tools=_TOOL,
    response_format=_FORMAT, stream_options=_node("include_usage"))

#: a key that a case-insensitive reader may fold into another: one with an upper-case ASCII
#: letter, a byte past ASCII or an escape, followed by its colon (a body without one, most
#: of them, is not walked); possessive, so no string is searched more than once from a start
_MAY_FOLD = re.compile(rb'"[^"\\A-Z\x80-\xff]*+[A-Z\x80-\xff\\][^"]*+"\s*:')


def may_fold(body: bytes) -> bool:
    """Can `body` hold a key that `case_variant` would find? (A quick look at the bytes.)"""
    return _MAY_FOLD.search(body) is not None


def case_variant(doc: dict[str, Any], node: Node = REQUEST) -> tuple[str, str] | None:
    """The first key of `doc`, at the places `node` describes, that differs from one of
    their fields only by case, and that field; None when there is none."""
    fields, names, children = node
    for key, value in doc.items():
        if not (key.isascii() and key.islower()) and key not in names:
            name = fields.get(key.casefold())
            if name is not None:
                return key, name
        child = children.get(key)
        if child is not None:
            for item in value if isinstance(value, list) else (value,):
                if isinstance(item, dict):
                    found = case_variant(item, child)
                    if found is not None:
                        return found
    return None
