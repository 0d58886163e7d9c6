"""What a Gemini or Vertex AI request's ``generationConfig`` asks of the reply, read as
Google's proto3 JSON parser may read it: the config under either spelling
(``generationConfig``, ``generation_config``) and each field under either (camelCase,
snake_case), a count as a number or a decimal string. Which spelling Google keeps when a
request sends both is not documented, so every question here is asked of all of them:
the most a reservation must cover, and whether any spelling asks for what no guard reads.
"""

from __future__ import annotations

from typing import Any

from extproc.providers.values import as_dict, as_proto_int

_CONFIGS = ("generationConfig", "generation_config")


def _fields(body: Any, camel: str, snake: str) -> list[Any]:
    """The field's value under every spelling it is given in (absent ones left out)."""
    out = []
    for key in _CONFIGS:
        config = as_dict(as_dict(body).get(key))
        for name in (camel, snake):
            if config.get(name) is not None:
                out.append(config[name])
    return out


def count(body: Any, camel: str, snake: str) -> int | None:
    """A count field (``maxOutputTokens``, ``candidateCount``...): the largest given."""
    found = [n for v in _fields(body, camel, snake) if (n := as_proto_int(v)) is not None]
    return max(found) if found else None


def max_output(body: Any) -> int | None:
    """``maxOutputTokens``: the largest given, or None when none is, or when any spelling
    gives 0 (Gemini reads 0 as unset, the model's own limit, and which of two spellings
    Google keeps is its parser's choice: a 0 beside a 100 may be the one kept)."""
    found = [n for v in _fields(body, "maxOutputTokens", "max_output_tokens")
             if (n := as_proto_int(v)) is not None]
    return max(found) if found and min(found) > 0 else None


def thinking_budget(body: Any) -> int:
    """``thinkingConfig.thinkingBudget`` when no ``maxOutputTokens`` (which counts thoughts)
    bounds the reply; dynamic thinking (-1) names no number."""
    if max_output(body):
        return 0
    found = [n for config in _fields(body, "thinkingConfig", "thinking_config")
             for field in ("thinkingBudget", "thinking_budget")
             if (n := as_proto_int(as_dict(config).get(field))) is not None]
    return max(found, default=0)


def thinking_off(body: Any) -> bool:
    """The request turns thinking off (`thinkingBudget: 0`), in every spelling it gives a
    budget in (Google's parser keeps one of them). Thoughts it shows (`includeThoughts`)
    are a summary of what is billed, so they do not count as shown."""
    budgets = [n for c in _fields(body, "thinkingConfig", "thinking_config")
               for f in ("thinkingBudget", "thinking_budget")
               if (n := as_proto_int(as_dict(c).get(f))) is not None]
    return bool(budgets) and max(budgets) == 0


def asks_media(body: Any) -> list[str]:
    """Images and audio, as the response modalities (``responseModalities``) name them;
    audio when the request configures speech (``speechConfig``)."""
    modalities = [_modality(m) for v in _fields(body, "responseModalities", "response_modalities")
                  for m in (v if isinstance(v, list) else [v])]
    out = [kind for kind in ("image", "audio") if kind in modalities]
    if "audio" not in out and _fields(body, "speechConfig", "speech_config"):
        out.append("audio")
    return out


def _modality(value: Any) -> str:
    """A modality as Google's proto3 JSON parsers read one: its name in any case, or its enum
    number (IMAGE is 2; AUDIO is 3 in v1beta's enum and 4 in v1's, where 3 is VIDEO), a lone
    value standing for a list of one."""
    number = as_proto_int(value)   # (a number, or one written as a string: "2")
    if number is not None:
        return "text" if number <= 1 else "image" if number == 2 else "audio"
    return value.strip().lower() if isinstance(value, str) else "text"


def asks_logprobs(body: Any) -> bool:
    """Log probabilities: the flag as ``true`` or ``"true"``, or a count above 0."""
    return any(f is True or (isinstance(f, str) and f.strip().lower() == "true")
               for f in _fields(body, "responseLogprobs", "response_logprobs")) \
        or (count(body, "logprobs", "logprobs") or 0) > 0
