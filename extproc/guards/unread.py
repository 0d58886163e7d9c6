"""Default deny for what no guard can read (`providers.unread`: an image, audio, a video, a
PDF, a file the provider fetches): a request or a whole reply that carries such a thing is
refused with a 400 in the provider's format, naming what and which guard, unless every guard
that would have to read it lets its kind pass unread (`allow_unread`).

Four places ask: a prompt's inputs (`refuse_unread_inputs`: the guards that read the input's
role), a request for a reply in media (`refuse_asked_media`: OpenAI's audio, the image
generation tool, Gemini's image or audio modality; the guards that read replies, before a
token is spent), a request whose reply is made later and fetched elsewhere
(`refuse_deferred_reply`: the Responses API's background mode, which no reply guard would
ever see, unless the route's `allow_background` lets it through) and a whole reply
(`refuse_reply_media`: what the model sent anyway; the reply guards). A stream's events
are checked by the reframers (`event_stream.media`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..policy import Reject
from ..providers.unread import NAMES, inputs_of
from .decisions import decide
from .settings import Guard

if TYPE_CHECKING:
    from ..context import Context
    from ..providers.base import Adapter


def _check(ex: Context | None, guards: Iterable[Guard], kind: str, direction: str,
           stats: dict[str, int], counter: str, what: str, role: str | None = None) -> None:
    """Refuse `kind` (`what` names it and says where it is) unless every guard of `guards`
    that reads `role` (every one for None) lets it pass: count it, record the decision,
    raise."""
    for guard in guards:
        if (role is None or guard.reads(role)) and kind not in guard.allow_unread:
            stats[counter] += 1
            if ex is not None:
                decide(ex, guard.name, direction, "rejected", f"unread_{kind}")
            raise Reject(400, f"{what}, which guard '{guard.name}' "
                         "cannot read and does not let pass unread",
                         details="extproc_guard_unreadable")


def refuse_unread_inputs(ex: Context, guards: Iterable[Guard], stats: dict[str, int],
                         adapter: Adapter, doc: Any, body: bytes) -> None:
    """A prompt input no guard can read (an image, a PDF, a file by id or URL), unless every
    prompt guard that reads its role lets its kind pass (`providers.unread.inputs_of`)."""
    guards = tuple(guards)
    for role, kind in inputs_of(adapter, body, doc, ex.state):
        _check(ex, guards, kind, "request", stats, "rejected",
               f"request refused: the prompt carries {NAMES[kind]} in a {role} message", role)


def refuse_asked_media(ex: Context, guards: Iterable[Guard], stats: dict[str, int],
                       adapter: Adapter, doc: Any) -> None:
    """A request for a reply in media no guard reads (`Adapter.asks_media`), unless every
    guard that reads replies lets its kind pass: refused before any token is spent."""
    guards = tuple(guards)
    for kind in adapter.asks_media(doc):
        _check(ex, guards, kind, "request", stats, "rejected",
               f"request refused: the reply would carry {NAMES[kind]}")


def refuse_deferred_reply(ex: Context, guard: str | None, stats: dict[str, int],
                          adapter: Adapter, doc: Any, allowed: bool) -> None:
    """A request whose reply is generated later and fetched elsewhere
    (`Adapter.deferred_reply`), on a route whose guards read replies (`guard` names the
    first): the reply would never cross them. Refused unless the route allows it."""
    why = adapter.deferred_reply(doc) if guard is not None and not allowed else None
    if why is None or guard is None:
        return
    stats["rejected"] += 1
    decide(ex, guard, "request", "rejected", "deferred_reply")
    raise Reject(400, f"request refused: {why}; the reply would never cross the gateway, "
                 f"where guard '{guard}' reads replies: ask for the reply in this request "
                 "instead", details="extproc_deferred_reply")


def refuse_reply_media(ex: Context | None, guards: Iterable[Guard], stats: dict[str, int],
                       adapter: Adapter, doc: Any) -> None:
    """A whole reply carrying media no guard reads (`Adapter.reply_media`: a generated
    image, speech, a PDF a server tool fetched), unless every reply guard lets its kind
    pass."""
    guards = tuple(guards)
    for kind in adapter.reply_media(doc):
        _check(ex, guards, kind, "response", stats, "response_rejected",
               f"response blocked: the reply carries {NAMES[kind]}")
