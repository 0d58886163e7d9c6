"""Keys a case-insensitive reader takes for an API's own fields (sans-IO).

Go's encoding/json, which OpenAI-compatible servers written in Go decode requests with
(Ollama's `/v1/chat/completions` into its `ChatCompletionRequest`), matches a JSON key to a
struct field case-insensitively, at every depth, and keeps the last key that matches. So to
such a server `Messages` is the `messages` field, `tool_calls[].Function` the call's
function and `tools[].function.Description` its description, while the gateway, reading
keys exactly, takes them for unknown keys and passes them on unread (found by review: an
e-mail in a tool description or in earlier tool-call arguments went upstream unmasked,
`Max_Tokens` past the bound the gateway wrote).

`case_variant` finds, in any object but in user data, two keys that differ only by case
(one field to such a server, which keeps the second), and, at the places of a request where
the APIs put their own fields (the top level, messages and their parts, tool calls and tool
definitions, Responses items, the response format), a key that differs only by case from
one of those fields: the gateway refuses either. User data (a tool's parameter schema,
`metadata`, a tool call's input) is not looked into: a server decodes it into a map, with
its keys as they are, and a schema may well have both `ID` and `id`. Folded with `fold`:
`str.casefold` (the long s, U+017F, is `s`; the Kelvin sign is `k`) with Go's fold of the
dotted and dotless i, a little wider than Go's. A place this list misses still has its
pairs refused; a lone key in another case there is what is left (found by review: Ollama's
Anthropic and Responses APIs, LocalAI bind further fields, now listed).
"""

from __future__ import annotations

import re
from typing import Any

#: fields of an object at one place (folded: as named), their names, and the places below it
#: by field name (a child applies to an object value, or to each object of a list value;
#: None: user data, not looked into)
Node = tuple[dict[str, str], frozenset[str], dict[str, "Node | None"]]


#: Go's fold of the dotted and dotless i (`unicode.ToUpper(unicode.ToLower(r))` is `I` for
#: both), which `str.casefold` leaves apart from `i` (found by review: `descr\u0131ption`
#: was Go's `description`)
_GO_ONLY = str.maketrans({"\u0130": "i", "\u0131": "i"})


def fold(key: str) -> str:
    """`key` as a case-insensitive reader compares it: `str.casefold`, with Go's fold of
    the Turkish i; a little wider than Go's (`ß` is `ss` here)."""
    return key.translate(_GO_ONLY).casefold()


def _node(fields: str, **children: Node | None) -> Node:
    names = (*fields.split(), *children)
    return {fold(name): name for name in names}, frozenset(names), children


#: keys whose values are user data wherever they are (a schema, a map the user names keys
#: of): neither place is looked into
USER_DATA = frozenset(("parameters", "input_schema", "schema", "properties", "metadata",
                       "variables", "headers", "env", "logit_bias", "patternProperties",
                       "definitions", "$defs", "args", "response_schema", "responseSchema",
                       "response", "input_examples", "chat_template_kwargs", "labels"))

_FUNCTION = _node("name description strict", arguments=None, parameters=None)
_CALL = _node("id type index", function=_FUNCTION)
_PART = _node("type text refusal image_url input_audio file url detail source id name "
              "tool_use_id is_error cache_control citations file_id file_data filename "
              "thinking signature data audio_url video_url", content=_node("type text"),
              input=None)
_MESSAGE = _node("role name tool_call_id refusal reasoning reasoning_content audio type id "
                 "status call_id arguments input", content=_PART, tool_calls=_CALL,
                 function_call=_FUNCTION, output=_node("type text"))
_TOOL = _node("type name description strict", function=_FUNCTION, input_schema=None,
              parameters=None)
_FORMAT = _node("type name description strict", json_schema=_node(
    "name description strict", schema=None), schema=None)
#: a request's top level: every field the gateway reads or writes in an OpenAI, Azure or
#: Anthropic request, and the places below it
REQUEST: Node = _node(
    "model prompt suffix instructions tool_choice function_call stop user "
    "max_tokens max_completion_tokens max_output_tokens n best_of stream "
    "logprobs top_logprobs modalities audio reasoning reasoning_effort thinking "
    "previous_response_id conversation background store include prediction container "
    "context_management mcp_servers return_token_ids safety_identifier prompt_cache_key",
    messages=_MESSAGE, input=_MESSAGE, system=_PART, tools=_TOOL, functions=_FUNCTION,
    response_format=_FORMAT, stream_options=_node("include_usage"), metadata=None,
    text=_node("verbosity", format=_FORMAT))   # (the Responses API's; Ollama binds Format)

#: a key that a case-insensitive reader may fold into another: one with an upper-case ASCII
#: letter, a byte past ASCII or an escape, followed by its colon (a body without one, most
#: of them, is not walked); possessive, so no string is searched more than once from a start
_MAY_FOLD = re.compile(rb'"[^"\\A-Z\x80-\xff]*+[A-Z\x80-\xff\\][^"]*+"\s*:')


def may_fold(body: bytes) -> bool:
    """Can `body` hold a key that `case_variant` would find? (A quick look at the bytes.)"""
    return _MAY_FOLD.search(body) is not None


def case_variant(value: Any, node: Node | None = REQUEST) -> tuple[str, str] | None:
    """The first key of `value` (an object, or a list of them, at any depth but in user data)
    that differs only by case from another key of its object, or, at the places `node`
    describes, from one of their fields; and that key or field. None when there is none."""
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                found = case_variant(item, node)
                if found is not None:
                    return found
        return None
    if not isinstance(value, dict):
        return None
    if len(value) > 1:   # two keys that are one field to a case-insensitive reader
        seen: dict[str, str] = {}
        for key in value:
            other = seen.setdefault(fold(key), key)
            if other != key:
                return key, other
    fields, names, children = node if node is not None else ({}, frozenset(), {})
    for key, item in value.items():
        if fields and not (key.isascii() and key.islower()) and key not in names:
            name = fields.get(fold(key))
            if name is not None:
                return key, name
        if not isinstance(item, dict | list):
            continue
        if key in children:
            child = children[key]
            if child is None:
                continue        # user data
        elif key in USER_DATA:
            continue
        else:
            child = None        # a place no API field is known at: pairs only
        found = case_variant(item, child)
        if found is not None:
            return found
    return None
