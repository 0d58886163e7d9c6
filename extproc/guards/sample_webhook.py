"""A sample guard webhook (``extproc guard-webhook``): a small service to copy and adapt.

It implements the contract in docs/guard-webhook.openapi.yaml: the gateway POSTs the texts
to check as JSON to ``/check`` and the service answers ``{"action": "pass"}``,
``{"action": "mask", "masks": [...]}`` or ``{"action": "reject", "reason": ...}``. This one
rejects texts that contain a deny word (case-insensitive; default "project falcon") and masks
what the gateway's built-in detectors find (default: e-mail addresses). Offsets are in code
points, which is what Python's str indexing counts. ``GET /healthz`` answers "ok".

    extproc guard-webhook --port 9100 --deny "project falcon" --deny "blue harbor" --mask email
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from aiohttp import web

from extproc.guards.scanner import BUILTIN_GROUPS, BUILTIN_NAMES, Scanner, builtin

log = logging.getLogger("extproc.guard_webhook")

DEFAULT_DENY = ("project falcon",)
DEFAULT_MASK = ("email",)
REASON = "mentions a confidential term"   # shown to the client: never quote the text
MAX_BODY = 16 * 1024 * 1024

SCANNER = web.AppKey("scanner", Scanner)
DENY = web.AppKey("deny", tuple)


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _texts(body: Any) -> list[tuple[str, str]] | None:
    """The (context, text) pairs of a request body, or None if it is not a valid one."""
    if not isinstance(body, dict) or not isinstance(body.get("texts"), list):
        return None
    out = []
    for item in body["texts"]:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return None
        context = item.get("context", "")
        if not isinstance(context, str):
            return None
        out.append((context, item["text"]))
    return out


def check(texts: list[tuple[str, str]], scanner: Scanner,
          deny: tuple[str, ...]) -> dict[str, Any]:
    """The answer for the (context, text) pairs: reject on a deny word, else mask, else pass.

    The context (already delivered) is scanned with the text so that a value split across
    stream segments is still found; only the part of a match inside the text is masked."""
    placeholders = {d.name: d.placeholder for d in scanner.detectors}
    masks: list[dict[str, Any]] = []
    for index, (context, text) in enumerate(texts):
        whole = context + text
        folded = whole.casefold()
        if any(word in folded for word in deny):
            return {"action": "reject", "reason": REASON}
        for span in scanner.find(whole):
            start, end = max(span.start - len(context), 0), span.end - len(context)
            if end > start:
                masks.append({"text": index, "start": start, "end": end,
                              "placeholder": placeholders[span.detector]})
    return {"action": "mask", "masks": masks} if masks else {"action": "pass"}


async def _check(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _bad("the body is not JSON")
    texts = _texts(body)
    if texts is None:
        return _bad('the body must be a JSON object with a list "texts" of {"text": string}')
    answer = check(texts, request.app[SCANNER], request.app[DENY])
    log.info("%s %s: %s", body.get("guard"), body.get("request_id"), answer["action"])
    return web.json_response(answer)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(deny: list[str], mask: list[str]) -> web.Application:
    """The service: reject texts containing a word of `deny` (case-insensitive), mask the
    matches of the built-in detectors named in `mask` (ValueError for an unknown name)."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SCANNER] = Scanner(builtin(mask, {}))
    app[DENY] = tuple(w.casefold() for w in deny if w.strip())
    app.router.add_post("/check", _check)
    app.router.add_get("/healthz", _healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``extproc guard-webhook [--host] [--port] [--deny] [--mask]``."""
    parser = argparse.ArgumentParser(prog="extproc guard-webhook",
                                     description="A sample guard webhook for the gateway.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port to bind (9100)")
    parser.add_argument("--deny", action="append", metavar="WORD",
                        help="reject texts containing WORD, case-insensitive (repeatable; "
                        f"replaces the default {list(DEFAULT_DENY)})")
    parser.add_argument("--mask", action="append", metavar="DETECTOR",
                        help="mask this built-in detector's matches (repeatable; default "
                        f"email; known: {', '.join((*BUILTIN_NAMES, *BUILTIN_GROUPS))})")
    args = parser.parse_args(argv)
    try:
        app = make_app(args.deny or list(DEFAULT_DENY), args.mask or list(DEFAULT_MASK))
    except ValueError as exc:
        parser.error(f"--mask: {exc}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    log.info("guard webhook on http://%s:%s/check (masking %s, %d deny words)", args.host,
             args.port, ", ".join(d.name for d in app[SCANNER].detectors), len(app[DENY]))
    try:
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    except OSError as exc:
        log.error("guard-webhook cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
