"""Budgets and input the provider keeps: a request that has the provider add context it
stored earlier (the Responses API's `previous_response_id`, `conversation` and
`item_reference` inputs, a stored `prompt` by id, Gemini's `cachedContent`) is billed for
that context as input, but it never crosses the gateway, so the prompt estimate leaves it
out (sans-IO). Settling charges the real usage afterwards, but admission has reserved next
to nothing: any number of such requests sent at once each fit the budget, and together they
spend many times it before the first one settles (found by the spend audit: 2,000
concurrent follow-ups to a 200k-token conversation charged 2,000 USD against a 1 USD
budget). Files by id or URL are the same kind of input; they are left to the guards'
`allow_unread` and documented, not refused here.

Default deny, as for replies made later (`deferred`): on a route with token or spend budgets
such a request is refused (400, in the provider's format, saying why) unless the route sets
`allow_stored_context: true`, which accepts that overshoot (bounded by how many such
requests a client sends at once; each is still charged in full when it settles).
"""

from __future__ import annotations

from typing import Any

from ..policy import Reject


def stored_context(endpoint: str | None, doc: dict[str, Any]) -> str | None:
    """What of `doc` the provider adds from its own storage, as a refusal names it; None
    for a request that carries its whole input."""
    if endpoint == "responses":
        if doc.get("previous_response_id") is not None:
            return "previous_response_id (an earlier response's whole conversation)"
        if doc.get("conversation") is not None:
            return "conversation (a stored conversation's items)"
        prompt = doc.get("prompt")
        if isinstance(prompt, dict) and prompt.get("id") is not None:
            return "prompt.id (a stored prompt)"
        items = doc.get("input")
        if isinstance(items, list) and any(isinstance(item, dict) and
                                           item.get("type") == "item_reference"
                                           for item in items):
            return "an item_reference input (a stored item)"
    elif endpoint in ("generateContent", "streamGenerateContent", "countTokens"):
        for key in ("cachedContent", "cached_content"):
            if doc.get(key) is not None:
                return f"{key} (content cached at the provider)"
    return None


def refuse_stored_context(why: str, refused: Any) -> None:
    """Refuse a request whose input the provider keeps (`refused`: the decision's metric)."""
    refused()
    raise Reject(400, f"request refused: {why}; the provider adds it as input the gateway "
                 "never sees, so this route's token and spend budgets cannot reserve it "
                 "(send the input in the request, or set allow_stored_context on the route)",
                 details="extproc_stored_context")
