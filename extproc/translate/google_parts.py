"""Reading Gemini / Vertex GenerateContentResponse objects as OpenAI pieces (sans-IO): the
finish-reason and error-type maps, usage, candidates, parts and tool calls, and a whole
response as a ``chat.completion``. `google_reply` builds the translators on them.
"""

from __future__ import annotations

import json
from typing import Any

from extproc.translate.base import ReplyContext, openai_error
from extproc.translate.google_messages import THOUGHT_SEP

__all__ = ["FINISH_REASONS", "Failed", "blocked", "call_chunk", "candidates", "completion",
           "finish", "google_error", "read_part", "read_parts", "response_id", "unreadable",
           "usage"]

#: Gemini finishReason -> OpenAI finish_reason (STOP with function calls: tool_calls).
#: Any other reason (MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
#: MISSING_THOUGHT_SIGNATURE, MALFORMED_RESPONSE, OTHER, NO_IMAGE, IMAGE_OTHER,
#: PUP_LIMITED_DISABLED, FINISH_REASON_UNSPECIFIED, unknown ones) is an upstream failure:
#: an OpenAI error (502 / a final error event) whose code is the reason in lower case.
FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length", "CONTINUATION": "length",
    **dict.fromkeys(("SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT",
                     "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
                     "MODEL_ARMOR", "ESCALATION"), "content_filter"),
}

_ERROR_TYPES = {"INVALID_ARGUMENT": "invalid_request_error",
                "FAILED_PRECONDITION": "invalid_request_error",
                "OUT_OF_RANGE": "invalid_request_error",
                "UNAUTHENTICATED": "authentication_error",
                "PERMISSION_DENIED": "permission_error",
                "NOT_FOUND": "not_found_error",
                "RESOURCE_EXHAUSTED": "rate_limit_error"}
_PART_KEYS = {"text", "thought", "thoughtSignature", "functionCall"}


class Failed(Exception):
    """The reply cannot be translated: carries the OpenAI error to send instead."""

    def __init__(self, error: dict[str, Any], status: int = 502) -> None:
        super().__init__(error["error"]["message"])
        self.error = error
        self.status = status


def unreadable(what: str) -> Failed:
    return Failed(openai_error(502, f"unreadable Gemini reply: {what}", "server_error",
                               "bad_upstream_reply"))


def google_error(doc: Any, status: int) -> Failed | None:
    """Google's ``{"error": {code, message, status}}`` (maybe in a one-element array) as an
    OpenAI error, or None if `doc` is not one."""
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    name = error.get("status") if isinstance(error.get("status"), str) else None
    code = error.get("code")
    if status == 200 and isinstance(code, int) and not isinstance(code, bool) \
            and 400 <= code <= 599:
        status = code
    elif status == 200:
        status = 502
    kind = _ERROR_TYPES.get(name or "") or (None if name is None and status < 500
                                            else "server_error")
    return Failed(openai_error(status, error["message"], kind, name), status)


_COUNTS = ("promptTokenCount", "toolUsePromptTokenCount", "thoughtsTokenCount",
           "candidatesTokenCount", "totalTokenCount", "cachedContentTokenCount")


def usage(meta: Any) -> dict[str, Any] | None:
    """OpenAI usage from usageMetadata (a missing count is 0, as Gemini leaves zeros out);
    None when it reports no count at all (no usageMetadata): nothing to make zeros of."""
    meta = meta if isinstance(meta, dict) else {}

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    if not any(isinstance(meta.get(key), int) and not isinstance(meta.get(key), bool)
               for key in _COUNTS):
        return None

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    thoughts = count("thoughtsTokenCount")
    completion_tokens = count("candidatesTokenCount") + thoughts
    total = count("totalTokenCount") or prompt + completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def finish(reason: Any, calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason) if isinstance(reason, str) else None
    if mapped is None:
        raise Failed(openai_error(502, f"Gemini stopped the reply: {reason}", "server_error",
                                  str(reason).lower()))
    return "tool_calls" if mapped == "stop" and calls else mapped


def read_parts(cand: dict[str, Any]) -> list[dict[str, Any]]:
    content = cand.get("content")
    if content is None:
        return []
    parts = content.get("parts") if isinstance(content, dict) else None
    if parts is None and isinstance(content, dict):
        return []
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise unreadable("candidate content is not a list of parts")
    return parts


def _call_id(call: dict[str, Any], part: dict[str, Any], rid: str, choice: int,
             k: int) -> str:
    """Gemini's id, else ``call_<responseId>_<choice>_<k>``; with the part's
    thoughtSignature after THOUGHT_SEP (so the next request can send it back)."""
    given = call.get("id")
    base = given if isinstance(given, str) and given else \
        f"call_{rid}_{choice}_{k}" if rid else f"call_{choice}_{k}"
    signature = part.get("thoughtSignature")
    return f"{base}{THOUGHT_SEP}{signature}" if isinstance(signature, str) and signature \
        else base


def read_part(part: dict[str, Any]) -> tuple[str, Any] | None:
    """("text" | "reasoning", text), ("call", functionCall) or None (nothing to show)."""
    extra = set(part) - _PART_KEYS
    if extra:
        raise unreadable(f"a {sorted(extra)[0]} part cannot be translated")
    if "functionCall" in part:
        call = part["functionCall"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("args", {}), dict) \
                or set(call) - {"name", "args", "id"}:
            raise unreadable("a functionCall part without a name and args")
        return "call", call
    text = part.get("text")
    if text is None:
        return None     # e.g. a thoughtSignature alone
    if not isinstance(text, str):
        raise unreadable("a text part that is not a string")
    if not text:
        return None
    return ("reasoning" if part.get("thought") is True else "text"), text


def call_chunk(call: dict[str, Any], part: dict[str, Any], rid: str, choice: int,
               k: int) -> dict[str, Any]:
    args = json.dumps(call.get("args", {}), separators=(",", ":"), ensure_ascii=False)
    return {"id": _call_id(call, part, rid, choice, k), "type": "function",
            "function": {"name": call["name"], "arguments": args}}


def candidates(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    cands = doc.get("candidates")
    if cands is None:
        return []
    if not isinstance(cands, list) or not all(isinstance(c, dict) for c in cands):
        raise unreadable("candidates is not a list of objects")
    out = []
    for pos, cand in enumerate(cands):
        index = cand.get("index", pos)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64:
            raise unreadable("a candidate index that is not a small integer")
        out.append((index, cand))
    return out


def blocked(doc: dict[str, Any]) -> bool:
    feedback = doc.get("promptFeedback")
    return isinstance(feedback, dict) and feedback.get("blockReason") is not None


def response_id(doc: dict[str, Any]) -> str:
    rid = doc.get("responseId")
    return rid if isinstance(rid, str) else ""


def completion(doc: Any, ctx: ReplyContext) -> dict[str, Any]:
    """A whole GenerateContentResponse as a ``chat.completion``; raises Failed.

    A blocked prompt (promptFeedback.blockReason, no candidates) is one choice with no
    content and finish_reason ``content_filter`` (as LiteLLM answers it). Without any usage
    count the completion has no ``usage`` (the gateway then reads its usage as unread)."""
    if not isinstance(doc, dict):
        raise unreadable("not a JSON object")
    failed = google_error(doc, 200)
    if failed:
        raise failed
    rid = response_id(doc)
    choices = []
    cands = candidates(doc)
    if not cands:
        if not blocked(doc):
            raise unreadable("no candidates")
        choices.append({"index": 0, "message": {"role": "assistant", "content": None,
                                                 "refusal": None},
                        "logprobs": None, "finish_reason": "content_filter"})
    for index, cand in sorted(cands, key=lambda c: c[0]):
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in read_parts(cand):
            got = read_part(part)
            if got is None:
                continue
            if got[0] == "call":
                calls.append(call_chunk(got[1], part, rid, index, len(calls)))
            else:
                (texts if got[0] == "text" else thoughts).append(got[1])
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(texts) if texts else None,
                                   "refusal": None}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = calls
        if cand.get("finishReason") is None:
            raise unreadable("a candidate without a finishReason")
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": finish(cand["finishReason"], bool(calls))})
    out: dict[str, Any] = {"id": ctx.id or f"chatcmpl-{rid or 'gemini'}",
                           "object": "chat.completion", "created": ctx.created,
                           "model": ctx.model, "choices": choices}
    counts = usage(doc.get("usageMetadata"))
    if counts is not None:
        out["usage"] = counts
    return out
