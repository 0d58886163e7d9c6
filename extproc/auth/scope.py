"""The Google Cloud project and location a Vertex AI route serves (sans-IO).

Vertex names the project to bill, and the region to run in, in the request's path
(`/v1/projects/{project}/locations/{location}/publishers/google/models/...`). With the
operator's credential injected, a client could name any project that credential can reach:
another team's, billed for its requests. A route that sets `project` (and `location`) serves
those only; a path naming another is refused (403 in Google's format) before it is sent.
So is a body naming a resource of another project or location: a cached content, a Model
Armor template, countTokens' model, or in a tool (a retrieval tool's RAG corpus or Vertex AI
Search data store, which live in `global`, `us` or `eu` whatever the route's region;
function declarations aside), `projects/{project}/locations/{location}/...`, which the
provider reads with the same credential (found by review: a client read another project's
corpus so). Vertex names the resources it creates by the project's number: a route's
`project_number` is the same project. Nothing else in the body is looked at (the prompt,
schemas, labels: a user may write a resource name there, and the provider fetches nothing
by it). The body is read as the provider reads it (`reads_json`: decoded, each key once).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..context import Context
from ..policy import Policy, Reject
from ..providers import read_request

_PROJECT = re.compile(r"/projects/([^/]+)/")
_LOCATION = re.compile(r"/locations/([^/]+)/")
#: the same, anywhere in a resource name of the body (` projects/...`, `//host/projects/...`)
_BODY_PROJECT = re.compile(r"projects/([^/]*)")
_BODY_LOCATION = re.compile(r"locations/([^/]*)")
#: a tool's declarations of the client's own functions: text the model reads
_DECLARATIONS = frozenset({"functionDeclarations", "function_declarations"})
#: the fields that name resources the provider reads: a cached content, Model Armor's
#: templates, countTokens' model (its inner request's), and the tools
_RESOURCES = frozenset({"cachedcontent", "cached_content", "modelarmorconfig",
                        "model_armor_config", "model", "tools"})   # (compared case-folded)
#: Vertex AI Search's data stores and engines live in these locations only, whatever the
#: region a route runs in
_SEARCH = re.compile(r"/(?:dataStores|engines)/")
_MULTI_REGIONS = ("global", "us", "eu")
_INNER = ("generateContentRequest", "generate_content_request")   # countTokens'


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in `value` that names a project (`projects/...`), but in declarations."""
    if isinstance(value, str):
        if "projects/" in value:
            yield value
    elif depth < 16 and isinstance(value, dict):
        for key, item in value.items():
            if key not in _DECLARATIONS:
                yield from _strings(item, depth + 1)
    elif depth < 16 and isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


def _names(body: dict[str, Any]) -> Iterator[str]:
    """The resource names a request gives the provider to read (`_RESOURCES`, also in a
    countTokens' inner request)."""
    for doc in (body, *(body[k] for k in _INNER if isinstance(body.get(k), dict))):
        for key, value in doc.items():
            if key.lower() in _RESOURCES:
                yield from _strings(value)


class VertexScope(Policy):
    """Refuses a request whose path names another project or location than the route's."""

    def __init__(self, project: str | None, location: str | None,
                 number: str | None = None) -> None:
        super().__init__({})
        self.project = project
        self.location = location
        #: the project's number, the same project as its id in a resource name
        self.number = number

    needs_request_body = True
    #: the body as the provider reads it (decoded, one value per key): a gzip body or a
    #: key given twice must not pass the check unread (found by review)
    reads_json = True

    async def on_request_headers(self, ex: Context) -> None:
        path = ex.request_headers.get(":path", "").split("?", 1)[0]
        self._check(path, _PROJECT, _LOCATION, "")

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        endpoint = ex.endpoint
        path = ex.request_headers.get(":path", "")
        if endpoint is None or endpoint.adapter is None or "/projects/" not in path:
            # (a pass-through's body is no request the provider reads so; on an auto route,
            # a request to another provider than Vertex names no Vertex resources)
            return None
        # (no look at the bytes first: JSON may spell "projects/" as "projects\/" or with
        # \u escapes; the parse is shared with the other policies, the walk skips the prompt)
        read = read_request(endpoint.adapter, path, body, ex.state)
        if read is None or not isinstance(read[0], dict):   # (the exchange refuses it first)
            raise Reject(400, "the request body is not JSON the gateway can read",
                         details="extproc_bad_json")
        for name in _names(read[0]):
            self._check(name, _BODY_PROJECT, _BODY_LOCATION,
                        "; a resource the body names is another's",
                        _MULTI_REGIONS if _SEARCH.search(name) else ())
        return None

    def _check(self, text: str, project: re.Pattern[str], location: re.Pattern[str],
               where: str, also: tuple[str, ...] = ()) -> None:
        """Refuse `text` naming another project (by id, or by number when it is not the
        route's) or another location (but those in `also`)."""
        for want, pattern, what in ((self.project, project, "project"),
                                    (self.location, location, "location")):
            if want is None:
                continue
            ok = (want, self.number) if what == "project" else (want, *also)
            if any(n not in ok for n in pattern.findall(text)):
                raise Reject(403, f"this route serves the {what} {want!r} only{where}",
                             details="extproc_vertex_scope")
