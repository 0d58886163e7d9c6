"""`serve --workers auto`: one worker per usable core minus the cores reserved for Envoy."""

from __future__ import annotations

import pytest

from extproc import cli, workers


@pytest.mark.parametrize(("cores", "env", "want"), [
    (2, {}, 1),                                    # the bench VM: Envoy keeps one core
    (8, {}, 7),
    (8, {"EXTPROC_RESERVED_CORES": "2"}, 6),       # Envoy --concurrency 2
    (8, {"EXTPROC_RESERVED_CORES": "0"}, 8),       # Envoy elsewhere (another pod)
    (2, {"EXTPROC_RESERVED_CORES": "4"}, 1),       # never fewer than one worker
    (1, {}, 1),
])
def test_auto_is_cores_minus_reserved(cores: int, env: dict[str, str], want: int) -> None:
    assert workers.resolve_workers("auto", cores=cores, environ=env) == want
    assert workers.resolve_workers(" AUTO ", cores=cores, environ=env) == want


def test_auto_counts_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 64)
    assert workers.usable_cores() == 3
    assert workers.resolve_workers("auto", environ={}) == 2


def test_auto_on_a_unix_socket_is_one_worker() -> None:
    assert workers.resolve_workers("auto", cores=8, environ={}, unix=True) == 1


def test_a_count_is_taken_as_given() -> None:
    assert workers.resolve_workers("3", cores=1, environ={"EXTPROC_RESERVED_CORES": "9"}) == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "", "1.5"])
def test_a_bad_count_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="--workers"):
        workers.resolve_workers(value, cores=4, environ={})


@pytest.mark.parametrize("reserved", ["x", "-1", "1.5"])
def test_a_bad_reservation_is_refused(reserved: str) -> None:
    with pytest.raises(ValueError, match="EXTPROC_RESERVED_CORES"):
        workers.resolve_workers("auto", cores=4, environ={"EXTPROC_RESERVED_CORES": reserved})


def test_the_command_line_refuses_a_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--workers", "0"])
    assert exc.value.code == 2
    assert "--workers takes a count of at least 1 or auto" in capsys.readouterr().err


def test_the_command_line_serves_auto_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_run_workers(opts: object) -> int:
        seen["workers"] = opts.workers  # type: ignore[attr-defined]
        return 0

    import extproc.workers
    monkeypatch.setattr(extproc.workers, "run_workers", fake_run_workers)
    monkeypatch.setattr(workers, "usable_cores", lambda: 4)
    monkeypatch.setenv("EXTPROC_RESERVED_CORES", "1")
    assert cli.main(["serve", "--workers", "auto", "--config", "config/gateway.yaml",
                     "--allow-dev-credentials"]) == 0
    assert seen == {"workers": 3}
