"""A request target read canonically (`Target`) and its canonical encoding: the value type
`extproc.reading` produces and the endpoint tables (`extproc.providers.endpoints`) classify.
"""

from __future__ import annotations

from urllib.parse import quote

# characters a path segment may carry unencoded (RFC 3986 pchar, minus '%')
PATH_SAFE = "/:@!$&'()*+,;=-._~"
QUERY_SAFE = ":@!$'()*,;/?-._~"


def fold_name(name: str) -> str:
    """A query parameter's name as a server that trims and ignores case may read it
    (`ALT`, `alt `, `f\u0131elds`, whose dotless i upper-cases to I): what the gateway
    compares names by, so that no two it tells apart are one to such a server."""
    return name.strip().upper().lower()


class Target:
    """A request target read canonically: `path` (decoded), `query` (decoded pairs, each name
    once) and `raw` (the canonical encoding of both, what goes upstream; the client's own
    when it holds nothing to decode, as most do)."""

    __slots__ = ("params", "path", "query", "raw")

    def __init__(self, path: str, query: list[tuple[str, str]], raw: str | None = None
                 ) -> None:
        self.path = path
        self.query = query
        self.params = dict(query)
        self.raw = encode_target(path, query) if raw is None else raw

    def __repr__(self) -> str:
        return f"Target({self.raw!r})"


def encode_target(path: str, query: list[tuple[str, str]]) -> str:
    """The canonical encoding of a decoded path and query."""
    raw = quote(path, safe=PATH_SAFE)
    if query:
        raw += "?" + "&".join(f"{quote(k, safe=QUERY_SAFE)}={quote(v, safe=QUERY_SAFE)}"
                              for k, v in query)
    return raw
