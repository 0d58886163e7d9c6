"""The model map of a unified front: which backend serves a front model name.

Entries are exact names (aliases among them: `fast` -> gemini-2.5-flash) or patterns with
one `*` (`claude-*`); exact names are looked up first, then patterns in config order. A
pattern's `target` may use `*` for what the pattern's `*` matched (`vertex/*` -> `*`); with
no target, the backend model is the front model's own name. The model list `/v1/models`
answers is built from the same entries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..translate.base import Backend


@dataclass(frozen=True)
class ModelEntry:
    """One `models:` item: the front name or pattern, its backend, the backend's model name."""

    model: str
    backend: str
    target: str | None = None

    @property
    def pattern(self) -> bool:
        return "*" in self.model

    def resolve(self, name: str) -> str | None:
        """The backend model for a front model name, or None when this entry does not
        serve it."""
        if not self.pattern:
            return (self.target or name) if name == self.model else None
        head, _, tail = self.model.partition("*")
        if len(name) < len(head) + len(tail) + 1 or not name.startswith(head) \
                or not name.endswith(tail):
            return None
        matched = name[len(head):len(name) - len(tail)]
        if self.target is None:
            return name
        return self.target.replace("*", matched)


@dataclass(frozen=True)
class BackendSettings:
    """Where a backend provider is reached, besides its credential (`settings`)."""

    provider: str
    project: str | None = None     # Vertex
    location: str | None = None    # Vertex


#: a backend model name must be one path segment (Gemini, Vertex put it in the path)
_SAFE_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")


class ModelMap:
    """Front model name -> `Backend`, as the config lists them."""

    def __init__(self, entries: tuple[ModelEntry, ...],
                 backends: dict[str, BackendSettings]) -> None:
        self.entries = entries
        self.backends = backends
        self._exact = {e.model: e for e in entries if not e.pattern}
        self._patterns = tuple(e for e in entries if e.pattern)

    def resolve(self, name: str) -> Backend | None:
        """The backend serving a front model name; None when no entry serves it."""
        entry = self._exact.get(name)
        target = entry.resolve(name) if entry is not None else None
        if entry is None:
            for candidate in self._patterns:
                target = candidate.resolve(name)
                if target is not None:
                    entry = candidate
                    break
        if entry is None or not target or not valid_backend_model(target):
            return None
        where = self.backends[entry.backend]
        return Backend(entry.backend, target, where.project, where.location)

    def served(self) -> list[str]:
        """The front model names and patterns, in config order (for messages)."""
        return [e.model for e in self.entries]

    def listing(self, created: int = 0) -> bytes:
        """`GET /v1/models` in OpenAI's format: every exact name, then every pattern (marked
        `"pattern": true`, since its names cannot be enumerated)."""
        data = [{"id": e.model, "object": "model", "created": created,
                 "owned_by": e.backend, **({"pattern": True} if e.pattern else {})}
                for e in (*self._exact.values(), *self._patterns)]
        return json.dumps({"object": "list", "data": data}, separators=(",", ":")).encode()


def valid_backend_model(name: str) -> bool:
    """A backend model name the translators can put in a path (no '/', ':', '?', '%')."""
    return _SAFE_MODEL.fullmatch(name) is not None
