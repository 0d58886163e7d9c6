"""The unified OpenAI-compatible front (`provider: openai-compatible` routes): one OpenAI
Chat Completions API for every model, served by the backend the model maps to.

`models` maps front model names to backends, `settings` reads a route's config, `policy`
holds the two route policies that resolve, translate and answer (`extproc.translate` does the
translating itself).
"""
