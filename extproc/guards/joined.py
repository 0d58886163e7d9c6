"""Texts of a whole reply that a client reads joined, masked as one text (sans-IO).

A Gemini candidate's text parts, an Anthropic message's text blocks, a Responses reply's
`output_text` parts: each SDK shows them as one text (`response.text`, `get_final_text()`,
`output_text`), so a value split between two of them is a value the client reads. Each is
masked on its own too (`replies`); here the group is read joined, as a stream's masker reads
them (found by review: `jane.roe@` and `example.org` in two parts passed a whole reply,
masked in the same reply streamed). A match across a boundary is replaced where it starts;
the rest of it is taken out of the texts after (a text left with nothing holds the
placeholder too). Webhook guards get each group's joined text instead of its texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .detectors import Span
from .settings import Guard
from .webhook import DEFAULT_PLACEHOLDER, split_masked


class Cut(NamedTuple):
    """A value to replace in a joined text: its span there and its placeholder."""

    start: int
    end: int
    placeholder: str


def mask_joined(guards: Sequence[Guard], texts: list[str],
                masked: dict[str, set[str]]) -> list[str]:
    """`texts` masked by each guard as one text, each keeping its place; what each guard
    found is added to `masked`."""
    for guard in guards:
        scanner = guard.scanner
        assert scanner is not None
        joined = "".join(texts)
        spans = sorted(scanner.find(joined), key=lambda s: (s.start, s.end))
        if not spans:
            continue
        masked.setdefault(guard.name, set()).update(s.detector for s in spans)
        texts = split_joined(texts, [
            Cut(s.start, s.end, scanner.mask(joined[s.start:s.end],
                                             [Span(0, s.end - s.start, s.detector)]))
            for s in spans])
    return texts


def split_joined(texts: list[str], cuts: Sequence[Cut]) -> list[str]:
    """`texts` with the `cuts` of their joined text (sorted, apart) made, each in the text
    where it starts, the rest of it taken out of the texts after (`webhook.split_masked`).
    A text that lay wholly inside a value holds its placeholder too rather than nothing:
    a provider refuses an empty text part or block sent back as history (found by
    review)."""
    out = split_masked(texts, list(cuts))
    low = 0
    for i, text in enumerate(texts):
        if text and not out[i]:   # (a webhook's empty placeholder: the default one here)
            out[i] = next(c.placeholder for c in cuts if c.start <= low < c.end) \
                or DEFAULT_PLACEHOLDER
        low += len(text)
    return out
