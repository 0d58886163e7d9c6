"""Small validation toolkit for the YAML config: every error is collected with its key path.

Validation never stops at the first problem: a `Checker` walks the document, records
`routes[2].provider: unknown provider 'gemni'`-style messages, and the caller raises one
`ConfigError` carrying all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


class ConfigError(Exception):
    """A config file that cannot be used; `errors` lists every problem by key path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def join(path: str, key: str | int) -> str:
    """Extend a key path: join('routes', 2) == 'routes[2]', join('a', 'b') == 'a.b'."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Checker:
    """Collects errors while typed getters read values out of plain YAML data."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path or '<top>'}: {message}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> Mapping[str, Any]:
        """Return `value` as a mapping, reporting a wrong type and every unknown key."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        allowed = set(allowed)
        for key in value:
            if key not in allowed:
                hint = f" (known keys: {', '.join(sorted(allowed))})" if allowed else ""
                self.error(join(path, str(key)), f"unknown key{hint}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {type(value).__name__}")
            return []
        return value

    def string(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None,
               required: bool = False) -> str | None:
        value = data.get(key, default)
        if value is None:
            if required:
                self.error(join(path, key), "is required")
            return None
        if not isinstance(value, str) or not value:
            self.error(join(path, key), f"expected a non-empty string, got {value!r}")
            return default
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.error(join(path, key), f"expected true or false, got {value!r}")
            return default
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, default: float,
               minimum: float = 0, integer: bool = False) -> float:
        value = data.get(key, default)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            kind = "an integer" if integer else "a number"
            self.error(join(path, key), f"expected {kind}, got {value!r}")
            return default
        if isinstance(value, float) and not math.isfinite(value):
            # .nan passed every minimum, .inf meant no bound at all (a leeway_s accepting
            # any expired token, a timeout that never fires)
            self.error(join(path, key), f"must be a finite number, got {value!r}")
            return default
        if value < minimum:
            self.error(join(path, key), f"must be >= {minimum}, got {value!r}")
            return default
        return value

    def choice(self, data: Mapping[str, Any], key: str, path: str, choices: Iterable[str],
               default: str | None = None, what: str = "value") -> str | None:
        value = data.get(key, default)
        choices = tuple(choices)
        if value is None:
            self.error(join(path, key), f"is required (one of: {', '.join(choices)})")
            return None
        if value not in choices:
            self.error(join(path, key),
                       f"unknown {what} {value!r} (one of: {', '.join(choices)})")
            return default
        return value

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)
