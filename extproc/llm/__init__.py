"""The built-in LLM traffic policy: usage from every stream, Gemini JSON-array streams as SSE."""

from .policy import LLMTraffic, StreamsConfig

__all__ = ["LLMTraffic", "StreamsConfig"]
