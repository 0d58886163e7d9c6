"""The `extproc` command: serve, check, up, mock-llm, guard-webhook, render-envoy, token,
api-key, spend."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import cli_tools
from .workers import RESERVED_CORES_ENV, resolve_workers

if TYPE_CHECKING:
    from .config import Config
    from .grpc_tls import TlsFiles

DEFAULT_CONFIG = os.environ.get("EXTPROC_CONFIG", "config/gateway.yaml")


def _workers_arg(value: str) -> str:
    try:
        resolve_workers(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _port_arg(value: str) -> int:
    """A TCP port, 0 (any free one) to 65535, in ASCII digits (gRPC would bind 99999 as
    34463 without a word, and cannot read fullwidth digits)."""
    if not (value.isascii() and value.isdigit() and int(value) <= 65535):
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return int(value)


def _listen_arg(value: str) -> str:
    """HOST:PORT (an IPv6 host in brackets; port 0: any free one), or a gRPC unix address
    (`unix:PATH`, `unix-abstract:NAME`), as `--unix` gives one."""
    if value.startswith(("unix:", "unix-abstract:")):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or (":" in host and not (host.startswith("[")
                                                    and host.endswith("]"))):
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (an IPv6 host in brackets: [::1]:50051), got {value!r}")
    try:
        _port_arg(port)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535 in {value!r}") from None
    return value


def _allow_dev_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-dev-credentials", action="store_true",
                   help="this is a local development setup: accept a config that trusts the "
                   "development signing key or API key published with extproc (refused "
                   "otherwise: anyone could use the gateway); env "
                   "EXTPROC_ALLOW_DEV_CREDENTIALS=1")


def _admin_token_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--admin-token-file", metavar="PATH",
                   help=f"a file holding the admin token (16+ characters): {what}; env "
                   "EXTPROC_ADMIN_TOKEN_FILE")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (`mock-llm` and `guard-webhook` parse their own options)."""
    parser = argparse.ArgumentParser(prog="extproc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the ext_proc gRPC server")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"YAML config file (default {DEFAULT_CONFIG}, from the current directory)")
    p.add_argument("--listen", action="append", metavar="HOST:PORT", type=_listen_arg,
                   help="TCP address to serve on (repeatable; default 127.0.0.1:50051)")
    p.add_argument("--unix", action="append", metavar="PATH", help="unix socket to serve on")
    p.add_argument("--workers", type=_workers_arg, default="1", metavar="N|auto",
                   help="processes sharing the TCP port through SO_REUSEPORT; auto: one "
                   f"per usable core minus ${RESERVED_CORES_ENV} (default 1, for Envoy)")
    p.add_argument("--admin-port", type=_port_arg,
                   help="HTTP port for /metrics, /stats, /healthz and /spend (of all the "
                   "workers); without it, no admin endpoint")
    p.add_argument("--admin-host", default="127.0.0.1",
                   help="address the admin port binds (default 127.0.0.1; 0.0.0.0 for a "
                   "scraper on another host)")
    _admin_token_arg(p, "ask for this token (`Authorization: Bearer`) on /spend, from "
                     "every peer; without it /spend answers loopback peers only")
    p.add_argument("--watch-config", action="store_true",
                   help="reload the config when its file changes (SIGHUP always reloads)")
    p.add_argument("--tls-cert", metavar="PEM",
                   help="serve gRPC over TLS with this certificate chain (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--tls-client-ca", metavar="PEM",
                   help="refuse callers whose client certificate does not chain to this CA "
                   "(mutual TLS: what keeps others from reading the injected provider keys)")
    p.add_argument("--log-format", choices=("json", "text"),
                   help="log lines as JSON objects (default) or text; env EXTPROC_LOG_FORMAT")
    _allow_dev_arg(p)

    p = sub.add_parser("check", help="validate config files; exit 1 naming every error")
    p.add_argument("files", nargs="*", default=[DEFAULT_CONFIG],
                   help=f"config files (default {DEFAULT_CONFIG})")
    _allow_dev_arg(p)

    sub.add_parser("mock-llm", help="run the mock LLM provider (--host, --port)")
    sub.add_parser("guard-webhook", help="run the sample guard webhook (--host, --port, "
                   "--deny, --mask)")

    p = sub.add_parser("render-envoy", help="print the Envoy config rendered for a place")
    p.add_argument("--place", default="local",
                   choices=("local", "compose", "test", "kubernetes-sidecar"),
                   help="where the Envoy runs: its addresses and the processor's (default "
                   "local)")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help="the server's config, for its limits and routes (default "
                   f"{DEFAULT_CONFIG})")
    p.add_argument("--upstream", action="append", default=[], metavar="PROVIDER=URL",
                   help="e.g. openai=https://api.openai.com (default: the mock provider)")
    p.add_argument("--fail-open", action="store_true",
                   help="let requests through when the processor is unreachable or slow "
                   "(refused when a route authenticates, injects a key, guards or limits: "
                   "those would then be skipped)")
    p.add_argument("--fail-open-skipping-policies", action="store_true",
                   help="--fail-open even so: whoever can make the processor slow or "
                   "unreachable gets past every policy, with the injected provider key")
    p.add_argument("--extproc-tls", nargs=3, metavar=("CERT", "KEY", "CA"),
                   help="reach the processor over mutual TLS: Envoy's client certificate "
                   "and key, and the CA the server's certificate chains to (the server runs "
                   "with --tls-cert/--tls-key/--tls-client-ca)")
    p.add_argument("--extproc-tls-name", metavar="NAME",
                   help="the name the server's certificate carries (default: the "
                   "processor's host for the place)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")

    p = sub.add_parser("up", help="run Envoy, the server and the mock provider together")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"the server's YAML config (default {DEFAULT_CONFIG})")
    p.add_argument("--port", type=_port_arg, default=10000,
                   help="Envoy's listener port, where clients connect (default 10000)")
    p.add_argument("--upstream", action="append", default=[], metavar="PROVIDER=URL",
                   help="send PROVIDER's route to URL instead of the mock, e.g. "
                   "openai=https://api.openai.com (repeatable)")
    p.add_argument("--mock-port", type=_port_arg, default=8081,
                   help="the mock provider's port (default 8081)")
    p.add_argument("--extproc-port", type=_port_arg, default=50051,
                   help="the server's gRPC port, which Envoy calls (default 50051)")
    p.add_argument("--admin-port", type=_port_arg, default=9464,
                   help="the server's admin port: /metrics, /stats, /spend (default 9464)")
    p.add_argument("--envoy-admin-port", type=_port_arg, default=9901,
                   help="Envoy's admin port (default 9901)")

    p = sub.add_parser("token", help="mint a JWT for the local stack (development key)")
    p.add_argument("--sub", required=True, help="the subject (who the token is for)")
    p.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    p.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    p.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE",
                   help="an extra string claim (repeatable)")
    p.add_argument("--issuer", help="default: the local stack's development issuer")
    p.add_argument("--audience", help="default: llm-gateway")
    p.add_argument("--key", help="sign with this PEM private key instead of the dev key")
    p.add_argument("--kid", help="key id for --key")

    p = sub.add_parser("api-key", help="make a new API key and print its SHA-256 for the "
                       "config (or hash a given key)")
    p.add_argument("key", nargs="?", help="hash this key instead of making a new one")

    p = sub.add_parser("spend", help="print each spend budget key's spend and remaining "
                       "amount in its current window (from Redis or a server's admin port)")
    p.add_argument("--admin", metavar="URL",
                   help="a running server's admin address, e.g. http://127.0.0.1:9464 "
                   "(its GET /spend; the only way to read in-memory budgets)")
    p.add_argument("--redis", metavar="URL", help="read Redis at this URL (default: the "
                   "config's limits.redis_url when its backend is redis)")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"the config whose limits.redis_url to read (default {DEFAULT_CONFIG})")
    _admin_token_arg(p, "sent to --admin as `Authorization: Bearer` (a server given one "
                     "asks for it)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mock-llm"]:  # its own parser owns every option after it
        from .logs import setup_logging
        from .mock.server import main as mock_main
        setup_logging()
        return mock_main(argv[1:])
    if argv[:1] == ["guard-webhook"]:  # likewise
        from .guards.sample_webhook import main as webhook_main
        from .logs import setup_logging
        setup_logging()
        return webhook_main(argv[1:])
    args = build_parser().parse_args(argv)
    from .logs import setup_logging
    if getattr(args, "log_format", None):
        os.environ["EXTPROC_LOG_FORMAT"] = args.log_format   # workers inherit it
    setup_logging()
    from .schema import ConfigError
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except ConfigError as exc:   # a config no command can use: say why, not a traceback
        where = getattr(args, "config", None) or "config"   # (the file, as `check` says it)
        for line in exc.errors:
            line = line.removeprefix("<file>: ")
            print(f"extproc {args.command}: {where}: {line}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from .auth import devcreds, devkey
    from .server import ServeOptions, load_tracked, run
    allow_dev = devkey.allowed(args.allow_dev_credentials, os.environ)
    if allow_dev:
        # the flag as the variable too: the workers, and the keys a JWKS URL serves later
        # (`devkey.without_dev_key`), read the same answer
        os.environ[devkey.ALLOW_ENV] = "1"
    # loaded once, here: a ConfigError is said by main(); a single process serves this one
    config, read = load_tracked(args.config)
    found = devcreds.dev_credentials(config)
    if found and not allow_dev:
        print(f"extproc serve: refusing to start: {devcreds.refusal(args.config, found)}",
              file=sys.stderr)
        return 2
    if found:
        import logging
        logging.getLogger("extproc.auth").warning("%s", devcreds.warning(found))
    from .admin import AdminTokenError, read_token, token_path
    path = token_path(args.admin_token_file)
    try:
        admin_token = read_token(path) if path else None   # once: a reload keeps it
    except AdminTokenError as exc:
        print(f"extproc serve: {exc}", file=sys.stderr)
        return 2
    addresses = tuple(args.listen or ()) + tuple(f"unix:{p}" for p in args.unix or ())
    opts = ServeOptions(config_path=args.config, addresses=addresses or ("127.0.0.1:50051",),
                        admin_port=args.admin_port, admin_host=args.admin_host,
                        workers=resolve_workers(args.workers, unix=bool(args.unix)),
                        watch_config=args.watch_config, tls=_tls_files(args),
                        allow_dev_credentials=allow_dev, admin_token=admin_token)
    opts.loaded = (config, read)   # checked: served by a single process as it is
    from .grpc_tls import TlsError, load
    try:
        if opts.tls is not None:
            load(opts.tls)   # now, with a clear error, rather than in each worker
    except TlsError as exc:
        print(f"extproc serve: {exc}", file=sys.stderr)
        return 2
    from .server import warn_open, warn_per_worker_limits
    warn_open(opts)
    warn_per_worker_limits(config, opts.workers)
    if opts.workers > 1:
        from .workers import run_workers
        return run_workers(opts)
    return run(opts)


def _tls_files(args: argparse.Namespace) -> TlsFiles | None:
    from .grpc_tls import TlsFiles
    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise SystemExit("extproc serve: --tls-cert and --tls-key go together "
                         "(--tls-client-ca needs them too)")
    return TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca)


def _check(args: argparse.Namespace) -> int:
    """Each file as `serve` would take it: an error where `serve` would refuse to start."""
    from .auth import devcreds, devkey
    from .loader import load
    from .schema import ConfigError
    allow_dev = devkey.allowed(args.allow_dev_credentials, os.environ)
    status = 0
    for name in args.files:
        try:
            cfg = load(name)
        except ConfigError as exc:
            status = 1
            for line in exc.errors:
                print(f"{name}: {line}", file=sys.stderr)
            continue
        found = devcreds.dev_credentials(cfg)
        if found and not allow_dev:
            status = 1
            for line in devcreds.refusal(name, found).splitlines():
                print(f"{name}: {line}", file=sys.stderr)
            continue
        print(f"{name}: ok ({len(cfg.routes)} routes: {', '.join(cfg.routes)})")
        if found:
            print(f"  warning: {devcreds.warning(found)}")
        for line in identity_lines(cfg):
            print(f"  {line}")
    return status


def identity_lines(cfg: Config) -> list[str]:
    """How each route is recognised (docs/configuration.md, "Route identity"), for `check`."""
    lines = []
    for route in cfg.routes.values():
        ways = [f"x-extproc-route: {route.name}"]
        ways += [f"xds.route_name ~ {p}" for p in route.envoy_route_names]
        ways.append(f"route metadata: {route.name}")
        if route.match is not None:
            m = route.match
            parts = [f"path_prefix {m.path_prefix}"] if m.path_prefix else []
            parts += [f"host {m.host}"] if m.host else []
            parts += [f"{k}: {v}" for k, v in m.headers]
            ways.append("match " + ", ".join(parts))
        provider = route.provider if not route.variants else \
            f"auto: {', '.join(route.variants)}"
        if route.front is not None:
            models = route.front.models
            provider = (f"openai-compatible: {len(models.entries)} models -> "
                        f"{', '.join(models.backends)}")
        lines.append(f"{route.name} ({provider}) <- " + " | ".join(ways))
    if cfg.route_owners:
        owners = ", ".join(f"{o.kind} {o.namespace}/{o.name or '*'}" for o in cfg.route_owners)
        lines.append(f"only Envoy routes of: {owners} (routing.route_owners)")
    if cfg.default_route:
        lines.append(f"anything else -> {cfg.default_route} (default_route)")
    else:
        lines.append(f"anything else -> {cfg.unmatched_status} (no route)")
    return lines


def _upstreams(pairs: list[str]) -> dict[str, str]:
    """The --upstream overrides, as {provider: url}; a URL without its scheme (or another
    scheme) is refused, plain HTTP to a remote host is warned about."""
    from .config import PROVIDERS
    from .envoy_config import check_upstream
    out: dict[str, str] = {}
    for pair in pairs:
        provider, _, url = pair.partition("=")
        if provider not in PROVIDERS or not url:
            raise SystemExit(f"--upstream expects PROVIDER=URL with a provider in "
                             f"{', '.join(PROVIDERS)}; got {pair!r}")
        try:
            warning = check_upstream(url)
        except ValueError as exc:
            raise SystemExit(f"--upstream {pair}: {exc}") from None
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        out[provider] = url
    return out


def _render(args: argparse.Namespace) -> int:
    from . import envoy_config, loader
    cfg = loader.load(args.config)
    fail_open = args.fail_open or args.fail_open_skipping_policies
    enforcing = sorted(name for name, route in cfg.routes.items()
                       if any(type(p).__name__ != "LLMTraffic" for p in route.every_policy))
    if fail_open and enforcing:
        said = f"route{'s' if len(enforcing) > 1 else ''} {', '.join(enforcing)}"
        text = (f"--fail-open lets requests through unprocessed when the processor is "
                f"unreachable or misses Envoy's message timeout, so {said} would skip "
                "authentication, guards and limits (and a request whose headers were "
                "answered would go out with the injected provider key and an unread body)")
        if not args.fail_open_skipping_policies:
            raise SystemExit(f"extproc render-envoy: {text}; drop --fail-open, or say "
                             "--fail-open-skipping-policies")
        print(f"warning: {text}", file=sys.stderr)
    changes: dict = {**envoy_config.limits_of(cfg.server), "failure_mode_allow": fail_open,
                     "front": envoy_config.serves_front(cfg.routes)}
    settings = envoy_config.settings_for(args.place, **changes)
    if args.upstream:
        settings = envoy_config.settings_for(
            args.place, **changes, upstreams={**settings.upstreams, **_upstreams(args.upstream)})
    if args.extproc_tls:
        cert, key, ca = args.extproc_tls
        settings = dataclasses.replace(settings, extproc_tls=envoy_config.ExtprocTls(
            cert, key, ca, args.extproc_tls_name or settings.extproc_host))
    text = envoy_config.render(settings)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:   # (a traceback before; found by review)
            raise SystemExit(f"extproc render-envoy: cannot write {args.output}: "
                             f"{exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0


def _up(args: argparse.Namespace) -> int:
    from .stack import Stack
    return Stack(config_path=args.config, port=args.port, upstreams=_upstreams(args.upstream),
                 mock_port=args.mock_port, extproc_port=args.extproc_port,
                 admin_port=args.admin_port, envoy_admin_port=args.envoy_admin_port).run()


_COMMANDS = {"serve": _serve, "check": _check, "render-envoy": _render,
             "up": _up, "token": cli_tools.token, "api-key": cli_tools.api_key,
             "spend": cli_tools.spend}

if __name__ == "__main__":
    raise SystemExit(main())
