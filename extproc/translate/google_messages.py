"""OpenAI Chat Completions ``messages`` -> Gemini ``contents`` and ``systemInstruction``
(sans-IO), and the refusal bookkeeping the request translator shares.

system/developer text goes to systemInstruction in order; user parts become text,
inlineData (data URLs, input_audio, file_data) or fileData (http(s) image URLs, the type from
the extension); assistant turns become ``model`` turns of text and functionCall parts (a
thoughtSignature carried in the tool call id goes back on its part); tool results become
functionResponse parts of a ``user`` turn, named after the assistant call with that id.
Consecutive turns of one role are merged.

What the model reads is what the guards read (they read the OpenAI request before it is
translated): a list of text parts stays a list of parts, never joined into one text; a tool
result goes as the JSON object it spells only where that object reads as its text does (no
escapes, every number written back as the client wrote it), else as the text; tool-call
arguments whose numbers would be rewritten are refused (`exact_json`). A thoughtSignature
must be base64 of a bounded length; a file part's filename, which Gemini has no place for,
is left out and listed with the dropped fields.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from extproc.translate.base import Unsupported
from extproc.translate.exact_json import Inexact, loads_exact

__all__ = ["THOUGHT_SEP", "Refusals", "bad", "contents", "text_of"]

#: joins a Gemini thoughtSignature to a tool call id (so it comes back with the tool call)
THOUGHT_SEP = "__thought__"
#: the longest thoughtSignature taken back (base64 characters; Gemini's are a few KiB)
MAX_SIGNATURE = 64 * 1024
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.S)
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_IMAGE_EXT = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
              "webp": "image/webp", "gif": "image/gif", "heic": "image/heic",
              "heif": "image/heif"}
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3"}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
class Refusals:
    """One translation: the drop switch and what was dropped."""

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.dropped: list[str] = []

    def refuse(self, field: str, reason: str, droppable: bool = True) -> None:
        """Refuse `field`, or (drop mode, a droppable field) note it as left out."""
        if self.drop and droppable:
            self.dropped.append(field)
            return
        raise Unsupported(field, reason)

    def note(self, field: str) -> None:
        """A field left out in either mode (a label the backend has no place for): listed
        with the dropped fields, so it is logged, never silently ignored."""
        self.dropped.append(field)


def bad(field: str, reason: str) -> Unsupported:
    return Unsupported(field, reason)


def text_of(content: Any, field: str, kinds: tuple[str, ...] = ("text",)) -> str:
    """A string, or the text of a list of text (and refusal) parts."""
    return "".join(texts_of(content, field, kinds))


def texts_of(content: Any, field: str, kinds: tuple[str, ...] = ("text",)) -> list[str]:
    """A string, or the texts of a list of text (and refusal) parts, one by one: the guards
    read each part on its own, so each goes on as a part of its own (joined, the gateway
    would make a value none of them read, as two parts that split an address)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad(field, "must be a string or a list of text parts")
    texts = []
    for i, part in enumerate(content):
        where = f"{field}[{i}]"
        if not isinstance(part, dict) or part.get("type") not in kinds:
            raise bad(where, f"only {' and '.join(kinds)} parts are supported here")
        kind = part["type"]
        extra = set(part) - {"type", kind}
        if extra:
            raise bad(f"{where}.{sorted(extra)[0]}", "not supported here")
        if not isinstance(part.get(kind), str):
            raise bad(f"{where}.{kind}", "must be a string")
        texts.append(part[kind])
    return texts


def tool_result(text: str) -> Any:
    """A tool's result as Gemini gets it: the JSON object it spells, where the object reads
    as the text does (no escape, and every number written back as the client wrote it:
    `exact_json`; what the guards read in the text is what the model reads in the object),
    else the text itself, as OpenAI sends it (so too a text nested deeper than Python
    parses)."""
    if "\\" in text:
        return text
    try:
        value = loads_exact(text)
    except ValueError:   # (Inexact: a number Gemini would get rewritten)
        return text
    return value if isinstance(value, dict) else text


def _data_url(url: str, field: str) -> tuple[str, str]:
    """(mime type, base64 data) of a base64 data URL."""
    match = _DATA_URL.fullmatch(url)
    if not match:
        raise bad(field, "only base64 data URLs (data:<type>;base64,...) are supported")
    data = match[2]
    if len(data) % 4 or not _B64.fullmatch(data):
        raise bad(field, "the data URL is not valid base64")
    return match[1].lower(), data


def _image(part: dict[str, Any], field: str, req: Refusals) -> dict[str, Any]:
    image = part.get("image_url")
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise bad(f"{field}.image_url.url", "must be a string")
    for key in set(image) - {"url", "detail"}:
        raise bad(f"{field}.image_url.{key}", "unknown field")
    if image.get("detail") not in (None, "auto"):
        req.refuse(f"{field}.image_url.detail", "Gemini has no per-image detail level")
    url = image["url"]
    if url.startswith("data:"):
        mime, data = _data_url(url, f"{field}.image_url.url")
        if not mime.startswith("image/"):
            raise bad(f"{field}.image_url.url", f"{mime} is not an image")
        return {"inlineData": {"mimeType": mime, "data": data}}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad(f"{field}.image_url.url", "only http(s) URLs and base64 data URLs")
    ext = parts.path.rsplit("/", 1)[-1].rpartition(".")[2].lower()
    if "." not in parts.path.rsplit("/", 1)[-1] or ext not in _IMAGE_EXT:
        raise bad(f"{field}.image_url.url", "the image type is not known from the URL's "
                   "extension (png, jpeg, jpg, webp, gif, heic, heif)")
    return {"fileData": {"mimeType": _IMAGE_EXT[ext], "fileUri": url}}


def _user_part(part: Any, field: str, req: Refusals) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise bad(field, "must be an object")
    kind = part.get("type")
    if kind not in ("text", "image_url", "input_audio", "file"):
        raise bad(f"{field}.type", f"content part type {kind!r} is not supported")
    for key in set(part) - {"type", kind}:
        if key == "prompt_cache_breakpoint":
            req.refuse(f"{field}.{key}", "Gemini has no prompt cache breakpoints")
        else:
            raise bad(f"{field}.{key}", "unknown field")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise bad(f"{field}.text", "must be a string")
        return {"text": part["text"]}
    if kind == "image_url":
        return _image(part, field, req)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or set(audio) - {"data", "format"}:
            raise bad(f"{field}.input_audio", "must be {data, format}")
        if audio.get("format") not in _AUDIO:
            raise bad(f"{field}.input_audio.format", "only wav and mp3")
        data = audio.get("data")
        if not isinstance(data, str) or len(data) % 4 or not _B64.fullmatch(data):
            raise bad(f"{field}.input_audio.data", "must be base64")
        return {"inlineData": {"mimeType": _AUDIO[audio["format"]], "data": data}}
    file = part.get("file")
    if not isinstance(file, dict):
        raise bad(f"{field}.file", "must be an object")
    for key in set(file) - {"file_data", "filename"}:
        raise bad(f"{field}.file.{key}", "only file_data (a base64 data URL) is supported")
    if not isinstance(file.get("file_data"), str):
        raise bad(f"{field}.file.file_data", "required (a base64 data URL)")
    mime, data = _data_url(file["file_data"], f"{field}.file.file_data")
    name = file.get("filename")
    if name is not None:
        if not isinstance(name, str):
            raise bad(f"{field}.file.filename", "must be a string")
        # Gemini's inlineData has no name: left out in either mode (refusing it would refuse
        # the file parts the OpenAI SDK sends, which name their file), but never silently
        req.note(f"{field}.file.filename")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _arguments(call: Any, field: str) -> tuple[str, str, dict[str, Any]]:
    """(id, name, args) of one assistant tool call."""
    if not isinstance(call, dict):
        raise bad(field, "must be an object")
    if call.get("type", "function") != "function":
        raise bad(f"{field}.type", "only function tool calls are supported")
    for key in set(call) - {"id", "type", "function"}:
        raise bad(f"{field}.{key}", "unknown field")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad(f"{field}.function.name", "must be a string")
    for key in set(function) - {"name", "arguments"}:
        raise bad(f"{field}.function.{key}", "unknown field")
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise bad(f"{field}.id", "must be a non-empty string")
    raw = function.get("arguments")
    try:
        args = loads_exact(raw) if isinstance(raw, str) and raw.strip() else {}
    except Inexact as exc:
        # the guards read the text; Gemini would get the number as Python writes it
        raise bad(f"{field}.function.arguments", str(exc)) from None
    except ValueError:   # (not JSON, or nested deeper than Python parses)
        args = None
    if not isinstance(args, dict) or (raw is not None and not isinstance(raw, str)):
        raise bad(f"{field}.function.arguments", "must be a JSON object in a string")
    return call["id"], function["name"], args


def _signature(signature: str, field: str) -> str:
    """A thoughtSignature carried in a tool call id: Gemini's bytes in base64, as the reply
    translator put it there, of a bounded length."""
    if len(signature) > MAX_SIGNATURE or len(signature) % 4 \
            or not _B64.fullmatch(signature):
        raise bad(field, f"the thoughtSignature after {THOUGHT_SEP} must be base64 of at "
                  f"most {MAX_SIGNATURE} characters, as Gemini gave it")
    return signature


def _message(msg: Any, i: int, req: Refusals, calls: dict[str, str],
             system: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]] | None:
    """(role, parts) of one message; system/developer text goes to `system`."""
    field = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise bad(field, "must be an object")
    role = msg.get("role")
    if role == "function":
        raise bad(f"{field}.role", "legacy function messages are not supported: use tool")
    if role not in _ROLES:
        raise bad(f"{field}.role", f"unknown role {role!r}")
    known = {"role", "content", "name"} | {
        "assistant": {"tool_calls", "refusal", "audio", "function_call", "reasoning_content"},
        "tool": {"tool_call_id"}}.get(role, set())
    for key in set(msg) - known:
        raise bad(f"{field}.{key}", f"not supported on a {role} message")
    if msg.get("name") is not None:
        req.refuse(f"{field}.name", "Gemini has no participant names")
    content = msg.get("content")
    if role in ("system", "developer"):
        texts = texts_of(content, f"{field}.content")
        system.extend({"text": t} for t in texts if t or len(texts) == 1)
        return None
    if role == "user":
        if isinstance(content, str):
            return "user", [{"text": content}]
        if not isinstance(content, list):
            raise bad(f"{field}.content", "must be a string or a list of parts")
        return "user", [_user_part(p, f"{field}.content[{j}]", req)
                        for j, p in enumerate(content)]
    if role == "tool":
        call_id = msg.get("tool_call_id")
        if not isinstance(call_id, str) or call_id not in calls:
            raise bad(f"{field}.tool_call_id", "no earlier assistant tool call has this id")
        texts = texts_of(content, f"{field}.content")
        result: Any = texts if len(texts) > 1 else tool_result(texts[0] if texts else "")
        return "user", [{"functionResponse": {"name": calls[call_id],
                                              "response": {"content": result}}}]
    # assistant
    for key in ("audio", "function_call"):
        if msg.get(key) is not None:
            raise bad(f"{field}.{key}", "not supported: use content and tool_calls")
    if msg.get("reasoning_content") is not None:
        req.refuse(f"{field}.reasoning_content", "Gemini thoughts cannot be sent back")
    parts: list[dict[str, Any]] = []
    if content is not None:
        parts.extend({"text": t} for t in texts_of(content, f"{field}.content",
                                                   ("text", "refusal")) if t)
    refusal = msg.get("refusal")
    if refusal is not None:
        if not isinstance(refusal, str):
            raise bad(f"{field}.refusal", "must be a string")
        if refusal:
            parts.append({"text": refusal})
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise bad(f"{field}.tool_calls", "must be a list")
    for j, call in enumerate(tool_calls or ()):
        call_id, name, args = _arguments(call, f"{field}.tool_calls[{j}]")
        calls[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        _, sep, signature = call_id.partition(THOUGHT_SEP)
        if sep and signature:
            part["thoughtSignature"] = _signature(signature,
                                                  f"{field}.tool_calls[{j}].id")
        parts.append(part)
    if not parts:
        raise bad(f"{field}.content", "an assistant message needs content or tool_calls")
    return "model", parts


def contents(doc: dict[str, Any], req: Refusals) -> tuple[list[dict[str, Any]],
                                                       list[dict[str, Any]]]:
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "must be a non-empty list")
    system: list[dict[str, Any]] = []
    calls: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        turn = _message(msg, i, req, calls, system)
        if turn is None:
            continue
        role, parts = turn
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)     # Gemini wants alternating turns
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise bad("messages", "needs at least one user, assistant or tool message")
    return contents, system
