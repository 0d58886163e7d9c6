"""The memo of candidate verdicts a streaming masker keeps (`PatternDetector._accept`): a
detector given a memo warm from many texts finds in each one exactly what it finds without
one, so the memo's key (the detector, the candidate, its length and the character after it)
holds everything a verdict reads; the memo is bounded and the stream's own; and a stream of
card-shaped digit groups is masked as the whole text is.

The character after the candidate is in the key because a closing check at a boundary may
read one character past it; no built-in's candidate ends where that happens today (each
ends in a letter or digit), so no test here can tell the key without it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.guards import detectors
from extproc.guards.detectors import Memo, PatternDetector, builtin_detector
from extproc.guards.scanner import BUILTIN_NAMES, Scanner, builtin
from extproc.guards.stream import StreamMasker
from tests.unit.test_guard_detectors import POSITIVES

#: what candidates of the validated built-ins are made of, and what decides their checks
#: (a closing check reads the character after a boundary: '-1' against '-a')
ALPHABET = "0123456789" * 3 + "   --..+()@aZ:x"
VALIDATED = [n for n in BUILTIN_NAMES
             if getattr(builtin_detector(n), "_validate", None) is not None]
DETECTORS = {n: builtin_detector(n) for n in VALIDATED}
#: one memo for every detector and example: it fills from every text they see
WARM: Memo = {}


def test_the_validated_built_ins_are_the_expected_ones() -> None:
    assert {"card", "phone", "email", "iban", "us_ssn", "ipv4", "ipv6"} <= set(VALIDATED)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.text(ALPHABET, max_size=30), min_size=1, max_size=8),
       name=st.sampled_from(VALIDATED))
def test_a_warm_memo_finds_what_no_memo_finds(pieces: list[str], name: str) -> None:
    # the same pieces in several orders: the same candidates meet other neighbours
    d = DETECTORS[name]
    for text in ("".join(pieces), "".join(reversed(pieces)), " ".join(pieces),
                 "-".join(pieces), "".join(pieces)[:-1]):
        assert d.find(text, WARM) == d.find(text), text


@pytest.mark.parametrize("name", VALIDATED)
def test_a_candidate_one_character_away_gets_its_own_verdict(name: str) -> None:
    """Every sample of the detector with each character changed, in several surroundings,
    through one warm memo: a key that left out any character of the candidate, or what
    follows it, would answer some of them with a neighbour's verdict (a Luhn check passed
    for a card one digit away)."""
    d, memo = builtin_detector(name), {}
    seen = 0
    for sample in POSITIVES.get(name, []):
        for i in range(len(sample)):
            for ch in "0147-. a@Z":
                variant = sample[:i] + ch + sample[i + 1:]
                for text in (variant, f"x {variant} y", f"{variant}-1", f"{variant}.",
                             f"({variant})", f"{variant}a"):
                    got = d.find(text, memo)
                    assert got == d.find(text), text
                    seen += bool(got)
    assert seen   # some variants are found, others are not: both verdicts were memoised


def test_one_memo_serves_many_detectors_apart() -> None:
    """The detector is in the key: the same candidate text judged by two detectors (a card
    number is also a phone's candidate) keeps two verdicts."""
    memo: Memo = {}
    text = "call 4111 1111 1111 1111 now"
    card, phone = builtin_detector("card"), builtin_detector("phone")
    assert card.find(text, memo) == card.find(text) and card.find(text)
    assert phone.find(text, memo) == phone.find(text)
    assert {k[0] for k in memo} <= {"card", "phone"}


def test_the_memo_stays_bounded_and_keeps_no_long_candidate() -> None:
    d = builtin_detector("card")
    assert isinstance(d, PatternDetector)
    memo: Memo = {}
    for i in range(3 * detectors.MEMO_SIZE):
        d.find(f"pay {4000_0000_0000_0000 + i:016d} now", memo)
    assert 0 < len(memo) <= detectors.MEMO_SIZE
    memo.clear()
    d.find("4" + "1" * 200, memo)   # longer than any memoised candidate: judged, not kept
    assert all(len(k[2]) <= detectors.MEMO_LONGEST + 1 for k in memo)


def test_the_memo_is_the_streams_own() -> None:
    """Found by review: a memo on the detector, shared by every request of the route, kept
    the card numbers, keys and addresses of past prompts until 4,096 others came, and a
    warm verdict's speed told whether another client had sent a value. Each masker has its
    own memo now; a whole text's scan keeps nothing."""
    scanner = Scanner(builtin(None))
    assert all(not hasattr(d, "_memo") for d in scanner.detectors)
    scanner.mask("my card 4111 1111 1111 1111")
    one, two = StreamMasker(scanner), StreamMasker(scanner)
    one.feed("my card 4111 1111 1111 1111 and")
    assert one._memo and not two._memo and one._memo is not two._memo


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(st.integers(0, 9999), min_size=20, max_size=120),
       sep=st.sampled_from([" ", "-", " - ", ", "]), size=st.integers(1, 9))
def test_streamed_digit_groups_are_masked_as_the_whole_text(groups: list[int], sep: str,
                                                             size: int) -> None:
    text = "cards: " + sep.join(f"{g:04d}" for g in groups) + " 4111 1111 1111 1111 end"
    scanner = Scanner(builtin(None))
    masker = StreamMasker(scanner)
    out = "".join(masker.feed(text[i:i + size]) for i in range(0, len(text), size))
    out += masker.finish()
    assert out == scanner.mask(text)
    assert "<CARD>" in out
