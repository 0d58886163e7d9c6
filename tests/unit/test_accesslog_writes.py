"""The access log's batched writes: whole lines, at most PIPE_BUF bytes a write, so that the
workers sharing one stderr pipe never cut each other's lines (and a reader never sees half a
line)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc import accesslog

lines = st.lists(st.text(alphabet=st.characters(blacklist_characters="\n",
                                                blacklist_categories=("Cs",)),
                         max_size=3000).map(lambda t: t + "\n"), max_size=40)


@given(lines)
def test_pieces_are_whole_lines_within_the_limit(batch: list[str]) -> None:
    out = accesslog.pieces(batch)
    assert "".join(out) == "".join(batch)          # every line, in order, once
    for piece in out:
        assert piece.endswith("\n")
        size = len(piece.encode())
        # a piece over the limit is one line alone
        assert size <= accesslog.PIPE_BUF or piece.count("\n") == 1
    # as few pieces as the limit allows: no two neighbours would fit in one
    for a, b in itertools.pairwise(out):
        assert len((a + b).encode()) > accesslog.PIPE_BUF


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.writes.append("<flush>")


def test_a_batch_goes_out_in_flushed_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(sys, "stderr", recorder)
    batch = accesslog._Batch()
    line = '{"msg":"request","pad":"' + "x" * 1000 + '"}\n'
    for _ in range(10):
        batch.parts.append(line)
    batch.flush()
    writes = recorder.writes
    assert writes[1::2] == ["<flush>"] * (len(writes) // 2)   # each piece flushed at once
    assert [w.count("\n") for w in writes[0::2]] == [3, 3, 3, 1]   # 1,027 bytes a line
    assert batch.parts == [] and batch.size == 0


def test_workers_sharing_a_pipe_never_cut_a_line() -> None:
    """Four processes flush big batches into one pipe at the same moment, as `--workers 4`
    do into docker's, while the reader lags (the pipe fills, writers wait): every line read
    back is one process's whole line."""
    script = textwrap.dedent("""
        import sys, time
        from extproc import accesslog
        tag, start = sys.argv[1], float(sys.argv[2])
        batch = accesslog._Batch()
        while time.time() < start:
            pass
        for round_ in range(40):
            for i in range(60):
                batch.parts.append('{"w":"%s","i":%d,"pad":"%s"}\\n' % (tag, i, tag * 300))
            batch.flush()
    """)
    read_fd, write_fd = os.pipe()
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", script, tag, str(start)],
                              stderr=write_fd, env={**os.environ, "PYTHONUNBUFFERED": "1"
                                                    if tag in "ab" else ""})
             for tag in "abcd"]
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while data := pipe.read(4000):
            chunks.append(data)
            time.sleep(0.0005)   # a slow reader: the pipe stays full
    assert all(p.wait(timeout=60) == 0 for p in procs)
    got = b"".join(chunks).decode().splitlines()
    assert len(got) == 4 * 40 * 60
    for line in got:
        tag = line[6]
        number = line.split('"i":')[1].split(",")[0]
        assert line == f'{{"w":"{tag}","i":{number},"pad":"{tag * 300}"}}', line[:80]


def test_a_line_holding_a_lone_surrogate_goes_out_with_every_other(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model name sent as `"gpt\\ud800"`, an undecodable header byte: the line carries
    its escape, as stderr writes it; before, measuring it raised, and the whole batch of
    lines was dropped."""
    recorder = _Recorder()
    monkeypatch.setattr(sys, "stderr", recorder)
    batch = accesslog._Batch()
    lines = ['{"model":"a"}\n', '{"model":"gpt\ud800"}\n', '{"sub":"x\udc80"}\n',
             '{"model":"b"}\n']
    batch.parts.extend(lines)
    batch.flush()
    assert "".join(w for w in recorder.writes if w != "<flush>") == "".join(lines)
    for piece in accesslog.pieces(lines * 200):
        assert len(piece.encode("utf-8", "backslashreplace")) <= accesslog.PIPE_BUF
