"""The project's own documentation: README points to docs/architecture.md and docs/model.md,
and the files and links those pages name exist (a moved module fails here, not in a reader's
hands)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("docs/architecture.md", "docs/model.md")
TOP = ("portfolio", "tranching", "partners", "dashboards", "riskpool", "tests", "benchmarks",
       "examples", "docs")
# a repository path written in backticks: `portfolio/store/core.py`, `examples/partners.toml`
_PATH = re.compile(r"`((?:" + "|".join(TOP) + r")/[\w./-]+\.(?:py|toml|json|md))`")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_links_to_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in DOCS:
        assert f"]({doc})" in readme, f"README.md does not link to {doc}"


@pytest.mark.parametrize("doc", DOCS)
def test_paths_named_in_the_docs_exist(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = sorted(set(_PATH.findall(text)))
    assert named, f"{doc} names no repository file"
    missing = [p for p in named if not (ROOT / p).exists()]
    assert missing == []


@pytest.mark.parametrize("doc", ("README.md", *DOCS))
def test_relative_links_resolve(doc: str) -> None:
    path = ROOT / doc
    links = [t for t in _LINK.findall(path.read_text(encoding="utf-8"))
             if not re.match(r"[a-z]+:", t)]
    missing = [t for t in links if not (path.parent / t).exists()]
    assert missing == []
