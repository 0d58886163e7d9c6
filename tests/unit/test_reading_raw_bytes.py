"""`canonical_target` on a `:path` holding a raw byte that is not UTF-8 (read_headers keeps it
as a surrogate): an `Unreadable` 400, never a UnicodeEncodeError (a 500 with a traceback).
Over HTTP/2 Envoy passes such a byte in the query (tests/security/test_http_raw_query.py);
a front without `normalize_path` passes it in the path too."""

from __future__ import annotations

import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc.protocol import read_headers
from extproc.reading import Unreadable, canonical_target


@pytest.mark.parametrize("raw", [
    b"/v1/chat/completions?a=\xff",
    b"/v1/chat/completions?\xff=1",
    b"/v1beta/models/g:generateContent?alt=s\xffe",
    b"/v1beta/models/g\xffx:generateContent",
    b"/v1/x%41\xff",
])
def test_a_raw_byte_that_is_not_utf8_is_a_400(raw: bytes) -> None:
    msg = pb.HttpHeaders(headers=HeaderMap(headers=[HeaderValue(key=":path", raw_value=raw)]))
    path = read_headers(msg)[":path"]
    with pytest.raises(Unreadable) as exc:
        canonical_target(path)
    assert exc.value.status == 400
