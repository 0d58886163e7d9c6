"""Masking streamed OpenAI legacy Completions replies (``text_completion`` chunks).

The chat reframer (`SSEMaskingReframer`) reads ``choices[].delta.content``; a Completions
chunk carries its text in ``choices[].text``, so through the chat reframer it would pass
unmasked. This subclass reads and rewrites ``choices[].text`` instead, one masker per choice,
with what is held at a choice's ``finish_reason`` (or ``[DONE]``, or the stream's end) added
to that chunk's text (or sent in a copy of the choice's last chunk). A non-null ``logprobs``
in a chunk with text is set to null: its tokens would spell the unmasked text. A reject
guard ends the stream with a ``text_completion`` chunk whose ``finish_reason`` is
``content_filter``, then an OpenAI error chunk.
"""

from __future__ import annotations

import json
from typing import Any

from ..codecs.sse import encode
from ..providers.base import as_list
from .reframe import SSEMaskingReframer, _dump, piece_key


class CompletionsMaskingReframer(SSEMaskingReframer):
    """`SSEMaskingReframer` for ``text_completion`` streams (same constructor)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skim = False   # the fast path knows chat chunks only

    def _openai(self, doc: dict[str, Any], event: str | None) -> tuple[bool, bytes]:
        changed = False
        for choice in as_list(doc.get("choices")):
            if not isinstance(choice, dict):
                continue
            key = piece_key(choice)
            text = choice.get("text")
            if isinstance(text, str) and text:
                choice["text"] = self._text(key, text)
                changed = changed or choice["text"] != text
                if choice.get("logprobs") is not None:
                    choice["logprobs"] = None
                    changed = True
            if choice.get("finish_reason") and key in self.chains:
                rest = self._rest(key)
                if rest:
                    current = choice.get("text")
                    choice["text"] = (current if isinstance(current, str) else "") + rest
                    changed = True
        return changed, b""

    def _synthetic(self, key: int) -> bytes:
        rest = self._rest(key)
        last = self.last.pop(key, None)
        if not rest or last is None:
            return b""
        data, event = last
        doc = json.loads(data)
        doc["choices"] = [c for c in as_list(doc.get("choices"))
                          if isinstance(c, dict) and piece_key(c) == key]
        for c in doc["choices"]:
            c.update(text=rest, logprobs=None, finish_reason=None)
        doc.pop("usage", None)
        return encode(_dump(doc, False), event=event)

    def _rejected(self, detector: str) -> bytes:
        self.stopped = True
        if self.on_reject is not None:
            self.on_reject(detector)
        message = f"response blocked by a guard: it contains {detector.replace('_', ' ')}"
        stop = {"object": "text_completion", "choices": [
            {"text": "", "index": 0, "logprobs": None, "finish_reason": "content_filter"}]}
        error = {"error": {"message": message, "type": "invalid_request_error",
                           "param": None, "code": "content_filter"}}
        return encode(_dump(stop, False)) + encode(_dump(error, False))
