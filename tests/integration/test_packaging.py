"""The package as the Dockerfile builds it (a wheel from what its build stage copies, the hot
path compiled; envoy and config beside it in the image): the wheel holds everything the
commands need, and an installed copy, away from the checkout, runs the compiled modules and
renders the very Envoy configs a checkout does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from extproc import native
from tests.harness import ROOT

#: what the Dockerfile's build stage copies to build the wheel (`extproc/envoy_template.yaml`
#: is a link to `envoy/envoy.yaml`: without `envoy` the wheel had no template, and
#: `render-envoy` failed in the image; found by review, this test then copied every file of
#: both stages into the build) and what the image itself copies beside the wheel
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md", "extproc", "envoy")
IMAGE_FILES = ("envoy", "config")


def _copied(stage: str) -> list[str]:
    """The sources a stage of the Dockerfile copies from the build context."""
    return sorted(" ".join(re.findall(r"^COPY (?!--from)(.+) \./", stage, re.M)).split())


def test_the_wheel_works_away_from_the_checkout(tmp_path: Path) -> None:
    build, image = re.split(r"^FROM .*$", (ROOT / "Dockerfile").read_text(), flags=re.M)[1:]
    assert _copied(build) == sorted(BUILD_FILES)
    assert _copied(image) == sorted(IMAGE_FILES)
    src = tmp_path / "app"
    src.mkdir()
    for name in BUILD_FILES:
        path = ROOT / name
        if path.is_dir():
            # as the Dockerfile does: no compiled file of the checkout's own build
            shutil.copytree(path, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.so",
                                                          "_native_build.py"))
        else:
            shutil.copy(path, src / name)
    build_env = {k: v for k, v in os.environ.items() if k != "EXTPROC_PURE"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True,
                   env=build_env)
    wheel = next((tmp_path / "dist").glob("extproc-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert z.read("extproc/envoy_template.yaml") == (ROOT / "envoy/envoy.yaml").read_bytes()
        assert z.read("extproc/dev/DEV-ONLY-jwt-signing-key.pem")
        names = z.namelist()
        assert "extproc/_native_build.py" in names
        for module in native.MODULES:   # compiled, and the source beside it
            path = module.replace(".", "/")
            assert f"{path}.py" in names
            assert any(n.startswith(f"{path}.") and n.endswith(".so") for n in names), module
        z.extractall(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**build_env, "PYTHONPATH": str(tmp_path / "site")}
    env.pop("EXTPROC_ENVOY_TEMPLATE", None)

    def extproc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "extproc", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=60)

    where = subprocess.run([sys.executable, "-c", "import extproc; print(extproc.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(tmp_path / "site"))   # not the checkout's package
    hot = subprocess.run([sys.executable, "-c", "import extproc.native as n, "
                          "extproc.guards.reframe; print(n.status())"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert "'compiled': True" in hot.stdout and ".so'" in hot.stdout, hot.stdout + hot.stderr
    config = str(ROOT / "config/gateway.yaml")
    r = extproc("render-envoy", "--place", "compose", "--config", config)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ROOT / "envoy/compose.yaml").read_text()
    assert extproc("check", config, "--allow-dev-credentials").returncode == 0
    token = extproc("token", "--sub", "alice")
    assert token.returncode == 0 and token.stdout.count(".") == 2
