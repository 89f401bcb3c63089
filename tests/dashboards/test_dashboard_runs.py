"""Runs made on the Simulation page are recorded in the database as ordinary simulation runs
(``access.record_pool_run``: ``portfolio.store.runs.record_simulation``, as ``riskpool
simulate``), with their label and tags, by treasury only; a refused or failed write records
nothing; a scheduled report and a dashboard write on the same DuckDB file, in two processes,
both complete (each waits out the other's short hold of the file).

Every test works on a private copy of the dashboard book (database, run files, assumptions).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from adversarial_helpers import row_counts
from pages_helpers import PARTNER, frame_with, metric, no_errors, page

from dashboards import access, ui
from dashboards.auth import Viewer
from dashboards.reports import write_report
from portfolio.book.pools import load_pool_loans
from portfolio.errors import ValidationError
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.records import SimulationInputs
from portfolio.montecarlo.simulation import loss_distribution, simulate
from portfolio.store.core import open_store
from portfolio.store.runs import get_run, list_runs, load_paths

TREASURY = Viewer("t", "treasury")
ROOT = Path(__file__).resolve().parents[2]

# Another process takes the database (read-write or read-only), says so, holds it for the given
# seconds and lets go.
HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("held", flush=True)
time.sleep(float(sys.argv[3]))
con.close()
"""


@pytest.fixture
def book(demo_book, tmp_path, monkeypatch):
    """A private, writable copy of the dashboard book with its own ``runs/`` directory."""
    src = Path(demo_book.db).parent
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_book.db, db)
    shutil.copytree(src / "runs", tmp_path / "runs")
    for f in src.glob("assumptions*.toml"):
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.setenv("RISKPOOL_DB", str(db))
    monkeypatch.setenv("RISKPOOL_USERS", str(demo_book.users_file))
    return db, demo_book


def _sim_runs(db: Path) -> list[int]:
    with open_store(db, read_only=True) as store:
        return sorted(int(r) for r in list_runs(store, "simulation")["run_id"])


def _hold(db: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), mode, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_made_on_the_page_is_recorded_and_survives_a_reload(book) -> None:
    db, demo = book
    before = _sim_runs(db)
    at = page("simulation", "treasury")
    at.select_slider(key="new_paths").set_value(500)
    at.slider(key="new_pd").set_value(2.0)
    at.slider(key="new_rho").set_value(0.1)
    at.text_input(key="new_label").input("June close, PD ×2")
    at.text_input(key="new_tags").input("june adverse june")
    at.button(key="new_run").click().run()
    no_errors(at)
    after = _sim_runs(db)
    assert len(after) == len(before) + 1
    new = after[-1]
    assert any(f"Saved as run {new}" in s.value for s in at.success)

    # stored as an ordinary run: inputs, label, tags, the stressed assumptions and the paths
    with open_store(db, read_only=True) as store:
        rec = get_run(store, new)
        listed = list_runs(store, "simulation").set_index("run_id").loc[new]
        stored = load_paths(store, new)
        loans = load_pool_loans(store, demo.pool_id)
    inputs = rec.inputs
    assert isinstance(inputs, SimulationInputs)
    assert (inputs.pool_id, inputs.n_paths, inputs.seed, inputs.source) == (
        demo.pool_id, 500, 20260630, "dashboard")
    assert (inputs.stress.pd_mult, inputs.stress.rho) == (2.0, 0.1)
    assert listed["label"] == "June close, PD ×2" and listed["tags"] == "june,adverse"
    # the independent recomputation: the library's simulate on the file's assumptions, stressed
    base = load_assumptions(db.parent / f"assumptions_pool{demo.pool_id}.toml")
    paths = simulate(loans, base.stressed(pd_multiplier=2.0, rho=0.1), 500, 20260630)
    expected = loss_distribution(paths)
    assert stored.loss.tolist() == pytest.approx(paths.loss.tolist(), rel=1e-12)
    assert ui.money_short(expected.el) in [m.value for m in at.metric if m.label == "EL (CNY)"]

    # a reload (a new session, the address keeps ?run=<new>): the run is listed and selected
    assert at.query_params["run"] == str(new)
    assert at.selectbox(key="sim_run").value == new
    again = page("simulation", "treasury", {"run": str(new)})
    no_errors(again)
    assert again.selectbox(key="sim_run").value == new
    assert str(new) in again.selectbox(key="sim_run").options
    runs_table = frame_with(again, "label")
    assert "June close, PD ×2" in runs_table["label"].tolist()
    assert metric(again, "EL (CNY)") == ui.money_short(expected.el)
    assert f"run {new}" in again.selectbox(key="cmp_b").options


def test_a_partner_cannot_record_a_run(book) -> None:
    db, demo = book
    before = row_counts(db)
    me = Viewer("p", f"partner:{PARTNER}")
    with pytest.raises(access.AccessDenied, match="treasury"):
        access.record_pool_run(db, me, demo.pool_id, f"assumptions_pool{demo.pool_id}.toml",
                               n_paths=100, seed=1, label="mine")
    assert row_counts(db) == before
    at = page("simulation", f"partner:{PARTNER}")
    no_errors(at)
    assert not [b for b in at.button if b.key == "new_run"]
    assert not [t for t in at.text_input if t.key == "new_label"]


def _no_partial_run(db: Path, before: dict[str, int], runs_before: set[str]) -> None:
    assert row_counts(db) == before
    assert {p.name for p in (db.parent / "runs").iterdir()} == runs_before  # no dir, no .tmp-


def test_a_refused_label_records_nothing(book) -> None:
    db, demo = book
    before, dirs = row_counts(db), {p.name for p in (db.parent / "runs").iterdir()}
    with pytest.raises(ValidationError, match="--label"):
        access.record_pool_run(db, TREASURY, demo.pool_id,
                               f"assumptions_pool{demo.pool_id}.toml", n_paths=100, seed=1,
                               label="x" * 201)
    with pytest.raises(ValidationError, match="--tag"):
        access.record_pool_run(db, TREASURY, demo.pool_id,
                               f"assumptions_pool{demo.pool_id}.toml", n_paths=100, seed=1,
                               tags=("a,b",))
    _no_partial_run(db, before, dirs)


def test_a_write_that_fails_inside_the_transaction_leaves_no_partial_run(book, monkeypatch):
    """The label is written last in the run's transaction: when it fails, the runs row, the
    summary tables and the run's files are all gone."""
    db, demo = book
    before, dirs = row_counts(db), {p.name for p in (db.parent / "runs").iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(access.run_sql, "label_run", broken)
    with pytest.raises(OSError, match="disk full"):
        access.record_pool_run(db, TREASURY, demo.pool_id,
                               f"assumptions_pool{demo.pool_id}.toml", n_paths=100, seed=1,
                               label="lost")
    _no_partial_run(db, before, dirs)


def test_a_write_refused_by_a_busy_database_records_nothing(book, monkeypatch) -> None:
    """Another process holds the file for longer than the write waits: DataUpdating, and the
    database and runs/ are as before."""
    db, demo = book
    before, dirs = row_counts(db), {p.name for p in (db.parent / "runs").iterdir()}
    monkeypatch.setattr(access, "WRITE_LOCK_WAIT_S", 0.3)
    holder = _hold(db, "rw", 30)
    try:
        with pytest.raises(access.DataUpdating, match="being updated"):
            access.record_pool_run(db, TREASURY, demo.pool_id,
                                   f"assumptions_pool{demo.pool_id}.toml", n_paths=100, seed=1)
    finally:
        holder.kill()
        holder.wait()
    _no_partial_run(db, before, dirs)


def test_a_report_waits_out_a_dashboard_write_in_another_process(book, tmp_path) -> None:
    """The dashboard's write holds the file (read-write, another process) when the scheduled
    report starts: the report waits for it and completes with the same content as without
    the write; the recorded report names the run it used."""
    db, demo = book
    quiet = write_report(db, _as_of(demo), tmp_path / "quiet", record=False)
    holder = _hold(db, "rw", 2.0)
    try:
        outcome = write_report(db, _as_of(demo), tmp_path / "busy")
    finally:
        holder.wait()
    assert holder.returncode == 0
    assert outcome.run_id is not None
    assert outcome.content_sha256 == quiet.content_sha256


def test_a_dashboard_write_waits_out_a_reader_in_another_process(book) -> None:
    """A report's read-only connection (another process) holds the file when the dashboard
    saves a run: the write waits for it and the run is recorded."""
    db, demo = book
    before = _sim_runs(db)
    holder = _hold(db, "ro", 2.0)
    try:
        view = access.record_pool_run(db, TREASURY, demo.pool_id,
                                      f"assumptions_pool{demo.pool_id}.toml", n_paths=100,
                                      seed=3, label="while a report reads")
    finally:
        holder.wait()
    assert _sim_runs(db) == [*before, int(view.run_id)]


def test_report_cli_and_dashboard_writer_run_at_once(book, tmp_path) -> None:
    """Two real processes on one DuckDB file: ``riskpool report`` (the cron job) while a
    process records three dashboard runs one after the other. Both finish: exit code 0 for
    the report, three new runs, every one complete."""
    db, demo = book
    before = _sim_runs(db)
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\n"
         "from dashboards import access\n"
         "from dashboards.auth import Viewer\n"
         "for seed in (11, 12, 13):\n"
         "    access.record_pool_run(sys.argv[1], Viewer('t', 'treasury'), int(sys.argv[2]),\n"
         "                           sys.argv[3], n_paths=500, seed=seed, label=f's{seed}')\n",
         str(db), str(demo.pool_id), f"assumptions_pool{demo.pool_id}.toml"],
        cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    report = subprocess.run(
        [sys.executable, "-m", "riskpool", "report", "--as-of", demo.as_of, "--out",
         str(tmp_path / "cron"), "--db", str(db), "--quiet"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    writer.wait(timeout=600)
    assert report.returncode == 0, report.stderr
    assert writer.returncode == 0, writer.stderr
    after = _sim_runs(db)
    assert len(after) == len(before) + 3
    with open_store(db, read_only=True) as store:
        labels = list_runs(store, "simulation").set_index("run_id")["label"]
        for rid in after[len(before):]:
            assert load_paths(store, rid).n_paths == 500
    assert sorted(labels.loc[after[len(before):]]) == ["s11", "s12", "s13"]


def _as_of(demo) -> dt.date:
    return dt.date.fromisoformat(demo.as_of)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_pages_open_on_the_newest_run(book) -> None:
    # with two runs, the Simulation, Tranches and Dispersion pages open on the newest (the run
    # list is newest first; they opened on the oldest, whose figures looked like the latest's
    # when only a stress or a deal set them apart), as the report takes the latest run
    db, demo = book
    view = access.record_pool_run(db, TREASURY, demo.pool_id,
                                  f"assumptions_pool{demo.pool_id}.toml", n_paths=100, seed=3,
                                  label="the newest")
    newest = int(view.run_id)
    assert newest > demo.run_id
    for name, key in (("simulation", "sim_run"), ("tranches", "tr_run"),
                      ("dispersion", "disp_run")):
        at = page(name, "treasury")
        assert not at.exception, (name, [e.value for e in at.exception])
        assert at.selectbox(key=key).value == newest, name
        assert at.query_params["run"] == str(newest)
    at = page("simulation", "treasury")
    assert metric(at, "Paths") == "100"
