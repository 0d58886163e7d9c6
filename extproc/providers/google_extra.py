"""Gemini API and Vertex AI ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents``.

None of them streams or generates anything. The model comes from the path
(``.../models/{model}:{method}``, as for generateContent); Content objects are read and
rewritten by the generateContent adapter (delegated, so they stay the same).

* ``:countTokens``: the body's own ``systemInstruction`` and ``contents`` (Vertex also sends
  ``tools`` and ``generationConfig`` there), then a ``generateContentRequest`` (Gemini:
  a whole GenerateContentRequest, read like one). The reply is ``{"totalTokens": N, ...}``;
  counting is free (the provider bills no tokens), so the usage reported is zero and
  ``counted_tokens`` gives N.
* ``:embedContent``: ``content`` (a Content), then ``title`` and ``embedContentConfig.title``
  (Vertex), role "user". The reply is ``{"embedding": {"values": [...]}}``; Vertex adds
  ``usageMetadata.promptTokenCount``, read as input tokens (output 0).
* ``:batchEmbedContents``: each of ``requests[]`` read as one embedContent body, in order
  (the body's own fields, if any, first: whatever the path, both are read).
  The reply is ``{"embeddings": [{"values": [...]}, ...]}`` (usage as above when present).

Both the camelCase and the snake_case field names are read, camelCase first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.google import GoogleAdapter
from extproc.providers.google_prompts import items
from extproc.providers.values import (
    as_dict,
    as_int,
    as_str,
    dump_compact,
    load_json,
    rewrite_json_strings,
)

Texts = list[tuple[str, str]]


def _key(obj: dict[str, Any], camel: str, snake: str) -> str:
    """The key a camelCase-then-snake_case read uses (for what Google reports back)."""
    return snake if obj.get(camel) is None else camel


def _spellings(obj: dict[str, Any], camel: str, snake: str) -> list[dict[str, Any]]:
    """The objects a request holds under either spelling: both are read, as which one Google
    keeps when a request sends both is not documented (`google_config`)."""
    return [value for key in (camel, snake) if isinstance(value := obj.get(key), dict)]


def _error(obj: Any) -> str | None:
    if not isinstance(obj, dict) or obj.get("error") is None:
        return None
    error = obj["error"]
    if isinstance(error, dict):
        return as_str(error.get("message")) or as_str(error.get("status")) or "error"
    return as_str(error) or "error"


class _GoogleNoOutput(Adapter):
    """Shared by the three: a generateContent adapter to read Contents, no stream."""

    needles = (b'"error"', b'TokenCount"', b'token_count"')
    streams = False
    generates = False
    text_marker = None
    first_token = None

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.google = GoogleAdapter(name)

    def is_stream_request(self, path: str, body: dict[str, Any] | None) -> bool:
        return False

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        model = self.google.parse_request(path, body).model
        return Prompt(model, False, None, lambda: self._read(path, body))

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        return False   # numbers only

    def stream_delta(self, data: str, event: str | None) -> Delta:
        """Never streamed; a whole body handed in anyway is read for its usage or error."""
        obj = load_json(data)
        error = _error(obj)
        if error is not None:
            return Delta(error=error)
        if not isinstance(obj, dict):
            return Delta()
        usage = self.parse_response(obj)[2]
        return Delta(usage=None if usage.is_empty() else usage)

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        return 'TokenCount"' in data or 'token_count"' in data

    # --- Contents, through the generateContent adapter --------------------------------
    def _contents(self, path: str, holder: dict[str, Any], key: str) -> Texts:
        """The texts of ``holder[key]``, one Content."""
        return self.google.parse_request(path, {"contents": [holder[key]]}).texts

    def _rewrite_contents(self, path: str, holder: dict[str, Any], key: str,
                          fn: Callable[[str, str], str]) -> bool:
        wrapper = [holder[key]]
        changed = self.google.rewrite_request_texts(path, {"contents": wrapper}, fn)
        if wrapper[0] is not holder[key]:   # a bare-string Content, rewritten
            holder[key] = wrapper[0]
        return changed

    def _read(self, path: str, body: dict[str, Any]) -> Texts:
        raise NotImplementedError

    def _bodies(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The generateContent-shaped requests this body holds, as `_read` reads them."""
        raise NotImplementedError

    # what the model would read but no guard can: as generateContent reads it
    inline_needles = GoogleAdapter.inline_needles
    unread_needles = GoogleAdapter.unread_needles

    def undecodable_inputs(self, body: dict[str, Any]) -> list[str]:
        return [u for b in self._bodies(as_dict(body))
                for u in self.google.undecodable_inputs(b)]

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        return [u for b in self._bodies(as_dict(body)) for u in self.google.unread_inputs(b)]


class GoogleCountTokensAdapter(_GoogleNoOutput):
    """``models/{model}:countTokens`` (Gemini API and Vertex AI)."""

    def _read(self, path: str, body: dict[str, Any]) -> Texts:
        texts = [t for b in self._bodies(body) for t in self.google.parse_request(path, b).texts]
        if isinstance(body.get("instances"), dict | list):   # Vertex: the model's own schema,
            texts.append(("user", dump_compact(body["instances"])))   # read whole
        return texts

    def _bodies(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [body, *_spellings(body, "generateContentRequest", "generate_content_request")]

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        changed = self.google.rewrite_request_texts(path, body, fn)
        for inner in _spellings(body, "generateContentRequest", "generate_content_request"):
            changed |= self.google.rewrite_request_texts(path, inner, fn)
        if isinstance(body.get("instances"), dict | list):
            changed |= rewrite_json_strings(body, "instances", "user", fn)
        return changed

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        return "", None, Usage(input_tokens=0, output_tokens=0, total_tokens=0)

    def counted_tokens(self, body: dict[str, Any]) -> int | None:
        """The count the reply gives."""
        body = as_dict(body)
        return as_int(body.get(_key(body, "totalTokens", "total_tokens")))


class GoogleEmbedAdapter(_GoogleNoOutput):
    """``models/{model}:embedContent`` and ``:batchEmbedContents`` (the path decides)."""

    def _requests(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The body itself (embedContent), then each of its ``requests`` (batch): both are
        read whatever the path says, so a misplaced field is never passed on unread."""
        return [body, *(r for r in items(body.get("requests")) if isinstance(r, dict))]

    def _bodies(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"contents": [request["content"]]} for request in self._requests("", body)
                if request.get("content") is not None]

    def _read(self, path: str, body: dict[str, Any]) -> Texts:
        texts: Texts = []
        for request in self._requests(path, body):
            if request.get("content") is not None:
                texts += self._contents(path, request, "content")
            for holder in (request, *_spellings(request, "embedContentConfig",
                                                "embed_content_config")):
                if isinstance(holder.get("title"), str):
                    texts.append(("user", holder["title"]))
        return texts

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        changed = False
        for request in self._requests(path, body):
            if request.get("content") is not None:
                changed |= self._rewrite_contents(path, request, "content", fn)
            for holder in (request, *_spellings(request, "embedContentConfig",
                                                "embed_content_config")):
                if isinstance(holder.get("title"), str):
                    new = fn("user", holder["title"])
                    if new != holder["title"]:
                        holder["title"] = new
                        changed = True
        return changed

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        body = as_dict(body)
        raw = as_dict(body.get(_key(body, "usageMetadata", "usage_metadata")))
        prompt = as_int(raw.get(_key(raw, "promptTokenCount", "prompt_token_count")))
        total = as_int(raw.get(_key(raw, "totalTokenCount", "total_token_count")))
        if prompt is None and total is None:
            return "", None, Usage()
        return "", None, Usage(input_tokens=prompt if prompt is not None else total,
                               output_tokens=0,
                               total_tokens=total if total is not None else prompt)
