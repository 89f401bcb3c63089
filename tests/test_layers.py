"""docs/architecture.md §1: the packages are layers and no import goes upward — not even a lazy one inside
a function. Checked by reading every module's imports."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("portfolio", "tranching", "partners", "dashboards", "riskpool")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_goes_up_the_layers(layer: str) -> None:
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no modules under {layer}/"
    upward = [f"{f.relative_to(ROOT)}:{line} imports {module}"
              for f in files for line, module in _imports(f)
              if module.split(".")[0] in above]
    assert upward == []


# The floors inside portfolio/, from the ground up (docs/architecture.md). A module imports
# only from its own floor or the ones below. The modules directly in portfolio/ (errors,
# version, settings, validation, risk) are the ground floor.
PORTFOLIO_FLOORS = ("portfolio", "portfolio.loans", "portfolio.montecarlo", "portfolio.store",
                    "portfolio.book", "portfolio.synthetic")


def _floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) >= 2 and ".".join(parts[:2]) in PORTFOLIO_FLOORS:
        return PORTFOLIO_FLOORS.index(".".join(parts[:2]))
    return 0


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_portfolio_has_its_floors() -> None:
    for floor in PORTFOLIO_FLOORS[1:]:
        assert (ROOT / floor.replace(".", "/") / "__init__.py").exists(), floor
    loose = sorted(p.name for p in (ROOT / "portfolio").glob("*.py"))
    assert loose == ["__init__.py", "errors.py", "risk.py", "settings.py", "validation.py",
                     "version.py"]


@pytest.mark.parametrize("floor", PORTFOLIO_FLOORS)
def test_no_import_goes_up_the_portfolio_floors(floor: str) -> None:
    files = sorted((ROOT / floor.replace(".", "/")).rglob("*.py"))
    if floor == "portfolio":
        files = sorted((ROOT / "portfolio").glob("*.py"))
    mine = PORTFOLIO_FLOORS.index(floor)
    upward = [f"{f.relative_to(ROOT)}:{line} imports {module}"
              for f in files for line, module in _imports(f)
              if module.split(".")[0] == "portfolio" and _floor(module) > mine
              and _floor(_module_name(f)) == mine]
    assert upward == []


def test_sql_lives_in_the_store_modules() -> None:
    # SQL only in portfolio/store/ — no other module calls a DuckDB connection's
    # execute/sql.
    offenders = []
    for layer in LAYERS:
        for f in sorted((ROOT / layer).rglob("*.py")):
            if f.is_relative_to(ROOT / "portfolio" / "store"):
                continue
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in {"execute", "sql"}
                        and isinstance(node.func.value, ast.Attribute)
                        and node.func.value.attr == "con"):
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _import_graph(layer: str) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports (every import, also the ones under
    ``if TYPE_CHECKING:`` or inside a function: a cycle there is still a cycle of ideas).
    ``from a.b import c`` counts as an import of ``a.b.c`` when that is a module, else of ``a.b``."""
    files = {_module_name(f): f for f in sorted((ROOT / layer).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files
                           else node.module for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, …, a], or [] when the graph has none (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_find_cycle_sees_a_cycle_and_its_absence() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_cycle_inside_a_package(layer: str) -> None:
    # Two modules that import each other (directly or round a loop) are one idea split in two
    # files: the shared types belong in a module both import (e.g. partners/types.py).
    graph = _import_graph(layer)
    assert graph, f"no modules under {layer}/"
    cycle = _find_cycle(graph)
    assert cycle == [], " imports ".join(cycle)


# Imports sit at the top of each module, so the dependency graph is visible in one place and
# the names keep their types. The exceptions are heavy or optional dependencies that only
# some commands need (listed with their places in riskpool/cli.py's docstring); the
# command modules themselves are loaded lazily by the CLI through importlib, not an import
# statement.
ALLOWED_LAZY = {
    "streamlit": "Streamlit is large; only `riskpool dashboard` and `riskpool demo` start its "
                 "server, so the other commands never load it",
    "distributed": "Dask is optional (riskpool[distributed]); only --workers/--scheduler use "
                   "it, and its absence is reported with the install hint",
    "dask": "as distributed",
    "psutil": "not a dependency: bench_b1's peak memory where /proc/self/status is unreadable",
    "playwright": "the browser tests only",
}
CODE_DIRS = (*LAYERS, "benchmarks", "examples")


def _imports_in_functions(source: str) -> list[tuple[int, str]]:
    found = set()
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found |= {(node.lineno, alias.name) for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    found.add((node.lineno, "." * node.level + (node.module or "")))
    return sorted(found)


def _not_allowed(module: str) -> bool:
    return module.split(".")[0] not in ALLOWED_LAZY


def test_imports_are_at_module_level() -> None:
    files = sorted(f for d in CODE_DIRS for f in (ROOT / d).rglob("*.py"))
    offenders = [f"{f.relative_to(ROOT)}:{line} imports {module} inside a function"
                 for f in files
                 for line, module in _imports_in_functions(f.read_text(encoding="utf-8"))
                 if _not_allowed(module)]
    assert offenders == []


def test_imports_in_functions_are_found() -> None:
    found = _imports_in_functions(textwrap.dedent("""
        import os
        def f():
            import json
            from . import sibling
            g = lambda: __import__("x")
            def inner():
                from streamlit.web import cli
        """))
    assert found == [(4, "json"), (5, "."), (8, "streamlit.web")]
    assert [m for _, m in found if _not_allowed(m)] == ["json", "."]
