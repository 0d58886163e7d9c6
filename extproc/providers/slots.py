"""The guards' view of the texts a model writes in a stream event: where each one is
(``TextSlot``: the piece it continues and its holder in the parsed event), what an event ends
(``EventTexts``), and helpers for adapters that build them (``Adapter.stream_texts``); and
the mark of a call's name among the texts of a whole reply (``Name``)."""

from __future__ import annotations

from collections.abc import Container
from typing import Any, NamedTuple

#: one streamed text of a reply: (choice / content block / candidate index, field, sub-index),
#: e.g. (0, "content", 0), (1, "tool", 2) (choice 1, tool call 2), (3, "thinking", 0)
Piece = tuple[int, str, int]
#: the fields of the pieces whose text is JSON source, tool-call arguments (OpenAI tool calls
#: and legacy function calls, Anthropic ``input_json_delta``): guards read them decoded,
#: token by token (``codecs.jsontext``)
JSON_PIECES = frozenset({"tool", "function_call", "partial_json"})
#: the field of a piece that is a tool's or function's name the model wrote (a whole slot)
NAME_PIECE = "name"


class Name(str):
    """A tool's or a function's name the model wrote in a reply (a call's name), as an
    adapter hands it to a rewriting fn: guards read it as they read the names of a prompt
    (`guards.names`), as written and with its underscores as spaces. A client dispatches a
    call by its name, but a name a guard finds something in was never one the prompt
    declared (the prompt's names are guarded too), so it is masked like any text."""

    __slots__ = ()


class TextSlot(NamedTuple):
    """Where one text the model wrote sits in a parsed stream event: the piece it continues,
    and the string at ``holder[key]`` (holder is the dict or list of the event's JSON that
    holds it). A ``whole`` slot is a complete value that no later event continues, checked
    on its own: a string (Gemini code), or a JSON object or array (a Gemini
    ``functionCall.args``, an Anthropic tool's ``input``), whose keys and numbers the model
    wrote as much as its strings."""

    piece: Piece
    holder: Any
    key: Any
    whole: bool = False


class EventTexts:
    """What one stream event means to a guard: its text slots in event order, the pieces it
    ends (by their first member: a choice, block or candidate index), the pieces it ends
    one by one (`ends_pieces`: a Vertex streamed argument whose last piece this is) and
    whether it ends every piece (a stream-level stop or error), and the kinds of the media
    it carries that no guard can read (`providers.unread`: a generated image, audio), in
    event order."""

    __slots__ = ("ends", "ends_all", "ends_pieces", "slots", "unread")

    def __init__(self, slots: list[TextSlot] | None = None, ends: tuple[int, ...] = (),
                 ends_all: bool = False) -> None:
        self.slots: list[TextSlot] = [] if slots is None else slots
        self.ends = ends
        self.ends_all = ends_all
        #: tuples, empty on nearly every event: no list made per event for them
        self.unread: tuple[str, ...] = ()
        self.ends_pieces: tuple[Piece, ...] = ()


def name_slot(slots: list[TextSlot], piece: Piece, holder: dict[str, Any],
              key: str = "name") -> None:
    """Add the name of a call at ``holder[key]`` (a non-empty string) as a whole slot of
    the piece (field `NAME_PIECE`): a provider sends a call's name in one event."""
    if text_field(holder, key):   # (a list or an object: NotText, the event unreadable)
        slots.append(TextSlot(piece, holder, key, whole=True))


def string_slots(holder: Any, key: Any,
                 skip: frozenset[str] = frozenset()) -> list[tuple[Any, Any]]:
    """(holder, key) of every string inside ``holder[key]`` (itself if it is a string), in
    serialisation order, but those under an object key in `skip` (at any depth). Iterative
    and cycle-safe."""
    out: list[tuple[Any, Any]] = []
    stack: list[tuple[Any, Any]] = [(holder, key)]
    seen: set[int] = set()
    while stack:
        parent, slot = stack.pop()
        item = parent[slot]
        if isinstance(item, str):
            out.append((parent, slot))
        elif isinstance(item, dict | list) and id(item) not in seen:
            seen.add(id(item))
            slots = [k for k in item if k not in skip] if isinstance(item, dict) \
                else range(len(item))
            stack.extend((item, s) for s in reversed(slots))
    return out


def field_strings(obj: dict[str, Any], known: Container[Any], skip: frozenset[str]
                  ) -> list[tuple[Any, Any]]:
    """(holder, key) of every string in the fields of `obj` but those in `known` (read field
    by field elsewhere, or holding no text), at any depth but under a key in `skip`, in
    serialisation order: how a part, block or field of a kind the code does not know is read
    whole, so it fails closed."""
    return [slot for key, value in obj.items()
            if key not in known and isinstance(value, str | dict | list)
            for slot in string_slots(obj, key, skip)]


class UnreadableEvent(ValueError):
    """A stream event the guards cannot read the way a client reads it: the guards end the
    stream refused (`guards.side_texts.event_texts`)."""


class NotText(UnreadableEvent):
    """A field where the provider writes text holding another value, a list or an object
    (found by review: the Anthropic SDK builds its events without validation and shows such
    a `delta.text` whole, google-genai quotes it in its error, while the guards read text
    fields as strings)."""


def text_field(holder: dict[str, Any], key: str) -> str | None:
    """``holder[key]`` when it is a non-empty string; None when it is missing, null or
    empty (a falsy value shows nothing); `NotText` for any other value."""
    value = holder.get(key)
    if isinstance(value, str):
        return value or None
    if value:
        raise NotText(f"the field {key!r} holds a {type(value).__name__}, not text")
    return None


class Unmaskable(UnreadableEvent):
    """A text a guard would change where no change is possible (`FixedKey`)."""


class FixedKey:
    """A key of an object that a client merges across events by its keys, as a slot: it
    reads as the key and refuses any change (`Unmaskable`: the event is unreadable), since
    a renamed key would split what the client joins, and a rest event would repeat the old
    name (found by review: a masked key came back as it was)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, _key: None) -> str:
        return self.name

    def __setitem__(self, _key: None, text: str) -> None:
        if text != self.name:
            raise Unmaskable("a key a guard would mask in an object clients merge by key")


class BadIndex(UnreadableEvent):
    """An event's index that is not a non-negative integer. A client reads `-1` as the last
    choice or block and `true` or `"1"` as the second (the SDKs index a list with it, their
    models coerce it), so the pieces the guards keep apart would be one text to the client:
    the guards refuse such an event as unreadable."""


class NamedApart(UnreadableEvent):
    """An event whose SSE name and data `type` disagree, where the provider always writes
    them equal (Anthropic): a client may go by either, so the guards refuse it."""


def index_value(value: Any) -> int:
    """An index as every client reads it: a non-negative integer (an integral float, as a
    lenient model coerces it, reads as that integer); 0 when missing (null); `BadIndex`
    otherwise."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    raise BadIndex(f"an index that is not a non-negative integer: {str(value)[:20]!r}")


def piece_index(obj: dict[str, Any]) -> int:
    """The index of a choice, content block or candidate: its ``index`` (`index_value`)."""
    return index_value(obj.get("index"))
