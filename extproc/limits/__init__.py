"""Rate limits by requests, by LLM tokens (issue #5) and by money (spend budgets, #11).

Modules: `gcra` (the arithmetic, sans-IO), `store` (the backend interface and the in-memory
backend), `redis_store` (the shared backend), `estimate` (token estimates and the delivered
text counter), `spending` (spend amounts, reservations, charges and output allowances),
`keys` (limit keys from descriptors), `headers` (x-ratelimit-* headers and the decision
summary), `budgets` (spend budgets read back, for `GET /spend` and `extproc spend`),
`settings` (the config schema), `policy` (the `RateLimit` route policy).
"""
