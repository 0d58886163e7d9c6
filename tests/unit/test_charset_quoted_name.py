"""Found by the review of a fix (now fixed): a charset parameter whose NAME is quoted
(`"charset"=utf-7`, `'charset'=utf-7`) is not relabelled, while `requests` (its
`get_encoding_from_headers` strips quotes from a parameter's name) decodes the reply's text,
`.json()` and `iter_lines(decode_unicode=True)` in that charset: a UTF-7 e-mail the guard
read as `john+AEA-example.com` shows as john@example.com."""

from __future__ import annotations

import json

import pytest
import requests

from tests.unit.test_reply_as_sdks_read import EMAIL, GEMINI, GENERATE, exchange_typed


@pytest.mark.parametrize("ctype", ['application/json; "charset"=utf-7',
                                   "application/json; 'charset'=utf-7"])
def test_a_quoted_charset_name_is_relabelled(ctype: str) -> None:
    text = EMAIL.replace("@", "+AEA-")
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": f"mail {text}"}]}, "finishReason": "STOP"}]}).encode()

    def shown(ct: str, content: bytes) -> str:
        r = requests.models.Response()
        r.status_code, r._content = 200, content
        r.headers["content-type"] = ct
        r.encoding = requests.utils.get_encoding_from_headers(r.headers)
        return r.text

    assert EMAIL in shown(ctype, body)    # what requests shows without the gateway
    _, got, sent = exchange_typed("gemini", GENERATE, GEMINI, 200, ctype, [body])
    assert EMAIL not in shown(sent, got), (sent, shown(sent, got))
