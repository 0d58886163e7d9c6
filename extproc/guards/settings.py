"""The guard parts of the config, validated with every error named by its key path.

Top level (named guards; routes refer to them by name)::

    guards:
      pii:
        detectors: [email, phone, card, us_ssn, iban, ip]   # built-ins, or groups: ip, secrets
        patterns:                                         # custom, RE2 (linear time)
          employee_id: {regex: 'EMP-[0-9]{6}', placeholder: '<EMPLOYEE_ID>', max_len: 10}
        deny: {words: [project falcon], placeholder: '<REDACTED>'}
        placeholders: {email: '<EMAIL>'}                  # override built-in placeholders
        action: mask                                      # mask | reject
        roles: [user, system, tool]                       # request roles checked (all;
                                                          # any case; unknown roles always)
        apply_to: [request, response]                     # default: both
        allow_unread: [image]                             # inputs and replies no guard
                                                          # reads (image, audio, video,
                                                          # document, file) that may pass
                                                          # unread; default: none, refused
      corp-dlp:                                           # or a webhook instead of detectors
        webhook:
          url: http://dlp.internal:9100/check
          timeout_ms: 300                                 # per call
          fail: closed                                    # closed (refuse) | open (let through)
          headers: {x-api-key: {env: DLP_API_KEY}}        # strings, or {env: NAME}
          segment_chars: 200                              # streamed responses: check size
        apply_to: [request, response]

Per route::

    guards: [pii]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..auth.jwks import redact_url
from ..providers.unread import KINDS as UNREAD_KINDS
from ..schema import Checker, join
from .custom import UNMEASURED, LiteralDetector, RegexDetector, longest_match
from .detectors import Detector, PatternError
from .scanner import BUILTIN_GROUPS, BUILTIN_NAMES, Scanner, builtin
from .webhook import MESSAGE_BUDGET_MS, WebhookSpec

ACTIONS = ("mask", "reject")
ROLES = ("system", "user", "assistant", "tool")
DIRECTIONS = ("request", "response")


@dataclass(frozen=True)
class Guard:
    name: str
    scanner: Scanner | None
    action: str = "mask"
    roles: frozenset[str] = frozenset(ROLES)
    apply_to: frozenset[str] = frozenset(DIRECTIONS)
    webhook: WebhookSpec | None = None
    #: kinds of prompt input or reply media no guard can read (`providers.unread.KINDS`)
    #: that this guard lets pass unread; any other is refused (default deny)
    allow_unread: frozenset[str] = frozenset()

    def reads(self, role: str) -> bool:
        """Whether this guard checks prompt text of `role` (compared case-insensitively): a
        role in its `roles`, or any role outside the four it could name (default deny: a
        role the gateway does not know is never a way around the filter)."""
        role = role.lower()
        return role in self.roles or role not in ROLES


def parse_guards(c: Checker, raw: Any) -> dict[str, Guard]:
    out: dict[str, Guard] = {}
    for name, spec in c.mapping(raw, "guards", raw or {}).items():
        guard = _guard(c, str(name), spec, join("guards", str(name)))
        if guard is not None:
            out[str(name)] = guard
    return out


def _guard(c: Checker, name: str, raw: Any, path: str) -> Guard | None:
    before = len(c.errors)
    d = c.mapping(raw, path, ("detectors", "patterns", "deny", "placeholders", "action",
                              "roles", "apply_to", "webhook", "allow_unread"))
    webhook = _webhook(c, d.get("webhook"), join(path, "webhook")) if "webhook" in d else None
    if "webhook" in d:
        for key in ("detectors", "patterns", "deny", "placeholders", "action"):
            if key in d:
                c.error(join(path, key), "a webhook guard decides itself: no detectors, "
                        "patterns, deny words or action beside 'webhook'")
    detectors: list[Detector] = []
    names = [n for n in c.sequence(d.get("detectors"), join(path, "detectors"))]
    placeholders = dict(c.mapping(d.get("placeholders"), join(path, "placeholders"),
                                  d.get("placeholders") or {}))
    known = (*BUILTIN_NAMES, *BUILTIN_GROUPS)
    for i, n in enumerate(names):
        if n not in known:
            c.error(join(join(path, "detectors"), i),
                    f"unknown detector {n!r} (one of: {', '.join(known)})")
    for key in placeholders:
        if key not in known:
            c.error(join(join(path, "placeholders"), str(key)), "not a built-in detector")
    if len(c.errors) == before and names:
        detectors.extend(builtin(names, {str(k): str(v) for k, v in placeholders.items()}))
    raw_patterns = d.get("patterns") or {}
    for pname, pspec in c.mapping(raw_patterns, join(path, "patterns"), raw_patterns).items():
        where = join(join(path, "patterns"), str(pname))
        p = c.mapping(pspec, where, ("regex", "placeholder", "max_len"))
        regex = c.string(p, "regex", where, required=True)
        placeholder = c.string(p, "placeholder", where, f"<{str(pname).upper()}>")
        max_len = c.number(p, "max_len", where, 256, minimum=1, integer=True)
        if regex is None:
            continue
        longest = longest_match(regex)
        if longest is None or longest == UNMEASURED or longest > int(max_len):
            # a streamed reply holds back only max_len characters for it: a longer match
            # would go out in clear, masked or refused only in a whole reply (found by review)
            how = ("they are unbounded (a +, * or {n,})" if longest is None else
                   "the gateway cannot measure them (RE2 syntax it does not know)"
                   if longest == UNMEASURED else f"up to {longest}")
            c.error(join(where, "regex"), f"its matches can be longer than max_len "
                    f"({int(max_len)} characters): {how}; a streamed reply holds back only "
                    "max_len characters, so a longer match would pass it. Bound every repeat "
                    "({1,64} for +) and set max_len to at least the longest match")
            continue
        try:
            detectors.append(RegexDetector(str(pname), regex, placeholder or "<REDACTED>",
                                           int(max_len)))
        except PatternError as exc:
            c.error(join(where, "regex"), str(exc))
    if "deny" in d:
        where = join(path, "deny")
        deny = c.mapping(d.get("deny"), where, ("words", "placeholder"))
        words = [w for w in c.sequence(deny.get("words"), join(where, "words"))]
        bad = [w for w in words if not isinstance(w, str) or not w.strip()]
        if bad or not words:
            c.error(join(where, "words"), "expected a non-empty list of words and phrases")
        else:
            detectors.append(LiteralDetector("deny", words,
                                             c.string(deny, "placeholder", where,
                                                      "<REDACTED>") or "<REDACTED>"))
    action = c.choice(d, "action", path, ACTIONS, "mask", what="action")
    roles = _roles(c, d, path)
    apply_to = frozenset(DIRECTIONS)
    if "apply_to" in d:
        items = c.sequence(d.get("apply_to"), join(path, "apply_to"))
        for i, item in enumerate(items):
            if item not in DIRECTIONS:
                c.error(join(join(path, "apply_to"), i), f"expected request or response, "
                        f"got {item!r}")
        apply_to = frozenset(i for i in items if i in DIRECTIONS)
        if not items and d.get("apply_to") is not None:
            c.error(join(path, "apply_to"), "is empty: the guard would check nothing "
                    "(request, response, or both; remove it for both)")
    allow_unread = _allow_unread(c, d, path)
    if not detectors and "webhook" not in d and len(c.errors) == before:
        c.error(path, "detects nothing: name detectors, patterns and/or deny words, "
                "or a webhook")
    if len(c.errors) > before:
        return None
    if webhook is not None:
        return Guard(name=name, scanner=None, action="webhook", roles=roles,
                     apply_to=apply_to, webhook=webhook, allow_unread=allow_unread)
    return Guard(name=name, scanner=Scanner(detectors), action=action or "mask", roles=roles,
                 apply_to=apply_to, allow_unread=allow_unread)


#: a webhook call waits inside one ext_proc message: it must end well before Envoy's
#: message_timeout (5 s in the reference config)
MAX_TIMEOUT_MS = MESSAGE_BUDGET_MS


def _webhook(c: Checker, raw: Any, path: str) -> WebhookSpec | None:
    before = len(c.errors)
    d = c.mapping(raw, path, ("url", "timeout_ms", "fail", "headers", "segment_chars",
                              "fail_open_max_bytes"))
    url = c.string(d, "url", path, required=True) or ""
    if url and not url.startswith(("http://", "https://")):
        c.error(join(path, "url"), "expected an http:// or https:// URL, got "
                f"{redact_url(url)!r}")   # (no userinfo or query: they may hold a token)
    timeout = c.number(d, "timeout_ms", path, 300, minimum=1, integer=True)
    if timeout is not None and timeout > MAX_TIMEOUT_MS:
        c.error(join(path, "timeout_ms"), f"at most {MAX_TIMEOUT_MS}: the call waits inside "
                "an ext_proc message, which Envoy times out after message_timeout (5 s)")
    fail = c.choice(d, "fail", path, ("open", "closed"), "closed", what="fail mode")
    segment = c.number(d, "segment_chars", path, 200, minimum=16, integer=True)
    open_max = c.number(d, "fail_open_max_bytes", path, 65536, minimum=1, integer=True)
    headers: list[tuple[str, str]] = []
    raw_headers = d.get("headers") or {}
    for hname, value in c.mapping(raw_headers, join(path, "headers"), raw_headers).items():
        where = join(join(path, "headers"), str(hname))
        if isinstance(value, dict):
            env = c.mapping(value, where, ("env",))
            var = c.string(env, "env", where, required=True)
            if var is not None:
                if not os.environ.get(var, "").strip():   # (unset or blank: found by review)
                    c.error(join(where, "env"), f"environment variable {var} is not set, "
                            "or blank")
                else:
                    headers.append((str(hname).lower(), os.environ[var].strip()))
        elif isinstance(value, str):
            if not value.strip():   # (a template that came out empty: found by review)
                c.error(where, "is blank")
            else:
                headers.append((str(hname).lower(), value))
        else:
            c.error(where, "expected a string or {env: NAME}")
    if len(c.errors) > before:
        return None
    return WebhookSpec(url=url, timeout_s=float(timeout or 300) / 1000,
                       fail_open=fail == "open", headers=tuple(headers),
                       segment_chars=int(segment or 200),
                       fail_open_max_bytes=int(open_max or 65536))


def _allow_unread(c: Checker, d: Mapping[str, Any], path: str) -> frozenset[str]:
    kinds = c.sequence(d.get("allow_unread"), join(path, "allow_unread"))
    for i, kind in enumerate(kinds):
        if kind not in UNREAD_KINDS:
            c.error(join(join(path, "allow_unread"), i), f"unknown input kind {kind!r} (one "
                    f"of: {', '.join(UNREAD_KINDS)})")
    return frozenset(k for k in kinds if k in UNREAD_KINDS)


def _roles(c: Checker, d: Mapping[str, Any], path: str) -> frozenset[str]:
    if "roles" not in d:
        return frozenset(ROLES)
    roles = [r.lower() if isinstance(r, str) else r
             for r in c.sequence(d.get("roles"), join(path, "roles"))]
    for i, r in enumerate(roles):
        if r not in ROLES:
            c.error(join(join(path, "roles"), i), f"unknown role {r!r} (one of: "
                    f"{', '.join(ROLES)})")
    if not roles and d.get("roles") is not None:
        c.error(join(path, "roles"), "is empty: the guard would read no prompt text "
                "(remove it for every role)")
    return frozenset(r for r in roles if r in ROLES)


def route_guards(c: Checker, raw: Any, path: str, shared: dict[str, Guard]
                 ) -> tuple[Guard, ...]:
    out = []
    for i, name in enumerate(c.sequence(raw, path)):
        if name not in shared:
            known = ", ".join(shared) or "none defined under guards"
            c.error(join(path, i), f"unknown guard {name!r} (known: {known})")
        else:
            out.append(shared[name])
    for direction in DIRECTIONS:   # a route's webhooks are called one after another inside
        # one message (found by review: two fail-open guards of 3 s each outlasted Envoy's
        # 5 s timer, and the client got a 504 instead of the pass failing open promised)
        waits = [g for g in out if g.webhook is not None and direction in g.apply_to]
        total = sum(round(g.webhook.timeout_s * 1000) for g in waits if g.webhook)
        if len(waits) > 1 and total > MAX_TIMEOUT_MS:
            c.error(path, f"the {direction} webhook guards "
                    f"({', '.join(repr(g.name) for g in waits)}) may wait {total} ms in all, "
                    f"one after another inside one ext_proc message: at most "
                    f"{MAX_TIMEOUT_MS} ms together, as Envoy times the message out after "
                    "message_timeout (5 s); lower their timeout_ms")
    return tuple(out)
