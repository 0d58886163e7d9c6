"""bench/ablate.py's variants: (h)'s config less exactly what each names, still valid."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import ablate  # noqa: E402
import setups  # noqa: E402

from extproc import loader  # noqa: E402


def _doc() -> dict:
    return yaml.safe_load((setups.ROOT / setups.GATEWAY_CONFIG).read_text())


@pytest.mark.parametrize("variant", ["full", *ablate.PARTS, "-all"])
def test_each_variant_drops_what_it_names_and_loads(variant: str, tmp_path: Path) -> None:
    out = ablate.without(_doc(), variant)
    drop = ablate.PARTS if variant == "-all" else (variant,)
    routes = out["routes"]
    assert all(("guards" in r) != ("-guards" in drop) for r in routes)
    assert all(("rate_limits" in r) != ("-limits" in drop) for r in routes)
    # without auth, a route that injects the provider key must say it serves anonymous
    # clients on purpose (auth: none)
    assert all((r["auth"] == "none") == ("-auth" in drop) for r in routes)
    assert (out.get("server", {}).get("access_log", True) is False) == ("-log" in drop)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(out))
    config = loader.load(path)
    assert len(config.routes) == len(routes)
