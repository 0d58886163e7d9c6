"""The --workers supervisor's admin port (http.server, a thread per connection) closes a
connection that sends no whole request in time: found by review, half-sent requests held a
thread and a socket each, for good, until the supervisor ran out of both."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from extproc import workers


def test_idle_connections_to_the_supervisor_admin_port_are_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert workers._AdminHandler.timeout == workers.ADMIN_IDLE_S
    monkeypatch.setattr(workers._AdminHandler, "timeout", 0.3)
    admin = workers._Admin(("127.0.0.1", 0), lambda: [], lambda: [])
    threading.Thread(target=admin.serve_forever, daemon=True).start()
    port = admin.server_address[1]
    before = threading.active_count()
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\n")   # a request line, never finished
            socks.append(s)
        deadline = time.monotonic() + 20
        while threading.active_count() - before > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert threading.active_count() - before <= 0, "idle clients still hold threads"
        assert all(s.recv(1) == b"" for s in socks)    # and their sockets were closed
    finally:
        for s in socks:
            s.close()
        admin.shutdown()
        admin.server_close()
