"""Every relative link in README.md and docs/*.md resolves: the file (or directory) exists, and
a `#anchor` names a heading of its target, slugged as GitHub does. The README is the front
door and points into docs/; a moved section must not leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); text may hold one level of [..] (badges)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if m:
            if fenced is None:
                fenced = m.group(1)
            elif m.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            out.append((n, line))
    return out


def slug(heading: str) -> str:
    """GitHub's heading anchor: markup dropped, lowercase, punctuation removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor the headings of a markdown text define, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose_lines(text):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and link definition outside code."""
    out = []
    for n, line in _prose_lines(text):
        m = _DEFINITION.match(line)
        if m:
            out.append((n, m.group(1)))
            continue
        prose = _CODE_SPAN.sub("", line)
        out.extend((n, t) for t in _INLINE.findall(prose))
    return out


def broken_links(md: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with md's relative links, one line each, paths shown from root."""
    problems = []
    for n, target in links(md.read_text(encoding="utf-8")):
        if _SCHEME.match(target):
            continue                                   # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        where = f"{md.relative_to(root)}:{n}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor:
            if dest.suffix != ".md":
                problems.append(f"{where}: anchor into a file that is not markdown")
            elif anchor not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(md: Path) -> None:
    assert md.read_text(encoding="utf-8").strip()
    assert broken_links(md) == []


def test_the_readme_points_into_docs() -> None:
    targets = {t.partition("#")[0] for _, t in links((ROOT / "README.md").read_text())}
    for doc in DOCS[1:]:
        assert f"docs/{doc.name}" in targets, f"the README never links {doc.name}"


def test_slug_follows_github() -> None:
    assert slug("Dynamic metadata (namespace `extproc`)") == "dynamic-metadata-namespace-extproc"
    assert slug("What works today") == "what-works-today"
    assert slug("Envoy configuration") == "envoy-configuration"
    assert slug("Don't: a/b, c.d!") == "dont-ab-cd"
    assert slug("x_y and [a link](z.md)") == "x_y-and-a-link"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n## B\n") == {"a", "a-1", "b"}


def test_a_dead_link_is_caught(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Here it is\n")
    md = tmp_path / "index.md"
    md.write_text(
        "[ok](there.md#here-it-is) [web](https://example.com/x) [self](#top)\n"
        "# Top\n"
        "`[not a link](gone.md)`\n"
        "```\n[also not](gone.md)\n```\n"
        "[gone](gone.md) ![img](missing.png) [bad](there.md#nowhere)\n"
        "[def]: nope.md\n"
    )
    assert broken_links(md, root=tmp_path) == [
        "index.md:7: gone.md: no such file",
        "index.md:7: missing.png: no such file",
        "index.md:7: there.md#nowhere: no heading with anchor #nowhere",
        "index.md:8: nope.md: no such file",
    ]
