"""The header changes a policy asks for, held until the next reply in each direction.

`Exchange` inherits this: policies call `set_request_header` / `remove_request_header` during
the request phase and `set_response_header` / `remove_response_header` up to the response
headers; the exchange puts what is pending into the next reply of that direction and clears
it. For one name the last call wins, whether it sets or removes.
"""

from __future__ import annotations

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from . import protocol as P


class HeaderMutations:
    """Pending header mutations of one exchange, per direction."""

    def __init__(self) -> None:
        self._req_set: dict[str, str] = {}
        self._req_remove: list[str] = []
        self._resp_set: dict[str, str] = {}
        self._resp_remove: list[str] = []
        #: Envoy picks the route again after the next request reply (its header mutation
        #: may change what the route table matches: the unified front's backend header)
        self.clear_route_cache = False

    def set_request_header(self, name: str, value: str) -> None:
        """Set a header on the request going upstream (request phase only); the last call
        for a name wins, whether it sets or removes."""
        name = name.lower()
        self._req_set[name] = value
        if name in self._req_remove:
            self._req_remove.remove(name)

    def remove_request_header(self, name: str) -> None:
        name = name.lower()
        self._req_set.pop(name, None)
        self._req_remove.append(name)

    def set_response_header(self, name: str, value: str) -> None:
        """Set a header on the response to the client; may be called in any phase up to the
        response headers (e.g. a decision made at request time)."""
        name = name.lower()
        self._resp_set[name] = value
        if name in self._resp_remove:
            self._resp_remove.remove(name)

    def pending_response_header(self, name: str) -> str | None:
        """A response header a policy has set for the next reply (None if none has)."""
        return self._resp_set.get(name.lower())

    def remove_response_header(self, name: str) -> None:
        name = name.lower()
        self._resp_set.pop(name, None)
        self._resp_remove.append(name)

    def _common(self, response: bool, extra: dict[str, str] | None = None
                ) -> pb.CommonResponse | None:
        """The pending header mutations of one direction (then cleared), if any."""
        sets, removes = (self._resp_set, self._resp_remove) if response \
            else (self._req_set, self._req_remove)
        if not sets and not removes and not extra:
            return None
        mutation = P.header_mutation({**sets, **(extra or {})}, removes)
        sets.clear()
        removes.clear()
        if not response and self.clear_route_cache:
            self.clear_route_cache = False
            return pb.CommonResponse(header_mutation=mutation, clear_route_cache=True)
        return pb.CommonResponse(header_mutation=mutation)
