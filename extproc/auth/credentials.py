"""The upstream provider's own credential, injected in the provider's header.

Clients never hold provider keys: the gateway strips whatever credential the client sent and
sets the provider's (OpenAI and Vertex `Authorization: Bearer`, Azure `api-key`, Anthropic
`x-api-key` plus `anthropic-version`, Gemini `x-goog-api-key`). The value is read from an
environment variable or a file named in the config, never from the config itself; a file is
re-read when it changes (mounted secrets rotate, Vertex access tokens expire hourly).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

#: every header a client may carry a credential in; all are removed before going upstream
CLIENT_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
#: the header each provider reads its key from, and the value's format
PROVIDER_HEADER: dict[str, tuple[str, str]] = {
    "openai": ("authorization", "Bearer {}"),
    "azure": ("api-key", "{}"),
    "anthropic": ("x-api-key", "{}"),
    "gemini": ("x-goog-api-key", "{}"),
    "vertex": ("authorization", "Bearer {}"),
}
ANTHROPIC_VERSION = "2023-06-01"


class SecretError(ValueError):
    pass


@dataclass
class Secret:
    """A secret named by `env: VAR` or `file: PATH`."""

    env: str | None = None
    file: str | None = None
    _value: str = field(default="", repr=False)
    _mtime: float = 0.0
    _checked: float = 0.0

    def load(self) -> str:
        """Read the value now; SecretError says what is missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise SecretError(f"environment variable {self.env} is not set")
            self._value = value.strip()
            return self._value
        assert self.file is not None
        try:
            st = os.stat(self.file)
            value = Path(self.file).read_text().strip()
        except OSError as exc:
            raise SecretError(f"cannot read {self.file}: {exc.strerror}") from exc
        if not value:
            raise SecretError(f"{self.file} is empty")
        self._value, self._mtime = value, st.st_mtime
        return value

    def value(self) -> str:
        """The current value; a file is checked for changes at most once a second and the
        last good value is kept if it disappears."""
        if self.file is not None:
            now = time.monotonic()
            if now - self._checked >= 1.0:
                self._checked = now
                try:
                    if os.stat(self.file).st_mtime != self._mtime:
                        self.load()
                except (OSError, SecretError):
                    pass
        return self._value

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


@dataclass
class UpstreamCredential:
    provider: str
    secret: Secret

    def headers(self) -> dict[str, str]:
        name, fmt = PROVIDER_HEADER[self.provider]
        return {name: fmt.format(self.secret.value())}
