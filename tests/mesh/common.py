"""What the mesh-shape tests share: the reference extproc config with a credential of its own
per route (so the key that reaches the mock names the extproc route that handled the request),
a request and a reply reader per provider, the Envoy shapes rendered from their templates with
the test's ports, and the server's own access log.

A shape is an Envoy config written the way a controller (Envoy Gateway, Istio, kgateway)
generates it for our manifests; each template's header says which of the controller's sources
each part follows.
"""

from __future__ import annotations

import json
import string
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from extproc.auth.devtoken import mint
from tests.harness import ROOT, Gateway, Ports

HERE = Path(__file__).resolve().parent
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")
BODY_LIMIT = 8388608          # the reference server.max_request_body_bytes
EMAIL = "jane.roe@example.org"


def render(template: str, ports: Ports, **extra: Any) -> dict[str, Any]:
    """A shape template under tests/mesh/, filled with the test's ports."""
    text = (HERE / template).read_text()
    values = {"LISTEN_PORT": ports.listen, "ADMIN_PORT": ports.admin,
              "EXTPROC_PORT": ports.extproc, "MOCK_PORT": ports.mock,
              "BODY_LIMIT": BODY_LIMIT, **extra}
    return yaml.safe_load(string.Template(text).substitute(values))


def _absolute(node: Any) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "file" and isinstance(v, str) and not Path(v).is_absolute():
                node[k] = str(ROOT / "config" / v)
            else:
                _absolute(v)
    elif isinstance(node, list):
        for v in node:
            _absolute(v)


def route_key(route: str) -> str:
    """The provider credential the extproc route `route` injects upstream."""
    return f"mock-key-of-route-{route}"


def reference_config(key_dir: Path, routes: dict[str, dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
    """config/gateway.yaml (JWT and API-key auth, per-subject limits, the PII guard), its
    files made absolute, each route's upstream credential a file of its own (route_key), and
    `routes` merged into the routes of those names."""
    doc = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
    doc = {k: v for k, v in doc.items() if not k.startswith("x-")}   # anchors already merged
    _absolute(doc)
    key_dir.mkdir(parents=True, exist_ok=True)
    for route in doc["routes"]:
        # the unified front names a credential per backend (`<route>-<backend>`)
        holders = {f"{route['name']}-{name}": spec for name, spec in
                   route["backends"].items()} if "backends" in route else {route["name"]: route}
        for name, holder in holders.items():
            key = key_dir / f"{name}.key"
            key.write_text(route_key(name) + "\n")
            holder["upstream_credential"] = {"file": str(key)}
        route.update((routes or {}).get(route["name"], {}))
    return doc


def token(subject: str | None = None) -> str:
    """A JWT from the development key the reference config trusts; a fresh subject has a
    budget of its own (the reference limits are per subject and route)."""
    return mint(subject or f"mesh-{uuid.uuid4().hex[:12]}")


def rid() -> str:
    return f"mesh-{uuid.uuid4()}"


@dataclass(frozen=True)
class Call:
    """One provider request as a client sends it, and where its answer's text is."""

    provider: str
    path: str                      # after the route's prefix
    body: dict[str, Any]
    upstream_key_header: str       # where the provider's credential goes upstream
    upstream_key_format: str

    def reply_text(self, data: dict[str, Any]) -> str:
        if self.provider in ("openai", "azure"):
            return data["choices"][0]["message"]["content"]
        if self.provider == "anthropic":
            return "".join(p["text"] for p in data["content"] if p["type"] == "text")
        return "".join(p["text"] for p in data["candidates"][0]["content"]["parts"])

    def sent_text(self, body: dict[str, Any]) -> str:
        """The user text in the body that went upstream."""
        if self.provider in ("gemini", "vertex"):
            return body["contents"][0]["parts"][0]["text"]
        return body["messages"][0]["content"]


def call(provider: str, text: str = "hi", *, stream: bool = False) -> Call:
    messages = [{"role": "user", "content": text}]
    contents = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    method = "streamGenerateContent" if stream else "generateContent"
    if provider == "openai":
        return Call(provider, "/v1/chat/completions",
                    {"model": "gpt-4o-mini", "messages": messages, "stream": stream},
                    "authorization", "Bearer {}")
    if provider == "azure":
        return Call(provider, "/openai/deployments/gpt4o/chat/completions"
                              "?api-version=2024-10-21",
                    {"messages": messages, "stream": stream}, "api-key", "{}")
    if provider == "anthropic":
        return Call(provider, "/v1/messages",
                    {"model": "claude-x", "max_tokens": 50, "messages": messages,
                     "stream": stream}, "x-api-key", "{}")
    if provider == "gemini":
        return Call(provider, f"/v1beta/models/gemini-2.5-flash:{method}"
                              + ("?alt=sse" if stream else ""),
                    contents, "x-goog-api-key", "{}")
    if provider == "vertex":
        return Call(provider, "/v1/projects/p/locations/us-central1/publishers/google/models/"
                              f"gemini-2.5-flash:{method}" + ("?alt=sse" if stream else ""),
                    contents, "authorization", "Bearer {}")
    raise ValueError(provider)


def upstream(gw: Gateway) -> dict[str, Any]:
    last = gw.mock.last()
    assert last is not None
    return last


def server_access_log(gw: Gateway, request_id: str, seconds: float = 10) -> dict[str, Any]:
    """The extproc server's own access-log line for a request (its `route` is the extproc
    route that handled it)."""
    assert gw.server is not None
    deadline = time.monotonic() + seconds
    while True:
        for line in gw.server.proc.log_lines():
            if line.startswith("{") and request_id in line:
                entry = json.loads(line)
                if entry.get("request_id") == request_id:
                    return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no extproc access log line for {request_id}")
        time.sleep(0.05)


def send(url: str, c: Call, *, credential: str | None, request_id: str | None = None,
         headers: dict[str, str] | None = None, host: str | None = None,
         timeout: float = 30) -> httpx.Response:
    # Envoy at the edge (use_remote_address, as both controllers set it) replaces a client's
    # x-request-id: the marker also goes in the user agent, which the access logs print
    marker = request_id or rid()
    h = {"x-request-id": marker, "user-agent": marker, **(headers or {})}
    if credential is not None:
        h["authorization"] = f"Bearer {credential}"
    if host is not None:
        h["host"] = host
    return httpx.post(f"{url}{c.path}", json=c.body, headers=h, timeout=timeout)
