"""Inline file data the model reads as text: a Gemini/Vertex ``inlineData`` part (or
``inline_data``), an Anthropic document's base64 source, or an OpenAI file part's
``file_data`` data URL (``data:text/csv;base64,...``), whose media type is text
(``text/plain``, ``text/csv``, ``text/html``, ``application/json``, source code...), its
content in base64.

The model reads such a part as it reads a text part, so the guards must too, or a prompt
would carry an address or a key past them in base64. `InlineText` presents the part as a text
slot (``ref[None]``): the data decoded to read it, and encoded back (standard base64) when a
guard rewrites it; `DataUrlText` does the same for a data URL. Data that is not base64, or
not text in an 8-bit charset whatever its label (UTF-16 or UTF-32, a PDF or another binary
file labelled text), cannot be read: `unreadable` finds such parts, so the request is
refused rather than sent unread. Binary media (images, audio, video, PDF) carry no text the
gateway reads: they are `providers.unread`'s.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

#: the spellings of an inline data part and of its media type
BLOBS = ("inlineData", "inline_data")
_MIME = ("mimeType", "mime_type")
#: application/ media types whose content is text
_TEXT_APPLICATION = frozenset({
    "application/json", "application/xml", "application/javascript",
    "application/x-javascript", "application/typescript", "application/x-typescript",
    "application/x-python", "application/x-python-code", "application/rtf",
    "application/x-sh", "application/sql", "application/yaml", "application/x-yaml",
    "application/csv", "application/x-ndjson", "application/ld+json", "application/x-tex",
})


#: the charsets whose text the gateway reads (as UTF-8, which ASCII is part of)
_READ_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def is_text_type(mime: Any) -> bool:
    """True for a media type whose content the model reads as text, in a charset the gateway
    reads: text in another one (`charset=utf-16`) would be read as garbage while the provider
    may decode it, so it is an input no guard reads (`providers.unread`)."""
    if not isinstance(mime, str):
        return False
    base, _, params = mime.partition(";")
    base = base.strip().lower()
    if not (base.startswith("text/") or base in _TEXT_APPLICATION
            or base.endswith(("+json", "+xml"))):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and \
                value.strip().strip('"').lower() not in _READ_CHARSETS:
            return False
    return True


#: what starts a file that is no text in an 8-bit charset, whatever its label says: a
#: UTF-16 or UTF-32 byte order mark (the provider may decode it; the guards would read
#: every other byte), a PDF
_NOT_8BIT_TEXT = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"%PDF-")


def _raw(data: str) -> bytes | None:
    """base64 (standard or URL-safe, padding optional) to bytes; None if it is not base64."""
    text = "".join(data.split())
    urlsafe = "-" in text or "_" in text
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4),
                                altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode(data: str) -> str | None:
    """base64 to text, undecodable UTF-8 bytes kept as surrogates (so an unchanged text
    encodes back to the same bytes); None if `data` is not base64. What is read of a reply
    (every byte a guard may mask); a prompt must also be `readable`."""
    raw = _raw(data)
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


def readable(raw: bytes) -> bool:
    """Whether bytes of a file labelled text are text the guards read as the provider
    would: no NUL byte (UTF-16 or UTF-32 text, a binary file such as a PDF labelled
    `text/plain`), no UTF-16/32 byte order mark, no PDF."""
    return b"\x00" not in raw and not raw.startswith(_NOT_8BIT_TEXT)


class _Base64Text:
    """Base64 data of a text media type as a text slot: ``ref[None]`` is the decoded text
    (empty when the data is not base64: `unreadable` refuses such a request first), and
    storing a text there writes it back as base64. A subclass says where the data is."""

    __slots__ = ()

    def _data(self) -> str | None:
        raise NotImplementedError

    def _store(self, data: str) -> None:
        raise NotImplementedError

    def __getitem__(self, _key: None) -> str:
        data = self._data()
        return (decode(data) or "") if data is not None else ""

    def __setitem__(self, _key: None, text: str) -> None:
        self._store(base64.b64encode(text.encode("utf-8", "surrogateescape")).decode())

    def undecodable(self) -> bool:
        """Not base64, or not text the guards read as the provider would (`readable`): a
        prompt carrying it is refused."""
        data = self._data()
        if data is None:
            return False
        raw = _raw(data)
        return raw is None or not readable(raw)


class InlineText(_Base64Text):
    """An inline text part's (or a base64 document source's) ``data``."""

    __slots__ = ("blob",)

    def __init__(self, blob: dict[str, Any]) -> None:
        self.blob = blob

    def _data(self) -> str | None:
        return self.blob["data"]  # type: ignore[no-any-return]

    def _store(self, data: str) -> None:
        self.blob["data"] = data

    def undecodable(self) -> bool:
        # `mimeType` and `mime_type` both given, and not alike: which one the provider
        # reads is its parser's choice (text to the guards, a PDF to the model)
        types = [self.blob[k] for k in _MIME if k in self.blob]
        if len(types) > 1 and len({str(t).strip().lower() for t in types}) > 1:
            return True
        return super().undecodable()


def is_text_blob(blob: Any) -> bool:
    """True for inline data that holds text: a media type of text and string data (with
    both spellings of the media type, when either says text: `InlineText.undecodable`
    then refuses two that differ)."""
    return isinstance(blob, dict) and isinstance(blob.get("data"), str) \
        and any(is_text_type(blob.get(key)) for key in _MIME)


def data_url(value: Any) -> tuple[str, str] | None:
    """(prefix up to the comma, base64 data) of a base64 data URL of a text media type."""
    if not isinstance(value, str) or not value.startswith("data:"):
        return None
    head, sep, data = value.partition(",")
    if not sep or not head.endswith(";base64") or not is_text_type(head[5:-7]):
        return None
    return head + ",", data


class DataUrlText(_Base64Text):
    """A base64 data URL of a text media type at ``holder[key]``, written back under the
    same prefix."""

    __slots__ = ("holder", "key")

    def __init__(self, holder: dict[str, Any], key: str) -> None:
        self.holder = holder
        self.key = key

    def _data(self) -> str | None:
        found = data_url(self.holder[self.key])
        return found[1] if found else None

    def _store(self, data: str) -> None:
        found = data_url(self.holder[self.key])
        self.holder[self.key] = (found[0] if found else "data:text/plain;base64,") + data


def file_data_slot(holder: Any) -> DataUrlText | None:
    """The slot of an OpenAI file's ``file_data`` (a chat ``file`` part's ``file``, or a
    Responses ``input_file`` part) when it is a data URL of a text media type."""
    if isinstance(holder, dict) and data_url(holder.get("file_data")) is not None:
        return DataUrlText(holder, "file_data")
    return None


def unreadable(slot_holders: Any) -> bool:
    """True if any of the holders is base64 text data that does not decode."""
    return any(isinstance(holder, _Base64Text) and holder.undecodable()
               for holder in slot_holders)
