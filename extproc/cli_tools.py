"""The `extproc` commands that serve nothing: `token` (mint a JWT, by default with the
development key), `api-key` (a new gateway API key and the hash a config keeps) and `spend`
(the spend budgets' state, from a server's admin port or from Redis). `extproc.cli` parses
their arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def token(args: argparse.Namespace) -> int:
    from .auth import devtoken as d
    try:
        ttl = d.parse_ttl(args.ttl)
    except ValueError as exc:
        raise SystemExit(f"--ttl: {exc}") from None
    claims = {}
    for pair in args.claim:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--claim expects NAME=VALUE, got {pair!r}")
        claims[name] = value
    key, algorithm = None, "RS256"
    if args.key:
        try:
            key = Path(args.key).read_bytes()
            algorithm = d.algorithm_for(key)
        except OSError as exc:
            raise SystemExit(f"--key: cannot read {args.key}: {exc.strerror}") from None
        except ValueError as exc:
            raise SystemExit(f"--key {args.key}: {exc}") from None
    print(d.mint(args.sub, scopes=args.scope, ttl_s=ttl, claims=claims, key_pem=key,
                 issuer=args.issuer or d.DEV_ISSUER, audience=args.audience or d.DEV_AUDIENCE,
                 kid=args.kid if args.key else d.DEV_KID, algorithm=algorithm))
    if not args.key:
        print("(signed by the development key: trusted by the local stack only)",
              file=sys.stderr)
    return 0


def api_key(args: argparse.Namespace) -> int:
    from .auth.apikeys import hash_key, new_key
    if args.key:
        print(hash_key(args.key))
        return 0
    key, digest = new_key()
    print(f"key:    {key}\nsha256: {digest}")
    print("(give the key to the client; put only the sha256 in auth.api_keys)",
          file=sys.stderr)
    return 0


def spend(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from .limits.budgets import table
    if args.admin:
        import logging

        import httpx
        logging.getLogger("httpx").setLevel(logging.WARNING)   # no request line in the output
        from .admin import AdminTokenError, is_loopback, read_token, token_path
        url = args.admin.rstrip("/") + "/spend"
        path = token_path(args.admin_token_file)
        try:
            token = read_token(path) if path else None
        except AdminTokenError as exc:
            print(f"extproc spend: {exc}", file=sys.stderr)
            return 2
        headers = {"authorization": f"Bearer {token}"} if token else {}
        host = httpx.URL(url).host
        try:
            # a loopback address is this host's: never through a proxy (which would see
            # the token and every budget's subject)
            r = httpx.get(url, headers=headers, timeout=10,
                          trust_env=not (host == "localhost" or is_loopback(host)))
        except httpx.HTTPError as exc:
            print(f"extproc spend: {url}: {exc}", file=sys.stderr)
            return 1
        if r.status_code != 200:
            print(f"extproc spend: {url}: {r.status_code} {r.reason_phrase}: "
                  f"{_said(r)}", file=sys.stderr)
            return 1
        rows = r.json()["budgets"]
        configured = r.json().get("configured")
    else:
        configured = None
        url = args.redis
        if not url:
            import yaml

            from .limits.settings import parse_limits
            from .schema import Checker
            # the limits section alone (EXTPROC_LIMITS_REDIS_URL applies, as in the server)
            try:
                data = yaml.safe_load(Path(args.config).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                print(f"extproc spend: {args.config}: {exc}", file=sys.stderr)
                return 2
            limits = parse_limits(Checker(), data.get("limits") if isinstance(data, dict)
                                  else None)
            if limits.backend != "redis":
                print(f"extproc spend: {args.config} keeps budgets in each server's memory: "
                      "read them with --admin http://HOST:ADMIN_PORT", file=sys.stderr)
                return 2
            url = limits.redis_url
        from .limits.redis_store import RedisStore
        from .limits.store import StoreUnavailable

        try:
            store = RedisStore(url, timeout_s=5.0)
        except ValueError as exc:   # a URL redis cannot read (a traceback before: review)
            print(f"extproc spend: {exc}", file=sys.stderr)
            return 2

        async def read() -> list[dict]:
            try:
                return await store.spend_budgets()
            finally:
                await store.close()
        try:
            rows = asyncio.run(read())
        except StoreUnavailable as exc:
            print(f"extproc spend: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(table(rows, configured))
    return 0


def _said(r: httpx.Response) -> str:
    """What a server said in refusing: its JSON `error`, else its text (cut short)."""
    try:
        error = r.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return error if isinstance(error, str) and error else r.text.strip()[:500]
