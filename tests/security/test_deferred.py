"""Replies made later and fetched elsewhere, through the real Envoy (found by the deny
audit): the Responses API's ``background: true`` is answered at once, ``queued`` with
``usage: null``, and the model generates (and bills) its output afterwards, served by
``GET /v1/responses/{id}``. Settled on what crossed the gateway, a request was charged its
prompt estimate only: a subject with a 20 000-token budget had 20 x 16 000 output tokens
generated. And no reply guard ever sees that output.

Default deny: on a route with token or spend budgets, or whose guards read replies, such a
request is refused with a 400 in OpenAI's format that says why, and never reaches the
provider; a route with `allow_background: true` lets it through and charges it its whole
reservation. (The mock answers ``background: true`` as OpenAI documents.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extproc.auth.apikeys import hash_key
from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

KEY = "gw-deferred-key"
BUDGET = [{"name": "budget", "key": ["subject"], "tokens": [{"limit": 20000, "per": "1h"}]}]
SPEND = [{"name": "money", "key": ["subject"], "spend": [{"limit": 1, "per": "1h"}]}]
ASK = {"model": "gpt-4o-mini", "input": "write a long essay", "max_output_tokens": 16000}


def config() -> dict[str, Any]:
    auth = {"api_keys": True}
    routes = [
        {"name": "openai", "provider": "openai", "auth": auth, "rate_limits": BUDGET},
        {"name": "d-spend", "provider": "openai", "auth": auth, "rate_limits": SPEND},
        {"name": "d-guard", "provider": "openai", "guards": ["pii"]},
        {"name": "d-prompt", "provider": "openai", "guards": ["prompts"]},
        {"name": "d-allow", "provider": "openai", "auth": auth, "rate_limits": BUDGET,
         "guards": ["pii"], "allow_background": True},
    ]
    return {"server": {"max_request_body_bytes": 1048576},
            "auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "alice"}]},
            "guards": {"pii": {"detectors": ["email"], "action": "mask"},
                       "prompts": {"detectors": ["email"], "apply_to": ["request"]}},
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for name in ("d-spend", "d-guard", "d-prompt", "d-allow"):
        add_route(doc, f"/{name}/", "openai", name)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("deferred"), config(), mock=mock,
                      adjust=adjust)
    yield gateway
    gateway.close()


def ask(gw: Gateway, prefix: str, **extra: Any) -> tuple[httpx.Response, dict[str, Any] | None]:
    """The reply, and what the provider got (None when nothing reached it)."""
    httpx.get(gw.mock.url + "/reset")    # recorded as the mock's last request
    r = httpx.post(f"{gw.url}/{prefix}/v1/responses", json={**ASK, **extra}, timeout=30,
                   headers={"authorization": f"Bearer {KEY}"})
    last = gw.mock.last()
    return r, (last if last is not None and last["path"] != "/reset" else None)


@pytest.mark.parametrize("prefix", ["openai", "d-spend", "d-guard"])
def test_a_background_request_is_refused_where_it_would_go_unchecked(gw: Gateway,
                                                                     prefix: str) -> None:
    r, upstream = ask(gw, prefix, background=True)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "background: true" in error["message"], error
    assert ("budgets" if prefix != "d-guard" else "guard 'pii'") in error["message"]
    assert upstream is None


def test_the_budget_stops_what_background_requests_sidestepped(gw: Gateway) -> None:
    """The audit's reproduction: twenty background requests of 16 000 output tokens each
    against a 20 000-token budget. None reaches the provider, and none costs budget: the
    same request in the foreground is then admitted with the whole budget to reserve from
    (16 000 output tokens and the prompt's 5)."""
    for _ in range(20):
        r, upstream = ask(gw, "openai", background=True)
        assert r.status_code == 400 and upstream is None
    r, upstream = ask(gw, "openai")
    assert r.status_code == 200 and upstream is not None
    assert r.headers["x-ratelimit-remaining-tokens"] == str(20000 - 16005)


def test_prompt_guards_alone_let_a_background_request_through(gw: Gateway) -> None:
    r, upstream = ask(gw, "d-prompt", background=True)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert upstream is not None


def test_an_allowed_background_request_is_charged_its_whole_reservation(gw: Gateway) -> None:
    r, upstream = ask(gw, "d-allow", background=True, max_output_tokens=15000)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.json()["usage"] is None
    assert upstream is not None and '"background": true' in upstream["body"].replace(
        '"background":true', '"background": true')
    # the whole reservation (15 000 output tokens and the prompt) stays charged: a second
    # one does not fit in what is left of the 20 000-token budget
    r, upstream = ask(gw, "d-allow", background=True, max_output_tokens=15000)
    assert r.status_code == 429 and upstream is None
