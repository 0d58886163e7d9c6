"""An OpenAI Chat Completions request as an Anthropic Messages request (``POST /v1/messages``),
sans-IO.

Every field of the Chat Completions request (openai-python 3.60's ``CompletionCreateParams``)
is translated, accepted because it is given at its default value, or refused with
`Unsupported` naming it (with ``drop_unsupported``: left out and named in
``Translated.dropped``): request options, message metadata (``name``, an image's ``detail``,
a cache breakpoint, ``reasoning_content``) and unknown fields. Malformed input (a wrong type, a
tool call's arguments that are not a JSON object), conversation content Anthropic cannot take
(a part, a ``function``-role message, an assistant's ``audio`` or ``function_call``, a tool
call that is not a function's) and the legacy ``functions``/``function_call`` are refused
even with ``drop_unsupported``, as docs/unified-front.md says and the Gemini backend does:
dropping them would change the conversation. The choices, each against Anthropic's API as of
anthropic-sdk-python 2.16 and the ``anthropic-version: 2023-06-01`` the gateway injects:

* ``system`` and ``developer`` messages become the top-level ``system`` text blocks, in order,
  wherever they stand (Anthropic has no system turn mid-conversation: a late system message is
  hoisted, not refused, and not turned into user text). Empty texts are left out (Anthropic
  refuses empty text blocks).
* ``user`` parts: text; ``image_url`` with a ``data:image/{jpeg,png,gif,webp};base64,`` URL
  (a base64 image source) or an http(s) URL (a url image source), ``detail`` only ``auto``;
  ``file`` with ``file_data`` a ``data:application/pdf;base64,`` URL (a base64 ``document``
  block, ``filename`` as its ``title``). ``input_audio``, ``file_id``, other files and other
  images are refused. ``prompt_cache_breakpoint`` is refused (OpenAI's TTLs are not Anthropic's).
* ``assistant``: text and ``refusal`` (field or parts) become text blocks, ``tool_calls`` become
  ``tool_use`` blocks (``arguments`` parsed, refused when a number in them would not be
  written back as the client wrote it, `exact_json`; "" is ``{}``); an assistant message left
  with no block is skipped. ``tool`` messages become ``tool_result`` blocks of a user turn.
  Consecutive turns of one role are merged (Anthropic alternates roles). ``name`` on a message, the
  ``function`` role, ``audio``, ``function_call`` and a non-standard ``reasoning_content``
  (a thinking block needs Anthropic's signature) are refused.
* ``tools`` (function tools, a ``description`` only as a string; ``strict: true`` is
  Anthropic's strict tool use), ``tool_choice`` (auto, required -> any, none, a named
  function -> tool: ``{type: function, function: {name}}`` and no other key),
  ``parallel_tool_calls: false`` ->
  ``disable_parallel_tool_use``. Custom tools, ``allowed_tools`` and the legacy
  ``functions``/``function_call`` are refused.
* ``response_format``: ``text`` is the default; ``json_schema`` -> ``output_config.format``
  (Anthropic's structured outputs, generally available, no beta header; Anthropic always
  constrains, so ``strict`` is honoured either way; ``description`` has no place and is
  refused; a ``json_schema`` beside another type is refused, never silently left out).
  ``json_object`` (any JSON object) has no Anthropic format: it becomes a forced tool
  `JSON_TOOL` with ``input_schema: {"type": "object"}`` whose input is the answer, and the
  reply translator (``json_tool=``, see ``AnthropicTranslated.json_tool``) turns that tool call
  back into the message's content; it cannot be combined with ``tools``, ``tool_choice`` or
  ``reasoning_effort`` (Anthropic refuses a forced tool with thinking).
* ``max_completion_tokens`` (else ``max_tokens``) -> ``max_tokens``, required by Anthropic:
  `DEFAULT_MAX_TOKENS` when absent.
* ``reasoning_effort`` -> ``thinking: {type: enabled, budget_tokens}`` after
  `THINKING_BUDGETS` (``none``: no thinking field). Anthropic needs ``max_tokens >
  budget_tokens >= 1024``: with no token limit given, ``max_tokens`` is the budget plus
  `DEFAULT_MAX_TOKENS`; a given limit is the client's cost bound and is kept, the budget is
  lowered to fit under it (a limit of 1024 or less is refused). `max_output_tokens` says
  which ``max_tokens`` that is, for the budgets that reserve it. With thinking Anthropic accepts
  only ``temperature`` 1, ``top_p`` in [0.95, 1] and tool choice auto or none: anything else is
  refused. A conversation whose last assistant turn called tools is refused too: Anthropic
  wants that turn's signed thinking blocks back, which an OpenAI client never has.
* ``temperature`` (Anthropic's range is 0..1: above 1 is refused, never clamped), ``top_p``,
  ``stop`` -> ``stop_sequences``, ``user`` / ``safety_identifier`` -> ``metadata.user_id``
  (both given and different: refused), ``service_tier`` ``auto`` (Anthropic's default) or
  ``default`` -> ``standard_only``, ``stream`` -> ``stream: true``; ``stream_options``, only
  with ``stream: true`` (``include_usage`` is for the reply translator;
  ``include_obfuscation: true`` is refused: the translated stream has no obfuscation pad).
* Accepted only at their default (null, or the value in `_DEFAULTS`): ``n``, ``logprobs``,
  ``top_logprobs``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``seed``,
  ``audio``, ``modalities``, ``prediction``, ``web_search_options``, ``store``, ``metadata``,
  ``functions``, ``function_call``, ``moderation``, ``prompt_cache_key``,
  ``prompt_cache_options``, ``prompt_cache_retention``, ``verbosity``.

No header is needed besides the credential (which carries ``anthropic-version``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from extproc.translate.anthropic_messages import JSON_TOOL, Builder
from extproc.translate.base import Backend, Translated, Unsupported, stop_sequences

__all__ = ["DEFAULT_MAX_TOKENS", "JSON_TOOL", "MIN_THINKING_BUDGET", "THINKING_BUDGETS",
           "AnthropicTranslated", "max_output_tokens", "translate_request"]

PATH = "/v1/messages"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576,
                    "xhigh": 32768, "max": 49152}
_JSON_TOOL_DESCRIPTION = ("Answer with a JSON object: call this tool once, its input is the "
                          "whole answer.")

# Fields Anthropic has no equivalent for, accepted at their default values only.
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "n": (1,), "logprobs": (False,), "top_logprobs": (0,), "presence_penalty": (0,),
    "frequency_penalty": (0,), "logit_bias": ({},), "seed": (), "audio": (),
    "modalities": (["text"],), "prediction": (), "web_search_options": (), "store": (False,),
    "metadata": ({},), "functions": ([],), "function_call": (), "moderation": (),
    "prompt_cache_key": (), "prompt_cache_options": (), "prompt_cache_retention": (),
    "verbosity": ("medium",),
}
#: the legacy function calling: refused even in drop mode (dropped, the model would answer
#: without the functions the client offered)
_LEGACY = {"functions": "legacy functions: use tools",
           "function_call": "legacy function_call: use tool_choice"}
_HANDLED = {"messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p",
            "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
            "response_format", "reasoning_effort", "user", "safety_identifier", "service_tier"}


@dataclass
class AnthropicTranslated(Translated):
    """`Translated` plus what the reply translator must know of the request."""

    json_tool: str | None = None   # pass to reply_translator(..., json_tool=) (json_object)
    thinking: bool = False         # thinking is on: pass as ReplyContext.thinking


def _same(value: Any, default: Any) -> bool:
    """JSON equality (True is not 1)."""
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return bool(value == default)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _budget(effort: Any, b: Builder) -> int | None:
    if effort is None or effort == "none":
        return None
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise b.bad("reasoning_effort", f"unknown value {effort!r}")
    return THINKING_BUDGETS[effort]


def _max_tokens(doc: dict[str, Any]) -> int | None:
    """The first of ``max_completion_tokens`` and ``max_tokens`` given; each given one must
    be a positive integer (one sent beside the other is checked too, not passed over)."""
    limit = None
    for key in ("max_completion_tokens", "max_tokens"):
        value = doc.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise Unsupported(key, "must be a positive integer")
            if limit is None:
                limit = value
    return limit


def max_output_tokens(doc: dict[str, Any], default: int) -> int:
    """The ``max_tokens`` `translate_request` sends Anthropic for `doc`: the most its reply
    may generate, thinking included (Anthropic counts thinking in ``max_tokens``), which a
    token or spend budget must reserve. The client's limit when given, else
    `DEFAULT_MAX_TOKENS` plus the thinking budget of its ``reasoning_effort``. For a request
    the translation refuses, never less than any ``max_tokens`` it could send. `default`
    (the route's ``default_max_tokens``) is not used: Anthropic is always sent a limit."""
    try:
        limit = _max_tokens(doc)
    except Unsupported:
        limit = None        # refused: a 400, which costs nothing
    if limit is not None:
        return limit
    effort = doc.get("reasoning_effort")
    return DEFAULT_MAX_TOKENS + (THINKING_BUDGETS.get(effort, 0) if isinstance(effort, str)
                                 else 0)


def translate_request(doc: dict[str, Any], backend: Backend, *,
                      drop_unsupported: bool = False) -> AnthropicTranslated:
    """The Chat Completions request `doc` as an Anthropic Messages request for `backend`."""
    b = Builder(drop_unsupported)
    for key, value in doc.items():
        if key in _HANDLED:
            continue
        if key not in _DEFAULTS:
            b.refuse(key, "unknown field")
        elif value is not None and not any(_same(value, d) for d in _DEFAULTS[key]):
            if key in _LEGACY:   # (refused in either mode, as the docs say)
                raise b.bad(key, _LEGACY[key])
            b.refuse(key, "Anthropic has no equivalent (only the default value is accepted)")
    system, turns = b.messages(doc.get("messages"))

    limit = _max_tokens(doc)
    body: dict[str, Any] = {"model": backend.model,
                            "max_tokens": limit if limit is not None else DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = system
    body["messages"] = turns

    budget = _budget(doc.get("reasoning_effort"), b)
    last = next((t for t in reversed(turns) if t["role"] == "assistant"), None)
    if budget is not None and last is not None \
            and any(block["type"] == "tool_use" for block in last["content"]):
        b.refuse("reasoning_effort", "Anthropic's thinking needs the signed thinking blocks of "
                 "the last assistant turn that called tools, which OpenAI messages cannot hold")
        budget = None
    if budget is not None and limit is not None:
        budget = min(budget, limit - 1)
        if budget < MIN_THINKING_BUDGET:
            b.refuse("reasoning_effort", f"Anthropic's thinking needs max_completion_tokens > "
                     f"{MIN_THINKING_BUDGET} (got {limit})")
            budget = None
    if budget is not None:
        if limit is None:
            body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}

    temperature = doc.get("temperature")
    if temperature is not None:
        if not _number(temperature) or not 0 <= temperature <= 2:
            raise b.bad("temperature", "must be a number from 0 to 2")
        if temperature > 1:
            b.refuse("temperature", "Anthropic's temperature ranges from 0 to 1")
        elif budget is not None and temperature != 1:
            b.refuse("temperature", "Anthropic's thinking (reasoning_effort) needs temperature 1")
        else:
            body["temperature"] = temperature
    top_p = doc.get("top_p")
    if top_p is not None:
        if not _number(top_p) or not 0 <= top_p <= 1:
            raise b.bad("top_p", "must be a number from 0 to 1")
        if budget is not None and top_p < 0.95:
            b.refuse("top_p", "Anthropic's thinking (reasoning_effort) needs top_p >= 0.95")
        else:
            body["top_p"] = top_p

    stop = stop_sequences(doc.get("stop"))
    if stop:
        body["stop_sequences"] = stop

    tools = b.tools(doc["tools"]) if doc.get("tools") is not None else []
    choice = b.tool_choice(doc["tool_choice"]) if doc.get("tool_choice") is not None else None
    if choice is not None and budget is not None and choice["type"] in ("any", "tool"):
        b.refuse("tool_choice", "Anthropic's thinking (reasoning_effort) allows only auto "
                 "or none")
        choice = None
    parallel = doc.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise b.bad("parallel_tool_calls", "must be a boolean")
    if parallel is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True

    json_tool = None
    fmt = doc.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if isinstance(fmt, dict) and kind != "json_schema" and "json_schema" in fmt:
            # a schema the format would not use, never silently left out (as on Gemini)
            raise b.bad("response_format", "must be text, json_object or json_schema")
        if kind == "json_schema":
            body["output_config"] = {"format": _json_schema(fmt, b)}
        elif kind == "json_object":
            if doc.get("tools") or doc.get("tool_choice") is not None or budget is not None:
                b.refuse("response_format", "json_object becomes a forced tool on Anthropic, "
                         "which cannot be combined with tools, tool_choice or reasoning_effort")
            else:
                json_tool = JSON_TOOL
                tools = [{"name": JSON_TOOL, "description": _JSON_TOOL_DESCRIPTION,
                          "input_schema": {"type": "object"}}]
                choice = {"type": "tool", "name": JSON_TOOL}
        elif kind != "text":
            raise b.bad("response_format", "type must be text, json_schema or json_object")
        if isinstance(fmt, dict):
            for key in fmt:
                if key not in ("type", "json_schema"):
                    b.refuse(f"response_format.{key}", "unknown field")
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice

    user = _user(doc, b)
    if user is not None:
        body["metadata"] = {"user_id": user}
    tier = doc.get("service_tier")
    if tier == "default":
        body["service_tier"] = "standard_only"
    elif tier not in (None, "auto"):
        b.refuse("service_tier", "Anthropic offers auto and standard_only only")

    stream = doc.get("stream")
    if stream not in (None, True, False):
        raise b.bad("stream", "must be a boolean")
    if stream:
        body["stream"] = True
    _stream_options(doc.get("stream_options"), bool(stream), b)
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return AnthropicTranslated(body=data, path=PATH, dropped=tuple(b.dropped),
                               stream=bool(stream), json_tool=json_tool,
                               thinking="thinking" in body)


def _json_schema(fmt: dict[str, Any], b: Builder) -> dict[str, Any]:
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise b.bad("response_format.json_schema.schema", "must be an object")
    for key, value in spec.items():
        if key == "description" and value is not None:
            b.refuse("response_format.json_schema.description",
                     "Anthropic's output format has no description")
        elif key not in ("name", "schema", "strict", "description"):
            b.refuse(f"response_format.json_schema.{key}", "unknown field")
    return {"type": "json_schema", "schema": spec["schema"]}


def _user(doc: dict[str, Any], b: Builder) -> str | None:
    user, ident = doc.get("user"), doc.get("safety_identifier")
    for key, value in (("user", user), ("safety_identifier", ident)):
        if value is not None and not isinstance(value, str):
            raise b.bad(key, "must be a string")
    if user is not None and ident is not None and user != ident:
        b.refuse("user", "Anthropic takes one user id; it differs from safety_identifier")
        return ident
    return ident if ident is not None else user


def _stream_options(options: Any, stream: bool, b: Builder) -> None:
    if options is None:
        return
    if not stream:   # (as OpenAI and the Gemini backend refuse it)
        raise b.bad("stream_options", "only allowed with stream: true")
    if not isinstance(options, dict):
        raise b.bad("stream_options", "must be an object")
    for key, value in options.items():
        if key == "include_usage":
            if value is not None and not isinstance(value, bool):
                raise b.bad("stream_options.include_usage", "must be a boolean")
        elif key == "include_obfuscation":
            if value is True:
                b.refuse("stream_options.include_obfuscation",
                         "the translated stream has no obfuscation pad")
        else:
            b.refuse(f"stream_options.{key}", "unknown field")
