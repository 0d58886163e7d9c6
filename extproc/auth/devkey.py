"""The development signing key, as a key to recognise: its public numbers (the private half
ships with extproc, `extproc token` signs with it, so anyone can), whether this process was
told to trust it (`--allow-dev-credentials` or EXTPROC_ALLOW_DEV_CREDENTIALS: `extproc serve`
sets the variable for the flag, so worker processes and later fetches agree), and a fetched
key set without it. `devcreds` finds it in a config at start; a JWKS fetched from a URL
(`jwks.RemoteJWKS`) is known only when fetched, and loses the key then unless allowed: a URL
that serves the shipped JWKS must not open the gateway where a file that holds it may not.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from .keys import Key, KeySet

#: the environment variable that allows the development credentials (the flag's twin)
ALLOW_ENV = "EXTPROC_ALLOW_DEV_CREDENTIALS"
ALLOW_FLAG = "--allow-dev-credentials"
_TRUE = ("1", "true", "yes", "on")

#: the public half of extproc/dev/DEV-ONLY-jwt-signing-key.pem (as in config/dev-jwks.json)
DEV_RSA_N = int.from_bytes(base64.urlsafe_b64decode(
    "r_7tTqH13iBmbpQnSHl9d4UaruPHaxhdN3O9-PnoksHQYwAC6SPkmxY9bxerL6B-dPztrPoBptke4l4Asssf"
    "Nj7zTZ6dCEqeTmGMLZ2XjHxmvkMSIrUXAO5dnAmh0B4odYS6zjOMegZquw1JyoT0uhdm2211HB4tCdTaTJDD"
    "xVDQpwvbH-zp1osadfssunCeXs9c0Wa09YpwTa315jBMHLk4rIGY3e90XvFrFHN7xqpHmhWWFDvKDJB-Wquf"
    "xqy_mAEKS5aFJF42mvGX2bRgjCHwDu1cwW44Eja77DBmv2DbsrBIntZ70yx_0AHmjetoEjESGOLPe1Rk2WcS"
    "Tvf6hw=="), "big")
DEV_RSA_E = 65537
#: why a fetched JWKS lost the development key (its `skipped`, logged)
DROPPED = ("the development signing key (its private half ships with extproc: anyone can "
           f"sign with it), not trusted unless {ALLOW_FLAG} or {ALLOW_ENV}=1")


def allowed(flag: bool, environ: Mapping[str, str]) -> bool:
    """The operator's word that this is a development setup: `--allow-dev-credentials`, or
    EXTPROC_ALLOW_DEV_CREDENTIALS set to 1, true, yes or on."""
    return flag or environ.get(ALLOW_ENV, "").strip().lower() in _TRUE


def is_dev_key(key: Key) -> bool:
    """Is `key` the development signing key (by its RSA numbers, whatever its kid or alg)?"""
    numbers = getattr(key.key, "public_numbers", None)
    if key.kty != "RSA" or numbers is None:
        return False
    n = numbers()
    return bool(n.n == DEV_RSA_N and n.e == DEV_RSA_E)


def without_dev_key(keys: KeySet) -> KeySet:
    """`keys` as this process may trust them: without the development key unless allowed
    (the same set when it holds none, or when allowed)."""
    if allowed(False, os.environ) or not any(is_dev_key(k) for k in keys.keys):
        return keys
    return KeySet([k for k in keys.keys if not is_dev_key(k)], [*keys.skipped, DROPPED])
