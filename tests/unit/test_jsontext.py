r"""codecs.jsontext: tool-call arguments (JSON source text in a JSON string) are read and masked
as the tool reads them, token by token with their escapes decoded, so that
``john.doe\u0040example.com`` or ``\u0041KIA...`` cannot hide a value; what masking leaves
alone goes out byte for byte; valid JSON stays valid JSON; and for any chunking of the text
(escapes and surrogate pairs split anywhere) the streamed result is the whole-text result."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.jsonescape import decode_escapes, encode_content
from extproc.codecs.jsontext import RUN_LIMIT, JsonSource, read_texts, rewrite
from extproc.guards.reframe import json_chain
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import GuardTriggered, StreamMasker

PII = Scanner(builtin(["email", "secrets"]))
CARDS = Scanner(builtin(["card", "ipv6"]))
EMAIL = "john.doe@example.com"
KEY = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111111111111111"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1\n-----END RSA PRIVATE KEY-----"


def mask(text: str) -> str:
    """What the guards' chain does to one whole text: PII, then cards."""
    for scanner in (PII, CARDS):
        text = scanner.mask(text, scanner.find(text))
    return text


def stream(text: str, cuts: list[int] | None = None, action: str = "mask") -> str:
    """`text` through the reframers' chain for JSON pieces, cut at `cuts` (whole if None)."""
    chain = json_chain([StreamMasker(PII, action=action), StreamMasker(CARDS, action=action)])
    points = sorted({c % (len(text) + 1) for c in cuts or []})
    out = [chain.feed(text[a:b]) for a, b in zip([0, *points], [*points, len(text)],
                                                 strict=True)]
    return "".join(out) + chain.finish()


def u(text: str) -> str:
    """Every character of `text` as a \\uXXXX escape (surrogate pairs beyond the BMP)."""
    return json.dumps(text, ensure_ascii=True)[1:-1] if not text.isascii() else \
        "".join(f"\\u{ord(c):04x}" for c in text)


# ------------------------------------------------------------------------------ reading

def test_escaped_values_are_read_decoded() -> None:
    text = '{"to":"john.doe\\u0040example.com","key":"\\u0041KIAIOSFODNN7EXAMPLE"}'
    assert read_texts(text) == ["to", EMAIL, "key", KEY]
    assert PII.find(text) == []          # what the raw text hid


def test_every_kind_of_escape_and_a_surrogate_pair_decode_as_json_loads_does() -> None:
    value = 'a"b\\c/d\be\ff\ng\rh\ti\x01j😀k\u00e9'
    text = '{"v":"a\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\\u0001j\\ud83d\\ude00k\\u00E9"}'
    assert json.loads(text) == {"v": value}
    assert read_texts(text) == ["v", value]
    assert decode_escapes(text) == '{"v":"' + value + '"}'


def test_lone_surrogates_and_invalid_escapes_are_read_as_json_loads_and_as_written() -> None:
    assert read_texts('["\\ud83d x","\\ude00","\\ud83d\\u0041"]') == [
        "\ud83d x", "\ude00", "\ud83dA"]
    # not JSON: a backslash starting no escape is read as written; the decoded reading too
    assert read_texts('["a\\qb","\\u12g"]') == ["a\\qb", "\\u12g", '["a\\qb","\\u12g"]']


def test_keys_numbers_and_unquoted_text_are_read_blank_runs_are_not() -> None:
    assert read_texts('{"john@x.org": 12, "n": [1, true]}') == [
        "john@x.org", ": 12, ", "n", "1, true"]
    assert read_texts("not json \\u0040 here") == ["not json @ here"] * 2


def test_a_text_that_is_not_json_is_also_read_with_every_escape_decoded() -> None:
    text = '{"to": "john.doe\\u0040example.com'            # cut short by a length limit
    assert read_texts(text)[-1] == '{"to": "john.doe@example.com'
    assert read_texts('{"a": 1}') == ["a", ": 1"]           # JSON: the tokens alone


# ------------------------------------------------------------------------------ masking

@pytest.mark.parametrize("cut", [None, *range(1, 80)])
def test_escaped_values_are_masked_for_any_single_cut(cut: int | None) -> None:
    text = '{"to":"' + u(EMAIL) + '","key":"\\u0041KIAIOSFODNN7EXAMPLE","pem":' \
        + json.dumps(PEM) + "}"
    out = stream(text, None if cut is None else [cut])
    assert json.loads(out) == {"to": "<EMAIL>", "key": "<SECRET>", "pem": "<SECRET>"}
    assert rewrite(text, mask) == out


def test_what_masking_leaves_alone_goes_out_byte_for_byte() -> None:
    text = '{ "url" : "https:\\/\\/x.test\\/a" , "e":"caf\\u00e9 \\ud83d\\ude00",\n "n": -1.5e3 }'
    assert stream(text) == text
    assert stream(text, list(range(len(text)))) == text
    assert rewrite(text, mask) is text


def test_a_masked_string_keeps_its_raw_text_up_to_the_first_change() -> None:
    text = '{"v":"caf\\u00e9 \\/ mail john.doe\\u0040example.com \\u00e9"}'
    assert stream(text) == '{"v":"caf\\u00e9 \\/ mail <EMAIL> é"}'
    assert json.loads(stream(text)) == {"v": "café / mail <EMAIL> é"}


def test_a_masked_key_is_masked() -> None:
    assert stream('{"john.doe\\u0040example.com": 1}') == '{"<EMAIL>": 1}'


def test_a_masked_number_becomes_a_string_so_json_stays_valid() -> None:
    assert stream('{"card":4111111111111111}') == '{"card":"<CARD>"}'
    assert stream('{"card": -4111111111111111.5 , "n": 2}') == \
        '{"card": "-<CARD>.5" , "n": 2}'
    assert stream(f"[{CARD},5555555555554444]") == '["<CARD>,<CARD>"]'
    for text in ('{"card":4111111111111111}', f"[1, {CARD}, 2]", f"{CARD}"):
        assert json.loads(stream(text)) is not None


def test_masking_after_a_lone_surrogate_escapes_it_again() -> None:
    out = stream('["\\ud800 john.doe@example.com"]')
    assert out == '["\\ud800 <EMAIL>"]'
    out = stream('["john.doe@example.com \\udfff\\ud800"]')
    assert out == '["<EMAIL> \\udfff\\ud800"]'
    assert json.loads(out) == ["<EMAIL> \udfff\ud800"]


def test_text_that_is_not_json_is_masked_too() -> None:
    # single quotes: the value is in a run, decoded; its masked part is quoted
    assert stream("{'to': 'john\\u0040example.com'}") == "{'to': \"'<EMAIL>'\"}"
    # a string never closed (a reply cut by max_tokens) gets no closing quote
    assert stream('{"to":"john.doe\\u0040example.com') == '{"to":"<EMAIL>'
    assert stream('{"to":"x\\u00') == '{"to":"x\\u00'          # an unfinished escape


def test_a_run_past_the_limit_streams_unquoted() -> None:
    text = "x " * RUN_LIMIT + EMAIL + " end"
    assert stream(text) == "x " * RUN_LIMIT + "<EMAIL> end"
    chain = json_chain([StreamMasker(PII)])
    chain.feed("x " * RUN_LIMIT)
    assert chain.held < 2 * RUN_LIMIT // 8      # released as it comes, not held whole


def test_reject_raises_before_the_value_goes_out() -> None:
    text = '{"to":"john.doe\\u0040example.com"}'
    chain = json_chain([StreamMasker(PII, action="reject")])
    out = ""
    with pytest.raises(GuardTriggered):
        for c in text:
            out += chain.feed(c)
        out += chain.finish()
    assert "john" not in decode_escapes(out)


def test_rewrite_masks_a_value_that_only_the_decoded_reading_shows() -> None:
    """Not JSON, and the value runs across a quote: the tokens miss it, the reading with
    every escape decoded does not, and the whole text is replaced by its masked reading."""
    def fn(text: str) -> str:
        return text.replace('x"y@', "<HIT>")
    assert rewrite('{"a":"x\\"y\\u0040', fn) == '{"a":"<HIT>'   # the token x"y@ masked
    assert rewrite('{"a":"x"y\\u0040', fn) == '{"a":"<HIT>'
    assert rewrite('{"a":"x"}', fn) == '{"a":"x"}'


def test_json_source_is_a_plain_str_to_everything_else() -> None:
    text = JsonSource('{"a":1}')
    assert text == '{"a":1}' and len(text) == 7 and json.loads(text) == {"a": 1}
    assert json.dumps({"k": text}) == '{"k": "{\\"a\\":1}"}'


def test_encode_content() -> None:
    assert encode_content('a"\\\n\x01é😀\ud800') == 'a\\"\\\\\\n\\u0001é😀\\ud800'


# --------------------------------------------------------------------- property tests

PIECES = [EMAIL, KEY, CARD, "4111 1111 1111 1111", "fe80::1ff:fe23:4567:890a", PEM,
          "john", ".doe@", "example.com", "AKIA", "😀", "é", '"', "\\", "/", "\n", "\x00",
          " ", ":", ",", "{", "]", "\ud800"]
STRINGS = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=5).map("".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-999, 999) | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=12)


@st.composite
def escaped(draw: st.DrawFn, value: Any) -> str:
    """`value` as JSON text with its strings' characters escaped at random (any escape JSON
    allows, surrogate pairs beyond the BMP) and random whitespace between tokens."""
    def ws() -> str:
        return draw(st.sampled_from(["", "", " ", "\n  ", "\t"]))

    def string(s: str) -> str:
        out = []
        for c in s:
            how = draw(st.integers(0, 3))
            if c in '"\\' or c < " " or "\ud800" <= c <= "\udfff" or how == 0:
                if how == 1 and c in '"\\/\b\f\n\r\t':
                    out.append(json.dumps(c)[1:-1] if c != "/" else "\\/")
                else:
                    out.append(json.dumps(c, ensure_ascii=True)[1:-1] if ord(c) > 0xFFFF
                               else f"\\u{ord(c):04{'x' if how < 2 else 'X'}}")
            else:
                out.append(c)
        return '"' + "".join(out) + '"'

    def dump(v: Any) -> str:
        if isinstance(v, str):
            return string(v)
        if isinstance(v, list):
            return "[" + ",".join(ws() + dump(x) + ws() for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ",".join(ws() + string(k) + ws() + ":" + ws() + dump(x) + ws()
                                  for k, x in v.items()) + "}"
        return json.dumps(v)
    return ws() + dump(value) + ws()


def masked_value(value: Any) -> Any:
    """`value` as the tool must read it: every key and string value masked on its own."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [masked_value(v) for v in value]
    if isinstance(value, dict):
        return {mask(k): masked_value(v) for k, v in value.items()}
    return value


@settings(max_examples=400, deadline=None)
@given(data=st.data(), value=VALUES, cuts=st.lists(st.integers(0, 1 << 12), max_size=12))
def test_any_chunking_of_escaped_json_is_the_whole_result_and_reads_masked(
        data: st.DataObject, value: Any, cuts: list[int]) -> None:
    text = data.draw(escaped(value))
    assert json.loads(text) == value
    whole = stream(text)
    assert stream(text, cuts) == whole
    assert stream(text, list(range(len(text)))) == whole        # every split, escapes too
    assert json.loads(whole) == masked_value(value)             # valid, and what it says
    assert rewrite(text, mask) == whole                         # requests read it alike
    if whole == text:
        assert masked_value(value) == value


JUNK = st.lists(st.sampled_from([*PIECES, "\\u0040", "\\ud83d", "\\ude00", "\\u00", "\\n",
                                 "'", "[", "}", "\\"]) | st.text(max_size=3),
                max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=JUNK, cuts=st.lists(st.integers(0, 1 << 12), max_size=12))
def test_any_chunking_of_any_text_is_the_whole_result(text: str, cuts: list[int]) -> None:
    whole = stream(text)
    assert stream(text, cuts) == whole
    assert stream(text, list(range(len(text)))) == whole
    parses = True
    try:
        json.loads(text)
    except ValueError:
        parses = False
    if parses:   # the whole-text form agrees; for text that is not JSON it reads more
        assert rewrite(text, mask) == whole
