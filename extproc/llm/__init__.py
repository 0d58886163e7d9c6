"""The built-in LLM traffic policy (`policy.LLMTraffic`): usage from every stream, Gemini
JSON-array streams as SSE. The package re-exports nothing, so its modules import each other
without passing through it."""
