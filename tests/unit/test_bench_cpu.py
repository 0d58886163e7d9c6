"""bench/cpu.py: CPU per request, counted over each role's whole process tree."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import cpu  # noqa: E402


def test_descendants_walks_the_whole_tree_and_nothing_else() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20, 30: 11}
    assert cpu.descendants(10, parents) == [10, 11, 30, 12, 13]
    assert cpu.descendants(20, parents) == [20, 21]
    assert cpu.descendants(13, parents) == [13]
    assert cpu.descendants(99, parents) == [99]   # gone: only itself (no reading later)


def test_tree_delta_counts_survivors_and_newborns() -> None:
    before = {10: 5.0, 11: 2.0, 12: 1.0}
    after = {10: 5.5, 11: 2.25, 13: 0.5}     # 12 exited, 13 was born during the run
    assert cpu.tree_delta(before, after) == pytest.approx(0.5 + 0.25 + 0.5)


@pytest.mark.parametrize(("seconds", "requests", "want"), [
    (0.63, 1000, 630.0),          # 0.63 s over 1000 requests: 630 us each
    (2.25, 1000, 2250.0),
    (1.0, 3, 333333.3),
    (0.0, 10, 0.0),
    (1.0, 0, None),               # no request completed: no figure
    (None, 10, None),             # no reading
])
def test_us_per_request(seconds: float | None, requests: int, want: float | None) -> None:
    assert cpu.us_per_request(seconds, requests) == want


_PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import sys, time\\nsys.stdout.write('ready\\\\n'); sys.stdout.flush()\\n"
        "end = time.monotonic() + 60\\n"
        "while time.monotonic() < end: pass"], stdout=sys.stdout)
    child.wait()
""")


def test_a_sample_counts_the_cpu_of_a_process_s_children() -> None:
    """The root sleeps, its child spins: the role's CPU is the child's (like `--workers`)."""
    root = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE)
    try:
        assert root.stdout is not None and root.stdout.readline() == b"ready\n"
        tree = cpu.descendants(root.pid, cpu.parent_map())
        assert len(tree) == 2 and tree[0] == root.pid
        before = cpu.CpuSample.take({"processor": root.pid})
        time.sleep(0.5)
        after = cpu.CpuSample.take({"processor": root.pid})
        spent = after.seconds_since(before)["processor"]
        alone = cpu.tree_delta({root.pid: before.procs["processor"][root.pid]},
                               {root.pid: after.procs["processor"][root.pid]})
        assert spent >= 0.2          # the spinning child, on a loaded 2-core machine
        assert alone < 0.1           # the sleeping root alone would show next to nothing
        assert after.since(before)["processor"] >= 40.0   # percent of one core
    finally:
        for pid in cpu.descendants(root.pid, cpu.parent_map())[1:]:
            subprocess.run(["kill", str(pid)], check=False)
        root.kill()
        root.wait()


def test_thread_role_names_a_grpc_servers_threads() -> None:
    assert cpu.thread_role(100, 100, "python", "python") == "loop"
    assert cpu.thread_role(101, 100, "event_engine", "python") == "grpc engine"
    assert cpu.thread_role(102, 100, "python", "python") == "cq poller"
    assert cpu.thread_role(103, 100, "grpc_global_tim", "python") == "other"


def test_thread_split_counts_a_busy_thread_apart_from_the_main_one() -> None:
    import os
    import threading

    before = cpu.thread_split(os.getpid())
    assert set(before) == set(cpu.THREAD_ROLES)

    done = threading.Event()

    def spin() -> None:
        end = time.process_time() + 0.3   # the process's CPU: at least 0.3 s of this thread
        while time.process_time() < end:
            pass
        done.wait(5)   # alive until read: a thread's time goes with it when it ends

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)   # the main thread sleeps while the other one spins
    while t.is_alive() and not _spun(before):
        time.sleep(0.05)
    spent = cpu.thread_delta(before, cpu.thread_split(os.getpid()))
    done.set()
    t.join()
    # the spinner is named as the process is, like gRPC's poller
    assert spent["cq poller"][0] >= 0.2
    assert spent["loop"][0] < spent["cq poller"][0]
    assert spent["loop"][1] >= 1   # the main thread slept


def _spun(before: dict[str, tuple[float, int]]) -> bool:
    import os
    return cpu.thread_delta(before, cpu.thread_split(os.getpid()))["cq poller"][0] >= 0.25
