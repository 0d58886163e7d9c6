"""Found by the mesh review: the Istio overlay replaces the base server config with its own
copy (overlays/istio/extproc.yaml, `behavior: replace`), as the Envoy Gateway and kgateway
overlays do, but the README's "Edit before real traffic" (identity provider) and the base
config's own header name only those two. An operator who edits base/gateway.yaml as told (the
IdP, a guard, a limit) and applies the Istio overlay runs the overlay's copy: the edit is
silently not deployed."""

from __future__ import annotations

import re

import yaml

from tests.unit.test_kubernetes import K8S, OVERLAYS


def _replacing() -> set[str]:
    out = set()
    for o in OVERLAYS:
        k = yaml.safe_load((K8S / "overlays" / o / "kustomization.yaml").read_text())
        for g in k.get("configMapGenerator", []):
            if g.get("name") == "extproc-config" and g.get("behavior") == "replace":
                out.add(o)
    return out


def test_every_overlay_with_its_own_server_config_is_named_where_the_base_is_edited() -> None:
    replacing = _replacing()
    assert "istio" in replacing
    readme = (K8S / "README.md").read_text()
    idp = readme[readme.index("**Identity provider**"):readme.index("- **Image**")]
    base = (K8S / "base/gateway.yaml").read_text().split("\nserver:")[0]
    names = {"envoy-gateway": r"envoy-gateway|Envoy Gateway", "kgateway": r"kgateway",
             "istio": r"[Ii]stio"}
    for o in replacing:
        assert re.search(names[o], idp), f"README's identity-provider step omits {o}"
        assert re.search(rf"({names[o]})[^.]*replace|replace[^.]*({names[o]})",
                         base.replace("\n#", " ")), f"base/gateway.yaml's header omits {o}"
