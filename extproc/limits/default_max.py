"""The output a token or spend budget reserves, and writes in, for a request that names no
maximum, by model (sans-IO).

One `limits.default_max_tokens` served every model, but models differ by orders of
magnitude: a reasoning model spends its hidden thinking from the bound it is sent (1,024
tokens end most of its answers with `finish_reason: "length"`), while a provider refuses a
bound above its model's own limit (16,384 for gpt-4o). `limits.default_max_tokens_by_model`
maps model globs (`fnmatch` syntax, case-sensitive, matched against the model the provider
serves: the route's, or on the unified front the backend's) to the bound for those models;
the first glob that matches wins, and a model none matches gets `default_max_tokens`.

Raising the bound for a model raises what each of its requests reserves, so a budget admits
fewer of them at once: that is the price of letting them answer in full.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

#: models whose bound is remembered (a client picks the model name: past this many, the
#: rest are matched on every request, never stored)
_REMEMBERED = 4096


class DefaultMax:
    """`default_max_tokens`, or the first `default_max_tokens_by_model` glob's bound."""

    __slots__ = ("_patterns", "_seen", "default", "globs")

    def __init__(self, default: int, by_model: Sequence[tuple[str, int]] = ()) -> None:
        self.default = default
        self.globs = tuple(by_model)
        self._patterns = tuple((re.compile(fnmatch.translate(glob)).match, n)
                               for glob, n in self.globs)
        self._seen: dict[str, int] = {}

    def __call__(self, model: object) -> int:
        """The bound for `model` (the default for none, or a model no glob matches)."""
        if not self._patterns or not isinstance(model, str):
            return self.default
        found = self._seen.get(model)
        if found is None:
            found = next((n for match, n in self._patterns if match(model)), self.default)
            if len(self._seen) < _REMEMBERED:
                self._seen[model] = found
        return found
