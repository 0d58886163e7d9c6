"""StreamMasker on long held text: once it held `batch` characters or more after a look, it
looks at the held text again only after it grew by an eighth. What goes out is the same for
any chunking and any `batch` (the whole text masked), the held text stays under the bound and
an eighth, a reject still releases nothing of the match, and a long run is read a number of
times that grows with its length, not with its length times what is held (the cost that made
a long base64 string in small tokens take seconds)."""

from __future__ import annotations

import base64
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import BATCH, LOOKAHEAD, GuardTriggered, StreamMasker

ALL = Scanner(builtin())
PII = Scanner(builtin(["email", "phone", "card", "us_ssn", "iban"]))
SCANNERS = [pytest.param(ALL, id="all"), pytest.param(PII, id="pii")]

B64 = string.ascii_letters + string.digits + "+/="
URL64 = string.ascii_letters + string.digits + "_-"
# runs that keep text held for long: an open key block, a base64url string after eyJ (a JWT
# could still end it), a long local part, digits; and values to find inside and after them
PIECES = st.one_of(
    st.sampled_from([
        "-----BEGIN RSA PRIVATE KEY-----\n", "-----BEGIN PRIVATE KEY-----", "\n-----END RSA "
        "PRIVATE KEY-----\n", "-----END PRIVATE KEY-----", "eyJ", ".eyJ", ".", "@", "@a.co",
        " ", "\n", "john.doe@example.com", "4111 1111 1111 1111", "+1 415-555-0100", "--",
        "sk-", "AKIA", "\uff11\uff12\uff13", "é",
    ]),
    st.text(B64, min_size=1, max_size=120),
    st.text(URL64, min_size=1, max_size=120),
    st.text(string.ascii_lowercase, min_size=1, max_size=120),
    st.text(string.digits + " ", min_size=1, max_size=40),
)
TEXTS = st.lists(PIECES, max_size=24).map("".join)
CUTS = st.lists(st.integers(0, 3000), max_size=60)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def pieces_of(text: str, cuts: list[int], size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] if size else split(text, cuts)


@pytest.mark.parametrize("scanner", SCANNERS)
@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=CUTS, size=st.sampled_from([0, 0, 1, 3]),
       batch=st.sampled_from([1, 16, 64, BATCH]))
def test_any_chunking_and_batch_masks_like_the_whole_text(
        scanner: Scanner, text: str, cuts: list[int], size: int, batch: int) -> None:
    masker = StreamMasker(scanner, batch=batch)
    out = []
    for piece in pieces_of(text, cuts, size):
        out.append(masker.feed(piece))
        assert masker.held <= masker.bound + (masker.bound // 8 if batch <= masker.bound else 0)
    out.append(masker.finish())
    assert "".join(out) == scanner.mask(text)
    assert masker.found == [s.detector for s in scanner.find(text)]


@pytest.mark.parametrize("scanner", SCANNERS)
@settings(max_examples=200, deadline=None)
@given(text=TEXTS, cuts=CUTS, size=st.sampled_from([0, 1, 3]),
       batch=st.sampled_from([1, 16, 64]))
def test_a_reject_releases_nothing_of_the_match_whatever_the_batch(
        scanner: Scanner, text: str, cuts: list[int], size: int, batch: int) -> None:
    masker = StreamMasker(scanner, action="reject", batch=batch)
    spans = scanner.find(text)
    released: list[str] = []
    try:
        for piece in pieces_of(text, cuts, size):
            released.append(masker.feed(piece))
        released.append(masker.finish())
    except GuardTriggered as exc:
        assert spans and exc.detector == spans[0].detector
        assert text[:spans[0].start].startswith("".join(released))
    else:
        assert not spans and "".join(released) == text


class Counting:
    """A scanner, counting the characters of the looks at the held text (`tail_start` is part
    of each, and reads what `find_from` reads)."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner, self.read = scanner, 0
        self.max_len, self.folds, self.lookbehind = \
            scanner.max_len, scanner.folds, scanner.lookbehind
        self.find, self.mask = scanner.find, scanner.mask
        self.may_match, self.find_from = scanner.may_match, scanner.find_from

    def tail_start(self, text: str, folded: str | None = None, hidden: bool = True) -> int:
        self.read += len(text)
        return self.scanner.tail_start(text, folded, hidden)


def _b64(n: int, alphabet: str) -> str:
    rng = random.Random(n)
    return "".join(rng.choice(alphabet) for _ in range(n))


LONG_RUNS = {
    # base64 of JSON starts so: a JWT's first part, held while the string could still be one
    "a base64url string after eyJ": "token: eyJ" + _b64(30000, URL64) + " done",
    # an open key block is held up to the detector's reach (9 KiB)
    "a key block that never ends": "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(
        base64.b64encode(random.Random(1).randbytes(22000)).decode()[i:i + 64]
        for i in range(0, 29336, 64)),
    "a word of letters": "x " + _b64(30000, string.ascii_lowercase) + "@a.com done",
}


@pytest.mark.parametrize("text", LONG_RUNS.values(), ids=LONG_RUNS.keys())
def test_a_long_held_run_in_small_pieces_is_read_a_bounded_number_of_times(
        text: str) -> None:
    scanner = Counting(ALL)
    masker = StreamMasker(scanner)
    pieces = [text[i:i + 4] for i in range(0, len(text), 4)]   # a token of 4 characters
    out = "".join(masker.feed(p) for p in pieces) + masker.finish()
    assert out == scanner.mask(text)
    # looking at every piece read up to 9 KiB per 4 characters (thousands of times the
    # text); now each look is paid for by the eighth of the held text that arrived since the
    # last one, or is short
    assert scanner.read < 20 * len(text), (scanner.read, len(text))


def test_short_held_text_is_looked_at_on_every_piece() -> None:
    """Below `batch` nothing changes: a value that becomes final goes out on the piece that
    makes it so."""
    masker = StreamMasker(PII)
    assert masker.feed("mail a@b.co") == "mail "
    assert masker.feed("m") == ""
    assert masker.feed(" now, ") == "<EMAIL> now, "


def test_a_long_held_text_goes_out_once_it_grew_by_an_eighth() -> None:
    masker = StreamMasker(ALL, batch=BATCH)
    run = _b64(20000, string.ascii_lowercase)
    released = [masker.feed(run[i:i + 4]) for i in range(0, len(run), 4)]
    # a JWT reaches 8,192 characters back from its first 'e': what is older goes out, in
    # batches of about an eighth of that
    assert masker.held <= masker.bound + masker.bound // 8
    assert sum(map(len, released)) >= len(run) - 8192 - 8192 // 8 - LOOKAHEAD
    assert 0 < sum(1 for r in released if r) < len(released) / 100
    assert "".join(released) + masker.finish() == run
