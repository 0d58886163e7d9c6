"""Masking streamed OpenAI legacy Completions replies (``text_completion`` chunks).

The chat reframer (`SSEMaskingReframer`) finds a stream's texts through the endpoint
adapter's `stream_texts` (the completions adapter locates ``choices[].text``; the chat fast
path is for the chat adapter only); this subclass only ends a refused stream the Completions
way: a ``text_completion`` chunk whose ``finish_reason`` is ``content_filter``, then an
OpenAI error chunk. Requests for
``logprobs`` (whose tokens would spell the unmasked text) are refused before they are sent.
"""

from __future__ import annotations

from collections.abc import Callable

from ..codecs.sse import encode
from ..providers.base import Adapter
from ..providers.openai_legacy import OpenAICompletionsAdapter
from .event_stream import refusal_message
from .reframe import MaskerFactory, SSEMaskingReframer
from .stops import _dump, headed


class CompletionsMaskingReframer(SSEMaskingReframer):
    """`SSEMaskingReframer` for ``text_completion`` streams (same constructor; the adapter
    defaults to the completions one)."""

    def __init__(self, provider: str, maskers: MaskerFactory, max_event_bytes: int,
                 on_reject: Callable[[str], None] | None = None,
                 on_done: Callable[[], None] | None = None,
                 adapter: Adapter | None = None,
                 allow_unread: frozenset[str] = frozenset()) -> None:
        super().__init__(provider, maskers, max_event_bytes, on_reject, on_done,
                         adapter or OpenAICompletionsAdapter(provider), allow_unread)

    def _rejected(self, detector: str) -> bytes:
        self.stopped = True
        if self.on_reject is not None:
            self.on_reject(detector)
        message = refusal_message(detector)
        stop = headed(self._head(), "text_completion",
                      [{"text": "", "index": 0, "logprobs": None,
                        "finish_reason": "content_filter"}])
        error = {"error": {"message": message, "type": "invalid_request_error",
                           "param": None, "code": "content_filter"}}
        return encode(_dump(stop, False)) + encode(_dump(error, False))
