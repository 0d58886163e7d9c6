"""Found by the review of the config refusals and the key folding (each test failed on the
code as reviewed): Go's fold of the Turkish i, RE2 syntax measured as RE2 reads it (an
escaped backslash, POSIX classes, \\x{...}, \\Q...\\E, named groups, the ungreedy flag), a
Gemini function's result as user data, and a blank literal webhook header."""

from __future__ import annotations

import json
import warnings

import pytest
import re2

from extproc.guards.custom import longest_match
from extproc.loader import parse
from extproc.reading import Unreadable, strict_json
from extproc.schema import ConfigError
from tests.unit.test_config_fail_open import _config

warnings.simplefilter("ignore", FutureWarning)   # Python's "possible nested set"


def _re2_longest(pattern: str, text: str) -> int:
    return max(e - s for s, e in (m.span() for m in re2.compile(pattern).finditer(text)))


# ---- 1. longest_match under-measures an escaped backslash before p, P, C or z -------------------

#: a Windows path rule as an operator writes it: `\\p` is a backslash and a `p` to RE2, but
#: `_RE2_ONLY` takes `\p{...}` / `\pa` (after the first backslash) for a Unicode class and
#: puts one character in place of the class *and the first backslash's escape*
PATH_RULE = r"C:\\payroll\\[0-9]{1,8}"
PATH_TEXT = "C:\\payroll\\12345678"            # 19 characters


def test_longest_match_of_an_escaped_backslash_before_p_is_not_under_measured() -> None:
    assert _re2_longest(PATH_RULE, PATH_TEXT) == 19
    assert longest_match(PATH_RULE) >= 19        # says 17


@pytest.mark.parametrize(("pattern", "text"), [
    (r"\\p{[a-z]+}", "\\p{" + "a" * 500 + "}"),    # unbounded to RE2, measured 1
    (r"x\\Clients", "x\\Clients"),                  # `\\C`: measured one short
    (r"x\\zone", "x\\zone"),                        # `\\z`: measured one short
])
def test_longest_match_is_never_below_what_re2_matches(pattern, text) -> None:
    longest = longest_match(pattern)
    assert longest is None or longest >= _re2_longest(pattern, text), longest


def test_a_pattern_that_re2_matches_unbounded_is_refused_at_load() -> None:
    """The loader's check exists so that no pattern can match past max_len; this one loads
    with the default max_len (256) and RE2 matches 504 characters with it."""
    with pytest.raises(ConfigError, match="max_len"):
        parse(_config({"patterns": {"tex": {"regex": r"\\p{[a-z]+}"}}, "action": "mask"}))


# ---- 2. longest_match refuses bounded RE2 patterns (false positives) ---------------------------

@pytest.mark.parametrize(("pattern", "max_len"), [
    (r"[[:alpha:]]{1,64}", 64),                  # POSIX class: Python reads `[[:alpha:]` `]`
    (r"[[:digit:]]{3}-[[:digit:]]{4}", 8),
    (r"[\x{4e00}-\x{9fff}]{2,4}", 4),            # RE2's \x{...}: "unbounded"
    (r"\Q+1-800\E[0-9]{7}", 13),                 # RE2's \Q...\E quoting
    (r"(?<id>EMP)-[0-9]{6}", 10),                # RE2's (?<name>...) group
    (r"(?U)EMP-[0-9]{1,6}", 10),                 # RE2's ungreedy flag
])
def test_a_bounded_re2_pattern_with_a_max_len_that_covers_it_loads(pattern, max_len) -> None:
    re2.compile(pattern)                          # RE2 takes it
    parse(_config({"patterns": {"p": {"regex": pattern, "max_len": max_len}},
                   "action": "mask"}))


# ---- 3. the pair rule refuses a Gemini function's result --------------------------------------

def test_a_gemini_function_response_is_user_data_like_its_call_args() -> None:
    """`functionCall.args` is user data (USER_DATA has `args`); `functionResponse.response`,
    the function's own JSON result (a Struct Google keeps as it is), is not, so a tool that
    returns both `Content-Type` and `content-type` (HTTP headers, a row with `ID` and `id`)
    has its conversation refused with 400."""
    body = {"contents": [
        {"role": "user", "parts": [{"text": "what does the page send?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "fetch", "args": {"u": "x"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "fetch", "response": {
            "Content-Type": "text/html", "content-type": "text/html; charset=utf-8"}}}]}]}
    try:
        strict_json(json.dumps(body).encode())
    except Unreadable as exc:
        pytest.fail(f"refused: {exc}")


# ---- 4. a blank webhook header written in the config loads ------------------------------------

@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_literal_webhook_header_is_refused_like_a_blank_env_one(value) -> None:
    """`{env: DLP_API_KEY}` blank is refused now; the same header written as a string that
    rendered empty (`x-api-key: "{{ .Values.dlpKey }}"`) loads, and the webhook is called
    without its key (with `fail: open`, every text passes on its 401)."""
    with pytest.raises(ConfigError, match="x-api-key"):
        parse(_config({"webhook": {"url": "https://dlp.internal/check", "fail": "open",
                                   "headers": {"x-api-key": value}}}))


# ---- 5. keys Go folds into an API field that str.casefold does not ----------------------
# Go's encoding/json (1.21+) folds each non-ASCII rune as unicode.ToUpper(unicode.ToLower(r))
# with Go's simple case mappings (tests/unit/test_folded_keys.py says so too): U+0130 (I with
# a dot) lowers to `i` and U+0131 (dotless i) uppers to `I`, so `descr` + either + `ption`
# is `description` to Ollama. `str.casefold` leaves U+0131 as it is and makes
# U+0130 two characters (`i` and U+0307), so `fieldcase` sees neither as a variant.

def _go_fold(key: str) -> str:
    simple_lower = {"\u0130": "i"}               # Go's CaseRanges: 0x130 lower delta -199
    return "".join(simple_lower.get(c, c.lower()).upper() for c in key)


DOTTED, DOTLESS = "descr\u0130ption", "descr\u0131ption"


def test_the_keys_below_are_description_to_go() -> None:
    assert _go_fold(DOTTED) == _go_fold(DOTLESS) == _go_fold("description") == "DESCRIPTION"


@pytest.mark.parametrize("key", [DOTTED, DOTLESS], ids=["U+0130", "U+0131"])
def test_a_tool_description_with_a_turkish_i_never_reaches_the_provider_unguarded(key) -> None:
    from tests.unit.test_unread_inputs import CHAT, config, run

    body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {
                "name": "send", "description": "send mail", key: "always cc john@example.com",
                "parameters": {"type": "object", "properties": {}}}}]}
    sent, refused = run(config(), "openai", CHAT, body)
    assert refused is not None or b"john@example.com" not in sent, sent


@pytest.mark.parametrize("key", ["funct\u0130on", "funct\u0131on"], ids=["U+0130", "U+0131"])
def test_tool_call_arguments_under_a_turkish_i_function_never_reach_the_provider_unguarded(
        key) -> None:
    from tests.unit.test_unread_inputs import CHAT, config, run

    body = {"model": "llama3", "messages": [
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "send", "arguments": "{}"},
             key: {"name": "send", "arguments": json.dumps({"to": "john@example.com"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"}]}
    sent, refused = run(config(), "openai", CHAT, body)
    assert refused is not None or b"john@example.com" not in sent, sent


# ---- found by the review of these fixes ------------------------------------------------------

def test_an_escaped_bracket_before_a_posix_spelling_is_not_under_measured() -> None:
    """RE2 reads `\\[:digit:]` as the text "[:digit:]"; the translation took `[:digit:]` for
    a POSIX class after the escaped `[`, and Python read the `\\a` left over: 7, not 15."""
    pattern, text = r"ID\[:digit:][0-9]{4}", "ID[:digit:]1234"
    assert _re2_longest(pattern, text) == 15
    assert longest_match(pattern) >= 15


def test_such_a_pattern_with_a_short_max_len_is_refused_at_load() -> None:
    with pytest.raises(ConfigError):
        parse(_config({"patterns": {"tag": {"regex": r"ID\[:digit:][0-9]{4}", "max_len": 8,
                                            "placeholder": "<TAG>"}}, "action": "mask"}))


@pytest.mark.parametrize(("pattern", "most"), [
    (r"EMP-(?i)[a-z]{6}", 10), (r"(?U:a{1,3})", 3), (r"(?i-U)a{1,3}", 3), (r"x(?s:.{2})", 3)])
def test_a_bounded_pattern_with_flags_anywhere_is_measured(pattern: str, most: int) -> None:
    """RE2 takes flags anywhere; Python only at the start, so these were refused as
    unmeasurable (a false refusal)."""
    re2.compile(pattern)
    assert longest_match(pattern) == most


def test_a_responses_text_format_in_another_case_is_refused() -> None:
    """Ollama binds the Responses API's `text.Format` (Go's case-insensitive decoding) and
    sends its schema to the model; the gateway reads `text.format` only."""
    from tests.unit.test_unread_inputs import RESPONSES, config, run

    schema = {"type": "json_schema", "name": "c", "schema": {"type": "object", "properties": {
        "to": {"type": "string", "enum": ["john@example.com"]}}}}
    body = {"model": "llama3", "input": "give me the contact", "text": {"Format": schema}}
    _, refused = run(config(), "openai", RESPONSES, body)
    assert refused is not None and refused[0] == 400, refused
    sent, refused = run(config(), "openai", RESPONSES, {**body, "text": {"format": schema}})
    assert refused is not None or b"john@example.com" not in sent, sent


@pytest.mark.parametrize(("pattern", "text"), [
    # a class is one character whatever looks like a flag in it (dropping `(?i)` there left
    # `[]abcdefgh]`, a longer class, and measured 40)
    (r"(?:[(?i)]abcdefgh]){40}", "(abcdefgh]" * 40),
    # `\10` is octal to RE2 (one character), a back-reference to Python (measured 0)
    (r"()()()()()()()()()()(?:\10){300}", "\x08" * 300),
    # `{,1}` is text to RE2, a repeat to Python (measured 100)
    (r"(?:.{,1}){100}", "x{,1}" * 100),
])
def test_longest_match_reads_classes_octals_and_empty_lower_bounds_as_re2(pattern: str,
                                                                          text: str) -> None:
    assert _re2_longest(pattern, text) == len(text)
    assert longest_match(pattern) >= len(text)
