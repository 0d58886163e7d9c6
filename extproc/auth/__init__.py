"""Authentication at the gateway: JWTs and API keys in, provider credentials out.

Modules: `keys` (JWK sets), `jwks` (where keys come from: file, inline, remote with cache),
`verify` (one JWT provider's checks), `apikeys` (hashed API keys), `credentials` (the
provider's own key, injected upstream), `querycreds` (credentials in the URL query, removed
before the request goes upstream), `settings` (the config schema), `policy` (the
`Authenticate` route policy), `devtoken` (tokens for the local stack only).
"""
