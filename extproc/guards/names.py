"""Tool and function names, as the guards read them: the identifiers of a request that the
model reads but no guard can rewrite (tool and function names in tool definitions, calls,
results and tool choices, the names a tool choice allows, MCP server labels), and the names
of the calls a model makes in a reply.

The adapters do not read them as texts: masking a name would break the client's dispatch
of calls by name, and providers allow only identifier characters there (`^[a-zA-Z0-9_-]+$`
for OpenAI and Anthropic). But an identifier-shaped secret fits (an AWS key id, a card
number, an IBAN), and it reaches the provider and the model like any text. So reject guards
refuse a prompt whose identifiers hold what they detect, as they refuse its texts, and a mask
guard that finds something in one refuses too, since it cannot mask it there.

A name the model writes in a reply (a call's name, handed over as a `providers.slots.Name`)
is read the same way, and masked there (`mask_name`): a name a guard finds something in is
none the prompt declared when the prompt passed the same guards, so no client dispatches it.
Webhook guards get a prompt's names as texts of their own (`identifiers`); one they would
mask refuses the prompt.

A name is read twice (`readings`): as written (a GitHub token keeps its `_`), and with its
underscores read as spaces, as the model reads `lookup_4111111111111111` (a word and a
number; the detectors do not match a number glued to a word). They are found by key,
anywhere in the body (`identifiers`): every string under ``name``,
``server_label`` or ``server_name``, and the strings of an allowed-names list. That is wider
than the tool places (a message's ``name``, a name inside a tool's input), which is harmless:
those are texts the guards read anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: the bytes a JSON body holding an identifier's key must contain: one of the keys below as
#: written, or an escape that could spell one
_NEEDLES = (b"name", b"Name", b"server_label", b"allowed_tools", b"\\u")
#: keys whose string value is an identifier (tool, function or MCP server names)
NAME_KEYS = frozenset({"name", "server_label", "server_name"})
#: keys whose value is a list of identifiers (the names a tool choice or an MCP server allows)
NAME_LISTS = frozenset({"allowedFunctionNames", "allowed_function_names", "allowed_tools",
                        "tool_names"})


def identifiers(doc: Any) -> list[str]:
    """Every identifier of a request body (see the module docstring), an object's before
    those of the objects inside it. Iterative and cycle-safe."""
    out: list[str] = []
    stack: list[Any] = [doc]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if id(value) in seen:
                continue
            seen.add(id(value))
            for key, item in value.items():
                if key in NAME_KEYS and isinstance(item, str):
                    out.append(item)
                elif key in NAME_LISTS and isinstance(item, list):
                    out.extend(name for name in item if isinstance(name, str))
            stack.extend(item for item in reversed(value.values())
                         if isinstance(item, dict | list))
        elif isinstance(value, list) and id(value) not in seen:
            seen.add(id(value))
            stack.extend(item for item in reversed(value) if isinstance(item, dict | list))
    return out


def readings(doc: Any, raw: bytes | None = None) -> list[tuple[None, str]]:
    """The identifiers as the guards read them, for `replies.found` (None: whatever the
    guard's roles): each as written and, if it has any, with its underscores as spaces.
    `raw`, the JSON text `doc` was parsed from, lets a body that cannot hold any skip the
    walk (most chat prompts)."""
    out: list[tuple[None, str]] = []
    if raw is not None and not any(needle in raw for needle in _NEEDLES):
        return out
    for name in identifiers(doc):
        out.extend((None, reading) for reading in name_readings(name))
    return out


def name_readings(name: str) -> tuple[str, ...]:
    """One name as the guards read it: as written, and with its underscores as spaces if
    it has any."""
    return (name, name.replace("_", " ")) if "_" in name else (name,)


def mask_name(name: str, mask: Callable[[str], str]) -> str:
    """A name a model wrote in a reply (`providers.slots.Name`), masked: `mask` of the name
    as written when that finds something, else of its reading with underscores as spaces
    when that does (the masked name keeps the spaces: it is no identifier any more), else
    the name. `mask` may raise or record a refusal (a reject guard's)."""
    masked = mask(name)
    if masked != name or "_" not in name:
        return masked
    spaced = name.replace("_", " ")
    masked = mask(spaced)
    return name if masked == spaced else masked
