"""Texts of a whole reply that a client reads joined, masked as one text (sans-IO).

A Gemini candidate's text parts, an Anthropic message's text blocks, a Responses reply's
`output_text` parts: each SDK shows them as one text (`response.text`, `get_final_text()`,
`output_text`), so a value split between two of them is a value the client reads. Each is
masked on its own too (`replies`); here the group is read joined, as a stream's masker reads
them (found by review: `jane.roe@` and `example.org` in two parts passed a whole reply,
masked in the same reply streamed). A match across a boundary is replaced where it starts;
the rest of it is taken out of the texts after.
"""

from __future__ import annotations

from collections.abc import Sequence

from .detectors import Span
from .settings import Guard

#: a group: the (holder, key) of each text, in the order the client joins them
Group = list[tuple[dict, str]]


def mask_joined(guards: Sequence[Guard], texts: list[str],
                masked: dict[str, set[str]]) -> list[str]:
    """`texts` masked by each guard as one text, each keeping its place; what each guard
    found is added to `masked`."""
    for guard in guards:
        assert guard.scanner is not None
        joined = "".join(texts)
        spans = sorted(guard.scanner.find(joined), key=lambda s: (s.start, s.end))
        if not spans:
            continue
        masked.setdefault(guard.name, set()).update(s.detector for s in spans)
        out: list[str] = []
        low = 0
        for text in texts:
            high = low + len(text)
            pieces: list[str] = []
            pos = low
            for span in spans:
                if span.end <= low or span.start >= high:
                    continue
                if span.start >= low:   # starts here: replaced here
                    pieces.append(joined[pos:span.start])
                    pieces.append(guard.scanner.mask(
                        joined[span.start:span.end],
                        [Span(0, span.end - span.start, span.detector)]))
                pos = max(pos, min(span.end, high))   # (its rest here or after: taken out)
            pieces.append(joined[pos:high])
            out.append("".join(pieces))
            low = high
        texts = out
    return texts

