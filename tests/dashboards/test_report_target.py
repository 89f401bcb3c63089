"""Reports you can aim: ``report --run/--allocation``; without them, the run and allocation
pinned by the first report for that as-of date, so a past report is reproducible after newer
runs are added (same content hash, byte for byte in its tables and charts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pages_helpers import PARTNER

from dashboards.reports import report_target, report_viewer, write_report
from portfolio.errors import NotFound
from portfolio.store.core import open_store
from portfolio.store.records import ReportInputs
from portfolio.store.runs import get_run, resolve_run_file

AS_OF = dt.date(2026, 6, 30)


def _simulate_again(cli, book) -> int:
    with open_store(book.db, read_only=True) as store:
        rec = get_run(store, book.run_id)
        a_path = resolve_run_file(store, rec.simulation_inputs().assumptions)
        before = store.con.execute("SELECT max(run_id) FROM runs").fetchone()[0]
    r = cli("simulate", "--db", book.db, "--pool", str(book.pool_id), "--assumptions", a_path,
            "--paths", "300", "--seed", "99", "--label", "newer")
    assert r.code == 0, r.err
    return int(before) + 1


def test_a_past_report_stays_the_same_when_a_newer_run_is_added(writable_book, cli,
                                                                tmp_path: Path) -> None:
    book = writable_book
    first = write_report(book.db, AS_OF, tmp_path / "a")
    assert first.target is not None and first.target.how == "pinned"  # the demo's report pinned it
    assert first.target.run_id == book.run_id
    new_run = _simulate_again(cli, book)
    again = write_report(book.db, AS_OF, tmp_path / "b")
    assert again.target == first.target
    assert again.content_sha256 == first.content_sha256
    aimed = write_report(book.db, AS_OF, tmp_path / "c", run_id=new_run)
    assert aimed.target is not None and aimed.target.how == "given"
    assert aimed.target.run_id == new_run and aimed.target.allocation_id == first.target.allocation_id
    assert aimed.content_sha256 != first.content_sha256
    with open_store(book.db, read_only=True) as store:
        rec = get_run(store, aimed.run_id)
    assert isinstance(rec.inputs, ReportInputs) and rec.inputs.run_id == new_run
    # a new as-of date pins nothing yet: the latest run
    later = report_target(book.db, report_viewer(None), dt.date(2026, 7, 31), None)
    assert later.how == "latest" and later.run_id == new_run


def test_an_id_the_audience_cannot_see_is_refused(writable_book, cli, tmp_path: Path) -> None:
    book = writable_book
    new_run = _simulate_again(cli, book)  # carries no party: no partner may see it
    with pytest.raises(NotFound, match="--run"):
        report_target(book.db, report_viewer(PARTNER), AS_OF, PARTNER, run_id=new_run)
    with pytest.raises(NotFound, match="--allocation"):
        report_target(book.db, report_viewer(None), AS_OF, None, allocation_id=999)
    r = cli("report", "--db", book.db, "--as-of", "2026-06-30", "--out", tmp_path / "x",
            "--run", "999")
    assert r.code == 2 and "--run" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
