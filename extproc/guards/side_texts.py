"""The texts of a reply that are not the model's output but that a client still shows: an
error's message inside a 2xx reply or a stream (OpenAI's error chunk, Anthropic's `error`
event, Google's error object, the Responses API's `error` event and a failed response's
`error`), Anthropic's `stop_details` (a refusal's explanation) and the `content` of its
`message_start` (the SDK copies it into the message it builds), and Gemini's
`promptFeedback` (`blockReasonMessage`). A broken or hostile upstream can put any text
there, so the reply guards read each of them whole (sans-IO): `side_slots(doc)` gives every
text of them (strings, keys and numbers) as (holder, key) slots, `holder[key]` reading and
writing it, as `providers.values.value_slots` does. `event_texts` is what the stream guards
(local and webhook) read of an event: the adapter's texts and these, or nothing when the
event cannot be read as a client reads it; of an event named `error`, every text of its
data (Anthropic's SDK shows it whole).
"""

from __future__ import annotations

from typing import Any

from ..providers.base import Adapter
from ..providers.slots import EventTexts, UnreadableEvent
from ..providers.value_refs import value_slots
from ..providers.values import as_list

#: a Responses API `error` event's fields that are not its message (it has no `error` key)
_EVENT_FIELDS = frozenset(("type", "sequence_number"))


def side_slots(doc: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Every text of `doc`'s side texts (see the module docstring); empty for nearly every
    event (a few key lookups)."""
    out: list[tuple[Any, Any]] = []
    if doc.get("error") is not None:
        out += value_slots(doc, "error")
    elif doc.get("type") == "error":        # the Responses API's: its message at the top
        for name in list(doc):
            if name not in _EVENT_FIELDS:
                out += value_slots(doc, name)
    for name in ("promptFeedback", "prompt_feedback", "stop_details"):
        if doc.get(name) is not None:
            out += value_slots(doc, name)
    kind = doc.get("type")
    if kind == "message_start":
        message = doc.get("message")
        if isinstance(message, dict) and message.get("content"):
            out += value_slots(message, "content")
    elif kind == "message_delta":
        delta = doc.get("delta")
        if isinstance(delta, dict) and delta.get("stop_details") is not None:
            out += value_slots(delta, "stop_details")
    return [(holder, key) for holder, key in out if holder[key]]


#: where a reply lists its tokens one by one (with their log probabilities): OpenAI chat's
#: `logprobs.content` and `.refusal`, legacy completions' `logprobs.tokens`, Gemini's
#: `logprobsResult`
_TOKEN_LISTS = ("content", "refusal", "tokens", "top_logprobs")


def lists_tokens(doc: dict[str, Any]) -> bool:
    """Does a reply or event list the model's tokens one by one? A request that asks for
    them is refused before it is sent (`Adapter.unreadable_reply`), so only an upstream that
    sends them unasked does: each token is a fragment no guard can read a value in (a
    value's characters spread over many), so such a reply is refused as unreadable."""
    for choice in as_list(doc.get("choices")):
        if isinstance(choice, dict):
            if choice.get("token_ids"):   # vLLM's return_token_ids (found by review)
                return True
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and any(
                    logprobs.get(k) for k in _TOKEN_LISTS):
                return True
    for candidate in as_list(doc.get("candidates")):
        if isinstance(candidate, dict) and (candidate.get("logprobsResult")
                                            or candidate.get("logprobs_result")):
            return True
    return False


def event_texts(adapter: Adapter, doc: dict[str, Any], event: str | None
                ) -> tuple[EventTexts, list[tuple[Any, Any]]] | None:
    """What the reply guards read of a stream event: the adapter's texts, and the side
    texts (`side_slots`); None when the event is unreadable and ends the stream refused: it
    lists its tokens unasked (`lists_tokens`), an index a client would read as another's
    (`BadIndex`: -1, true), which would join pieces the guards keep apart, or a text field
    holding a list or an object (`NotText`), which a client shows whole."""
    if lists_tokens(doc):
        return None
    if event == "error":
        # Anthropic's SDK raises on an event so named with its whole data as the message,
        # whatever the data's type: every text of it, read whole
        return EventTexts(ends_all=True), [(holder, key) for name in list(doc)
                                           for holder, key in value_slots(doc, name)
                                           if holder[key]]
    try:
        texts = adapter.stream_texts(doc, event)   # strings, and whole JSON values
    except UnreadableEvent:   # a bad index, or a text field holding no text
        return None
    return texts, side_slots(doc)
