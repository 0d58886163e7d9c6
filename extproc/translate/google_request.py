"""OpenAI Chat Completions request -> Gemini API / Vertex AI ``generateContent`` request
(sans-IO). The field-by-field choices are listed in `translate.google`'s docstring.

Every top-level field and every message/part key is either translated, accepted at its
default value, or refused with `Unsupported` (with ``drop_unsupported``, request options and
message metadata are left out and listed instead; conversation content never is).
"""

from __future__ import annotations

import json
import re
from typing import Any

from extproc.translate.base import Backend, Translated, Unsupported, stop_sequences
from extproc.translate.google_messages import Refusals, bad, contents

__all__ = ["THINKING_BUDGETS", "max_output_tokens", "translate_request"]

#: reasoning_effort -> thinkingConfig.thinkingBudget (tokens). 0 disables thinking (Gemini
#: 2.5 Flash / Flash-Lite; 2.5 Pro refuses it); 512..24576 is inside every 2.5 model's range.
#: xhigh and max ask for more than that range holds: refused, or (drop_unsupported) sent as
#: high and listed among the dropped fields (`CAPPED_EFFORTS`).
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576,
                    "xhigh": 24576, "max": 24576}
CAPPED_EFFORTS = frozenset({"xhigh", "max"})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")     # URL-safe model / project / location

# Top-level fields accepted only at their default value (None always counts as default).
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "logprobs": (False,), "top_logprobs": (0,), "logit_bias": ({},), "metadata": ({},),
    "store": (False,), "service_tier": ("auto",), "modalities": (["text"],),
    "parallel_tool_calls": (True,), "verbosity": ("medium",), "audio": (), "prediction": (),
    "web_search_options": (), "moderation": (), "prompt_cache_key": (),
    "prompt_cache_options": (), "prompt_cache_retention": (), "user": (),
    "safety_identifier": (), "functions": (), "function_call": (),
}
_WHY = {
    "logprobs": "log probabilities are not translated back from Gemini",
    "top_logprobs": "log probabilities are not translated back from Gemini",
    "logit_bias": "Gemini has no logit bias",
    "metadata": "Gemini has no request metadata",
    "store": "Gemini does not store completions",
    "service_tier": "Gemini has no service tier switch",
    "modalities": "only text output is translated",
    "parallel_tool_calls": "Gemini cannot turn off parallel function calls",
    "verbosity": "Gemini has no verbosity setting",
    "audio": "audio output is not translated",
    "prediction": "Gemini has no predicted outputs",
    "web_search_options": "web search is not translated",
    "moderation": "OpenAI moderation is not available on Gemini",
    "prompt_cache_key": "Gemini has no prompt cache key",
    "prompt_cache_options": "Gemini's context caching works differently",
    "prompt_cache_retention": "Gemini's context caching works differently",
    "user": "Gemini has no end-user identifier",
    "safety_identifier": "Gemini has no end-user identifier",
    "functions": "legacy functions: use tools",
    "function_call": "legacy function_call: use tool_choice",
}
_HANDLED = {"model", "messages", "stream", "stream_options", "temperature", "top_p", "stop",
            "max_tokens", "max_completion_tokens", "n", "seed", "presence_penalty",
            "frequency_penalty", "response_format", "reasoning_effort", "tools", "tool_choice"}

def _number(doc: dict[str, Any], key: str, integer: bool = False) -> int | float | None:
    value = doc.get(key)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise bad(key, "must be an integer" if integer else "must be a number")
    return value

def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad(field, "must be a non-empty string")
    return value


def _tools(doc: dict[str, Any], req: Refusals) -> tuple[list[dict[str, Any]], set[str], bool]:
    """(functionDeclarations, their names, any strict)."""
    tools = doc.get("tools")
    if tools is None:
        return [], set(), False
    if not isinstance(tools, list):
        raise bad("tools", "must be a list")
    decls, names, strict = [], set(), False
    for i, tool in enumerate(tools):
        field = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise bad(f"{field}.type", "only function tools are supported")
        for key in set(tool) - {"type", "function"}:
            raise bad(f"{field}.{key}", "unknown field")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise bad(f"{field}.function", "must be an object")
        for key in set(function) - {"name", "description", "parameters", "strict"}:
            raise bad(f"{field}.function.{key}", "unknown field")
        name = _name(function.get("name"), f"{field}.function.name")
        decl: dict[str, Any] = {"name": name}
        if function.get("description") is not None:
            decl["description"] = _name(function["description"], f"{field}.function.description")
        params = function.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise bad(f"{field}.function.parameters", "must be a JSON schema object")
            decl["parametersJsonSchema"] = params
        if function.get("strict") not in (None, True, False):
            raise bad(f"{field}.function.strict", "must be a boolean")
        strict = strict or function.get("strict") is True
        decls.append(decl)
        names.add(name)
    return decls, names, strict


def _tool_config(doc: dict[str, Any], names: set[str], strict: bool) -> dict[str, Any] | None:
    """toolConfig.functionCallingConfig from tool_choice (and strict tools)."""
    choice = doc.get("tool_choice")
    if choice is None:
        return {"mode": "VALIDATED"} if strict else None
    allowed: list[str] = []
    if choice in ("auto", "none", "required"):
        mode = {"auto": "VALIDATED" if strict else "AUTO", "none": "NONE",
                "required": "ANY"}[choice]
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        if set(choice) != {"type", "function"} or not isinstance(function, dict) \
                or set(function) != {"name"}:
            raise bad("tool_choice", "must be {type: function, function: {name}}")
        mode, allowed = "ANY", [_name(function["name"], "tool_choice.function.name")]
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        if set(choice) != {"type", "allowed_tools"} or not isinstance(spec, dict) \
                or spec.get("mode") not in ("auto", "required") \
                or not isinstance(spec.get("tools"), list) or set(spec) != {"mode", "tools"}:
            raise bad("tool_choice.allowed_tools", "must be {mode: auto|required, tools}")
        for j, tool in enumerate(spec["tools"]):
            if not isinstance(tool, dict) or tool.get("type") != "function" \
                    or not isinstance(tool.get("function"), dict):
                raise bad(f"tool_choice.allowed_tools.tools[{j}]", "only function tools")
            allowed.append(_name(tool["function"].get("name"),
                                 f"tool_choice.allowed_tools.tools[{j}].function.name"))
        mode = "ANY" if spec["mode"] == "required" else "VALIDATED"
    else:
        raise bad("tool_choice", "must be auto, none, required, a named function or "
                   "allowed_tools")
    if mode != "NONE" and not names:
        raise bad("tool_choice", "needs tools")
    for name in allowed:
        if name not in names:
            raise bad("tool_choice", f"names {name!r}, which is not in tools")
    config: dict[str, Any] = {"mode": mode}
    if allowed:
        config["allowedFunctionNames"] = allowed
    return config if names else None


def _generation(doc: dict[str, Any], req: Refusals) -> dict[str, Any]:
    gen: dict[str, Any] = {}
    for key, name in (("temperature", "temperature"), ("top_p", "topP"),
                      ("presence_penalty", "presencePenalty"),
                      ("frequency_penalty", "frequencyPenalty")):
        value = _number(doc, key)
        if value is not None and not (key.endswith("_penalty") and value == 0):
            gen[name] = value   # a 0 penalty is the default (some models refuse penalties)
    stop = stop_sequences(doc.get("stop"))
    if stop:
        gen["stopSequences"] = stop
    # the first of them that bounds anything (a 0 is Gemini's unset: `max_completion_tokens:
    # 0` beside `max_tokens: 1` sends 1, as the route's reading reserved, never 0)
    limits = [_number(doc, key, True) for key in ("max_completion_tokens", "max_tokens")]
    for key, value in zip(("max_completion_tokens", "max_tokens"), limits, strict=True):
        if value is not None and value < 0:   # (as OpenAI: a budget reserves what is sent)
            raise bad(key, "must not be negative")
    limit = next((v for v in limits if v), None)
    if limit is not None:
        gen["maxOutputTokens"] = limit
    n = _number(doc, "n", True)
    if n is not None and n != 1:
        gen["candidateCount"] = n
    seed = _number(doc, "seed", True)
    if seed is not None:
        gen["seed"] = seed
    fmt = doc.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object" and set(fmt) == {"type"}:
            gen["responseMimeType"] = "application/json"
        elif kind == "json_schema" and set(fmt) == {"type", "json_schema"} \
                and isinstance(fmt["json_schema"], dict):
            spec = fmt["json_schema"]
            for key in set(spec) - {"name", "description", "schema", "strict"}:
                raise bad(f"response_format.json_schema.{key}", "unknown field")
            if spec.get("description") is not None:
                # (OpenAI shows it to the model; Gemini's request has no place for it)
                req.refuse("response_format.json_schema.description",
                           "Gemini's structured output has no schema description")
            gen["responseMimeType"] = "application/json"
            if spec.get("schema") is not None:
                if not isinstance(spec["schema"], dict):
                    raise bad("response_format.json_schema.schema", "must be an object")
                gen["responseJsonSchema"] = spec["schema"]
        elif not (kind == "text" and set(fmt) == {"type"}):
            raise bad("response_format", "must be text, json_object or json_schema")
    effort = doc.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            raise bad("reasoning_effort", f"unknown effort {effort!r}")
        if effort in CAPPED_EFFORTS:   # (drop mode: sent as high, listed as dropped)
            req.refuse("reasoning_effort", f"{effort} exceeds the largest thinking budget "
                       f"every Gemini 2.5 model takes ({THINKING_BUDGETS[effort]}, as high)")
        thinking: dict[str, Any] = {"thinkingBudget": THINKING_BUDGETS[effort]}
        if effort != "none":
            thinking["includeThoughts"] = True
        gen["thinkingConfig"] = thinking
    return gen


def max_output_tokens(doc: dict[str, Any], default: int) -> int:
    """The most one candidate of the request `translate_request` sends may generate, for the
    budgets that reserve it: its ``maxOutputTokens`` (the client's max_completion_tokens,
    else max_tokens, the first that is not 0), which bounds thinking too (Gemini counts
    thoughts in it); without one (0 is Gemini's unset) the reply is bounded only by the
    model, so `default` (the route's ``default_max_tokens``) stands for the answer, plus the
    thinking budget of its ``reasoning_effort``. `n` (``candidateCount``) multiplies it (the
    route's reading of Chat Completions counts it). For a request the translation refuses,
    any value."""
    for key in ("max_completion_tokens", "max_tokens"):   # the first that bounds, as sent
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    effort = doc.get("reasoning_effort")
    return default + (THINKING_BUDGETS.get(effort, 0) if isinstance(effort, str) else 0)


def _path(backend: Backend, stream: bool) -> str:
    model = backend.model
    if not isinstance(model, str) or not _NAME.fullmatch(model):
        raise Unsupported("model", f"{model!r} is not a valid Gemini model name")
    method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    if backend.provider == "gemini":
        return f"/v1beta/models/{model}{method}"
    if backend.provider != "vertex":
        raise ValueError(f"not a Google backend: {backend.provider!r}")
    for what, value in (("project", backend.project), ("location", backend.location)):
        if not value or not _NAME.fullmatch(value):
            raise ValueError(f"a Vertex backend needs a valid {what} (got {value!r})")
    return (f"/v1/projects/{backend.project}/locations/{backend.location}"
            f"/publishers/google/models/{model}{method}")


def translate_request(doc: dict[str, Any], backend: Backend, *,
                      drop_unsupported: bool = False) -> Translated:
    """The Gemini / Vertex request for a Chat Completions request (see the module doc)."""
    if not isinstance(doc, dict):
        raise bad("body", "must be a JSON object")
    req = Refusals(drop_unsupported)
    for key in doc:
        if key in _DEFAULTS:
            value = doc[key]
            if value is not None and not any(type(value) is type(d) and value == d
                                             for d in _DEFAULTS[key]):
                req.refuse(key, _WHY[key], key not in ("functions", "function_call"))
        elif key not in _HANDLED:
            req.refuse(key, "unknown field")
    stream = doc.get("stream")
    if stream not in (None, True, False):
        raise bad("stream", "must be a boolean")
    stream = bool(stream)
    options = doc.get("stream_options")
    if options is not None:
        if not stream:
            raise bad("stream_options", "only allowed with stream: true")
        if not isinstance(options, dict):
            raise bad("stream_options", "must be an object")
        for key, value in options.items():
            if key not in ("include_usage", "include_obfuscation") \
                    or value not in (None, True, False):
                raise bad(f"stream_options.{key}", "unknown field or not a boolean")
            if key == "include_obfuscation" and value is True:
                req.refuse("stream_options.include_obfuscation",
                           "the translated stream has no obfuscation pad")
    path = _path(backend, stream)
    turns, system = contents(doc, req)
    body: dict[str, Any] = {"contents": turns}
    if system:
        body["systemInstruction"] = {"parts": system}
    decls, names, strict = _tools(doc, req)
    if decls:
        body["tools"] = [{"functionDeclarations": decls}]
    config = _tool_config(doc, names, strict)
    if config:
        body["toolConfig"] = {"functionCallingConfig": config}
    gen = _generation(doc, req)
    if gen:
        body["generationConfig"] = gen
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Translated(body=raw, path=path, headers={"content-type": "application/json"},
                      dropped=tuple(req.dropped), stream=stream)

