"""Strings of a request that no model reads but the provider receives, and keeps: stop
sequences (OpenAI's `stop`, Anthropic's `stop_sequences`, Gemini's `stopSequences`), the
end-user and cache ids (`user`, `safety_identifier`, `prompt_cache_key`), `metadata`
(Anthropic's `user_id` in it; OpenAI stores it with the completion), Vertex `labels`
(billing labels), and the user's location a web search tool localises its searches by
(`web_search_options.user_location` in OpenAI chat, a tool's `user_location` in the
Responses API and Anthropic's). They are no prompt, so the adapters' slots leave them out,
but a guard that keeps an address from the provider must keep it out of them too (sans-IO).

Every local guard reads them, the mask guards too, and a match is refused, not masked:
a masked stop sequence would stop elsewhere, a masked user id would merge users, and the
client would not know. The request walkers are not involved: these are top-level fields
(and Gemini's generation config, and the tools' locations), the same in every adapter that
has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..policy import Reject
from .decisions import decide
from .replies import describe, found

if TYPE_CHECKING:
    from ..context import Context
    from .settings import Guard

#: top-level fields whose every string is read
_FIELDS = ("stop", "stop_sequences", "user", "safety_identifier", "prompt_cache_key",
           "metadata", "labels")
_CONFIGS = ("generationConfig", "generation_config")
_CONFIG_FIELDS = ("stopSequences", "stop_sequences")
#: where a web search tool is told the user's location (free text: city, region)
_LOCATION = "user_location"


def _strings(value: Any, out: list[tuple[str, str]], depth: int = 0) -> None:
    if isinstance(value, str):
        out.append(("user", value))
    elif depth < 8 and isinstance(value, dict):
        for key, item in value.items():
            _strings(key, out, depth + 1)
            _strings(item, out, depth + 1)
    elif depth < 8 and isinstance(value, list):
        for item in value:
            _strings(item, out, depth + 1)


def field_texts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The strings of `doc`'s fields named above (keys of `metadata` and `labels` too), each
    read as the client's ("user")."""
    out: list[tuple[str, str]] = []
    for name in _FIELDS:
        if name in doc:
            _strings(doc[name], out)
    for name in _CONFIGS:
        config = doc.get(name)
        if isinstance(config, dict):
            for field in _CONFIG_FIELDS:
                if field in config:
                    _strings(config[field], out)
    options = doc.get("web_search_options")
    if isinstance(options, dict) and _LOCATION in options:
        _strings(options[_LOCATION], out)
    tools = doc.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and _LOCATION in tool:
            _strings(tool[_LOCATION], out)
    return out


def refuse_field_matches(ex: Context, guards: tuple[Guard, ...], stats: dict[str, int],
                         doc: dict[str, Any]) -> None:
    """Refuse a request in whose non-prompt fields (see the module's docstring) a local
    guard finds something."""
    texts = field_texts(doc)
    if not texts:
        return
    for guard in guards:
        hits = found(guard, texts)
        if hits:
            stats["rejected"] += 1
            decide(ex, guard.name, "request", "rejected", ",".join(hits))
            raise Reject(400, f"request blocked by guard '{guard.name}': a field sent to the "
                         f"provider beside the prompt (a stop sequence, a user id, metadata, a "
                         f"search location) "
                         f"contains {describe(hits)}, which cannot be masked there without "
                         "changing what it means", details="extproc_guard_rejected")
