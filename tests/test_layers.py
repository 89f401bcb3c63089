"""DESIGN §2: the packages are layers and no import goes upward — not even a lazy one inside
a function. Checked by reading every module's imports."""

from __future__ import annotations

import ast
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


def test_sql_lives_in_the_store_modules() -> None:
    # STYLE.md: SQL only in portfolio/store/ — no other module calls a DuckDB connection's
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
