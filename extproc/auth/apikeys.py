"""API keys: stored in the config only as SHA-256 hashes, each mapped to a subject and claims.

A presented key is hashed and looked up; the rest of the pipeline sees the same identity shape
as for a JWT (subject + claims), so rate limits and logs treat both alike. The subject is
namespaced (`key:<subject>` by default, `subject_namespace` otherwise; see `auth.policy`), so
a key whose subject is "alice" is not the JWT user "alice" unless the config says so.
`new_key()` makes a key and its hash for `extproc api-key`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY_PREFIX = "gw-"


@dataclass(frozen=True)
class ApiKey:
    id: str
    sha256: str
    subject: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    revoked: bool = False
    subject_namespace: str = "key"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random key and its SHA-256 (what goes in the config)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


class ApiKeyStore:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_hash = {k.sha256: k for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def keys(self) -> list[ApiKey]:
        return list(self._by_hash.values())

    def lookup(self, presented: str) -> ApiKey | None:
        return self._by_hash.get(hash_key(presented))
