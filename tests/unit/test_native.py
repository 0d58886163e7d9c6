"""The compiled hot path (`extproc.native`): used only when built from the sources beside it,
never a stale build; EXTPROC_PURE=1 runs the pure-Python code; the pure code is the same
code (the Makefile runs the unit tests both ways)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from extproc import native

PACKAGE = Path(native.__file__).parent


def _fake_package(tmp_path: Path) -> Path:
    pkg = tmp_path / "extproc"
    for module in native.MODULES:
        src = native.source_path(module, pkg)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {module}\n")
    return pkg


def test_a_source_edited_since_the_build_is_stale(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    recorded = {m: native.digest(native.source_path(m, pkg)) for m in native.MODULES}
    assert native.stale(recorded, pkg) == []
    edited = native.MODULES[3]
    with native.source_path(edited, pkg).open("a") as f:
        f.write("x = 1\n")
    assert native.stale(recorded, pkg) == [edited]
    assert native.stale({}, pkg) == list(native.MODULES)          # no record: all stale


def test_the_module_list_names_real_sources() -> None:
    for module in native.MODULES:
        assert native.source_path(module).is_file(), module


def _status(env: dict[str, str]) -> str:
    code = ("import extproc.native as n, extproc.guards.reframe, extproc.codecs.sse_skim, "
            "extproc.limits.estimate; print(n.status())")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60, check=True)
    return r.stdout + r.stderr


def test_extproc_pure_runs_the_sources() -> None:
    out = _status({**os.environ, "EXTPROC_PURE": "1"})
    assert "'compiled': False" in out
    assert ".so'" not in out and "'reframe.py'" in out and "'sse_skim.py'" in out


@pytest.mark.skipif(not any(native.compiled_files(m) for m in native.MODULES),
                    reason="a pure build: nothing compiled beside the sources")
def test_a_fresh_build_runs_compiled() -> None:
    """`make` builds the hot path compiled; this checks the build is fresh and in use."""
    env = {k: v for k, v in os.environ.items() if k != "EXTPROC_PURE"}
    out = _status(env)
    assert "'compiled': True" in out, out
    for module in native.MODULES:
        assert native.compiled_files(module), f"{module} was not compiled"
    assert "'reframe.py'" not in out and "stale" not in out


@pytest.mark.skipif(not any(native.compiled_files(m) for m in native.MODULES),
                    reason="a pure build: nothing compiled beside the sources")
def test_an_edited_source_is_never_shadowed_by_its_stale_build(tmp_path: Path) -> None:
    """A copy of the built package with one source edited: the edit is what runs (every
    compiled module stands aside, with a warning saying which source changed)."""
    import shutil
    shutil.copytree(PACKAGE, tmp_path / "extproc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    src = native.source_path("extproc.limits.estimate", tmp_path / "extproc")
    src.write_text(src.read_text() + "\nEDITED = True\n")
    env = {**{k: v for k, v in os.environ.items() if k != "EXTPROC_PURE"},
           "PYTHONPATH": str(tmp_path)}
    code = ("import extproc.native as n, extproc.limits.estimate as e, extproc.guards.reframe;"
            " print(e.EDITED, n.status())")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60, check=True, cwd=tmp_path)
    assert r.stdout.startswith("True ") and "'compiled': False" in r.stdout
    assert "stale: extproc.limits.estimate" in r.stdout
    assert "the compiled modules are stale (extproc.limits.estimate changed" in r.stderr
    assert ".so'" not in r.stdout
