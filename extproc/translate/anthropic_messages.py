"""The messages, content parts and tools of an OpenAI Chat Completions request as Anthropic's
(the part of `anthropic_request` that walks the conversation; its docstring says the choices).

`Builder` carries one translation's drop switch: ``refuse`` raises `Unsupported` or, in drop
mode, notes the field (request options, message metadata, unknown fields); ``bad`` is for
malformed input and for conversation content Anthropic cannot take (a part, a message, a tool
call of the history: dropping it would change the conversation), refused in either mode.
"""

from __future__ import annotations

from typing import Any

from extproc.translate.base import Unsupported
from extproc.translate.exact_json import Inexact, loads_exact

__all__ = ["JSON_TOOL", "Builder"]

JSON_TOOL = "json_object_response"
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_MESSAGE_KEYS = {
    "system": {"role", "content", "name"}, "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"}, "tool": {"role", "content", "tool_call_id"},
    "assistant": {"role", "content", "name", "refusal", "tool_calls", "function_call", "audio",
                  "reasoning_content"},
}


class Builder:
    """One translation: the drop switch and what was dropped."""

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.dropped: list[str] = []

    def refuse(self, field: str, reason: str) -> None:
        """A field Anthropic cannot honour: raise, or (drop mode) note it; the caller skips."""
        if not self.drop:
            raise Unsupported(field, reason)
        self.dropped.append(field)

    @staticmethod
    def bad(field: str, reason: str) -> Unsupported:
        """Malformed input, or conversation content Anthropic cannot take: refused even in
        drop mode."""
        return Unsupported(field, reason)

    # -- content -------------------------------------------------------------------------------

    def text_parts(self, content: Any, where: str) -> list[str]:
        """A string or a list of text parts (system, developer, tool)."""
        if isinstance(content, str):
            return [content]
        if not isinstance(content, list):
            raise self.bad(f"{where}.content", "must be a string or a list of parts")
        texts = []
        for j, part in enumerate(content):
            path = f"{where}.content[{j}]"
            if not isinstance(part, dict) or part.get("type") != "text":
                raise self.bad(path, "only text parts are supported here")
            texts.append(self.text_part(part, path)["text"])
        return texts

    def text_part(self, part: dict[str, Any], path: str) -> dict[str, Any]:
        text = part.get("text")
        if not isinstance(text, str):
            raise self.bad(f"{path}.text", "must be a string")
        for key in part:
            if key == "prompt_cache_breakpoint":
                if part[key] is not None:
                    self.refuse(f"{path}.{key}", "Anthropic's cache breakpoints have other TTLs")
            elif key not in ("type", "text"):
                self.refuse(f"{path}.{key}", "unknown field")
        return {"type": "text", "text": text}

    def user_part(self, part: Any, path: str) -> dict[str, Any]:
        if not isinstance(part, dict):
            raise self.bad(path, "must be an object")
        kind = part.get("type")
        if kind == "text":
            return self.text_part(part, path)
        if kind == "image_url":
            return self.image(part, path)
        if kind == "file":
            return self.file(part, path)
        if kind == "input_audio":
            raise self.bad(path, "Anthropic does not take audio input")
        raise self.bad(path, f"unsupported content part type {kind!r}")

    def _extra(self, part: dict[str, Any], known: set[str], path: str) -> None:
        for key in part:
            if key == "prompt_cache_breakpoint" and part[key] is not None:
                self.refuse(f"{path}.{key}", "Anthropic's cache breakpoints have other TTLs")
            elif key not in known and key != "prompt_cache_breakpoint":
                self.refuse(f"{path}.{key}", "unknown field")

    def image(self, part: dict[str, Any], path: str) -> dict[str, Any]:
        self._extra(part, {"type", "image_url"}, path)
        image = part.get("image_url")
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise self.bad(f"{path}.image_url.url", "must be a string")
        url = image["url"]
        for key in image:
            if key == "detail":
                if image[key] not in (None, "auto"):
                    self.refuse(f"{path}.image_url.detail",
                                "Anthropic has no image detail setting (only auto)")
            elif key != "url":
                self.refuse(f"{path}.image_url.{key}", "unknown field")
        if url.startswith("data:"):
            header, sep, data = url[5:].partition(",")
            media, _, encoding = header.partition(";")
            if not sep or encoding != "base64" or media not in _IMAGE_TYPES:
                raise self.bad(f"{path}.image_url.url", "a data URL must be a base64 "
                               + ", ".join(_IMAGE_TYPES) + " image")
            return {"type": "image",
                    "source": {"type": "base64", "media_type": media, "data": data}}
        if url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise self.bad(f"{path}.image_url.url", "only data: and http(s) image URLs are supported")

    def file(self, part: dict[str, Any], path: str) -> dict[str, Any]:
        self._extra(part, {"type", "file"}, path)
        file = part.get("file")
        if not isinstance(file, dict):
            raise self.bad(f"{path}.file", "must be an object")
        for key in file:
            if key not in ("file_data", "filename", "file_id"):
                self.refuse(f"{path}.file.{key}", "unknown field")
        if file.get("file_id") is not None:
            raise self.bad(f"{path}.file.file_id", "OpenAI's stored files are not reachable "
                           "from Anthropic")
        data = file.get("file_data")
        prefix = "data:application/pdf;base64,"
        if not isinstance(data, str) or not data.startswith(prefix):
            raise self.bad(f"{path}.file.file_data",
                           "only a PDF given as a data:application/pdf;base64, URL is supported")
        block: dict[str, Any] = {"type": "document", "source": {
            "type": "base64", "media_type": "application/pdf", "data": data[len(prefix):]}}
        name = file.get("filename")
        if name is not None:
            if not isinstance(name, str):
                raise self.bad(f"{path}.file.filename", "must be a string")
            block["title"] = name
        return block

    # -- messages ------------------------------------------------------------------------------

    def messages(self, messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The system blocks and the alternating turns."""
        if not isinstance(messages, list) or not messages:
            raise self.bad("messages", "must be a non-empty list")
        system: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                raise self.bad(where, "must be an object")
            role = message.get("role")
            if role == "function":
                raise self.bad(where, "the deprecated function role is not supported; "
                               "use tool messages")
            if role not in _MESSAGE_KEYS:
                raise self.bad(f"{where}.role", f"unknown role {role!r}")
            for key in message:
                if key not in _MESSAGE_KEYS[role]:
                    self.refuse(f"{where}.{key}", "unknown field")
                elif key == "name" and message[key] is not None:
                    self.refuse(f"{where}.name", "Anthropic messages have no participant names")
            if "content" not in message and role != "assistant":
                raise self.bad(f"{where}.content", "required")
            content = message.get("content")
            if role in ("system", "developer"):
                system += [{"type": "text", "text": t}
                           for t in self.text_parts(content, where) if t]
                continue
            if role == "tool":
                blocks = [self.tool_result(message, where)]
                role = "user"
            elif role == "user":
                blocks = self.user_blocks(content, where)
            else:
                blocks = self.assistant_blocks(message, where)
                if not blocks:
                    continue
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += blocks
            else:
                turns.append({"role": role, "content": blocks})
        return system, turns

    def user_blocks(self, content: Any, where: str) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise self.bad(f"{where}.content", "must be a string or a list of parts")
        return [self.user_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]

    def tool_result(self, message: dict[str, Any], where: str) -> dict[str, Any]:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise self.bad(f"{where}.tool_call_id", "must be a string")
        content = message.get("content")
        result: str | list[dict[str, Any]]
        if isinstance(content, str):
            result = content
        else:
            result = [{"type": "text", "text": t} for t in self.text_parts(content, where)]
        return {"type": "tool_result", "tool_use_id": call_id, "content": result}

    def assistant_blocks(self, message: dict[str, Any], where: str) -> list[dict[str, Any]]:
        for key in ("audio", "function_call"):   # what the assistant said: content
            if message.get(key) is not None:
                raise self.bad(f"{where}.{key}", {
                    "audio": "Anthropic has no audio output",
                    "function_call": "deprecated; use tool_calls"}[key])
        if message.get("reasoning_content") is not None:
            self.refuse(f"{where}.reasoning_content",
                        "Anthropic needs its own signed thinking blocks")
        blocks: list[dict[str, Any]] = []
        content = message.get("content")
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            for j, part in enumerate(content):
                path = f"{where}.content[{j}]"
                if isinstance(part, dict) and part.get("type") == "refusal":
                    if not isinstance(part.get("refusal"), str):
                        raise self.bad(f"{path}.refusal", "must be a string")
                    self._extra(part, {"type", "refusal"}, path)
                    blocks.append({"type": "text", "text": part["refusal"]})
                elif isinstance(part, dict) and part.get("type") == "text":
                    blocks.append(self.text_part(part, path))
                else:
                    raise self.bad(path, "only text and refusal parts are supported here")
        elif content is not None:
            raise self.bad(f"{where}.content", "must be a string, a list of parts or null")
        refusal = message.get("refusal")
        if refusal is not None:
            if not isinstance(refusal, str):
                raise self.bad(f"{where}.refusal", "must be a string")
            blocks.append({"type": "text", "text": refusal})
        blocks = [b for b in blocks if b["text"]]
        calls = message.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise self.bad(f"{where}.tool_calls", "must be a list")
            blocks += [self.tool_use(call, f"{where}.tool_calls[{j}]")
                       for j, call in enumerate(calls)]
        return blocks

    def tool_use(self, call: Any, path: str) -> dict[str, Any]:
        if not isinstance(call, dict):
            raise self.bad(path, "must be an object")
        if call.get("type") != "function":
            raise self.bad(path, "only function tool calls are supported")
        for key in call:
            if key not in ("id", "type", "function"):
                self.refuse(f"{path}.{key}", "unknown field")
        fn = call.get("function")
        if not isinstance(call.get("id"), str) or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str):
            raise self.bad(path, "needs a string id and function.name")
        for key in fn:
            if key not in ("name", "arguments"):
                self.refuse(f"{path}.function.{key}", "unknown field")
        arguments = fn.get("arguments")
        try:
            parsed = loads_exact(arguments) if arguments != "" else {}
        except Inexact as exc:
            # the guards read the text; Anthropic would get the number as Python writes it
            raise self.bad(f"{path}.function.arguments", str(exc)) from None
        except (TypeError, ValueError):   # (not JSON, or nested deeper than Python parses)
            parsed = None
        if not isinstance(parsed, dict):
            raise self.bad(f"{path}.function.arguments", "must be a JSON object "
                           "(Anthropic tool inputs are objects)")
        return {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": parsed}

    # -- tools ---------------------------------------------------------------------------------

    def tools(self, tools: Any) -> list[dict[str, Any]]:
        if not isinstance(tools, list):
            raise self.bad("tools", "must be a list")
        out = []
        for k, tool in enumerate(tools):
            path = f"tools[{k}]"
            if not isinstance(tool, dict):
                raise self.bad(path, "must be an object")
            if tool.get("type") != "function":
                self.refuse(path, "only function tools are supported")
                continue
            for key in tool:
                if key not in ("type", "function"):
                    self.refuse(f"{path}.{key}", "unknown field")
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise self.bad(f"{path}.function.name", "must be a string")
            if fn["name"] == JSON_TOOL:
                raise self.bad(f"{path}.function.name", f"{JSON_TOOL} is reserved")
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise self.bad(f"{path}.function.parameters", "must be an object")
            spec: dict[str, Any] = {"name": fn["name"]}
            if fn.get("description") is not None:
                if not isinstance(fn["description"], str):
                    raise self.bad(f"{path}.function.description", "must be a string")
                spec["description"] = fn["description"]
            spec["input_schema"] = params or {"type": "object", "properties": {}}
            for key in fn:
                if key == "strict":
                    if fn[key] is True:
                        spec["strict"] = True
                    elif fn[key] not in (None, False):
                        raise self.bad(f"{path}.function.strict", "must be a boolean")
                elif key not in ("name", "description", "parameters"):
                    self.refuse(f"{path}.function.{key}", "unknown field")
            out.append(spec)
        return out

    def tool_choice(self, choice: Any) -> dict[str, Any] | None:
        if choice in ("auto", "none"):
            return {"type": choice}
        if choice == "required":
            return {"type": "any"}
        if isinstance(choice, dict) and choice.get("type") == "function":
            fn = choice.get("function")
            # nothing beside the name is ignored (as the Gemini backend refuses it)
            if set(choice) != {"type", "function"} or not isinstance(fn, dict) \
                    or set(fn) != {"name"}:
                raise self.bad("tool_choice", "must be {type: function, function: {name}}")
            if not isinstance(fn["name"], str):
                raise self.bad("tool_choice.function.name", "must be a string")
            return {"type": "tool", "name": fn["name"]}
        if isinstance(choice, dict) and choice.get("type") in ("allowed_tools", "custom"):
            self.refuse("tool_choice", f"{choice['type']} tool choice is not supported")
            return None
        raise self.bad("tool_choice", "must be auto, none, required or a named function")
