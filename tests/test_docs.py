"""The project's own documentation: README points to docs/architecture.md and docs/model.md,
and the files and links those pages name exist (a moved module fails here, not in a reader's
hands)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("docs/architecture.md", "docs/model.md", "docs/performance.md")
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


# Nothing points outside the repository: no path into a sibling folder of notes and no
# reference to design, domain or style documents that a clone does not have. (The words are
# built from parts so that this file does not match itself.)
_OUTSIDE = re.compile("|".join((
    "sha" + "red/",
    r"\b" + "DES" + r"IGN\b",
    r"\b" + "DOM" + r"AIN\b",
    "STY" + r"LE\.md",
)))
_SCANNED = ("README.md", "Makefile", "pyproject.toml", ".ci", *TOP)
_TEXT = {".py", ".md", ".toml", ".txt", ".json", ".cfg", ".ini", ".yml", ".yaml", ".sh", ""}


def _text_files() -> list[Path]:
    files: list[Path] = []
    for name in _SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [f for f in sorted(path.rglob("*")) if f.is_file() and f.suffix in _TEXT
                      and "__pycache__" not in f.parts]
    return files


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for f in _text_files():
        for number, line in enumerate(f.read_text(encoding="utf-8", errors="replace")
                                      .splitlines(), start=1):
            if _OUTSIDE.search(line):
                found.append(f"{f.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
