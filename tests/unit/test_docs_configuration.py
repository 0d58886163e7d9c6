"""docs/configuration.md's reference block is a config the loader accepts (found by review:
it put Vertex's keys on an OpenAI route, which `extproc check` refuses), and it names every
`server:` key the loader knows (two of them were in no document)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from extproc import loader
from extproc.config import ServerConfig
from extproc.schema import Checker

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _reference() -> dict:
    match = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None
    return yaml.safe_load(match.group(1))


def test_the_reference_block_loads() -> None:
    doc = _reference()
    for route in doc["routes"]:
        route.pop("plugins", None)   # (names a package of the reader's own)
    cfg = loader.parse(doc)
    assert {r.provider for r in cfg.routes.values()} >= {"openai", "vertex"}


def test_the_reference_block_names_every_server_key() -> None:
    c = Checker()
    loader._server(c, {"no-such-key": 1})
    known = re.search(r"known keys: ([^)]*)", " ".join(c.errors))
    assert known is not None, c.errors
    keys = {k.strip() for k in known.group(1).split(",")}
    assert keys == set(_reference()["server"]) and keys <= set(vars(ServerConfig()))
