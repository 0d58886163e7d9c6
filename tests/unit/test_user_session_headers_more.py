"""Found by the review of a fix (now fixed): App Service's token store injects, for X
(Twitter, OAuth 1.0a),
`X-MS-TOKEN-TWITTER-ACCESS-TOKEN` and `X-MS-TOKEN-TWITTER-ACCESS-TOKEN-SECRET`
(learn.microsoft.com/azure/app-service/configure-authentication-oauth-tokens): the secret
half of the user's X credential is not in the generated list (which names an
`-access-token`, `-id-token` and a `-refresh-token` X never has). A custom OpenID Connect
provider (`x-ms-token-<the name the operator gave it>-*`) is not either."""

from __future__ import annotations

import pytest

from extproc.auth.credentials import Secret
from tests.unit.test_auth_policy import API_KEY, STORE, policy, run, upstream  # noqa: F401


@pytest.mark.parametrize("name", ["x-ms-token-twitter-access-token-secret",
                                  "x-ms-token-okta-access-token"])
async def test_the_token_stores_other_headers_are_removed(
        name: str, upstream: Secret) -> None:  # noqa: F811
    p = policy("openai", upstream, api_keys=STORE)
    ex = await run(p, {"authorization": f"Bearer {API_KEY}", name: "user-secret"})
    assert ex.state["identity"].subject == "key:ci-bot"
    assert name in ex._req_remove, f"{name} goes to the provider"
