"""OpenAI Responses API adapter (``POST /v1/responses``; Azure OpenAI ``/openai/v1/responses``):
requests, replies and the named-event SSE stream.

Requests: the model, ``stream: true`` and ``max_output_tokens`` from the body; the texts are
the request slots of ``responses_items`` (instructions, input items, prompt variables, tool
descriptions and schemas, the JSON-schema text format). Rewriting visits exactly those slots,
in the same order, with the same roles: string values only, so an object value (a
malformed ``arguments``) is read and rewritten string value by string value. Function and
MCP call ``arguments`` strings, in requests and replies, are JSON source text, handed to the
guards as a ``JsonSource`` (see ``base``).

Replies (a ``response`` object): the visible text is every message item's ``output_text`` and
``refusal`` parts; the finish reason is the response's ``status`` ("completed", "failed"),
or for an incomplete response its ``incomplete_details.reason`` ("max_output_tokens",
"content_filter"; "incomplete" when absent). Usage: ``input_tokens`` (cached ones included,
``input_tokens_details.cached_tokens`` is the cached subset), ``output_tokens`` (reasoning
included, ``output_tokens_details.reasoning_tokens``), ``total_tokens``. Rewriting a reply
visits every generated text a client can read, which is more than the visible text:
message text and refusals, function / MCP call arguments, custom tool input, code
interpreter code, reasoning summaries and reasoning text, and the names of calls
(``responses_output.output_slots``); a rewritten part's ``logprobs`` list is emptied (its
tokens would spell the original).

A request with ``background`` set is a deferred reply (``deferred_reply``): the answer is
``queued`` with ``usage: null``; budgets and reply guards refuse it unless the route allows
it (``allow_background``).

Stream events are ``event: <type>`` + ``data: <json>`` whose JSON ``type`` is trusted over
the SSE event name; there is no ``[DONE]``. ``response.output_text.delta`` and
``response.refusal.delta`` are visible text. ``response.completed``, ``response.incomplete``
and ``response.failed`` carry the whole response: its usage and finish reason (and for a
failed one, ``response.error.message`` as ``Delta.error``). An ``error`` event, flat
(``{"type": "error", "code", "message"}``, as the SDK types it) or nested (``{"type":
"error", "error": {...}}``, as the API has been recorded sending it), becomes
``Delta.error``. There is no ``stream_options.include_usage``: the completed event always
reports usage, so nothing is added to the request and no event is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.inline import unreadable
from extproc.providers.openai import usage_of
from extproc.providers.responses_items import (
    given_tools,
    is_arguments,
    request_slots,
    tool_kinds,
)
from extproc.providers.responses_output import output_media, output_slots, visible_text
from extproc.providers.unread import unread_inputs
from extproc.providers.values import (
    as_dict,
    as_int,
    as_list,
    as_str,
    load_json,
    read_arguments,
    read_value,
    rewrite_arguments,
    rewrite_json_strings,
    rewrite_name,
    rewrite_slot,
    text_only,
    usage_or_none,
)

#: event types whose ``delta`` is visible text
TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
#: event types that end the response and carry it whole
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def usage(raw: Any) -> Usage:
    """A Responses API ``usage`` object (``input_tokens``, ``output_tokens_details``...),
    normalised (see ``base``)."""
    return usage_of(raw, "input", "output")


def finish_reason(response: dict[str, Any]) -> str | None:
    """The response's status, or why it is incomplete."""
    status = as_str(response.get("status"))
    if status == "incomplete":
        return as_str(as_dict(response.get("incomplete_details")).get("reason")) or status
    return status


def error_message(raw: Any) -> str | None:
    """The message of an error object (or its code), None when there is no error."""
    if raw is None:
        return None
    if isinstance(raw, dict):
        return as_str(raw.get("message")) or as_str(raw.get("code")) or "error"
    return as_str(raw) or "error"


class OpenAIResponsesAdapter(Adapter):
    """The OpenAI (and Azure OpenAI) Responses API."""

    event_paths = (("type",), ("error",), ("message",), ("code",), ("response", "usage"),
                   ("response", "status"), ("response", "incomplete_details"),
                   ("response", "error"))
    needles = (b'"usage"', b'"error"', b"response.completed", b"response.incomplete",
               b"response.failed")
    #: the endpoint can stream; it generates output tokens
    streams = True
    generates = True
    #: the bytes that start each streamed text fragment, and the first generated token
    text_marker = b'"response.output_text.delta"'
    #: every `response.*.delta` event (text, refusal, reasoning, function-call arguments,
    #: tool input) and each generated image, partial or final, read exactly
    output_markers = (b'.delta"', b'"partial_image_b64"', b'"result"')
    dense_markers = (b'"partial_image_b64"', b'"result"')
    first_token = re.compile(rb'"delta":\s*"[^"]')

    def opaque_context_chars(self, body: dict[str, Any]) -> int:
        """Each input (or instructions) item's ``encrypted_content``: a reasoning item sent
        back with ``store: false``."""
        body = as_dict(body)
        return sum(len(item["encrypted_content"])
                   for field in ("input", "instructions")
                   for item in as_list(body.get(field))
                   if isinstance(item, dict) and isinstance(item.get("encrypted_content"), str))

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        return Prompt(
            as_str(body.get("model")),
            body.get("stream") is True,
            as_int(body.get("max_output_tokens")),
            lambda: [(role, read_arguments(holder[key]) if is_arguments(holder, key)
                      else read_value(holder[key])) for holder, key, role in request_slots(body)],
        )

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        body = as_dict(body)
        text = "".join(visible_text(item) for item in as_list(body.get("output")))
        return text, finish_reason(body), usage(body.get("usage"))

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        changed = False
        for holder, key, role in request_slots(body):
            # a string slot as a whole; a schema (a JSON value) string value by string value
            rewrite = rewrite_arguments if is_arguments(holder, key) else rewrite_json_strings
            changed |= rewrite(holder, key, role, fn)
        return changed

    inline_needles = (b"base64", b"\\u")   # what a body with a text file's data URL holds

    def undecodable_inputs(self, body: dict[str, Any]) -> list[str]:
        """An input file's data URL of a text media type whose data is not base64."""
        if isinstance(body, dict) and unreadable(h for h, _, _ in request_slots(body)):
            return ["a text file whose data does not decode"]
        return []

    unread_needles = (b"image", b"audio", b"file", b"data", b"computer_call_output",
                      b"vector_store", b"skill", b"mcp", b"container", b"video", b"embeds",
                      b"\\u")

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(role, kind) of each input no guard can read (`providers.unread`)."""
        if not isinstance(body, dict):
            return []
        return unread_inputs((role, holder)
                             for holder, _, role in request_slots(body, inputs=True))

    def deferred_reply(self, body: dict[str, Any]) -> str | None:
        """``background`` set (anything but absent, null or false: a value the provider
        might read as true is not sent unchecked): OpenAI answers ``queued`` with ``usage:
        null`` and generates the output later, fetched with ``GET /v1/responses/{id}``."""
        value = as_dict(body).get("background")
        if value is None or value is False:
            return None
        return "background: true (the provider answers at once and generates the reply " \
            "later, to be fetched elsewhere)"

    def asks_media(self, body: dict[str, Any]) -> list[str]:
        """An image, when the request offers the image generation tool (at the top, in an
        item that gives tools, inside a namespace: `responses_items.given_tools`)."""
        asked = any("image_generation" in tool_kinds(tool) for tool in given_tools(body))
        return ["image"] if asked else []

    def reply_media(self, body: Any) -> list[str]:
        """Every output item's generated image (`responses_output.output_media`)."""
        return [kind for item in as_list(as_dict(body).get("output"))
                for kind in output_media(item)]

    def joined_reply_texts(self, body: Any) -> list[list[tuple[dict[str, Any], str]]]:
        """Every message item's `output_text` parts, in order (the SDK's `output_text`
        joins them)."""
        return [[(part, "text") for item in as_list(as_dict(body).get("output"))
                 if isinstance(item, dict) and item.get("type") == "message"
                 for part in as_list(item.get("content")) if isinstance(part, dict)
                 and part.get("type") == "output_text" and isinstance(part.get("text"), str)]]

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        by_role = text_only(fn)
        changed = False
        for item in as_list(as_dict(body).get("output")):
            for holder, key, piece in output_slots(item):
                rewrite = rewrite_arguments if is_arguments(holder, key) \
                    else rewrite_name if piece[0] == "n" else rewrite_slot
                if rewrite(holder, key, "assistant", by_role):
                    changed = True
                    # the tokens of a rewritten text's logprobs would spell the original
                    if isinstance(holder.get("logprobs"), list) and holder["logprobs"]:
                        holder["logprobs"] = []
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = event
        if kind in TEXT_DELTAS:
            return Delta(text=as_str(obj.get("delta")) or "")
        if kind in TERMINAL:
            response = as_dict(obj.get("response"))
            raw_usage = response.get("usage")
            reported = usage_or_none(usage(raw_usage)) if isinstance(raw_usage, dict) else None
            error = None
            if kind == "response.failed":
                error = error_message(response.get("error")) or "response failed"
            return Delta(finish_reason=finish_reason(response), usage=reported, error=error)
        if kind == "error":
            nested = obj.get("error")
            message = error_message(nested) if nested is not None else None
            return Delta(error=message or error_message(obj) or "error")
        return Delta()

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # usage lives only in the whole response of a terminal event; every count read
        # ends in `_tokens"`
        return '"usage"' in data and '_tokens"' in data
