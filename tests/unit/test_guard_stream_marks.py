"""Boundaries in a streamed text (`StreamMasker.mark`, `MaskerChain.mark`): texts a client
reads joined (adjacent Anthropic content blocks) go through one chain with a boundary between
them, and for any chunking each text gets what the whole-reply rule gives it
(`webhook.split_masked` over the joined text, guard after guard): its own characters, a
value's placeholder in the text where the value starts, the rest of the value taken out of
the texts after."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from extproc.guards.chains import MaskerChain
from extproc.guards.joined import Cut
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.guards.webhook import split_masked

EMAIL = Scanner(builtin(["email"]))
SECRETS = Scanner(builtin(["aws_access_key", "card"]))


def expected(texts: list[str], scanners: list[Scanner]) -> list[str]:
    for scanner in scanners:
        joined = "".join(texts)
        spans = sorted(scanner.find(joined), key=lambda s: (s.start, s.end))
        texts = split_masked(texts, [
            Cut(s.start, s.end, scanner.mask(joined[s.start:s.end],
                                             [s.__class__(0, s.end - s.start, s.detector)]))
            for s in spans])
    return texts


def streamed(texts: list[str], cuts: list[list[int]], scanners: list[Scanner]) -> list[str]:
    """Each text fed in pieces (cut at `cuts`), a boundary marked after each but the last;
    the chain's output split at the boundaries as they are released."""
    chain = MaskerChain([StreamMasker(s) for s in scanners])
    out: list[str] = [""]   # what belongs to each text so far
    pending = 0             # boundaries marked, not yet placed

    def take(released: str) -> None:
        nonlocal pending
        prev = 0
        for cut in chain.cuts if pending else []:
            out[len(out) - 1 - pending] += released[prev:cut]
            pending -= 1
            prev = cut
        out[len(out) - 1 - pending] += released[prev:]

    for i, text in enumerate(texts):
        points = sorted({min(c, len(text)) for c in cuts[i]})
        prev = 0
        for p in [*points, len(text)]:
            take(chain.feed(text[prev:p]))
            prev = p
        if i < len(texts) - 1:
            out.append("")
            if not chain.mark():
                pending += 1
    take(chain.finish())
    assert pending == 0 and chain.pending == 0
    return out


PIECE = st.text(st.sampled_from("ab.@x-AKIA0123456789 "), max_size=30)


@given(texts=st.lists(PIECE, min_size=1, max_size=4),
       cuts=st.lists(st.lists(st.integers(0, 30), max_size=4), min_size=4, max_size=4))
@example(texts=["write to jane.roe@", "example.org now"], cuts=[[], [], [], []])
@example(texts=["a jane@exa", "mp", "le.org b"], cuts=[[3], [1], [], []])
@example(texts=["key AKIAIOSF", "ODNN7EXAMPLE x"], cuts=[[], [2], [], []])
def test_each_text_gets_what_the_whole_rule_gives_it(texts: list[str],
                                                     cuts: list[list[int]]) -> None:
    for scanners in ([EMAIL], [SECRETS, EMAIL]):
        assert streamed(texts, cuts, scanners) == expected(texts, scanners)


def test_a_value_across_a_boundary_falls_before_it_whole() -> None:
    chain = MaskerChain([StreamMasker(EMAIL)])
    first = chain.feed("write to jane.roe@")
    assert not chain.mark()   # the address may go on: held, the boundary with it
    second = chain.feed("example.org now")
    (cut,) = chain.cuts
    assert first + second[:cut] == "write to <EMAIL>"
    assert second[cut:] + chain.finish() == " now" and chain.pending == 0


def test_a_boundary_after_nothing_held_is_placed_at_once() -> None:
    chain = MaskerChain([StreamMasker(SECRETS), StreamMasker(EMAIL)])
    assert chain.mark() and chain.pending == 0
    assert chain.feed("x jane@") == "x "   # held by the second masker
    assert not chain.mark() and chain.pending == 1
