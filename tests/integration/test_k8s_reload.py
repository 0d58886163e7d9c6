"""Config and Secret updates delivered the way the kubelet delivers them, through the real
Envoy and a real server process: the config (a ConfigMap volume) and a provider key (a
Secret volume) are swapped exactly as the kubelet does (tests/kubelet.py). A server with
`--watch-config` serves the new config to new requests, refuses an invalid one and keeps
serving, and sends the rotated key with the next requests; with `--workers 2` every worker
reloads; without `--watch-config` the key rotates all the same."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Gateway, Mock, Server, add_route
from tests.kubelet import KubeletVolume

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
OLD = 946684800.0    # an mtime older than the file it replaces


def config(placeholder: str, key_file: Path) -> str:
    return yaml.safe_dump({
        "server": {"max_request_body_bytes": 1048576, "grace_period_s": 5},
        "guards": {"pii": {"detectors": ["email"], "placeholders": {"email": placeholder}}},
        "routes": [{"name": "k8s", "provider": "openai", "guards": ["pii"], "auth": "none",
                    "upstream_credential": {"file": str(key_file)}}]})


class Deployment:
    """A ConfigMap volume and a Secret volume as the kubelet lays them out, a server reading
    them, and a gateway in front."""

    def __init__(self, log_dir: Path, mock: Mock, extra: list[str]) -> None:
        self.secret = KubeletVolume(log_dir / "secret", {"openai": "sk-one\n"})
        self.key_file = self.secret.path("openai")
        self.configmap = KubeletVolume(log_dir / "configmap", {
            "gateway.yaml": config("<EMAIL>", self.key_file)})
        self.gw = Gateway(log_dir, {"routes": [{"name": "k8s", "provider": "openai"}]},
                          mock=mock, start_server=False,
                          adjust=lambda doc: add_route(doc, "/k8s/", "openai", "k8s"))
        self.server = Server(self.configmap.path("gateway.yaml"), log_dir,
                             port=self.gw.server_port, extra=extra)
        self.gw.server = self.server

    def chat(self, content: str = "hi") -> httpx.Response:
        return httpx.post(f"{self.gw.url}/k8s/v1/chat/completions", timeout=30,
                          headers={"x-mock-reply": "echo"},
                          json={"model": "gpt-4o-mini",
                                "messages": [{"role": "user", "content": content}]})

    def masked_as(self) -> str:
        r = self.chat(f"mail {EMAIL}")
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["message"]["content"])

    def key_sent(self) -> str:
        assert self.chat().status_code == 200
        last = self.gw.mock.last()
        assert last is not None
        return str(last["headers"]["authorization"])

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = f"http://127.0.0.1:{self.server.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def reloads(self, result: str, worker: str | None = None) -> float:
        return sum(v for (n, labels), v in self.metrics().items()
                   if n == "extproc_config_reloads_total" and ("result", result) in labels
                   and (worker is None or ("worker", worker) in labels))

    def close(self) -> None:
        self.gw.close()


def eventually(check: Callable[[], Any], seconds: float = 10) -> Any:
    """The first truthy value of `check()`, polled until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Deployment]:
    d = Deployment(tmp_path_factory.mktemp("k8s-reload"), mock, ["--watch-config"])
    yield d
    d.close()


def test_a_configmap_swap_is_served_and_an_invalid_one_refused(k8s: Deployment) -> None:
    assert k8s.masked_as() == "mail <EMAIL>"
    ok, refused = k8s.reloads("ok"), k8s.reloads("refused")
    # same size, older mtime: only the swap of `..data` and the file's identity say so
    k8s.configmap.update({"gateway.yaml": config("<MAIL!>", k8s.key_file)}, mtime=OLD)
    eventually(lambda: k8s.reloads("ok") == ok + 1)
    assert k8s.masked_as() == "mail <MAIL!>"
    k8s.configmap.update({"gateway.yaml": "routes: [{name: k8s, provider: gemni}]\n"})
    eventually(lambda: k8s.reloads("refused") == refused + 1)
    assert k8s.masked_as() == "mail <MAIL!>"                   # the running config stays
    assert "unknown provider 'gemni'" in k8s.server.proc.log()
    time.sleep(2.5)                                             # refused once, not per poll
    assert k8s.reloads("refused") == refused + 1
    k8s.configmap.update({"gateway.yaml": config("<EMAIL>", k8s.key_file)})
    eventually(lambda: k8s.reloads("ok") == ok + 2)
    assert k8s.masked_as() == "mail <EMAIL>"


def test_a_rotated_provider_key_is_sent_with_the_next_requests(k8s: Deployment) -> None:
    assert k8s.key_sent() == "Bearer sk-one"
    k8s.secret.update({"openai": "sk-two\n"}, mtime=OLD)        # same size, older mtime
    eventually(lambda: k8s.key_sent() == "Bearer sk-two", 5)
    k8s.secret.update({"openai": "sk-333\n"}, mtime=OLD)        # the very same mtime again
    eventually(lambda: k8s.key_sent() == "Bearer sk-333", 5)
    assert "sk-" not in k8s.server.proc.log()                   # keys are never logged


def test_without_watch_config_the_key_still_rotates(tmp_path: Path, mock: Mock) -> None:
    d = Deployment(tmp_path, mock, [])
    try:
        assert d.key_sent() == "Bearer sk-one"
        d.secret.update({"openai": "sk-two\n"}, mtime=OLD)
        eventually(lambda: d.key_sent() == "Bearer sk-two", 5)
        d.secret.update({"openai": "sk-333\n"}, mtime=OLD)       # the very same mtime again
        eventually(lambda: d.key_sent() == "Bearer sk-333", 5)
        d.configmap.update({"gateway.yaml": config("<MAIL!>", d.key_file)})
        time.sleep(2.5)
        assert d.masked_as() == "mail <EMAIL>"                  # no watch: no reload
        assert d.reloads("ok") == 0
    finally:
        d.close()


def test_every_worker_reloads(tmp_path: Path, mock: Mock) -> None:
    d = Deployment(tmp_path, mock, ["--watch-config", "--workers", "2"])
    try:
        # two workers starting at once on a busy 2-core machine (imports, config) can
        # take longer than one: the wait for them is a start-up wait, as long as the harness
        # gives any server to start (30 s); what the test checks comes after. (One of its
        # failures was a worker whose admin port, then the admin port + 1 + i, was taken:
        # workers now bind one the kernel picks.)
        eventually(lambda: all(("extproc_worker_up", (("worker", w),)) in d.metrics()
                               and d.metrics()[("extproc_worker_up", (("worker", w),))] == 1
                               for w in ("0", "1")), seconds=30)
        assert d.masked_as() == "mail <EMAIL>"
        d.configmap.update({"gateway.yaml": config("<MAIL!>", d.key_file)}, mtime=OLD)
        for worker in ("0", "1"):
            eventually(lambda w=worker: d.reloads("ok", w) == 1)   # type: ignore[misc]
        assert d.masked_as() == "mail <MAIL!>"
        d.configmap.update({"gateway.yaml": "routes: 3\n"})
        for worker in ("0", "1"):
            eventually(lambda w=worker: d.reloads("refused", w) == 1)   # type: ignore[misc]
        assert d.masked_as() == "mail <MAIL!>"
    finally:
        d.close()
