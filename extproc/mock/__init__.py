"""A deterministic mock LLM provider (OpenAI, Azure OpenAI, Anthropic, Gemini, Vertex AI).

Run it with ``extproc mock-llm`` or ``python -m extproc.mock``; see :mod:`extproc.mock.server`.
"""
