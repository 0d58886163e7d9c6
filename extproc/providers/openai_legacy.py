"""OpenAI legacy Completions and Embeddings adapters (also Azure OpenAI's deployments).

Completions, ``POST /v1/completions`` (Azure ``/openai/deployments/{d}/completions``, the
deployment naming the model): the texts are ``prompt`` (a string or a list of strings) and
``suffix``, role "user"; ``max_tokens``; ``stream: true`` with ``stream_options.include_usage``
exactly as in Chat Completions (the gateway may add it, and drops the extra chunk again).
A reply's visible text is ``choices[].text`` (index 0 read, every choice rewritten, and a
rewritten choice's ``logprobs`` set to null: its tokens would spell the original; with
``echo`` the prompt is part of it). Stream chunks are ``text_completion`` objects whose
``choices[].text`` is the next piece, ended by ``data: [DONE]``.

Embeddings, ``POST /v1/embeddings`` (Azure ``/openai/deployments/{d}/embeddings``): the texts
are ``input`` (a string or a list of strings), role "user"; nothing is generated and nothing
streams. Usage is ``prompt_tokens`` and ``total_tokens``; output is 0.

A prompt or input given as token ids (a list of integers, or a list of such lists) carries
no text the gateway can read or mask: ``opaque_tokens`` counts those ids, so a policy can
refuse them where guards must read the prompt and count them in a token estimate. Each
prompt of a list is completed ``max(n, best_of)`` times: ``output_choices`` counts them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.openai import HEAD_FIELDS, OpenAIAdapter, token_ids_asked, usage_of
from extproc.providers.slots import EventTexts, Piece, TextSlot, piece_index, text_field
from extproc.providers.values import (
    as_dict,
    as_int,
    as_list,
    as_str,
    load_json,
    path_only,
    pick_indexed,
    rewrite_json_strings,
    rewrite_slot,
    text_only,
    usage_or_none,
)

_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")
#: chat's stream options and usage-only chunk, which Completions share
_CHAT = OpenAIAdapter("openai")

Slot = tuple[Any, Any, str]


def _model(path: str, body: dict[str, Any]) -> str | None:
    deployment = _AZURE_DEPLOYMENT.search(path_only(path))
    return deployment.group(1) if deployment else as_str(body.get("model"))


def _string_slots(holder: dict[str, Any], key: str, out: list[Slot]) -> None:
    """``holder[key]`` when a string, each string of it when a list (token ids skipped)."""
    value = holder.get(key)
    if isinstance(value, str):
        out.append((holder, key, "user"))
    elif isinstance(value, list):
        out.extend((value, index, "user") for index, item in enumerate(value)
                   if isinstance(item, str))


def _token_ids(value: Any) -> int:
    """How many token ids a prompt/input holds (a list of ints, or a list of such lists)."""
    count = 0
    for item in as_list(value):
        if isinstance(item, int) and not isinstance(item, bool):
            count += 1
        elif isinstance(item, list):
            count += sum(1 for i in item if isinstance(i, int) and not isinstance(i, bool))
    return count


def _prompts(value: Any) -> int:
    """How many prompts ``prompt`` holds, as OpenAI reads it: a string or a list of token
    ids is one; a list of strings or of token-id lists one per item (a mixed list: one per
    string or list, plus one for loose ids, which is at least as many as any reading of
    it). At least 1."""
    if not isinstance(value, list):
        return 1
    items = sum(1 for item in value if isinstance(item, str | list))
    loose = any(not isinstance(item, str | list) for item in value)
    return max(1, items + loose)


def _error_message(raw: Any) -> str:
    if isinstance(raw, dict):
        return as_str(raw.get("message")) or as_str(raw.get("type")) or "error"
    return as_str(raw) or "error"


class _Slotted(Adapter):
    """Reading and rewriting through one list of slots."""

    def _slots(self, body: dict[str, Any]) -> list[Slot]:
        raise NotImplementedError

    def _texts(self, body: dict[str, Any]) -> Callable[[], list[tuple[str, str]]]:
        return lambda: [(role, holder[key]) for holder, key, role in self._slots(body)]

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        changed = False
        for holder, key, role in self._slots(body):
            changed |= rewrite_slot(holder, key, role, fn)
        return changed


class OpenAICompletionsAdapter(_Slotted):
    """OpenAI legacy Completions (and Azure OpenAI completions deployments)."""

    needles = _CHAT.needles
    event_paths = _CHAT.event_paths
    done_event = True
    indexed_choices = True
    streams = True
    generates = True
    text_marker = b'"text"'
    output_markers = (b'"text"',)
    first_token = re.compile(rb'"text":\s*"[^"]')

    def _slots(self, body: dict[str, Any]) -> list[Slot]:
        out: list[Slot] = []
        _string_slots(body, "prompt", out)
        if isinstance(body.get("suffix"), str):
            out.append((body, "suffix", "user"))
        return out

    def opaque_tokens(self, body: dict[str, Any]) -> int:
        """Token ids in ``prompt`` (text the gateway cannot read)."""
        return _token_ids(as_dict(body).get("prompt"))

    unread_needles = (b"prompt_embeds", b"\\u")   # (a key spelled with an escape too)

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """vLLM's ``prompt_embeds`` (a base64 tensor the model reads as its prompt): data of
        a kind no guard reads (`providers.unread`, kind ``file``)."""
        return [("user", "file")] if as_dict(body).get("prompt_embeds") is not None else []

    def stream_texts(self, doc: dict[str, Any], event: str | None = None) -> EventTexts:
        """Every choice's ``text``; a choice's finish reason ends it, an error chunk ends
        every choice."""
        out = EventTexts(ends_all=doc.get("error") is not None)
        ends: list[int] = []
        for choice in as_list(doc.get("choices")):
            if not isinstance(choice, dict):
                continue
            index = piece_index(choice)
            if text_field(choice, "text"):   # (a list or object: NotText)
                out.slots.append(TextSlot((index, "text", 0), choice, "text"))
            if choice.get("finish_reason"):
                ends.append(index)
        out.ends = tuple(ends)
        return out

    def rest_event(self, doc: dict[str, Any], piece: Piece, text: str) -> dict[str, Any]:
        out = {k: v for k, v in doc.items() if k in HEAD_FIELDS}   # (see openai's)
        out["choices"] = [{"text": text, "index": piece[0], "logprobs": None,
                           "finish_reason": None}]
        return out

    def output_choices(self, body: dict[str, Any]) -> int:
        """``max(n, best_of)`` completions for each prompt of ``prompt`` (OpenAI generates
        them per prompt: a list of 20 prompts with ``n: 2`` is 40 completions)."""
        return _CHAT.output_choices(body) * _prompts(as_dict(body).get("prompt"))

    def unreadable_reply(self, body: dict[str, Any]) -> list[str]:
        """``logprobs: N`` lists the reply's tokens one by one, out of any guard's reach in a
        stream (as chat's do). Any value but null asks for them: with ``logprobs: 0`` the
        API still returns each sampled token's log probability, so ``logprobs.tokens``
        spell the reply (the ``echo: true, logprobs: 0`` idiom); a value the API would
        refuse is refused here first (default deny)."""
        asked = as_dict(body).get("logprobs") is not None
        return ["token log probabilities (logprobs)"] if asked else \
            token_ids_asked(as_dict(body))

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        return Prompt(_model(path, body), body.get("stream") is True,
                      as_int(body.get("max_tokens")), self._texts(body))

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        body = as_dict(body)
        choice = as_dict(pick_indexed(as_list(body.get("choices"))))
        return (as_str(choice.get("text")) or "", as_str(choice.get("finish_reason")),
                usage_of(body.get("usage")))

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        by_role = text_only(fn)
        changed = False
        for choice in as_list(as_dict(body).get("choices")):
            if isinstance(choice, dict) and isinstance(choice.get("text"), str | dict | list):
                # (a list or an object, which a client shows whole, is read whole)
                if rewrite_json_strings(choice, "text", "assistant", by_role):
                    changed = True
                    if choice.get("logprobs") is not None:   # its tokens spell the original
                        choice["logprobs"] = None
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        if data == "[DONE]":
            return Delta()
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        if obj.get("error") is not None:
            return Delta(error=_error_message(obj["error"]))
        choices = obj.get("choices")
        choice = as_dict(pick_indexed(as_list(choices)))
        raw_usage = obj.get("usage")
        reported = usage_or_none(usage_of(raw_usage)) if isinstance(raw_usage, dict) else None
        return Delta(text=as_str(choice.get("text")) or "",
                     finish_reason=as_str(choice.get("finish_reason")), usage=reported,
                     drop=choices == [] and isinstance(raw_usage, dict))

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        return _CHAT.may_carry_usage(data, event)

    def add_stream_usage_option(self, body: bytes, parsed: dict[str, Any]) -> bytes | None:
        return _CHAT.add_stream_usage_option(body, parsed)

    def is_usage_only_chunk(self, data: str) -> bool:
        return _CHAT.is_usage_only_chunk(data)


class OpenAIEmbeddingsAdapter(_Slotted):
    """OpenAI Embeddings (and Azure OpenAI embeddings deployments): never streams, generates
    nothing."""

    needles = (b'"usage"', b'"error"')
    streams = False
    generates = False
    text_marker = None
    first_token = None

    def _slots(self, body: dict[str, Any]) -> list[Slot]:
        out: list[Slot] = []
        _string_slots(body, "input", out)
        return out

    def opaque_tokens(self, body: dict[str, Any]) -> int:
        """Token ids in ``input`` (text the gateway cannot read)."""
        return _token_ids(as_dict(body).get("input"))

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        return Prompt(_model(path, body), False, None, self._texts(body))

    def is_stream_request(self, path: str, body: dict[str, Any] | None) -> bool:
        return False

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        raw = as_dict(as_dict(body).get("usage"))
        prompt = as_int(raw.get("prompt_tokens"))
        total = as_int(raw.get("total_tokens"))
        if prompt is None and total is None:
            return "", None, Usage()
        return "", None, Usage(input_tokens=prompt if prompt is not None else total,
                               output_tokens=0,
                               total_tokens=total if total is not None else prompt)

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        return False   # vectors only: no text to read

    def stream_delta(self, data: str, event: str | None) -> Delta:
        """Never streamed; a whole body handed in anyway is read for its usage or error."""
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        if obj.get("error") is not None:
            return Delta(error=_error_message(obj["error"]))
        return Delta(usage=usage_or_none(self.parse_response(obj)[2]))

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        return '"usage"' in data and '_tokens"' in data
