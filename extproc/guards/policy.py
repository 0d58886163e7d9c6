"""`Guards`: the built-in route policy that rejects or masks sensitive content in prompts.

It reads the request body's text the way the provider adapter extracts it (all roles, or
the guard's), runs reject guards first (a 400 in the provider's format that names the guard
and what it found, never the matched text), then mask guards, rewriting each text in place
with the adapter and re-serialising the body. Responses (whole and streamed) come next, on
the streaming masker in `stream.py` (issue #6).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..policy import Policy, Reject
from ..providers import adapter_for
from .settings import Guard

if TYPE_CHECKING:
    from ..exchange import Exchange


class Guards(Policy):
    needs_request_body = True

    def __init__(self, provider: str, guards: tuple[Guard, ...]) -> None:
        super().__init__({})
        self.provider = provider
        self.adapter = adapter_for(provider)
        self.rejecting = tuple(g for g in guards if g.action == "reject")
        self.masking = tuple(g for g in guards if g.action == "mask")
        self.stats = {"rejected": 0, "masked": 0}

    async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
        try:
            doc = json.loads(body)
        except ValueError:
            return None     # not JSON: the provider will say so in its own words
        if not isinstance(doc, dict):
            return None
        path = ex.request_headers.get(":path", "")
        try:
            texts = self.adapter.parse_request(path, doc).texts
        except (ValueError, TypeError, AttributeError, KeyError):
            return None
        for guard in self.rejecting:
            found = _found(guard, texts)
            if found:
                self.stats["rejected"] += 1
                ex.metadata["guard_request"] = f"{guard.name}:rejected:{','.join(found)}"
                raise Reject(400, f"request blocked by guard '{guard.name}': the prompt "
                             f"contains {_describe(found)}", details="extproc_guard_rejected")
        if not self.masking:
            return None
        masked: list[str] = []

        def mask(role: str, text: str) -> str:
            for guard in self.masking:
                if role in guard.roles:
                    spans = guard.scanner.find(text)
                    if spans:
                        masked.extend(s.detector for s in spans)
                        text = guard.scanner.mask(text, spans)
            return text

        if not self.adapter.rewrite_request_texts(path, doc, mask):
            return None
        self.stats["masked"] += 1
        names = sorted(set(masked))
        ex.metadata["guard_request"] = ",".join(
            f"{g.name}:masked" for g in self.masking) + f":{','.join(names)}"
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _found(guard: Guard, texts: list[tuple[str, str]]) -> list[str]:
    names: list[str] = []
    for role, text in texts:
        if role in guard.roles:
            for span in guard.scanner.find(text):
                if span.detector not in names:
                    names.append(span.detector)
    return names


def _describe(names: list[Any]) -> str:
    kinds = [str(n).replace("_", " ") for n in names]
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
