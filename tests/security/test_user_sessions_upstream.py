"""Found by review (auth): client credentials the strip missed, now removed
(`USER_SESSION_HEADERS`) wherever the gateway authenticates or injects its credential.

The security model says "the client's credential never reaches the provider", and the
gateway removes a fixed list of credential headers (`CLIENT_CREDENTIAL_HEADERS`: authorization,
x-api-key, api-key, x-goog-api-key, ocp-apim-subscription-key, and their `_` spellings).
Every other header goes to the provider as it came. A browser client sends its cookies for
the gateway's origin (fetch's default `credentials: "same-origin"`), and the authenticating
proxies commonly put in front of a gateway attach the user's own identity-provider
credentials to every request they pass on: oauth2-proxy (the `_oauth2_proxy` session cookie;
`X-Forwarded-Access-Token` / `X-Auth-Request-Access-Token` with --pass-access-token or
--set-xauthrequest), an AWS ALB with OIDC authentication (`x-amzn-oidc-accesstoken`,
`x-amzn-oidc-data`), Google IAP (`x-goog-iap-jwt-assertion`), Azure App Service
authentication (`x-ms-token-aad-access-token`, `x-ms-token-aad-id-token`). All of them reach
OpenAI, Anthropic or Google beside the injected provider key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway, Mock
from tests.security.test_identity import API_KEY, CHAT, GEMINI, GEMINI_PATH, _adjust, _config

pytestmark = pytest.mark.envoy

SECRET = "user-idp-credential-c0ffee"
CREDENTIALS = {
    "cookie": f"_oauth2_proxy={SECRET}-cookie; session=x",
    "proxy-authorization": f"Bearer {SECRET}-proxy",
    "x-forwarded-access-token": f"{SECRET}-oauth2-proxy",
    "x-auth-request-access-token": f"{SECRET}-xauthrequest",
    "x-amzn-oidc-accesstoken": f"{SECRET}-alb",
    "x-amzn-oidc-data": f"eyJ.{SECRET}-alb-data.sig",
    "x-goog-iap-jwt-assertion": f"eyJ.{SECRET}-iap.sig",
    "x-ms-token-aad-access-token": f"{SECRET}-easyauth",
    "x-ms-token-aad-id-token": f"{SECRET}-easyauth-id",
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("review2-cookies")
    config = _config(tmp)
    for route in config["routes"]:
        route.pop("rate_limits", None)      # one request per hour there: not what is tested
    gateway = Gateway(tmp, config, mock=mock, adjust=_adjust)
    yield gateway
    gateway.close()


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_a_users_own_credentials_never_reach_the_provider(gw: Gateway, name: str) -> None:
    r = httpx.post(f"{gw.url}/id-openai/v1/chat/completions", json=CHAT, timeout=30,
                   headers={"authorization": f"Bearer {API_KEY}", name: CREDENTIALS[name]})
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last["headers"]["authorization"] == "Bearer provider-key-openai"
    assert SECRET not in json.dumps(last), f"{name} reached the provider"


def test_a_users_cookies_never_reach_google(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/id-gemini{GEMINI_PATH}?alt=sse", json=GEMINI, timeout=30,
                   headers={"x-goog-api-key": API_KEY, "cookie": CREDENTIALS["cookie"]})
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last["headers"]["x-goog-api-key"] == "provider-key-gemini"
    assert SECRET not in json.dumps(last), "the cookie reached the provider"


# --- the unified front: the backend gets them too ---------------------------------------------

@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    from tests.integration.test_front import front_config
    base = tmp_path_factory.mktemp("review2-front")
    g = Gateway(base, front_config(base), mock=mock)
    yield g
    g.close()


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"])
def test_the_unified_front_sends_no_user_credential_to_a_backend(front: Gateway,
                                                                  model: str) -> None:
    from tests.integration.test_front import KEY
    r = httpx.post(f"{front.url}/v1/chat/completions", timeout=30,
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                   headers={"authorization": f"Bearer {KEY}", "cookie": CREDENTIALS["cookie"],
                            "x-amzn-oidc-accesstoken": CREDENTIALS["x-amzn-oidc-accesstoken"]})
    assert r.status_code == 200, r.text
    assert SECRET not in json.dumps(front.mock.last()), "a user credential reached the backend"
