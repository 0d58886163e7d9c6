"""Found by review (auth), unit form: the strip was a deny-list of five credential header
names, so a user's own credentials in any other header (a cookie, Proxy-Authorization, the
IdP tokens an authenticating proxy attaches) were left on the request that goes upstream
(`USER_SESSION_HEADERS` now goes too)."""

from __future__ import annotations

import pytest

from extproc.auth.credentials import Secret
from tests.unit.test_auth_policy import API_KEY, STORE, policy, run, upstream  # noqa: F401

USER_CREDENTIALS = ("cookie", "proxy-authorization", "x-forwarded-access-token",
                    "x-amzn-oidc-accesstoken", "x-goog-iap-jwt-assertion",
                    "x-ms-token-aad-access-token",
                    # (found by the review of the fix: the same proxies' other tokens)
                    "x-ms-token-google-access-token", "x-ms-token-facebook-id-token",
                    "x-ms-token-twitter-refresh-token", "cf-access-jwt-assertion",
                    "x-pomerium-jwt-assertion")


@pytest.mark.parametrize("name", USER_CREDENTIALS)
async def test_a_users_own_credential_header_is_removed(
        name: str, upstream: Secret) -> None:  # noqa: F811 (the fixture imported above)
    p = policy("openai", upstream, api_keys=STORE)
    ex = await run(p, {"authorization": f"Bearer {API_KEY}", name: "user-secret"})
    assert ex.state["identity"].subject == "key:ci-bot"
    assert name in ex._req_remove, f"{name} goes to the provider"
