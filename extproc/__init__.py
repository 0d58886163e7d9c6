"""extproc: an Envoy external processor (ext_proc) that turns any Envoy into an LLM gateway.

Importing the package decides whether the compiled hot path runs (`native.choose`)."""

from . import native as _native

__version__ = "0.1.0"

_native.choose()
