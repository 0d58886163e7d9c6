"""Path segments that servers resolve differently (sans-IO): `.` and `..` as written, and the
segments a server may read as them once it trims spaces and invisible characters or
normalises Unicode. `reading` refuses a path holding one (a pass-through's pattern would
otherwise match a path the provider resolves to another endpoint)."""

from __future__ import annotations

import unicodedata


def dot_segment(path: str) -> bool:
    """Whether `path` has a `.` or `..` segment, which one server resolves (RFC 3986) and
    another takes as written; also with parameters (`..;x`: servers that strip a segment's
    parameters resolve it, and Envoy's normalize_path does)."""
    return "/." in path and any(seg.partition(";")[0] in (".", "..")
                                for seg in path.split("/"))


#: default-ignorable code points beside the format characters (Unicode's
#: Default_Ignorable_Code_Point): variation selectors, the combining grapheme joiner, the
#: Hangul fillers, Mongolian free variation selectors, Khmer inherent vowels, tags
_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
              (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0000, 0xE0FFF))


def _ignorable(c: str) -> bool:
    n = ord(c)
    return unicodedata.category(c) == "Cf" or any(lo <= n <= hi for lo, hi in _IGNORABLE)


def dot_like_segment(path: str) -> bool:
    """Whether a decoded `path` has a segment that a server may read as `.` or `..`: one
    that is (as `dot_segment` finds), one with spaces around its dots (`..%20`: servers
    that trim a segment's end resolve it), or dots of another form that Unicode
    normalisation makes `.` (the fullwidth full stop, the one-dot leader, the small full
    stop)."""
    for seg in path.split("/"):
        seg = seg.partition(";")[0]
        if "." not in seg and seg.isascii():
            continue
        if not seg.isascii():   # (what a server may drop as invisible: format characters,
            seg = "".join(c for c in unicodedata.normalize("NFKC", seg)   # a zero-width
                          if not _ignorable(c))                           # space, a BOM)
        if seg.strip() in (".", ".."):   # (every space Python trims: NEL too)
            return True
    return False
