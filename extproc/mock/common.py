"""Provider-neutral helpers for the mock LLM: reply text, pieces, token counts, ids, JSON,
and the generated media.

The media are one fixed payload per kind, base64 (standard alphabet, padded) as the providers
send them: ``IMAGE_B64`` (a 1x1 PNG) and ``AUDIO_B64`` (10 ms of a 440 Hz tone, a WAV file:
mono 16-bit PCM at 24 kHz), which every image or audio reply carries byte for byte, and
``split_b64`` cuts one into stream pieces that each decode on their own.

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

#: the image of every generated-image reply: a 1x1 RGBA PNG (70 bytes), base64
IMAGE_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mPQr9//HwAEuwJtQWZp3AAAAABJRU5Er"
    "kJggg=="
)
IMAGE_MIME = "image/png"
#: the audio of every generated-audio reply: a WAV file (524 bytes) of 10 ms of a 440 Hz tone,
#: mono 16-bit PCM at 24 kHz, base64
AUDIO_B64 = (
    "UklGRgQCAABXQVZFZm10IBAAAAABAAEAwF0AAIC7AAACABAAZGF0YeABAAAAAJcDIweWCuUNBRHrE44W5BjmGowc"
    "0h2yHisfOR/eHhke7xxiG3kZOReqFNYRxA6BCxcIkQT7AGP90/lY9v7y0O/Z7CPqt+ed5d3jfeKB4ezgwOD/4Kfh"
    "tuIo5PnlIuic6l7tYPCX8/j2d/oK/qMBNgW4CBwMVw9eEicVqBfZGbIbLR1FHvYePh8cH5Eenh1HHI8afhgZFmkT"
    "eBBODfgJfwbxAlj/wvs6+M30hvFv7pXr/+i45sbkMeP+4TDhy+DQ4D7hFeJS4/Dk6eY46dTrte7Q8Rv1jPgV/Kz/"
    "RAPRBkcKmg2/EKsTVBaxGLsaahy4HaIeJB88H+oeLx4OHYobqRlxF+kUGhIOD88LZwjjBE8Btv0l+qj2SvMY8Bvt"
    "X+rs58vlAuSZ4pPh9eDA4PXgk+GZ4gLky+Xs51/qG+0Y8ErzqPYl+rb9TwHjBGcIzwsODxoS6RRxF6kZihsOHS8e"
    "6h48HyQfoh64HWocuxqxGFQWqxO/EJoNRwrRBkQDrP8V/Iz4G/XQ8bXu1Os46enm8ORS4xXiPuHQ4MvgMOH+4THj"
    "xuS45v/oletv7obxzfQ6+ML7WP/xAn8G+AlODXgQaRMZFn4YjxpHHJ4dkR4cHz4f9h5FHi0dshvZGagXJxU="
)
#: output tokens a generated image counts for (Gemini's figure for a 1024x1024 image)
IMAGE_TOKENS = 1290
#: output tokens the generated audio counts for (a small fixed figure)
AUDIO_TOKENS = 25


def split_b64(data: str, size: int) -> list[str]:
    """Base64 text in pieces of ``size`` characters (rounded down to a multiple of 4, at
    least 4): each piece decodes on its own and their concatenation is exactly ``data``."""
    size = max(4, size - size % 4)
    return [data[i:i + size] for i in range(0, len(data), size)]


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
