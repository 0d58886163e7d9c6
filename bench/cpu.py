"""CPU use during a measurement: per process tree (from /proc/PID/stat) and for the machine.

Each role (envoy, processor, mock...) counts its process and every descendant, found by
walking the parent pids in /proc: `serve --workers N`'s spawned workers, LiteLLM's. Numbers
are percent of one core (a process using both cores fully shows 200), and microseconds of
CPU (utime + stime) per completed request. `other` is the machine's busy time not spent in
the bench's processes: the kernel's share of loopback networking (some 10-20%), and anything
else running on the machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (the 3rd field, `state`, first)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_seconds(pid: int) -> float | None:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 13:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def parent_map() -> dict[int, int]:
    """Every live process's parent pid, from /proc/*/stat."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and len(fields) > 1:
                parents[int(entry)] = int(fields[1])
    return parents


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """`root` and every process below it in the `{pid: ppid}` tree, root first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        if pid != ppid:
            children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(sorted(children.get(pid, ()), reverse=True))
    return out


def tree_seconds(root: int, parents: dict[int, int] | None = None) -> dict[int, float]:
    """CPU seconds (utime + stime) of `root` and each live descendant, by pid."""
    parents = parent_map() if parents is None else parents
    out = {}
    for pid in descendants(root, parents):
        secs = _proc_seconds(pid)
        if secs is not None:
            out[pid] = secs
    return out


def tree_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds a process tree spent between two `tree_seconds` readings. A process born
    in between counts from zero; one that exited in between is lost (the bench's processes
    live as long as their setup)."""
    return sum(now - before.get(pid, 0.0) for pid, now in after.items())


def us_per_request(seconds: float | None, requests: int) -> float | None:
    """CPU microseconds per completed request; None without requests or a reading."""
    if seconds is None or requests <= 0:
        return None
    return round(1e6 * seconds / requests, 1)


#: the roles `thread_split` sorts a processor's threads into
THREAD_ROLES = ("loop", "cq poller", "grpc engine", "other")


def thread_role(tid: int, pid: int, comm: str, main_comm: str) -> str:
    """The part a thread plays in a Python gRPC server: the main thread runs the event loop;
    gRPC's C++ threads are named `event_engine`; the asyncio server's completion-queue poller
    is a Python thread (named as the process is); anything else (timers) is other."""
    if tid == pid:
        return "loop"
    if comm.startswith("event_engine"):
        return "grpc engine"
    return "cq poller" if comm == main_comm else "other"


def thread_split(pid: int) -> dict[str, tuple[float, int]]:
    """CPU seconds and voluntary context switches (times a thread went to sleep) of one
    process's threads, by `thread_role`. A loop thread that hardly ever sleeps is saturated:
    work it saves then goes to more turns of the loop, not into idle time."""
    out = {role: (0.0, 0) for role in THREAD_ROLES}
    task = f"/proc/{pid}/task"
    try:
        tids = [int(t) for t in os.listdir(task)]
        with open(f"/proc/{pid}/comm") as f:
            main_comm = f.read().strip()
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{task}/{tid}/stat") as f:
                stat = f.read()
            with open(f"{task}/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue   # the thread ended meanwhile
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        secs = (int(fields[11]) + int(fields[12])) / _TICK
        sleeps = int(status.split("voluntary_ctxt_switches:", 1)[1].split()[0]) \
            if "\nvoluntary_ctxt_switches:" in status else 0
        role = thread_role(tid, pid, comm, main_comm)
        had = out[role]
        out[role] = (had[0] + secs, had[1] + sleeps)
    return out


def thread_delta(before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]
                 ) -> dict[str, tuple[float, int]]:
    """What each role spent between two `thread_split` readings."""
    return {role: (after[role][0] - before.get(role, (0.0, 0))[0],
                   after[role][1] - before.get(role, (0.0, 0))[1]) for role in after}


def _machine() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user..steal; guest time is already counted in user
    return total - idle, total


@dataclass
class CpuSample:
    pids: dict[str, int]
    wall: float
    #: per role, CPU seconds of each process in its tree (None: the root is gone)
    procs: dict[str, dict[int, float] | None]
    machine: tuple[float, float]

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSample:
        parents = parent_map()
        procs = {r: (tree_seconds(p, parents) or None) for r, p in pids.items()}
        return cls(pids, time.monotonic(), procs, _machine())

    def seconds_since(self, start: CpuSample) -> dict[str, float]:
        """CPU seconds per role (its whole process tree) since `start`."""
        out: dict[str, float] = {}
        for role, now in self.procs.items():
            before = start.procs.get(role)
            if now is not None and before is not None:
                out[role] = tree_delta(before, now)
        return out

    def since(self, start: CpuSample) -> dict[str, float]:
        """Percent of one core per role, plus 'machine' (all cores, so up to 100 * cores)."""
        wall = max(self.wall - start.wall, 1e-9)
        out = {role: round(100 * secs / wall, 1)
               for role, secs in self.seconds_since(start).items()}
        busy = self.machine[0] - start.machine[0]
        total = max(self.machine[1] - start.machine[1], 1)
        out["machine"] = round(100 * (os.cpu_count() or 1) * busy / total, 1)
        ours = sum(v for k, v in out.items() if k != "machine")
        out["other"] = round(max(0.0, out["machine"] - ours), 1)
        return out


def machine_busy(seconds: float = 1.0) -> float:
    """Percent of one core the whole machine is busy over `seconds` (all cores: up to 200)."""
    b0, t0 = _machine()
    time.sleep(seconds)
    b1, t1 = _machine()
    return 100 * (os.cpu_count() or 1) * (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(limit: float = 30.0, settle: float = 120.0) -> float:
    """Wait (up to `settle` seconds) until the machine is busier than `limit`% no more.

    Between rows the bench's own processes are idle, so what shows here is someone else's
    load (a test run, a build). Returns the last reading.
    """
    deadline = time.monotonic() + settle
    busy = machine_busy()
    warned = False
    while busy > limit and time.monotonic() < deadline:
        if not warned:
            print(f"  machine busy at {busy:.0f}% of a core before the row: waiting up to "
                  f"{settle:.0f}s for it to settle", flush=True)
            warned = True
        busy = machine_busy()
    return round(busy, 1)


def speed_probe(loops: int = 300_000) -> float:
    """Milliseconds for a fixed pure-Python loop: a yardstick for the machine's speed.

    On a shared VM the same work can take noticeably longer from one minute to the next;
    comparing this number across rows shows how much of a difference is the machine.
    """
    start = time.perf_counter()
    total = 0
    for i in range(loops):
        total += i * i % 7
    return round((time.perf_counter() - start) * 1000, 2)


def run_meta(command: str) -> dict[str, Any]:
    """What a bench tool's report opens with: when it ran, the command, and the machine's
    speed then (`probe_ms`, the best of three `speed_probe`s)."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": command,
            "probe_ms": round(min(speed_probe() for _ in range(3)), 1)}
