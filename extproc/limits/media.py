"""What a request's input media (an image, audio, a video, a PDF, a file by URL) counts in
the token and spend charges made without the provider's usage report (sans-IO).

A provider bills input media by what it is (an image by its size in tiles or patches, audio
and video by their length, a PDF by its pages), which its bytes do not bound, so the prompt
estimate leaves it out and the reservation holds none of it. The provider's usage report
says what it cost, and settling charges that. But a request whose report is never read (a
stream the client leaves before its last chunk, no reply, a reply the gateway cannot read)
settles on what the gateway counted, and that held no media: 500 images in one request,
left after the first token, cost the budget 5 tokens where the provider billed 4.25 million
(found by review). So each item counts a bound of its own in those charges,
`limits.input_media_tokens` by kind, and a report read replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..providers.unread import inputs_of

#: tokens one input item of each kind (`providers.unread.KINDS`) counts where no report says
#: what it cost: an image as the providers bill their largest (Claude about 1,600; Gemini
#: 258 to 1,120; OpenAI's gpt-4o and later about 1,500 to 2,500, its gpt-4o-mini far more at
#: a far lower price), audio as two minutes of it, a video as a minute, a document as a few
#: pages; what a hosted tool fetches is the tool's cost, not input (`spend-budgets.md`)
DEFAULTS: dict[str, int] = {"image": 2500, "audio": 4000, "video": 16000, "document": 8000,
                            "file": 8000, "fetched": 0}


def media_tokens(adapter: Any, body: bytes, doc: Any, per_kind: Mapping[str, int],
                 memo: dict[str, Any] | None = None) -> int:
    """The tokens `doc`'s input media count (`per_kind` of each item): the inputs the guards
    refuse unless allowed (`inputs_of`; one walk of the request for both, with `memo`)."""
    return sum(per_kind.get(kind, 0) for _, kind in inputs_of(adapter, body, doc, memo))
