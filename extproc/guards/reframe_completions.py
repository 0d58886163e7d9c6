"""Masking streamed OpenAI legacy Completions replies (``text_completion`` chunks).

The chat reframer (`SSEMaskingReframer`) finds a stream's texts through an adapter's
`stream_texts`; a Completions chunk carries its text in ``choices[].text``, which the
completions adapter locates, so this subclass only swaps the adapter in, leaves the chat fast
path off, and ends a refused stream the Completions way: a ``text_completion`` chunk whose
``finish_reason`` is ``content_filter``, then an OpenAI error chunk. Requests for
``logprobs`` (whose tokens would spell the unmasked text) are refused before they are sent.
"""

from __future__ import annotations

from collections.abc import Callable

from ..codecs.sse import encode
from ..providers.openai_legacy import OpenAICompletionsAdapter
from .reframe import MaskerFactory, SSEMaskingReframer, _dump


class CompletionsMaskingReframer(SSEMaskingReframer):
    """`SSEMaskingReframer` for ``text_completion`` streams (same constructor)."""

    def __init__(self, provider: str, maskers: MaskerFactory, max_event_bytes: int,
                 on_reject: Callable[[str], None] | None = None,
                 on_done: Callable[[], None] | None = None) -> None:
        super().__init__(provider, maskers, max_event_bytes, on_reject, on_done)
        self.adapter = OpenAICompletionsAdapter(provider)
        self.skim = False   # the fast path knows chat chunks only

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
