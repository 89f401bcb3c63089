"""Audit of the data-access layer and the pages: every data read goes through a function of
``dashboards.access`` that takes the viewer and checks it, and every page passes it.

- Every public function of ``dashboards.access`` either takes ``viewer`` or is on the short
  list of helpers that read no data (parsers, formatters).
- Each function that takes ``viewer`` refuses a missing or malformed viewer (``None``, a role
  that is neither ``treasury`` nor ``partner:<id>``) with ``AccessDenied`` before it reads
  anything, and the database's row counts are unchanged.
- The treasury-only functions (assumption files, pool assumptions, simulating, saving a pool)
  refuse a partner.
- No page reads data on its own (no SQL, no file reads, no store import); every call of an
  access or cached function passes the logged-in viewer ``v`` (or ``*ui.args(v)``).
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from adversarial_helpers import row_counts
from pages_helpers import PAGES_DIR

from dashboards import access, ui
from dashboards.auth import Viewer

pytestmark = pytest.mark.adversarial("entitlements")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TREASURY = Viewer("t", "treasury")
ME = Viewer("bank_user", "partner:bank_east")

# helpers that read no data: parse or format what the caller passes in
NO_DATA = {"db_version", "deterministic", "fan", "run_view_from_paths", "stress", "waiting",
           "lock_wait",
           "rating_table_from_text", "deal_from_text", "check_viewer", "thin_tails",
           # a total row added to a table already read in the viewer's scope
           "mix_table", "with_total_row"}


def _public_functions() -> dict[str, object]:
    return {name: fn for name, fn in inspect.getmembers(access, inspect.isfunction)
            if fn.__module__ == access.__name__ and not name.startswith("_")}


VIEWER_FUNCTIONS = sorted(n for n, fn in _public_functions().items()
                          if "viewer" in inspect.signature(fn).parameters)


def test_every_access_function_takes_the_viewer() -> None:
    missing = sorted(n for n, fn in _public_functions().items()
                     if n not in NO_DATA and "viewer" not in inspect.signature(fn).parameters)
    assert missing == [], f"access functions reading data without a viewer: {missing}"
    # and the list is the one audited: the example deals, assumption files, pool assumptions
    # and the deal tranche frame take the viewer too
    assert {"example_deals", "example_rating_tables", "assumption_files",
            "load_assumptions_file", "pool_assumptions", "deal_tranche_frame",
            "deal_with_tranches"} <= set(VIEWER_FUNCTIONS)


def _arguments(fn: object, db: Path, viewer: object) -> dict[str, object]:
    deal = (EXAMPLES / "deal_us_consumer.toml").read_text(encoding="utf-8")
    values = {"db": db, "viewer": viewer, "run_id": 1, "allocation_id": 1, "pool_id": 1,
              "as_of": dt.date(2026, 6, 30), "cutoff": dt.date(2026, 6, 30), "criteria": {},
              "deal_toml": deal, "edited": pd.DataFrame(), "name": "x", "party_id": "bank_east",
              "assumptions": None, "n_paths": 10, "seed": 1, "set_id": 1, "run_a": 1,
              "run_b": 1, "a": None, "b": None, "assumptions_name": "x"}
    out = {}
    for p in inspect.signature(fn).parameters.values():  # type: ignore[arg-type]
        if p.default is inspect.Parameter.empty:
            out[p.name] = values[p.name]
    return out


BAD_VIEWERS = [None, "treasury", Viewer("x", "admin"), Viewer("x", "partner:"),
               Viewer("x", "Treasury"), Viewer("x", "partner:a b")]


@pytest.mark.parametrize("bad", BAD_VIEWERS, ids=["none", "a-string", "admin", "empty-partner",
                                                  "capitalised", "space"])
@pytest.mark.parametrize("name", VIEWER_FUNCTIONS)
def test_malformed_viewer_is_refused_before_any_read(demo_book, name: str, bad: object) -> None:
    fn = _public_functions()[name]
    before = row_counts(demo_book.db)
    with pytest.raises(access.AccessDenied) as err:
        result = fn(**_arguments(fn, demo_book.db, bad))  # type: ignore[operator]
        if hasattr(result, "__enter__"):  # connect(): refused when entered
            with result:
                pass
    assert "log in" in str(err.value)
    assert row_counts(demo_book.db) == before


TREASURY_ONLY = {
    "assumption_files": lambda db, v, b: access.assumption_files(db, v),
    "load_assumptions_file": lambda db, v, b: access.load_assumptions_file(
        db, v, f"assumptions_pool{b.pool_id}.toml"),
    "pool_assumptions": lambda db, v, b: access.pool_assumptions(db, v, b.pool_id),
    "save_pool": lambda db, v, b: access.save_pool(db, v, "p", {}, dt.date(2026, 6, 30)),
    "record_pool_run": lambda db, v, b: access.record_pool_run(
        db, v, b.pool_id, f"assumptions_pool{b.pool_id}.toml", n_paths=10, seed=1),
    "store_run_views": lambda db, v, b: access.store_run_views(db, v, b.run_id),
    "simulate_pool": lambda db, v, b: access.simulate_pool(
        db, v, b.pool_id, access.pool_assumptions(db, TREASURY, b.pool_id), n_paths=10,
        seed=1),
}


@pytest.mark.parametrize("name", sorted(TREASURY_ONLY))
def test_treasury_only_functions_refuse_a_partner(demo_book, name: str) -> None:
    before = row_counts(demo_book.db)
    with pytest.raises(access.AccessDenied, match="treasury"):
        TREASURY_ONLY[name](demo_book.db, ME, demo_book)
    assert row_counts(demo_book.db) == before


def test_treasury_reads_the_assumption_files(demo_book) -> None:
    """The refusal is about the viewer: treasury lists and reads them; a name not listed
    (a path typed into the page) is NotFound."""
    files = access.assumption_files(demo_book.db, TREASURY)
    name = f"assumptions_pool{demo_book.pool_id}.toml"
    assert name in files
    a = access.load_assumptions_file(demo_book.db, TREASURY, name)
    b = access.pool_assumptions(demo_book.db, TREASURY, demo_book.pool_id)
    assert a.rho == b.rho
    np.testing.assert_array_equal(a.default_hazard, b.default_hazard)
    with pytest.raises(access.NotFound, match="assumption set"):
        access.load_assumptions_file(demo_book.db, TREASURY, "/etc/passwd")


def test_partner_tranche_frame_has_no_holders() -> None:
    """A partner's editable tranche table has no holder column, and a holder typed into an
    edited table is ignored (the deal's holders are kept)."""
    text = (EXAMPLES / "deal_us_consumer.toml").read_text(encoding="utf-8")
    mine = access.deal_tranche_frame(ME, text)
    theirs = access.deal_tranche_frame(TREASURY, text)
    assert "holder" in theirs.columns and "holder" not in mine.columns
    assert list(mine.columns) == [c for c in theirs.columns if c != "holder"]
    edited = theirs.copy()
    edited.loc[0, "holder"] = "bank_east"
    kept = access.deal_from_text(access.deal_with_tranches(ME, text, edited))
    assert kept.tranches[0].holder == access.deal_from_text(text).tranches[0].holder
    moved = access.deal_from_text(access.deal_with_tranches(TREASURY, text, edited))
    assert moved.tranches[0].holder == "bank_east"


# ----------------------------------------------------------------------------- the pages

_CACHED = {n for n, fn in inspect.getmembers(ui) if callable(fn) and hasattr(fn, "clear")
           and "username" in inspect.signature(fn).parameters}
_FORBIDDEN_NAMES = {"duckdb", "open", "read_parquet", "read_csv", "read_text", "read_bytes",
                    "connect", "open_store", "execute", "sql"}


def _passes_viewer(args: list[ast.expr]) -> bool:
    for a in args:
        if isinstance(a, ast.Name) and a.id == "v":
            return True
        if (isinstance(a, ast.Starred) and isinstance(a.value, ast.Call)
                and ast.unparse(a.value) == "ui.args(v)"):
            return True
    return False


def _data_function(node: ast.expr) -> str | None:
    """``access.X`` (X takes the viewer) or ``ui.X`` (a cached read): its dotted name."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "access" and node.attr in VIEWER_FUNCTIONS:
            return f"access.{node.attr}"
        if node.value.id == "ui" and node.attr in _CACHED:
            return f"ui.{node.attr}"
    return None


@pytest.mark.parametrize("path", sorted(PAGES_DIR.glob("*_page.py")), ids=lambda p: p.stem)
def test_page_reads_data_only_through_viewer_checked_functions(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if mod and (mod.startswith(("portfolio.store", "duckdb", "partners.records"))
                        or mod == "portfolio.book.pools"):
                problems.append(f"line {node.lineno}: imports {mod}")
        if isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_NAMES:
            problems.append(f"line {node.lineno}: uses .{node.attr}")
        if isinstance(node, ast.Name) and node.id in _FORBIDDEN_NAMES:
            problems.append(f"line {node.lineno}: uses {node.id}")
        if not isinstance(node, ast.Call):
            continue
        name = _data_function(node.func)
        if name is not None:
            used.add(name)
            if not _passes_viewer(node.args):
                problems.append(f"line {node.lineno}: {name} called without the viewer")
        if ast.unparse(node.func) == "ui.guard" and node.args:
            name = _data_function(node.args[0])
            if name is not None:
                used.add(name)
                if not _passes_viewer(node.args[1:]):
                    problems.append(f"line {node.lineno}: ui.guard({name}) without the viewer")
    # every reference to an access function is a call checked above (none passed around)
    for node in ast.walk(tree):
        name = _data_function(node) if isinstance(node, ast.Attribute) else None
        if name is not None:
            assert name in used, f"{path.name}: {name} referenced but not called"
    assert problems == [], f"{path.name}: {problems}"
    assert used, f"{path.name} reads nothing? (the audit would be vacuous)"


def test_the_page_audit_can_fail(tmp_path: Path) -> None:
    """The AST audit flags a call without the viewer and a direct database read."""
    bad = tmp_path / "bad_page.py"
    bad.write_text("from dashboards import access, ui\nimport duckdb\nv = ui.viewer()\n"
                   "x = access.example_deals(None)\ny = ui.guard(ui.runs, 'db', 'v', 'u', 'r')\n"
                   "z = duckdb.connect('db').execute('select 1')\n", encoding="utf-8")
    with pytest.raises(AssertionError) as err:
        test_page_reads_data_only_through_viewer_checked_functions(bad)
    text = str(err.value)
    assert "access.example_deals called without the viewer" in text
    assert "ui.guard(ui.runs) without the viewer" in text
    assert "imports duckdb" in text and ".execute" in text
