"""Provider-neutral helpers for the mock LLM: reply text, pieces, token counts, ids, JSON.

Everything here is pure (no IO); the per-provider format modules and the server build on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_REPLY = (
    "This is a deterministic reply from the mock LLM provider. It streams a fixed paragraph "
    "of plain English so that tests can check framing, token accounting and reassembly "
    "without a real model. Every word arrives as its own piece, whitespace stays attached, "
    "and joining all the pieces gives back exactly this text. Nothing here is generated; "
    "the same request always gets the same answer."
)

_PIECE_RE = re.compile(r"\s*\S+\s*", re.DOTALL)


def split_pieces(text: str) -> list[str]:
    """Split text into ~one-word pieces whose concatenation is exactly ``text``.

    Whitespace stays attached to the word before it (leading whitespace to the first
    word); a whitespace-only text is one piece, an empty text has no pieces.
    """
    if not text:
        return []
    pieces = _PIECE_RE.findall(text)
    return pieces or [text]


def count_prompt_tokens(texts: list[str]) -> int:
    """Deterministic prompt token count: ceil(total characters / 4), at least 1."""
    chars = sum(len(t) for t in texts)
    return max(1, math.ceil(chars / 4))


def count_completion_tokens(text: str) -> int:
    """Completion tokens: the number of pieces the reply is streamed in."""
    return len(split_pieces(text))


def decode_header_text(value: str) -> str:
    """Recover the UTF-8 text of an HTTP header value.

    Servers decode raw header bytes either as latin-1 (then UTF-8 text shows up as mojibake,
    which we re-decode) or as UTF-8 with ``surrogateescape`` (then invalid bytes show up as
    lone surrogates, which we read as latin-1). Already-correct text is returned unchanged.
    """
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        raw = value.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


def make_id(seed: str | bytes, length: int = 24) -> str:
    """A deterministic hex id derived from ``seed``."""
    data = seed.encode("utf-8") if isinstance(seed, str) else seed
    return hashlib.sha256(data).hexdigest()[:length]


def dump_compact(obj: Any) -> str:
    """Compact JSON (no spaces), UTF-8 characters kept as-is, like the real APIs send."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def dump_escaped(obj: Any) -> str:
    """Compact JSON whose string values (keys kept) have every character written as a
    ``\\uXXXX`` escape (surrogate pairs beyond the BMP): valid JSON that spells none of its
    values, as a model may write tool-call arguments."""
    if isinstance(obj, str):
        units = obj.encode("utf-16-be", "surrogatepass")
        return '"' + "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}"
                             for i in range(0, len(units), 2)) + '"'
    if isinstance(obj, dict):
        return "{" + ",".join(f"{dump_compact(k)}:{dump_escaped(v)}"
                              for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(dump_escaped(v) for v in obj) + "]"
    return dump_compact(obj)


def dump_pretty(obj: Any) -> str:
    """Two-space indented JSON, as Google and OpenAI send non-streamed bodies."""
    return json.dumps(obj, ensure_ascii=False, indent=2)


@dataclass(frozen=True)
class Reply:
    """What to answer: the text plus the ids/model/time the response should carry."""

    text: str
    model: str
    response_id: str
    created: float
    prompt_tokens: int
    pieces: list[str] = field(default_factory=list)

    @classmethod
    def make(
        cls, text: str, model: str, response_id: str, created: float, prompt_tokens: int
    ) -> Reply:
        """Build a Reply, splitting ``text`` into its stream pieces."""
        return cls(text, model, response_id, created, prompt_tokens, split_pieces(text))

    @property
    def completion_tokens(self) -> int:
        """Completion tokens = number of text pieces."""
        return len(self.pieces)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class RequestError(ValueError):
    """The request body is malformed; ``param`` names the offending field if known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object, else raise RequestError."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object")
    return data


def texts_of_parts(parts: Any, key: str = "text") -> list[str]:
    """The text strings of a list of content parts/blocks (non-text parts are skipped)."""
    if not isinstance(parts, list):
        return []
    out: list[str] = []
    for part in parts:
        if isinstance(part, dict):
            value = part.get(key)
            if isinstance(value, str) and part.get("type", "text") in ("text", "input_text"):
                out.append(value)
        elif isinstance(part, str):
            out.append(part)
    return out
