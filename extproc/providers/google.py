"""Gemini API and Vertex AI generateContent adapter: requests, replies and stream elements.

The model and the stream flag come from the path, not the body:
``.../models/{model}:generateContent`` or ``:streamGenerateContent`` (Gemini
``/v1beta/models/...``, Vertex ``/v1/projects/{p}/locations/{l}/publishers/google/models/...``;
any prefix, query string or ``%3A`` for the colon is accepted). A ``model`` in the body is
only a fallback. Both the camelCase and the snake_case JSON field names are read.

A stream event is one ``GenerateContentResponse``: an ``alt=sse`` event's data or one element
of the streamed JSON array, as text. ``stream_delta`` reads candidate index 0 only. Visible
text is its ``parts[].text`` without ``thought: true``; ``functionCall`` parts are not text.

Finish reasons: the candidate's own ``finishReason`` ("STOP", "MAX_TOKENS", "SAFETY", ...);
``FINISH_REASON_UNSPECIFIED`` (the proto default some serialisers write on every chunk), an
empty one or one that is not a string ends nothing and is no finish reason (`finish_reason`).
A blocked prompt (``promptFeedback.blockReason`` and no candidates) reports
``"blocked:" + blockReason`` (e.g. ``"blocked:SAFETY"``, ``"blocked:PROHIBITED_CONTENT"``),
so policies can tell a refused prompt from a reply stopped by a safety filter ("SAFETY").
An element with an ``error`` object (``{"error": {"code", "message", "status"}}``) becomes
``Delta.error``.

Usage: ``usageMetadata`` is cumulative in every element, so merging takes the latest
reported value of each field; Vertex intermediate elements may carry only ``trafficType``,
which reports nothing.

Where a field has two spellings (``systemInstruction`` / ``system_instruction``,
``functionCall`` / ``function_call``, ...), the model may be given either: texts are read
(and rewritten) under both, camelCase first.

What the model reads: ``google_prompts``.

What the model writes (guards): in a whole reply (or a buffered JSON-array stream), every
candidate's text parts ("text"), thought parts ("thinking"), ``functionCall`` names ("name"),
``functionCall.args`` and code parts ("tool"), and every string of the candidate's metadata
("result": grounding, whose supported segments copy the reply's text, citations, the finish
message), and the string and number values of Vertex's streamed call arguments
(``functionCall.partialArgs``, "tool"); in a stream, one piece per candidate for its text and
one for its thought text, ended by its finish reason (every piece by an error element), one
per streamed argument (`google_partial`: its string pieces, ended by its last piece too),
function call names and values, code and metadata strings checked whole (they arrive
whole).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import extproc.providers.google_config as config
from extproc.codecs.jsonprune import EACH
from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.google_partial import (
    is_partial,
    partial_reply_slots,
    partial_slots,
    rest_part,
)
from extproc.providers.google_prompts import (
    DATA,
    NOT_TEXT,
    PART_KEYS,
    VALUES,
    Slot,
    data_kinds,
    other_part_slots,
    part_media,
    part_slots,
    request_slots,
)
from extproc.providers.inline import BLOBS, InlineText, is_text_blob, unreadable
from extproc.providers.slots import (
    NAME_PIECE,
    EventTexts,
    Name,
    Piece,
    TextSlot,
    field_strings,
    name_slot,
    piece_index,
    string_slots,
    text_field,
)
from extproc.providers.unread import unread_inputs
from extproc.providers.values import (
    as_dict,
    as_int,
    as_list,
    as_str,
    load_json,
    path_only,
    pick_indexed,
    read_value,
    rewrite_json_strings,
    rewrite_name,
    rewrite_slots,
    sum_known,
    text_only,
    usage_or_none,
    with_total,
)

BLOCKED_PREFIX = "blocked:"

_MODEL_PATH = re.compile(r"(?:^|/)(?:models|tunedModels)/([^/:]+):([A-Za-z]+)$")


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by its JSON (camelCase) name, else its proto (snake_case) name."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _route(path: str) -> tuple[str | None, str | None]:
    """(model, method) of a generateContent path, or (None, None)."""
    match = _MODEL_PATH.search(path_only(path))
    return (match.group(1), match.group(2)) if match else (None, None)


_VALUE_KEYS = dict(VALUES)
#: the parts of a reply that call a function, by name
_CALLS = ("functionCall", "function_call")
def _metadata_slots(candidate: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(holder, key) of every string a candidate holds besides its content: grounding (the
    search queries, the sources' titles, the passages retrieved, each supported segment of
    the reply, a copy of its text), citations, the finish message."""
    return field_strings(candidate, NOT_TEXT, NOT_TEXT)


def _reply_slots(obj: Any) -> Iterator[Slot]:
    """(kind, holder, key) of every text the model wrote in one GenerateContentResponse."""
    for candidate in as_list(as_dict(obj).get("candidates")):
        content = as_dict(as_dict(candidate).get("content"))
        for part in as_list(content.get("parts")):
            if isinstance(part, dict):
                kind = "thinking" if part.get("thought") is True else "text"
                for call in _CALLS:
                    if isinstance(as_dict(part.get(call)).get("name"), str):
                        yield "name", part[call], "name"
                    if isinstance(part.get(call), dict):   # Vertex's streamed arguments
                        for holder, key in partial_reply_slots(part[call]):
                            yield "tool", holder, key
                yield from part_slots(part, kind)
                if isinstance(part.get("text"), dict | list):   # not what Gemini writes, but
                    yield "result", part, "text"   # a client shows it whole: read whole
                for holder, key in other_part_slots(part):
                    yield "result", holder, key
        if isinstance(candidate, dict):
            for holder, key in _metadata_slots(candidate):
                yield "result", holder, key


def _usage(raw: Any) -> Usage:
    raw = as_dict(raw)
    candidates = as_int(_get(raw, "candidatesTokenCount", "candidates_token_count"))
    thoughts = as_int(_get(raw, "thoughtsTokenCount", "thoughts_token_count"))
    return with_total(
        Usage(
            input_tokens=sum_known(
                as_int(_get(raw, "promptTokenCount", "prompt_token_count")),
                as_int(_get(raw, "toolUsePromptTokenCount", "tool_use_prompt_token_count")),
            ),
            output_tokens=sum_known(candidates, thoughts),
            total_tokens=as_int(_get(raw, "totalTokenCount", "total_token_count")),
            cached_input_tokens=as_int(
                _get(raw, "cachedContentTokenCount", "cached_content_token_count")
            ),
            reasoning_tokens=thoughts,
        )
    )


def _read(obj: dict[str, Any]) -> tuple[str, str | None, Usage, str | None]:
    """(visible text, finish reason, usage, error) of one GenerateContentResponse."""
    usage = _usage(_get(obj, "usageMetadata", "usage_metadata"))
    error = obj.get("error")
    if error is not None:
        if isinstance(error, dict):
            message = as_str(error.get("message")) or as_str(error.get("status"))
        else:
            message = as_str(error)
        return "", None, usage, message or "error"
    candidates = as_list(obj.get("candidates"))
    candidate = as_dict(pick_indexed(candidates))
    if not candidates:
        feedback = as_dict(_get(obj, "promptFeedback", "prompt_feedback"))
        reason = as_str(_get(feedback, "blockReason", "block_reason"))
        finish = BLOCKED_PREFIX + reason if reason else None
        return "", finish, usage, None
    text = "".join(
        as_str(part.get("text")) or ""
        for part in map(as_dict, as_list(as_dict(candidate.get("content")).get("parts")))
        if part.get("thought") is not True
    )
    return text, finish_reason(candidate), usage, None


#: the fields of a streamed response a guard's own event repeats (`rest_event`)
_HEAD_FIELDS = frozenset(("responseId", "response_id", "modelVersion", "model_version",
                          "createTime", "create_time"))


#: a finish reason that ends nothing: none, or the proto default some serialisers write on
#: every chunk
_NO_FINISH = (None, "", 0, "FINISH_REASON_UNSPECIFIED")


def finish_reason(candidate: Any) -> str | None:
    """A candidate's finish reason (either spelling), or None while it has not finished: no
    finish reason, one that ends nothing (`_NO_FINISH`), or one that is not a string. What
    the stream cut (`limits.cut_events`), the usage report's finality and the reported
    finish reason all go by."""
    value = _get(as_dict(candidate), "finishReason", "finish_reason")
    return None if value in _NO_FINISH else as_str(value)


class GoogleAdapter(Adapter):
    indexed_choices = True
    needles = (b'TokenCount"', b'token_count"', b'"finishReason"', b'"blockReason"', b'"error"')
    event_paths = (("error",), ("usageMetadata",), ("usage_metadata",),
                   ("candidates", EACH, "index"), ("candidates", EACH, "finishReason"),
                   ("candidates", EACH, "finish_reason"),
                   *((feedback, reason) for feedback in ("promptFeedback", "prompt_feedback")
                     for reason in ("blockReason", "block_reason")))
    """Gemini API and Vertex AI (Gemini models) generateContent / streamGenerateContent."""
    #: every part of output: text (thoughts too), a function call, executable code, media;
    #: all but text come whole in one part, read exactly
    output_markers = (b'"text"', b'"functionCall"', b'"inlineData"', b'"executableCode"')
    dense_markers = (b'"functionCall"', b'"inlineData"', b'"executableCode"')

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        model, method = _route(path)
        if model is None:
            fallback = as_str(body.get("model"))
            model = fallback.rsplit("/", 1)[-1] if fallback else None
        max_tokens = config.max_output(body)
        return Prompt(model, method == "streamGenerateContent", max_tokens,
                      lambda: [(role, read_value(holder[key]))
                               for role, holder, key in request_slots(body)])

    inline_needles = (b"nline", b"\\u")   # what a body with inline data holds

    def undecodable_inputs(self, body: dict[str, Any]) -> list[str]:
        """What a request carries that the model reads as text but the gateway cannot:
        inline text data that is not base64 (`providers.inline`)."""
        if unreadable(holder for _, holder, _ in request_slots(as_dict(body))):
            return ["inline text data that the gateway cannot read as text (not base64, UTF-16 "
                    "or UTF-32, a binary file labelled text, or two media types)"]
        return []

    unread_needles = (b"nline", b"ileData", b"ile_data", b"ileSearch", b"ile_search", b"etrieval",
                      b"rlContext", b"rl_context", b"\\u")

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(role, kind) of each input no guard can read (`providers.unread`)."""
        return unread_inputs((role, holder)
                             for role, holder, _ in request_slots(as_dict(body), True))

    def output_choices(self, body: dict[str, Any]) -> int:
        return max(1, config.count(body, "candidateCount", "candidate_count") or 1)

    def thinking_budget(self, body: dict[str, Any]) -> int:
        return config.thinking_budget(body)

    def asks_media(self, body: dict[str, Any]) -> list[str]:
        return config.asks_media(body)

    def reply_media(self, body: Any) -> list[str]:
        """Every candidate's inline data no guard reads (a generated image, speech) and
        file data; a whole buffered JSON-array stream is also accepted."""
        return [kind for element in (body if isinstance(body, list) else [body])
                for candidate in as_list(as_dict(element).get("candidates"))
                for part in as_list(as_dict(as_dict(candidate).get("content")).get("parts"))
                if isinstance(part, dict) for kind in part_media(part)]

    def unreadable_reply(self, body: dict[str, Any]) -> list[str]:
        """Log probabilities, asked in any spelling (`google_config`): a reply's tokens one
        by one, which no guard can mask."""
        return ["token log probabilities (responseLogprobs)"] \
            if config.asks_logprobs(body) else []

    def is_stream_request(self, path: str, body: dict[str, Any] | None) -> bool:
        return _route(path)[1] == "streamGenerateContent"

    def parse_response(self, body: dict[str, Any] | list[Any]) -> tuple[str, str | None, Usage]:
        """A generateContent reply; a whole buffered JSON-array stream is also accepted."""
        if isinstance(body, list):
            text, finish, usage = "", None, Usage()
            for element in body:
                part, reason, more, _ = _read(as_dict(element))
                text += part
                finish = reason or finish
                usage = self.merge_usage(usage, more)
            return text, finish, usage
        text, finish, usage, _ = _read(as_dict(body))
        return text, finish, usage

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        return rewrite_slots(request_slots(body), fn)

    def response_texts(self, body: Any) -> list[tuple[str, str]]:
        """A whole buffered JSON-array stream is also accepted."""
        return [(kind, Name(holder[key]) if kind == "name" else read_value(holder[key]))
                for element in (body if isinstance(body, list) else [body])
                for kind, holder, key in _reply_slots(element)]

    def joined_reply_texts(self, body: Any) -> list[list[tuple[dict[str, Any], str]]]:
        """Per candidate, its text parts and its thought parts (`response.text` joins the
        one, a stream's masker reads each as one piece)."""
        groups = []
        for candidate in as_list(as_dict(body).get("candidates")):
            parts = as_list(as_dict(as_dict(candidate).get("content")).get("parts"))
            for thought in (False, True):
                groups.append([(part, "text") for part in parts if isinstance(part, dict)
                               and isinstance(part.get("text"), str)
                               and (part.get("thought") is True) is thought])
        return groups

    def rewrite_response_texts(self, body: dict[str, Any] | list[Any],
                               fn: Callable[[str], str]) -> bool:
        """A whole buffered JSON-array stream is also accepted."""
        changed = False
        for element in body if isinstance(body, list) else [body]:
            for kind, holder, key in _reply_slots(element):
                rewrite = rewrite_name if kind == "name" else rewrite_json_strings
                changed |= rewrite(holder, key, "assistant", text_only(fn))
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        text, finish, usage, error = _read(obj)
        return Delta(text=text, finish_reason=finish, usage=usage_or_none(usage), error=error)

    def stream_texts(self, doc: dict[str, Any], event: str | None = None) -> EventTexts:
        """Per candidate: (index, "text", 0) and (index, "thought", 0) pieces, and one per
        streamed function call argument (`google_partial`); the string values of function
        calls and code, whole."""
        out = EventTexts(ends_all=doc.get("error") is not None)
        ends: list[int] = []
        ended: list[Piece] = []    # streamed arguments (`google_partial`) that end here
        for candidate in as_list(doc.get("candidates")):
            if not isinstance(candidate, dict):
                continue
            index = piece_index(candidate)
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for pi, part in enumerate(as_list(parts)):
                if not isinstance(part, dict):
                    continue
                for name in part:                # a part has one or two keys
                    if name == "text":
                        if text_field(part, "text"):   # (a list or object: NotText)
                            kind = "thought" if part.get("thought") is True else "text"
                            out.slots.append(TextSlot((index, kind, 0), part, "text"))
                        continue
                    key = _VALUE_KEYS.get(name)
                    if key is None:
                        if name in DATA:         # inline data, a file by URI
                            media = data_kinds(name, part[name])
                            if media:                # an image, speech: no guard reads it
                                out.unread += tuple(media)
                            elif name in BLOBS and is_text_blob(part[name]):
                                out.slots.append(TextSlot((index, "inline", pi),
                                                          InlineText(part[name]), None,
                                                          whole=True))   # a text file
                        elif name not in PART_KEYS:   # a part type newer than this code
                            out.slots.extend(
                                TextSlot((index, "other", pi), holder, k, whole=True)
                                for holder, k in string_slots(part, name, NOT_TEXT))
                        continue
                    value = part[name]
                    if name in _CALLS and isinstance(value, dict):
                        name_slot(out.slots, (index, NAME_PIECE, pi), value)
                        partial_slots(index, value, out.slots, ended)
                    if isinstance(value, dict) and value.get(key) and isinstance(
                            value[key], str | dict | list):
                        # whole: the args object with its keys and numbers, or the code
                        out.slots.append(TextSlot((index, name, pi), value, key, whole=True))
            metadata = _metadata_slots(candidate)   # grounding, citations, finish message
            if metadata:                             # (rare): each string whole
                out.slots.extend(TextSlot((index, "metadata", n), holder, key, whole=True)
                                 for n, (holder, key) in enumerate(metadata))
            if _get(candidate, "finishReason", "finish_reason") not in _NO_FINISH:
                ends.append(index)
        out.ends = tuple(ends)
        if ended:
            out.ends_pieces = tuple(ended)
        return out

    def rest_event(self, doc: dict[str, Any], piece: Piece, text: str) -> dict[str, Any]:
        index, kind, _ = piece
        part: dict[str, Any] = rest_part(kind, text) if is_partial(kind) else {"text": text}
        if kind == "thought":
            part["thought"] = True
        # the head fields only: anything else the event held (a feedback, an error) was
        # read in its own event, and is not repeated unread here
        out = {k: v for k, v in doc.items() if k in _HEAD_FIELDS}
        out["candidates"] = [{"content": {"parts": [part], "role": "model"}, "index": index}]
        return out

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # Every count read ends in `TokenCount"` (camelCase) or `token_count"` (snake_case);
        # a Vertex `{"trafficType": ...}`-only usageMetadata has neither.
        return 'TokenCount"' in data or 'token_count"' in data
