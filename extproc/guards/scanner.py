"""Several detectors as one: their matches with overlaps resolved, their common `tail_start`,
masking with placeholders, and the catalogue of built-in detectors by name.

Sans-IO like the detectors: a streaming masker can keep a buffer, emit the part before
`tail_start` (spans of `find` that start before it are final) and hold the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from extproc.guards.detectors import (
    BUILTIN_PLACEHOLDERS,
    Detector,
    PatternDetector,
    Span,
    builtin_detector,
)

BUILTIN_NAMES: tuple[str, ...] = (
    "email", "phone", "card", "us_ssn", "iban", "ipv4", "ipv6",
    "aws_access_key", "github_token", "openai_key", "anthropic_key", "private_key", "jwt",
)
# names that stand for several built-ins, in `builtin()` and in its placeholders
BUILTIN_GROUPS: dict[str, tuple[str, ...]] = {
    "ip": ("ipv4", "ipv6"),
    "secrets": ("aws_access_key", "github_token", "openai_key", "anthropic_key", "private_key",
                "jwt"),
}
assert set(BUILTIN_NAMES) == set(BUILTIN_PLACEHOLDERS)

#: what every match of a built-in contains: a text without it needs no full scan (prose
#: streamed a word at a time mostly has neither digits nor '@')
_NEEDS: dict[str, re.Pattern[str]] = {
    **{n: re.compile(r"\d") for n in ("phone", "card", "us_ssn", "iban", "ipv4")},
    "email": re.compile("@"), "ipv6": re.compile(":"),
    "aws_access_key": re.compile("A[KS]IA"), "github_token": re.compile("gh[pousr]_|github_pat_"),
    "openai_key": re.compile("sk-"), "anthropic_key": re.compile("sk-ant-"),
    "private_key": re.compile("-----BEGIN"), "jwt": re.compile("eyJ"),
}
assert set(_NEEDS) == set(BUILTIN_NAMES)


def _expand(name: str) -> tuple[str, ...]:
    if name in BUILTIN_GROUPS:
        return BUILTIN_GROUPS[name]
    if name in BUILTIN_PLACEHOLDERS:
        return (name,)
    known = ", ".join((*BUILTIN_NAMES, *BUILTIN_GROUPS))
    raise ValueError(f"unknown built-in detector {name!r} (known: {known})")


def builtin(names: Iterable[str] | None = None,
            placeholders: Mapping[str, str] | None = None) -> list[Detector]:
    """Built-in detectors by name (or group name: 'ip', 'secrets'), in the order given (the
    order breaks ties between equal overlapping matches); None means all. `placeholders` maps
    a name or a group name to its placeholder; a name wins over its group."""
    wanted: list[str] = []
    for name in BUILTIN_NAMES if names is None else names:
        wanted.extend(n for n in _expand(name) if n not in wanted)
    chosen: dict[str, str] = {}
    for key, value in (placeholders or {}).items():
        for n in _expand(key):
            if key in BUILTIN_GROUPS:
                chosen.setdefault(n, value)
            else:
                chosen[n] = value
    return [builtin_detector(n, chosen.get(n)) for n in wanted]


class Scanner:
    """Detectors combined. Overlapping matches are resolved leftmost first, then longest,
    then by detector order; the placeholders are looked up by detector name."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self._placeholders: dict[str, str] = {}
        for d in self.detectors:
            if d.name in self._placeholders:
                raise ValueError(f"two detectors are named {d.name!r}")
            self._placeholders[d.name] = d.placeholder
        self.max_len: int = max((d.max_len for d in self.detectors), default=0)

    def find(self, text: str) -> list[Span]:
        """All detectors' matches, non-overlapping, left to right."""
        found: list[tuple[int, int, int, Span]] = []
        for rank, detector in enumerate(self.detectors):
            need = _NEEDS.get(detector.name) if isinstance(detector, PatternDetector) else None
            if need is not None and need.search(text) is None:
                continue   # cannot match here: skip the detector's full scan
            found.extend((s.start, s.start - s.end, rank, s) for s in detector.find(text))
        found.sort(key=lambda f: f[:3])
        spans: list[Span] = []
        end = 0
        for start, _, _, span in found:
            if start >= end:
                spans.append(span)
                end = span.end
        return spans

    def tail_start(self, text: str) -> int:
        """The earliest `tail_start` of the detectors: the text from there on must be held."""
        return min((d.tail_start(text) for d in self.detectors), default=len(text))

    def mask(self, text: str, spans: list[Span] | None = None) -> str:
        """`text` with each span (by default: `find(text)`) replaced by its detector's
        placeholder. Spans must not overlap."""
        parts: list[str] = []
        pos = 0
        for span in sorted(self.find(text) if spans is None else spans,
                           key=lambda s: (s.start, s.end)):
            if span.start < pos or span.end > len(text):
                raise ValueError(f"span {span} overlaps another or is out of the text")
            if span.detector not in self._placeholders:
                raise ValueError(f"span {span} is from no detector of this scanner")
            parts += (text[pos:span.start], self._placeholders[span.detector])
            pos = span.end
        parts.append(text[pos:])
        return "".join(parts)
