"""The `extproc` command: serve, check, up, mock-llm, render-envoy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = os.environ.get("EXTPROC_CONFIG", "config/gateway.yaml")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mock-llm"]:  # its own parser owns every option after it
        from .logs import setup_logging
        from .mock.server import main as mock_main
        setup_logging()
        return mock_main(argv[1:])
    parser = argparse.ArgumentParser(prog="extproc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the ext_proc gRPC server")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config file")
    p.add_argument("--listen", action="append", metavar="HOST:PORT",
                   help="TCP address to serve on (repeatable; default 127.0.0.1:50051)")
    p.add_argument("--unix", action="append", metavar="PATH", help="unix socket to serve on")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the TCP port through SO_REUSEPORT")
    p.add_argument("--admin-port", type=int, help="HTTP port for /stats and /healthz")
    p.add_argument("--admin-host", default="127.0.0.1")

    p = sub.add_parser("check", help="validate config files; exit 1 naming every error")
    p.add_argument("files", nargs="*", default=[DEFAULT_CONFIG])

    sub.add_parser("mock-llm", help="run the mock LLM provider (--host, --port)")

    p = sub.add_parser("render-envoy", help="print the Envoy config rendered for a place")
    p.add_argument("--place", default="local", choices=("local", "compose", "test"))
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--upstream", action="append", default=[], metavar="PROVIDER=URL",
                   help="e.g. openai=https://api.openai.com (default: the mock provider)")
    p.add_argument("--fail-open", action="store_true",
                   help="let requests through when the processor is unreachable")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")

    p = sub.add_parser("up", help="run Envoy, the server and the mock provider together")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--port", type=int, default=10000, help="Envoy's listener port")
    p.add_argument("--upstream", action="append", default=[], metavar="PROVIDER=URL")
    p.add_argument("--mock-port", type=int, default=8081)
    p.add_argument("--extproc-port", type=int, default=50051)
    p.add_argument("--admin-port", type=int, default=9464, help="extproc's admin port")
    p.add_argument("--envoy-admin-port", type=int, default=9901)

    args = parser.parse_args(argv)
    from .logs import setup_logging
    setup_logging()
    return int(_COMMANDS[args.command](args) or 0)


def _serve(args: argparse.Namespace) -> int:
    from .server import ServeOptions, run
    addresses = tuple(args.listen or ()) + tuple(f"unix:{p}" for p in args.unix or ())
    opts = ServeOptions(config_path=args.config, addresses=addresses or ("127.0.0.1:50051",),
                        admin_port=args.admin_port, admin_host=args.admin_host,
                        workers=max(1, args.workers))
    return run(opts)


def _check(args: argparse.Namespace) -> int:
    from .config import load
    from .schema import ConfigError
    status = 0
    for name in args.files:
        try:
            cfg = load(name)
        except ConfigError as exc:
            status = 1
            for line in exc.errors:
                print(f"{name}: {line}", file=sys.stderr)
            continue
        print(f"{name}: ok ({len(cfg.routes)} routes: {', '.join(cfg.routes)})")
    return status


def _upstreams(pairs: list[str]) -> dict[str, str]:
    """The --upstream overrides, as {provider: url}."""
    from .config import PROVIDERS
    out: dict[str, str] = {}
    for pair in pairs:
        provider, _, url = pair.partition("=")
        if provider not in PROVIDERS or not url:
            raise SystemExit(f"--upstream expects PROVIDER=URL with a provider in "
                             f"{', '.join(PROVIDERS)}; got {pair!r}")
        out[provider] = url
    return out


def _render(args: argparse.Namespace) -> int:
    from . import config, envoy_config
    cfg = config.load(args.config)
    changes: dict = {"max_request_body_bytes": cfg.server.max_request_body_bytes,
                     "failure_mode_allow": args.fail_open}
    settings = envoy_config.settings_for(args.place, **changes)
    if args.upstream:
        settings = envoy_config.settings_for(
            args.place, **changes, upstreams={**settings.upstreams, **_upstreams(args.upstream)})
    text = envoy_config.render(settings)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _up(args: argparse.Namespace) -> int:
    from .stack import Stack
    return Stack(config_path=args.config, port=args.port, upstreams=_upstreams(args.upstream),
                 mock_port=args.mock_port, extproc_port=args.extproc_port,
                 admin_port=args.admin_port, envoy_admin_port=args.envoy_admin_port).run()


_COMMANDS = {"serve": _serve, "check": _check, "render-envoy": _render,
             "up": _up}

if __name__ == "__main__":
    raise SystemExit(main())
