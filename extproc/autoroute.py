"""The provider a `provider: auto` route picked, told to Envoy (a policy).

On an auto route the processor picks the provider, and so the credential it injects, from the
request's path (`routing.Router`), while Envoy picks the cluster the request goes to from its
own route table. Matched by path alone, the two can disagree, and the client chooses the
path: behind one Envoy route (one cluster) every provider's key goes to that one host, and
behind prefix routes a path such as `/v1/messages/v1/chat/completions` (OpenAI to the
processor, under Envoy's `/v1/messages`) sends one provider's key to another's (found by
review). So each variant of an auto route names its provider in `x-extproc-provider` and
clears Envoy's route cache, as the unified front does with `x-extproc-backend`: Envoy then
routes by what the processor read, one route per provider matching that header
(docs/configuration.md). A client's own header of that name is replaced here, and removed
before routing by the shipped Envoy configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .policy import Policy

if TYPE_CHECKING:
    from .context import Context

#: the request header an auto route's provider is named in, for Envoy's route table
PROVIDER_HEADER = "x-extproc-provider"


class AutoProvider(Policy):
    """Names the variant's provider in `PROVIDER_HEADER` and has Envoy route again."""

    def __init__(self, provider: str) -> None:
        super().__init__({})
        self.provider = provider

    async def on_request_headers(self, ex: Context) -> None:
        ex.set_request_header(PROVIDER_HEADER, self.provider)
        ex.clear_route_cache = True
