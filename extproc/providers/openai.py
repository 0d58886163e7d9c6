"""OpenAI Chat Completions (and Azure OpenAI) adapter: requests, replies and SSE chunks.

Paths: ``/v1/chat/completions``, ``/openai/v1/chat/completions`` (model in the body) and
Azure's ``/openai/deployments/{deployment}/chat/completions`` (the deployment in the path
names the model Azure serves, so it wins over a ``model`` in the body).

Stream chunks are ``data: {"object": "chat.completion.chunk", "choices": [...]}`` events
ended by ``data: [DONE]``; ``stream_delta`` reads choice index 0 only. ``delta.refusal`` (and
a reply's ``message.refusal``) IS counted as visible text: it is what the user reads instead
of content. Tool call arguments are not visible text. With ``stream_options.include_usage``
a final chunk with ``"choices": []`` carries the usage; ``Delta.drop`` marks it. A mid-stream
``{"error": {...}}`` chunk becomes ``Delta.error``. Azure's ``prompt_filter_results``-only
chunk says nothing.

What the model reads: ``openai_prompts``; what it wrote in a whole reply: ``openai_reply``.

What the model writes (guards): in a whole reply, every choice's ``message.content``,
``refusal`` and ``audio.transcript`` (kind "text"), ``reasoning_content`` / ``reasoning``
("thinking"), tool call arguments and custom tool input ("tool"), the calls' names ("name")
and the strings of ``annotations`` (web search citations, "result"); in a stream, the same
fields of every choice's ``delta``, one piece per choice and field (per tool call index for
arguments and custom tool input), ended by the choice's finish reason; names and
annotations are checked whole. A text field given as a list of parts or an object (as
OpenAI-compatible servers write content) is read too, whole replies and streams alike
(`openai_parts`): never skipped as a known field of an unknown shape. A message or delta
field this code does not know has its strings read whole (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from extproc.codecs.jsonprune import EACH
from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.inline import unreadable
from extproc.providers.openai_other import OTHER, other_slots, rest_delta
from extproc.providers.openai_parts import (
    DELTA_TEXT_FIELDS,
    has_audio,
    part_slots,
    reply_media,
)
from extproc.providers.openai_prompts import (
    content_slots,
    read_text,
    request_slots,
    rewrite_text,
)
from extproc.providers.openai_reply import DELTA_FIELDS, ENUMS, reply_slots, visible
from extproc.providers.slots import (
    NAME_PIECE,
    EventTexts,
    Name,
    Piece,
    TextSlot,
    name_slot,
    piece_index,
    text_field,
)
from extproc.providers.unread import unread_inputs
from extproc.providers.values import (
    as_dict,
    as_int,
    as_list,
    as_str,
    dump_compact,
    load_json,
    path_only,
    pick_indexed,
    rewrite_name,
    rewrite_slots,
    text_only,
    usage_or_none,
    with_total,
)

_EMPTY_CHOICES = re.compile(r'"choices"\s*:\s*\[\s*\]')

_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")
_INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'
def usage_of(raw: Any, given: str = "prompt", made: str = "completion") -> Usage:
    """An OpenAI ``usage`` object, normalised (see ``base``): chat and completions name its
    counts ``prompt``/``completion`` (``prompt_tokens``, ``completion_tokens_details``...),
    the Responses API ``input``/``output``."""
    raw = as_dict(raw)
    details = as_dict(raw.get(f"{given}_tokens_details"))
    return with_total(
        Usage(
            input_tokens=as_int(raw.get(f"{given}_tokens")),
            output_tokens=as_int(raw.get(f"{made}_tokens")),
            total_tokens=as_int(raw.get("total_tokens")),
            cached_input_tokens=as_int(details.get("cached_tokens")),
            # prompt tokens written to the cache: OpenAI's newer usage reports them, and the
            # unified front reports Anthropic's there (extproc.translate.base)
            cache_write_input_tokens=as_int(details.get("cache_write_tokens")),
            reasoning_tokens=as_int(
                as_dict(raw.get(f"{made}_tokens_details")).get("reasoning_tokens")
            ),
        )
    )


def _error_message(raw: Any) -> str:
    if isinstance(raw, dict):
        return as_str(raw.get("message")) or as_str(raw.get("type")) or "error"
    return as_str(raw) or "error"


def _argument_slots(out: EventTexts, piece: Piece, function: dict[str, Any],
                    base: list[str | int] | None) -> None:
    """Streamed arguments: a non-empty string continues the piece; a JSON value (not what
    OpenAI sends, but what the openai SDK merges across events, string by string) is read
    as a field this code does not model, at its path in the call (`openai_other`); the
    legacy function call's (`base` None) whole, keys and numbers included."""
    value = function["arguments"]
    if isinstance(value, str):
        if value:
            out.slots.append(TextSlot(piece, function, "arguments"))
    elif value and isinstance(value, dict | list):
        if base is None:
            out.slots.append(TextSlot(piece, function, "arguments", whole=True))
        else:
            other_slots(out, piece[0], function, "arguments", frozenset(), base)


#: the fields of a chunk a guard's own event repeats (`rest_event`): its identity
HEAD_FIELDS = frozenset(("id", "object", "created", "model", "system_fingerprint",
                         "service_tier"))


def token_ids_asked(body: dict[str, Any]) -> list[str]:
    """vLLM's (and SGLang's, LMDeploy's) ``return_token_ids``: every choice then lists the
    reply's token ids, the unmasked output to anyone with the model's public tokenizer
    (found by review). Any value but null or false asks for them (default deny)."""
    value = body.get("return_token_ids")
    return [] if value is None or value is False else ["token ids (return_token_ids)"]


class OpenAIAdapter(Adapter):
    needles = (b'_tokens"', b'"finish_reason":"', b'"finish_reason": "', b'"error"')
    event_paths = (("error",), ("usage",), ("choices", EACH, "index"),
                   ("choices", EACH, "finish_reason"))
    inline_needles = (b"base64", b"\\u")   # what a body with a text file's data URL holds
    done_event = True
    indexed_choices = True
    """OpenAI and Azure OpenAI Chat Completions."""
    #: every chunk of output is one choice's delta (content, refusal, reasoning_content,
    #: tool-call arguments, audio); audio is media, read exactly
    output_markers = (b'"delta"', b'"audio"')
    dense_markers = (b'"audio"',)

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        model = as_str(body.get("model"))
        deployment = _AZURE_DEPLOYMENT.search(path_only(path))
        if deployment:
            model = deployment.group(1)
        # both given: the larger (OpenAI documents neither as winning, and an Azure or
        # OpenAI-compatible deployment may honour either)
        limits = [n for n in (as_int(body.get("max_completion_tokens")),
                              as_int(body.get("max_tokens"))) if n is not None]
        return Prompt(model, body.get("stream") is True, max(limits) if limits else None,
                      lambda: [(role, read_text(holder, key))
                               for role, holder, key in request_slots(body)])

    def output_choices(self, body: dict[str, Any]) -> int:
        body = as_dict(body)   # legacy completions generate best_of, return n
        return max(1, as_int(body.get("n")) or 1, as_int(body.get("best_of")) or 1)

    def unreadable_reply(self, body: dict[str, Any]) -> list[str]:
        body = as_dict(body)
        if body.get("logprobs") is True or (as_int(body.get("top_logprobs")) or 0) > 0:
            return ["token log probabilities (logprobs)"]
        return token_ids_asked(body)

    def asks_media(self, body: dict[str, Any]) -> list[str]:
        """Audio, when the request asks for the audio modality (`modalities`, `audio`)."""
        body = as_dict(body)
        modalities = body.get("modalities")
        asked = isinstance(body.get("audio"), dict) or (isinstance(modalities, list) and any(
            isinstance(m, str) and m.strip().lower() == "audio" for m in modalities))
        return ["audio"] if asked else []

    def reply_media(self, body: Any) -> list[str]:
        return reply_media(body)

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        body = as_dict(body)
        choice = as_dict(pick_indexed(as_list(body.get("choices"))))
        text = visible(as_dict(choice.get("message")))
        return text, as_str(choice.get("finish_reason")), usage_of(body.get("usage"))

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        return rewrite_slots(request_slots(body), fn, arguments=True)

    def undecodable_inputs(self, body: dict[str, Any]) -> list[str]:
        """A file part's data URL of a text media type whose data is not base64."""
        if isinstance(body, dict) and unreadable(h for _, h, _ in request_slots(body)):
            return ["a text file that the gateway cannot read as text (not base64, UTF-16 or "
                    "UTF-32, or a binary file labelled text)"]
        return []

    #: what a body with an unread input holds (a part of an unknown kind carrying "data")
    unread_needles = (b"image", b"audio", b"file", b"data", b"video", b"url", b"http",
                      b"embeds", b"\\u")

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(role, kind) of each input no guard can read (`providers.unread`)."""
        if not isinstance(body, dict):
            return []
        return unread_inputs((role, holder)
                             for role, holder, _ in request_slots(body, inputs=True))

    def response_texts(self, body: Any) -> list[tuple[str, str]]:
        return [(kind, Name(holder[key]) if kind == "name" else read_text(holder, key))
                for kind, holder, key in reply_slots(body)]

    def joined_reply_texts(self, body: Any) -> list[list[tuple[Any, Any]]]:
        """Per choice, the string texts of a message's content given as a list of parts
        (OpenAI-compatible servers write one; `openai_reply.visible` joins them)."""
        groups = []
        for choice in as_list(as_dict(body).get("choices")):
            message = as_dict(as_dict(choice).get("message"))
            if isinstance(message.get("content"), list):
                groups.append([(holder, key) for _, holder, key in content_slots(message, "")
                               if isinstance(holder[key], str)])
        return groups

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        changed = False
        for kind, holder, key in reply_slots(body):
            rewrite = rewrite_name if kind == "name" else rewrite_text
            changed |= rewrite(holder, key, "assistant", text_only(fn))
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        if data == "[DONE]":
            return Delta()
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        if "error" in obj and obj["error"] is not None:
            return Delta(error=_error_message(obj["error"]))
        choices = obj.get("choices")
        choice = as_dict(pick_indexed(as_list(choices)))
        delta = as_dict(choice.get("delta"))
        text = (as_str(delta.get("content")) or "") + (as_str(delta.get("refusal")) or "")
        raw_usage = obj.get("usage")
        usage = usage_or_none(usage_of(raw_usage)) if isinstance(raw_usage, dict) else None
        return Delta(
            text=text,
            finish_reason=as_str(choice.get("finish_reason")),
            usage=usage,
            drop=choices == [] and isinstance(raw_usage, dict),
        )

    def stream_texts(self, doc: dict[str, Any], event: str | None = None) -> EventTexts:
        """Every choice's delta content, refusal, reasoning and tool-call arguments; a
        choice's finish reason ends its pieces, an error chunk ends them all."""
        out = EventTexts(ends_all=doc.get("error") is not None)
        ends: list[int] = []
        for choice in as_list(doc.get("choices")):
            if not isinstance(choice, dict):
                continue
            index = piece_index(choice)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for key in DELTA_TEXT_FIELDS:
                    text = delta.get(key)
                    if text and isinstance(text, str):
                        out.slots.append(TextSlot((index, key, 0), delta, key))
                    elif isinstance(text, list | dict):   # parts: read, never skipped
                        part_slots(out, index, key, text)
                audio = delta.get("audio")
                if isinstance(audio, dict):
                    if text_field(audio, "transcript"):
                        out.slots.append(TextSlot((index, "audio", 0), audio, "transcript"))
                    if has_audio(delta):
                        out.unread += ("audio",)
                if "tool_calls" in delta:
                    for ti, call in enumerate(as_list(delta["tool_calls"])):
                        function = as_dict(as_dict(call).get("function"))
                        sub = piece_index({"index": as_dict(call).get("index", ti)})
                        name_slot(out.slots, (index, NAME_PIECE, sub), function)
                        if "arguments" in function:
                            _argument_slots(out, (index, "tool", sub), function,
                                            ["tool_calls", sub, "function"])
                        custom = as_dict(as_dict(call).get("custom"))   # free text
                        name_slot(out.slots, (index, NAME_PIECE, sub), custom)
                        if text_field(custom, "input"):
                            out.slots.append(TextSlot((index, "custom", sub), custom, "input"))
                legacy = as_dict(delta.get("function_call"))
                name_slot(out.slots, (index, NAME_PIECE, 0), legacy)
                if "arguments" in legacy:
                    _argument_slots(out, (index, "function_call", 0), legacy, None)
                for key in delta:   # any other field (annotations, a field newer than
                    if key not in DELTA_FIELDS:   # this code): every string, each path a
                        other_slots(out, index, delta, key, ENUMS)   # piece, as SDKs join
            if choice.get("finish_reason"):
                ends.append(index)
        out.ends = tuple(ends)
        return out

    def rest_event(self, doc: dict[str, Any], piece: Piece, text: str) -> dict[str, Any]:
        index, key, sub = piece
        if key == "tool":
            delta: dict[str, Any] = {"tool_calls": [{"index": sub,
                                                     "function": {"arguments": text}}]}
        elif key == "custom":
            delta = {"tool_calls": [{"index": sub, "custom": {"input": text}}]}
        elif key == "function_call":
            delta = {"function_call": {"arguments": text}}
        elif key == "audio":
            delta = {"audio": {"transcript": text}}
        elif key.startswith(OTHER):
            delta = rest_delta(key, text)
        else:
            delta = {key: text}
        # the head fields only: anything else the event held (an error, a field newer
        # than this code) was read in its own event, and is not repeated unread here
        out = {k: v for k, v in doc.items() if k in HEAD_FIELDS}
        choice: dict[str, Any] = {"index": index, "delta": delta}
        for c in as_list(doc.get("choices")):
            if isinstance(c, dict) and piece_index(c) == index and "logprobs" in c:
                choice["logprobs"] = None
            if isinstance(c, dict) and piece_index(c) == index and key in delta \
                    and isinstance(as_dict(c.get("delta")).get(key), list):
                delta[key] = [{"type": "text", "text": text}]   # parts, as the stream has
        if sub == 1 and key in DELTA_TEXT_FIELDS:
            # a part's other strings (`openai_parts`: a piece of their own): a part of theirs
            delta[key] = [{"type": "thinking", "thinking": text}]
        choice["finish_reason"] = None
        out["choices"] = [choice]
        return out

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # Every usage field read ends in `_tokens"` (prompt_tokens, cached_tokens, ...).
        return '"usage"' in data and '_tokens"' in data

    def add_stream_usage_option(self, body: bytes, parsed: dict[str, Any]) -> bytes | None:
        if not isinstance(parsed, dict) or parsed.get("stream") is not True:
            return None
        if "stream_options" not in parsed:
            start = len(body) - len(body.lstrip())
            if body[start : start + 1] == b"{":
                return body[: start + 1] + _INCLUDE_USAGE + body[start + 1 :]
            options: dict[str, Any] = {}
        else:
            current = parsed["stream_options"]
            if current is None:
                options = {}
            elif isinstance(current, dict):
                if current.get("include_usage") is True:
                    return None
                options = dict(current)
            else:
                return None  # malformed; let the provider reject it
        options["include_usage"] = True
        rebuilt = dict(parsed)
        rebuilt["stream_options"] = options
        text = dump_compact(rebuilt)
        return text.encode("utf-8") if text else None

    def is_usage_only_chunk(self, data: str) -> bool:
        # every chunk carries "usage" once include_usage is on (null in all but the last):
        # only an empty choices list is worth parsing
        if '"usage"' not in data or not _EMPTY_CHOICES.search(data):
            return False
        obj = load_json(data)
        return (
            isinstance(obj, dict)
            and obj.get("choices") == []
            and isinstance(obj.get("usage"), dict)
        )
