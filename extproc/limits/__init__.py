"""Rate limits by requests and by LLM tokens (issue #5).

Modules: `gcra` (the arithmetic, sans-IO), `store` (the backend interface and the in-memory
backend), `redis_store` (the shared backend), `estimate` (token estimates and the delivered
text counter), `settings` (the config schema), `policy` (the `RateLimit` route policy).
"""
