"""The Google Cloud project and location a Vertex AI route serves (sans-IO).

Vertex names the project to bill, and the region to run in, in the request's path
(`/v1/projects/{project}/locations/{location}/publishers/google/models/...`). With the
operator's credential injected, a client could name any project that credential can reach:
another team's, billed for its requests. A route that sets `project` (and `location`) serves
those only; a path naming another is refused (403 in Google's format) before it is sent.
"""

from __future__ import annotations

import re

from ..context import Context
from ..policy import Policy, Reject

_PROJECT = re.compile(r"/projects/([^/]+)/")
_LOCATION = re.compile(r"/locations/([^/]+)/")


class VertexScope(Policy):
    """Refuses a request whose path names another project or location than the route's."""

    def __init__(self, project: str | None, location: str | None) -> None:
        super().__init__({})
        self.project = project
        self.location = location

    async def on_request_headers(self, ex: Context) -> None:
        path = ex.request_headers.get(":path", "").split("?", 1)[0]
        for want, pattern, what in ((self.project, _PROJECT, "project"),
                                    (self.location, _LOCATION, "location")):
            if want is None:
                continue
            named = pattern.findall(path)
            if any(n != want for n in named):
                raise Reject(403, f"this route serves the {what} {want!r} only",
                             details="extproc_vertex_scope")
