"""Budgets and replies made later: a request whose reply the provider generates after
answering it, to be fetched elsewhere (the Responses API's ``background: true``,
`Adapter.deferred_reply`), is answered ``queued`` with no usage and no output. The output it
asks for never crosses the gateway, so settling on what crossed would charge the prompt
estimate only, and a client could spend any number of tokens past its budget.

Default deny: on a route with token or spend budgets such a request is refused (400, in the
provider's format, saying why), unless the route sets ``allow_background: true``. Then it is
let through, and once the provider accepts it (a 2xx) it is marked as a reply whose usage
goes unread (`llm.policy.unread`, reason ``deferred``: the access log, the metadata and
``extproc_usage_unread_total`` say so), so it settles on at least its whole reservation
(prompt estimate plus max output), as every reply whose usage the gateway could not read
does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..llm.policy import DEFERRED, unread
from ..policy import Reject

if TYPE_CHECKING:
    from ..context import Context

#: where an admitted deferred request keeps why, until the provider's answer
_STATE = "deferred_reply"


def admit_deferred(ex: Context, why: str | None, allowed: bool,
                   refused: Callable[[], None]) -> None:
    """`why` (the adapter's `deferred_reply`, None for a reply answered in full): let it
    through when `allowed` (`answered` marks it), else call `refused` (the decision's
    metric) and refuse it."""
    if why is None:
        return
    if allowed:
        ex.state[_STATE] = why
        return
    refused()
    raise Reject(400, f"request refused: {why}; its usage would never cross the gateway, "
                 "so this route's token and spend budgets could not charge it: ask for the "
                 "reply in this request instead", details="extproc_deferred_reply")


def answered(ex: Context) -> None:
    """On the provider's answer: an admitted deferred request that the provider accepted
    (2xx) has its usage unread, whatever its answer says (`usage: null`), so it settles on
    at least its whole reservation; one refused upstream costs nothing, as ever."""
    why = ex.state.pop(_STATE, None)
    if why is not None and 200 <= ex.status < 300:
        unread(ex, why, DEFERRED)
