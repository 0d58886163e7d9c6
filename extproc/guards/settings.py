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
        roles: [user, system, tool]                       # request roles checked (all)
        apply_to: [request, response]                     # default: both

Per route::

    guards: [pii]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..schema import Checker, join
from .custom import LiteralDetector, RegexDetector
from .detectors import Detector, PatternError
from .scanner import BUILTIN_GROUPS, BUILTIN_NAMES, Scanner, builtin

ACTIONS = ("mask", "reject")
ROLES = ("system", "user", "assistant", "tool")
DIRECTIONS = ("request", "response")


@dataclass(frozen=True)
class Guard:
    name: str
    scanner: Scanner
    action: str = "mask"
    roles: frozenset[str] = frozenset(ROLES)
    apply_to: frozenset[str] = frozenset(DIRECTIONS)


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
                              "roles", "apply_to"))
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
    if not detectors and len(c.errors) == before:
        c.error(path, "detects nothing: name detectors, patterns and/or deny words")
    if len(c.errors) > before:
        return None
    return Guard(name=name, scanner=Scanner(detectors), action=action or "mask", roles=roles,
                 apply_to=apply_to)


def _roles(c: Checker, d: Mapping[str, Any], path: str) -> frozenset[str]:
    if "roles" not in d:
        return frozenset(ROLES)
    roles = c.sequence(d.get("roles"), join(path, "roles"))
    for i, r in enumerate(roles):
        if r not in ROLES:
            c.error(join(join(path, "roles"), i), f"unknown role {r!r} (one of: "
                    f"{', '.join(ROLES)})")
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
    return tuple(out)
