"""The shapes of the request fields that carry prompt text, of the counts budgets reserve by
(max tokens, choices) and of OpenAI's `stream` flag, checked before any policy reads them
(sans-IO). An adapter reads what it understands and passes over the rest; a field the
provider would read in a shape the adapter passes over (a message's content as an object, a
text part whose text is not a string) would then reach the provider unguarded. Such a body
is refused instead (the provider would refuse it too): `check(endpoint, body)` says what is
wrong, or None. Google's repeated fields accept a lone object and are read so
(`google_prompts.items`); a Content, a part or a text in another shape (a list of strings
for `parts`, a number for `text`, a string for `contents`) is refused. So is a tool's
description, a Responses request's `instructions`, or an Anthropic tool result's content,
in a shape the adapters pass over (found by review: each of them went to the provider
unread).
"""

from __future__ import annotations

from typing import Any

from extproc.providers.values import as_dict

#: a chat message's text fields besides its content: the adapter reads them as strings
_CHAT_STRINGS = ("refusal", "reasoning_content", "reasoning")
_TEXT_KEYS = {"text": "text", "input_text": "text", "output_text": "text",
              "refusal": "refusal", "thinking": "thinking"}


#: blocks whose `content` is read as a message's (Anthropic's tool results, search results)
_NESTED = ("tool_result", "mcp_tool_result", "search_result")
#: the fields of Anthropic blocks read as strings only (`anthropic_prompts`)
_BLOCK_STRINGS = {"document": ("title", "context"), "search_result": ("title", "source")}


def _parts(value: Any, where: str, strings: bool, depth: int = 0) -> str | None:
    """Content: a string, null, or a list of parts (objects; strings too when `strings`)
    whose text fields, when present, are strings (and a tool result's content, content
    again)."""
    if value is None or isinstance(value, str):
        return None
    if not isinstance(value, list):
        return f"{where} must be a string or a list of parts"
    for i, part in enumerate(value):
        if isinstance(part, str) and strings:
            continue
        if not isinstance(part, dict):
            return f"{where}[{i}] must be an object"
        kind = part.get("type") if isinstance(part.get("type"), str) else None
        key = _TEXT_KEYS.get(kind) if kind is not None else None
        if key is not None and key in part and not isinstance(part[key], str):
            return f"{where}[{i}].{key} must be a string"
        if kind in _NESTED and depth < 8:
            error = _parts(part.get("content"), f"{where}[{i}].content", strings, depth + 1)
            if error:
                return error
        for name in _BLOCK_STRINGS.get(kind or "", ()):   # a document's or result's labels
            if part.get(name) is not None and not isinstance(part[name], str):
                return f"{where}[{i}].{name} must be a string"
        source = part.get("source") if kind == "document" else None
        if isinstance(source, dict) and depth < 8:   # a document given as text or blocks
            if source.get("type") == "content":
                error = _parts(source.get("content"), f"{where}[{i}].source.content",
                               strings, depth + 1)
                if error:
                    return error
            elif source.get("type") == "text" and source.get("data") is not None \
                    and not isinstance(source["data"], str):
                return f"{where}[{i}].source.data must be a string"
    return None


def _strings(body: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> str | None:
    """Each field at a path (`*`: every item of a list) that is given is a string: the
    adapters read only a string there."""
    for path in paths:
        holders: list[Any] = [body]
        for step in path[:-1]:
            if step == "*":
                holders = [item for h in holders if isinstance(h, list) for item in h]
            else:
                holders = [h.get(step) for h in holders if isinstance(h, dict)]
        for holder in holders:
            if isinstance(holder, dict) and holder.get(path[-1]) is not None \
                    and not isinstance(holder[path[-1]], str):
                return f"'{'.'.join(path).replace('.*', '[]')}' must be a string"
    return None


#: the fields each endpoint's adapter reads only as strings (beside its messages)
_STRINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "chat.completions": (("tools", "*", "function", "description"),
                         ("tools", "*", "custom", "description"),
                         ("functions", "*", "description"),
                         ("response_format", "json_schema", "description")),
    "responses": (("tools", "*", "description"), ("text", "format", "description")),
    "messages": (("tools", "*", "description"),),
    "count_tokens": (("tools", "*", "description"),),
}


def _messages(body: dict[str, Any], key: str, strings: bool) -> str | None:
    messages = body.get(key)
    if not isinstance(messages, list):
        return f"'{key}' must be a list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"{key}[{i}] must be an object"
        error = _parts(message.get("content"), f"{key}[{i}].content", strings)
        if error:
            return error
        if strings:   # chat: a message's refusal and reasoning are strings (or null)
            for name in _CHAT_STRINGS:
                if message.get(name) is not None and not isinstance(message[name], str):
                    return f"{key}[{i}].{name} must be a string"
    return None


def _token_input(value: Any, where: str) -> str | None:
    """A string, a list of strings, a list of token ids, or a list of lists of token ids."""
    if isinstance(value, str):
        return None
    if isinstance(value, list) and (all(isinstance(v, str) for v in value)
                                    or all(isinstance(v, int) for v in value)
                                    or all(isinstance(v, list) and all(
                                        isinstance(t, int) for t in v) for v in value)):
        return None
    return f"'{where}' must be a string, a list of strings or token ids"


#: the counts budgets reserve by, per endpoint (Gemini's are proto3 integers, which Google
#: also takes as strings: `google_config.count` reads them so)
_COUNTS = {"chat.completions": ("max_tokens", "max_completion_tokens", "n"),
           "completions": ("max_tokens", "n", "best_of"),
           "responses": ("max_output_tokens",),
           "messages": ("max_tokens",)}


def _counts(body: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """Each count given (not null) is a non-negative integer: one the adapters cannot read
    (a string "5000", which a lenient OpenAI-compatible server or a pydantic model may take
    as 5000) would make budgets reserve the default for a reply that may run longer."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"'{name}' must be a non-negative integer"
    return None


# --- Google: Contents, parts and texts, in every request body a Google adapter reads ------
_GOOGLE = ("generateContent", "streamGenerateContent", "countTokens", "embedContent",
           "batchEmbedContents")


def _listed(value: Any) -> list[Any] | None:
    """A repeated field as Google reads it (a list, or a lone object), None otherwise."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else None


def _google_content(value: Any, where: str) -> str | None:
    """A Content (an object whose parts are objects with a string text), or a bare string
    (read as one text), or null."""
    if value is None or isinstance(value, str):
        return None
    if not isinstance(value, dict):
        return f"{where} must be a Content object"
    if value.get("parts") is None:
        return None
    parts = _listed(value["parts"])
    if parts is None:
        return f"{where}.parts must be a list of parts"
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            return f"{where}.parts[{i}] must be an object"
        if part.get("text") is not None and not isinstance(part["text"], str):
            return f"{where}.parts[{i}].text must be a string"
        for name in ("functionResponse", "function_response"):
            # a function response's parts are files (inline or by URI), never text
            for j, inner in enumerate(_listed(as_dict(part.get(name)).get("parts")) or ()):
                if not isinstance(inner, dict) or inner.get("text") is not None:
                    return f"{where}.parts[{i}].{name}.parts[{j}] must be a file part"
    return None


def _google_request(body: dict[str, Any], where: str) -> str | None:
    for key in ("systemInstruction", "system_instruction", "content"):
        error = _google_content(body.get(key), where + key)
        if error:
            return error
    # an embedding's title, in the request or its config: read as a string only
    for holder, at in ((body, where), *((as_dict(body.get(k)), f"{where}{k}.") for k in (
            "embedContentConfig", "embed_content_config"))):
        if holder.get("title") is not None and not isinstance(holder["title"], str):
            return f"{at}title must be a string"
    if body.get("contents") is not None:
        contents = _listed(body["contents"])
        if contents is None:
            return f"'{where}contents' must be a list of Contents"
        for i, content in enumerate(contents):
            error = _google_content(content, f"{where}contents[{i}]")
            if error:
                return error
    for tool in _listed(body.get("tools")) or ():
        for name in ("functionDeclarations", "function_declarations"):
            for i, declaration in enumerate(_listed(as_dict(tool).get(name)) or ()):
                if as_dict(declaration).get("description") is not None \
                        and not isinstance(declaration["description"], str):
                    return f"{where}tools[].{name}[{i}].description must be a string"
    return None


def _google(body: dict[str, Any]) -> str | None:
    """The request, a countTokens' inner request and a batch's requests, as the Google
    adapters read them whatever the path says."""
    error = _google_request(body, "")
    for key in ("generateContentRequest", "generate_content_request"):
        if error is None and body.get(key) is not None:
            if not isinstance(body[key], dict):
                return f"'{key}' must be an object"
            error = _google_request(body[key], key + ".")
    if error is None and body.get("requests") is not None:
        requests = _listed(body["requests"])
        if requests is None or not all(isinstance(r, dict) for r in requests):
            return "'requests' must be a list of objects"
        for i, request in enumerate(requests):
            error = error or _google_request(request, f"requests[{i}].")
    return error


#: OpenAI's `stream`, which decides whether the gateway asks for the usage report
#: (`include_usage`): a lenient server reads "true" or 1 as true, and would then stream
#: without one (found by review)
_FLAGS = {"chat.completions": ("stream",), "completions": ("stream",)}


def _flags(body: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if body.get(name) is not None and not isinstance(body[name], bool):
            return f"'{name}' must be a boolean"
    return None


def check(endpoint: str, body: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a request's text fields, of the counts budgets
    reserve by, or of a flag that decides how usage is read, or None."""
    error = _counts(body, _COUNTS.get(endpoint, ())) or _flags(body, _FLAGS.get(endpoint, ())) \
        or _strings(body, _STRINGS.get(endpoint, ()))
    if error:
        return error
    if endpoint in _GOOGLE:
        return _google(body)
    if endpoint == "chat.completions":
        return _messages(body, "messages", strings=True)
    if endpoint in ("messages", "count_tokens"):
        system = body.get("system")
        if system is not None:
            error = _parts(system, "system", strings=False)
            if error:
                return error
        return _messages(body, "messages", strings=False)
    if endpoint == "responses":
        for field in ("instructions", "input"):
            items = body.get(field)
            if items is None or isinstance(items, str):
                continue
            if not isinstance(items, list):
                return f"'{field}' must be a string or a list of items"
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    return f"{field}[{i}] must be an object"
                if "content" in item:
                    error = _parts(item["content"], f"{field}[{i}].content", strings=False)
                    if error:
                        return error
        return None
    if endpoint == "completions":
        return _token_input(body.get("prompt", ""), "prompt")
    if endpoint == "embeddings":
        return _token_input(body.get("input"), "input")
    return None
