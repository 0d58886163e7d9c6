"""Reads the unified front's part of a route (`provider: openai-compatible`)::

    - name: unified
      provider: openai-compatible
      backends:                         # required: every backend the models map to
        openai: {upstream_credential: {env: OPENAI_API_KEY}}
        anthropic: {upstream_credential: {env: ANTHROPIC_API_KEY}}
        gemini: {upstream_credential: {env: GEMINI_API_KEY}}
        vertex: {upstream_credential: {file: /var/run/vertex/token},
                 project: my-project, location: us-central1}
        azure: {upstream_credential: {env: AZURE_OPENAI_API_KEY}}
      models:                           # required: exact names first, then patterns in order
        - {model: "gpt-*", backend: openai}
        - {model: "claude-*", backend: anthropic}
        - {model: "gemini-*", backend: gemini}
        - {model: "vertex/*", backend: vertex, target: "*"}
        - {model: fast, backend: gemini, target: gemini-2.5-flash}   # an alias
      drop_unsupported: false           # true: leave out (and log) request fields a backend
                                        # cannot honour, instead of a 400 naming them
      auth, guards, rate_limits, plugins, streams, default_price: as on any route

The route reads and polices requests as OpenAI Chat Completions (its errors are OpenAI's),
and serves `POST /v1/chat/completions` and `GET /v1/models` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..auth.credentials import UpstreamCredential
from ..auth.settings import parse_credential
from ..providers import PROVIDERS
from ..schema import Checker, join
from .models import BackendSettings, ModelEntry, ModelMap, valid_backend_model

FRONT_KEYS = ("backends", "models", "drop_unsupported")


@dataclass(frozen=True)
class FrontConfig:
    models: ModelMap
    credentials: dict[str, UpstreamCredential] = field(default_factory=dict)
    drop_unsupported: bool = False


def parse_front(c: Checker, d: Any, path: str, base: Path) -> FrontConfig | None:
    """The front of an `openai-compatible` route (None when it has errors, reported on c)."""
    before = len(c.errors)
    for key in ("upstream_credential", "providers", "passthrough"):
        if key in d:
            c.error(join(path, key), "not on a provider: openai-compatible route (each "
                    "backend names its upstream_credential under backends; the route "
                    "serves /v1/chat/completions and /v1/models only)")
    backends: dict[str, BackendSettings] = {}
    credentials: dict[str, UpstreamCredential] = {}
    where = join(path, "backends")
    raw = c.mapping(d.get("backends"), where, PROVIDERS)
    if not raw:
        c.error(where, f"name at least one backend ({', '.join(PROVIDERS)})")
    for provider, spec in raw.items():
        at = join(where, provider)
        item = c.mapping(spec, at, ("upstream_credential", "project", "location"))
        project = c.string(item, "project", at)
        location = c.string(item, "location", at)
        if provider == "vertex" and (not project or not location):
            c.error(at, "a vertex backend needs its project and location")
        elif provider != "vertex" and (project or location):
            c.error(at, "project and location are for the vertex backend only")
        if "upstream_credential" in item:
            cred = parse_credential(c, item["upstream_credential"],
                                    join(at, "upstream_credential"), provider, base)
            if cred is not None:
                credentials[provider] = cred
        backends[provider] = BackendSettings(provider, project, location)
    entries = []
    where = join(path, "models")
    items = c.sequence(d.get("models"), where)
    if not items:
        c.error(where, "map at least one model to a backend")
    seen: set[str] = set()
    for i, spec in enumerate(items):
        at = join(where, i)
        item = c.mapping(spec, at, ("model", "backend", "target"))
        model = c.string(item, "model", at, required=True)
        backend = c.string(item, "backend", at, required=True)
        target = c.string(item, "target", at)
        if model is None or backend is None:
            continue
        if backend not in backends:
            c.error(join(at, "backend"), f"{backend!r} is not under backends "
                    f"({', '.join(backends) or 'none'})")
        stars = model.count("*")
        if stars > 1:
            c.error(join(at, "model"), "a pattern has at most one '*'")
        if target is not None and "*" in target and stars != 1:
            c.error(join(at, "target"), "'*' in a target stands for what the model "
                    "pattern's '*' matched: the model must be a pattern")
        if stars == 0 and not valid_backend_model(target or model):
            c.error(join(at, "target" if target else "model"),
                    f"{target or model!r} cannot be a backend model name (letters, digits "
                    "and . _ @ + - only)")
        if model in seen:
            c.error(join(at, "model"), f"{model!r} is listed twice")
        seen.add(model)
        entries.append(ModelEntry(model, backend, target))
    drop = c.boolean(d, "drop_unsupported", path, False)
    if len(c.errors) > before:
        return None
    return FrontConfig(ModelMap(tuple(entries), backends), credentials, drop)
