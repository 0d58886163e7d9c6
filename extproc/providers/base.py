"""The provider-neutral shapes (Usage, Prompt, Delta) and the Adapter interface, plus helpers.

An adapter is sans-IO: it turns one provider family's request bodies, response bodies and
stream events into these shapes, and never reads sockets, clocks or configuration.

Conventions shared by every adapter:

* Usage counts are normalised so policies can compare providers. ``input_tokens`` is every
  prompt token the provider billed, cached ones included (OpenAI ``prompt_tokens``, Gemini
  ``promptTokenCount`` + ``toolUsePromptTokenCount``, Anthropic ``input_tokens`` +
  ``cache_creation_input_tokens`` + ``cache_read_input_tokens``); ``cached_input_tokens`` is
  the cache-read subset, ``cache_write_input_tokens`` the cache-write subset (Anthropic).
  ``output_tokens`` includes reasoning tokens (OpenAI ``completion_tokens``, Anthropic
  ``output_tokens``, Gemini ``candidatesTokenCount`` + ``thoughtsTokenCount``);
  ``reasoning_tokens`` is that subset. ``total_tokens`` is the provider's total when it
  reports one, else input + output.
* Prompt roles are normalised to "system", "user", "assistant" and "tool", in any case the
  client spells them ("User", "SYSTEM"; OpenAI "developer" -> "system", Gemini "model" ->
  "assistant"; tool call arguments and tool results are "tool"; tool definitions, their
  descriptions and input schemas, are "system"). A role outside these four is passed on
  lower-cased: guards read it whatever their ``roles`` filter. Images, audio and files carry
  no text; earlier thinking (Anthropic ``thinking`` blocks, Gemini ``thought`` parts) does.
* Nothing here raises on odd input: unparseable or ill-typed data reads as "nothing said".
* Rewriting (``rewrite_request_texts`` / ``rewrite_response_texts``, for guards that mask
  values and re-serialise the body) visits exactly the texts that ``parse_request`` reads, in
  the same order and with the same roles, and stores fn's results back in place. A value that
  is a JSON object rather than a string (Anthropic tool_use ``input``, Gemini
  ``functionCall.args`` and ``functionResponse.response``) is read as its compact JSON dump
  but rewritten string value by string value (keys and non-strings kept), except by a mask
  guard's fn (``values.MaskingFn``), which masks its keys and numbers too. Nothing is
  written where fn returns the text unchanged.
* Replies have two readings. ``parse_response`` (and ``Delta.text`` in streams) is what the
  user sees of the first choice or candidate: the usage and metering reading. The guards read
  every text the model writes, of every choice or candidate: ``response_texts`` /
  ``rewrite_response_texts`` for a whole reply, ``stream_texts`` / ``rest_event`` for stream
  events. Those add refusals, thinking (Anthropic thinking, Gemini thought parts, OpenAI-style
  ``reasoning_content``) and the tool-call arguments the model writes.
* Tool-call arguments given as a string (OpenAI ``tool_calls[].function.arguments`` and
  ``function_call.arguments``, Responses ``function_call`` / ``mcp_call`` ``arguments``) are
  JSON source text: they are read as a ``JsonSource`` (a str: estimates count it as sent) and
  handed to fn as one, so that guards read and mask them token by token with their escapes
  decoded, as the tool will (``codecs.jsontext``; ``read_arguments`` / ``rewrite_arguments``
  in ``providers.values``). The compact dump of a JSON value is read the same way
  (``read_value``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extproc.codecs.jsoncap import check_sources
from extproc.codecs.jsonprune import Path
from extproc.providers.slots import EventTexts, Piece

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_input_tokens",
)


#: the largest token count a usage report is read as (past 2^53 a double loses units;
#: found by review: a 400-digit count from an upstream failed the stream, its settlement and
#: its access log line); a larger one is no count. A request's counts are not bounded here:
#: one that large is refused as a reservation that can never fit (`limits`).
MAX_COUNT = 1 << 53


@dataclass(slots=True)
class Usage:
    """Token counts (normalised as described in the module docstring); None = not reported
    (or past `MAX_COUNT`)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: the prompt tokens written to the provider's cache (Anthropic's
    #: cache_creation_input_tokens), a subset of input_tokens billed at their own price
    cache_write_input_tokens: int | None = None
    #: a stream's opening report, written before any output (Anthropic's `message_start`:
    #: one output token): it counts none of a model's thinking (`limits.settle`)
    opening: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name in _USAGE_FIELDS:
            value = getattr(self, name)
            if value is not None and value > MAX_COUNT:
                setattr(self, name, None)

    def as_dict(self) -> dict[str, int]:
        """The reported (non-None) fields only."""
        out: dict[str, int] = {}
        for name in _USAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def is_empty(self) -> bool:
        """True when no field was reported."""
        return all(getattr(self, name) is None for name in _USAGE_FIELDS)


class Prompt:
    """The request, as policies need it.

    ``texts`` holds (role, text) for every piece of text the model reads, in a fixed order:
    system prompts, tool definitions (descriptions, and input schemas as compact JSON; role
    "system"), message text (string content, text parts, names, documents, earlier thinking),
    tool call arguments and tool results (role "tool"). ``max_output_tokens`` is whichever
    max-tokens field the provider uses.

    ``texts`` may be given as a function of no arguments: it is then called on first use,
    so a route whose policies never read the prompt text (usage metering alone) does not pay
    for collecting it. Read it before changing the parsed body in place.
    """

    __slots__ = ("_texts", "max_output_tokens", "model", "stream")

    def __init__(self, model: str | None, stream: bool, max_output_tokens: int | None,
                 texts: list[tuple[str, str]] | Callable[[], list[tuple[str, str]]]
                 | None = None) -> None:
        self.model = model
        self.stream = stream
        self.max_output_tokens = max_output_tokens
        self._texts = [] if texts is None else texts

    @property
    def texts(self) -> list[tuple[str, str]]:
        texts = self._texts
        if callable(texts):
            texts = texts()
            check_sources(t for _, t in texts)   # (SourceTooLarge: the body's cap)
            self._texts = texts
        return texts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        return (self.model, self.stream, self.max_output_tokens, self.texts) == (
            other.model, other.stream, other.max_output_tokens, other.texts)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Prompt(model={self.model!r}, stream={self.stream!r}, "
                f"max_output_tokens={self.max_output_tokens!r}, texts={self.texts!r})")


@dataclass(slots=True)
class Delta:
    """What one stream event says.

    ``text`` is visible text only, of the first choice or candidate (never thinking, tool
    arguments or signatures): the metering reading (the guards read ``stream_texts``);
    ``finish_reason`` is the provider's own value; ``usage`` is what this event reports (fold
    it with ``Adapter.merge_usage``); ``error`` is a mid-stream error message; ``drop`` marks
    an OpenAI chunk that exists only because ``stream_options.include_usage`` was set (a
    gateway that added the option itself should not forward it).
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None
    drop: bool = False


class Adapter(ABC):
    """One provider family's wire format. Stateless: one shared instance per provider name."""

    name: str
    #: byte strings of which every stream event that reports usage, a finish reason or an
    #: error contains at least one: the hot path decodes no other event
    needles: tuple[bytes, ...] = (b"usage", b"error", b"finish", b"stop", b"Token")
    #: its streams end with the event `data: [DONE]` (OpenAI chat and legacy completions)
    done_event: bool = False
    #: the first member of its stream texts' pieces is the index of a choice or candidate,
    #: of which a request asks `output_choices` (not a content block's, as Anthropic's is)
    indexed_choices: bool = False
    #: byte strings of which each streamed event of generated output (of any kind: text,
    #: thinking, refusal, tool arguments, media) holds one: a stream cut short counts at
    #: least a token per occurrence (`limits.estimate`)
    output_markers: tuple[bytes, ...] = ()
    #: byte strings that start an event that may carry much output in one piece (a block's
    #: start, a function call, media): its output is read exactly, not estimated
    dense_markers: tuple[bytes, ...] = ()
    #: the stream pieces' fields (`Piece`'s second member) whose adjacent pieces a client
    #: reads joined, each a content block of that type (`guards.block_join`)
    stream_joins: frozenset[str] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abstractmethod
    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        """The Prompt of a request body; ``path`` may still carry the gateway's prefix."""

    def is_stream_request(self, path: str, body: dict[str, Any] | None) -> bool:
        """True when the request asks for a streamed reply (default: ``"stream": true``)."""
        return isinstance(body, dict) and body.get("stream") is True

    @abstractmethod
    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        """A non-streamed reply: (visible text, finish reason, usage)."""

    @abstractmethod
    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        """Apply fn(role, text) to every text parse_request extracts (same roles, same order)
        and store the results back into `body` in place; True if anything changed."""

    @abstractmethod
    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        """Apply fn(text) to every text ``response_texts`` reads in a whole (non-streamed)
        reply, in the same order, and store the results back in place; True if anything
        changed."""

    def response_texts(self, body: Any) -> list[tuple[str, str]]:
        """Every text the model wrote in a whole reply, of every choice or candidate, as
        (kind, text): "text" (what the user reads: content, refusal), "thinking" or "tool"
        (tool-call arguments; a JSON object read as its compact dump). The default reads
        them through ``rewrite_response_texts``, all as "text"."""
        texts: list[tuple[str, str]] = []
        self.rewrite_response_texts(body, lambda t: texts.append(("text", t)) or t)
        return texts

    def joined_reply_texts(self, body: Any) -> list[list[tuple[dict[str, Any], str]]]:
        """Groups of a whole reply's texts, each as the (holder, key) of its strings in the
        order a client joins them into one text (a candidate's parts, a message's blocks):
        the reply guards read each group joined too (`guards.joined`). None by default."""
        return []

    def output_choices(self, body: dict[str, Any]) -> int:
        """How many replies the request asks for at once (OpenAI ``n``, Gemini
        ``candidateCount``): each may run to the max output tokens. At least 1."""
        return 1

    def opaque_context_chars(self, body: dict[str, Any]) -> int:
        """Characters of earlier reasoning the request sends back sealed (a Responses
        reasoning item's ``encrypted_content``, an Anthropic ``redacted_thinking`` block's
        ``data``): no guard reads them, but the provider reads them into the model's context
        and bills them as input, so budgets estimate them as text of that length."""
        return 0

    def thinking_budget(self, body: dict[str, Any]) -> int:
        """Output tokens a request that names no max output sets aside for thinking on top
        of its answer (Gemini's ``thinkingConfig.thinkingBudget``): a reservation adds them
        to ``default_max_tokens``. 0 when its max output bounds thinking too, or none is
        named."""
        return 0

    def unreadable_reply(self, body: dict[str, Any]) -> list[str]:
        """What a request asks the reply to carry that repeats its text where no guard can
        mask it (token log probabilities: the reply's tokens one by one), named for an
        error message; empty when nothing."""
        return []

    def deferred_reply(self, body: dict[str, Any]) -> str | None:
        """Why the reply to this request is generated after its answer and fetched elsewhere
        (the Responses API's ``background``): then the answer carries no usage and no
        output, and neither token budgets nor reply guards ever see what the model makes.
        None for a request answered in full (every other endpoint)."""
        return None

    def asks_media(self, body: dict[str, Any]) -> list[str]:
        """The kinds of media no guard can read (`providers.unread`: "image", "audio") a
        request asks the reply to carry (OpenAI's audio modality, the Responses API's image
        generation tool, Gemini's image or audio response modality), in request order."""
        return []

    def reply_media(self, body: Any) -> list[str]:
        """The kinds of media no guard can read (`providers.unread`) a whole reply carries
        (a generated image, audio, a file a server tool fetched), in reply order."""
        return []

    def stream_texts(self, doc: dict[str, Any], event: str | None = None) -> EventTexts:
        """The texts the model wrote in one stream event (a parsed SSE data object; `event`
        is the SSE event name), for the guards: see ``EventTexts``. An adapter whose streams
        guards cannot read does not implement it (guarded streams then fail, never pass)."""
        raise NotImplementedError(f"{type(self).__name__} cannot locate texts in stream events")

    def rest_event(self, doc: dict[str, Any], piece: Piece, text: str) -> dict[str, Any]:
        """A stream event that carries `text` as the continuation of `piece` and nothing else,
        made from `doc`, the last event that carried text of that piece (ids and model kept,
        no finish, no usage): how a guard sends what it still held when the piece ended."""
        raise NotImplementedError(f"{type(self).__name__} cannot write stream events")

    @abstractmethod
    def stream_delta(self, data: str, event: str | None) -> Delta:
        """One stream event (SSE data, or one JSON-array element as text). Never raises."""

    @abstractmethod
    def may_carry_usage(self, data: str, event: str | None) -> bool:
        """Fast substring prefilter: False means this event certainly reports no usage."""

    #: the paths (`codecs.jsonprune`) of every field `stream_delta` reads for usage, the
    #: finish reason and errors: all that is read of an event too large to hold (a
    #: generated image), so that it reads as the whole event would
    event_paths: tuple[Path, ...] = ()

    def merge_usage(self, acc: Usage, new: Usage) -> Usage:
        """Fold a new report into the running one (default: latest reported value wins)."""
        return Usage(*(_latest(getattr(acc, n), getattr(new, n)) for n in _USAGE_FIELDS))

    def add_stream_usage_option(self, body: bytes, parsed: dict[str, Any]) -> bytes | None:
        """The body with usage reporting switched on for streams, or None if not needed."""
        return None

    def is_usage_only_chunk(self, data: str) -> bool:
        """True for an event that only carries usage the client did not ask for."""
        return False


def _latest(old: int | None, new: int | None) -> int | None:
    return old if new is None else new


# ---------------------------------------------------------------- helpers for the adapters
