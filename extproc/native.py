"""The compiled hot path: which modules `setup.py` compiles with mypyc, and whether this
process runs them or their pure-Python source.

The modules that every chunk of a streamed reply goes through (the SSE decoder and skimmer,
the reply maskers and their scanner, the usage observer, the delivered-text estimate) are
compiled when the package is built, unless the build ran with ``EXTPROC_PURE=1``. The `.py`
files stay beside the compiled ones: they are the source of truth and the fallback.

At import (`extproc/__init__.py` calls `choose`), the compiled modules are used only when
they were built from exactly the sources beside them: the build records each source's
SHA-256 (in ``_native_build.py``). A source edited since (an editable install, before the
next ``make``) makes every compiled module stand aside, with a warning, and the pure code
runs: a stale build never shadows what the source says. ``EXTPROC_PURE=1`` at run time
chooses the pure code too (the test suite runs its unit tests both ways).

This module imports nothing of the package: `setup.py` reads `MODULES` from it before the
package can be imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: the modules compiled together (one mypyc group; a class in one may derive from another's)
MODULES: tuple[str, ...] = (
    "extproc.codecs.sse",
    "extproc.codecs.sse_skim",
    "extproc.guards.stream",
    "extproc.guards.scanner",
    "extproc.guards.event_stream",
    "extproc.guards.chains",
    "extproc.guards.reframe",
    "extproc.guards.reframe_completions",
    "extproc.guards.reframe_responses",
    "extproc.limits.estimate",
    "extproc.llm.transforms",
    "extproc.llm.json_array",
)
#: the group's shared library, `extproc/_compiled__mypyc.*.so`
GROUP = "extproc._compiled"
#: where the build records the sources it compiled (generated; not in git)
BUILD_RECORD = "_native_build"

_PACKAGE = Path(__file__).resolve().parent
_state: dict[str, Any] = {"compiled": False, "reason": "not chosen yet"}


def source_path(module: str, package_dir: Path = _PACKAGE) -> Path:
    """The `.py` file of one of `MODULES` under the package directory."""
    return package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_files(module: str, package_dir: Path = _PACKAGE) -> list[Path]:
    """The extension files built for `module` that sit beside its source."""
    src = source_path(module, package_dir)
    built = (src.with_name(src.stem + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)
    return [path for path in built if path.exists()]


def stale(recorded: dict[str, str], package_dir: Path = _PACKAGE,
          modules: Sequence[str] = MODULES) -> list[str]:
    """The modules whose source is not the one the build compiled (or was never recorded)."""
    out = []
    for module in modules:
        src = source_path(module, package_dir)
        if not src.exists() or recorded.get(module) != digest(src):
            out.append(module)
    return out


class _PureFinder(importlib.abc.MetaPathFinder):
    """Imports `MODULES` from their `.py` sources even where a compiled file is beside them
    (the import system tries extension files first)."""

    def __init__(self, package_dir: Path) -> None:
        self.package_dir = package_dir

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname,
                                                      source_path(fullname, self.package_dir))


def choose(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Decide, once, before any of `MODULES` is imported, whether they run compiled; returns
    `status()`."""
    env = os.environ if environ is None else environ
    if any(m in sys.modules for m in MODULES):
        return status()   # decided already (or imported before this ran): nothing to change
    built = [f for m in MODULES for f in compiled_files(m)]
    if not built:
        reason = "pure build (EXTPROC_PURE=1 at build time, or built without compiling)"
        return _set(False, reason, pure=False)
    if env.get("EXTPROC_PURE") == "1":
        return _set(False, "EXTPROC_PURE=1", pure=True)
    try:
        recorded = importlib.import_module(f"extproc.{BUILD_RECORD}").SOURCES
    except (ImportError, AttributeError):
        recorded = {}
    changed = stale(recorded)
    if changed:
        print(f"extproc: the compiled modules are stale ({', '.join(changed)} changed since "
              "the build); running the pure-Python code. Rebuild with `make` (or `pip "
              "install -e .`), or set EXTPROC_PURE=1 to silence this.", file=sys.stderr)
        return _set(False, f"stale: {', '.join(changed)}", pure=True)
    return _set(True, "compiled with mypyc", pure=False)


def _set(compiled: bool, reason: str, pure: bool) -> dict[str, Any]:
    if pure and not any(isinstance(f, _PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder(_PACKAGE))
    _state.update(compiled=compiled, reason=reason)
    return status()


def status() -> dict[str, Any]:
    """Whether the hot modules run compiled, why, and where each one was loaded from."""
    loaded = {m: getattr(sys.modules[m], "__file__", "") for m in MODULES if m in sys.modules}
    return {"compiled": _state["compiled"], "reason": _state["reason"],
            "modules": {m: Path(f).name for m, f in loaded.items()}}
