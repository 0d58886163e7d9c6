"""extproc: an Envoy external processor that turns any Envoy into an LLM gateway."""

__version__ = "0.1.0"
