"""Credentials in the URL query: found, and removed before the request goes upstream.

Some clients put a key in the URL: Gemini's REST examples use `?key=`, Google APIs also read
`access_token` and `oauth_token`, each also spelled as a `$`-prefixed system parameter
(`$key`, `$access_token`, `$oauth_token`), Azure API Management reads `subscription-key`,
and other APIs use `api_key`, `api-key` or `apikey`. Wherever the gateway replaces the
client's credential (a route with `auth:` or an `upstream_credential:`), a parameter that is
one of these names (`QUERY_CREDENTIAL_PARAMS`), or one of them after one leading `$`
(`$api_key` too: `is_credential_param`), the name compared percent-decoded and
case-insensitively, is removed from the query, so the gateway key never reaches the
provider, its logs, or a provider key the client slipped in.

The path keeps everything else byte for byte: the other parameters, their order, their
encoding, empty ones. The query is split on `&` only, as the canonical reading splits it
(`reading.canonical_target`), so the parameters removed here are those the gateway read: a
raw `;` (a separator to some servers) is refused there before any policy runs, so no
`?key=x;$ct=...` can be one parameter to the gateway's checks and two once the key piece
is stripped. A query left empty loses its `?` too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

#: parameter names that carry a credential in a URL (compared lower-cased, percent-decoded;
#: each also with one leading `$`, Google's system-parameter spelling: `is_credential_param`)
QUERY_CREDENTIAL_PARAMS = frozenset({
    "key",                          # Google API keys (Gemini, Vertex express mode)
    "access_token", "oauth_token",  # OAuth 2.0 bearer tokens in the URI (RFC 6750 2.3)
    "api_key", "api-key", "apikey",
    "subscription-key",             # Azure API Management's subscription key
})
_SEPARATOR = re.compile(r"(&)")


def param_name(piece: str) -> str:
    """A query piece's name as a server would read it: percent-decoded, lower-cased."""
    return unquote_plus(piece.partition("=")[0]).strip().lower()


def is_credential_param(name: str) -> bool:
    """Is a parameter name (as `param_name` reads it) one that carries a credential: one of
    `QUERY_CREDENTIAL_PARAMS`, bare or after one leading `$` (`$key`, `$access_token`)."""
    return name in QUERY_CREDENTIAL_PARAMS or (
        name[:1] == "$" and name[1:] in QUERY_CREDENTIAL_PARAMS)


def strip_query_credentials(path: str) -> tuple[str, list[tuple[str, str]]]:
    """`path` without its credential parameters, and those removed as (name, decoded value)
    pairs; the path is returned unchanged (the same string) when there are none."""
    mark = path.find("?")
    if mark < 0:
        return path, []
    pieces = _SEPARATOR.split(path[mark + 1:])     # piece, sep, piece, sep, ..., piece
    kept: list[str] = []
    removed: list[tuple[str, str]] = []
    for i in range(0, len(pieces), 2):
        piece = pieces[i]
        name = param_name(piece)
        if is_credential_param(name):
            removed.append((name, unquote_plus(piece.partition("=")[2])))
            continue
        if kept:
            kept.append(pieces[i - 1])             # the separator before a kept piece
        kept.append(piece)
    if not removed:
        return path, []
    query = "".join(kept)
    return (path[:mark] + "?" + query if query else path[:mark]), removed
