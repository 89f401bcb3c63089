"""``riskpool simulate --workers/--scheduler``: summaries only come back, the deal's waterfall
runs on the workers, and the run recorded from them shows on the dashboard.

The oracle is the local run (``riskpool simulate`` without a cluster, same seed): its paths,
its tranche table and trigger table (``tranching.analytics`` on the full waterfall), its loss
distribution and monthly means. Every per-path figure and every loss measure must be
bit-identical; the only differences allowed are float rounding where a mean over the paths is
taken in another order: the monthly means and standard errors (block sums joined in block
order instead of numpy's one pass over the paths) and the tranche table's price and modified
duration (QuantLib on the mean cash flow by month, from per-block sums): 1e-12 of the column's
scale.

One module-scoped LocalCluster of 2 single-threaded workers on 127.0.0.1 (no dashboard).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from cli_books import calibrated_pool, run_cli
from simulation_pools import assumptions, mixed_pool

from dashboards import access
from dashboards.auth import Viewer
from dashboards.reports import collect_sections, report_target
from portfolio.book.pools import get_pool
from portfolio.errors import NotFound
from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.assumptions import apply_stress, load_assumptions
from portfolio.montecarlo.distributed import open_client, slice_paths
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.montecarlo.replenishment import (
    replenishment_from_cells,
    replenishment_part_cells,
    simulate_replenishment,
)
from portfolio.montecarlo.simulation import simulate
from portfolio.montecarlo.summaries import prepare_from_parts
from portfolio.store.core import open_store
from portfolio.store.parquet_book import loan_parts
from portfolio.store.runs import (
    get_run,
    list_runs,
    load_path_losses,
    load_paths,
    load_quantile_paths,
    paths_stored,
    run_dir,
    run_loss_stats,
    run_monthly,
)
from portfolio.store.tranches import load_tranche_results
from tranching.analytics import tranche_table, trigger_table
from tranching.deal import load_deal
from tranching.distributed import TranchesOnWorkers, deal_tables
from tranching.revolving import load_deal_record
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"  # revolving 12 months, three triggers
N_PATHS = 600  # 3 canonical blocks: tasks on both workers
SEED = 9
ROUNDING = 1e-12  # relative to the column's largest value: a float sum in another order


@pytest.fixture(scope="module")
def cluster():
    with open_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def book(tmp_path_factory, cluster):
    """A small book and pool; run 1 local, run 2 on the cluster, both with the revolving deal
    under a PD stress that breaches its triggers on some paths."""
    tmp = tmp_path_factory.mktemp("workers")
    db, a_path = calibrated_pool(tmp, 1500, seed=3)
    run = ("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths",
           str(N_PATHS), "--seed", str(SEED), "--structure", DEAL, "--pd-mult", "4", "--quiet")
    run_cli(*run)
    run_cli(*run, "--scheduler", cluster.scheduler.address)
    # run 3: the same on the cluster, the workers reading the pool's tape (no loan on the client)
    tape = tmp / "tape"
    run_cli("pool", "export", "--db", db, "--pool", "1", "--out", tape)
    run_cli(*run, "--scheduler", cluster.scheduler.address, "--tape", tape)
    # run 4: a deal that does not revolve, from the tape (no new-loan cells, no profile)
    flat = tmp / "deal_no_revolving.toml"
    flat.write_text(DEAL.read_text(encoding="utf-8").replace(
        "[revolving]\nmonths = 12", "[revolving]\nmonths = 0"), encoding="utf-8")
    assert load_deal(flat).revolving_months == 0
    run_cli(*run[:-4], flat, *run[-3:], "--scheduler", cluster.scheduler.address, "--tape", tape)
    return db, a_path


def _close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    scale = max(float(np.nanmax(np.abs(a))), 1e-300)
    assert np.nanmax(np.abs(a - b)) <= ROUNDING * scale, what


def test_structure_on_workers_gives_the_local_tranche_table(book):
    db, _ = book
    with open_store(db, read_only=True) as store:
        local, remote = load_tranche_results(store, 1), load_tranche_results(store, 2)
        trig_local = load_deal_record(store, 1).triggers
        trig_remote = load_deal_record(store, 2).triggers
        settings = load_deal_record(store, 2).settings, load_deal_record(store, 1).settings
    assert list(remote.columns) == list(local.columns)
    rounded = ("price", "mod_duration", "yield")  # QuantLib on the mean cash flow by month
    for col in local.columns:
        a, b = local[col].to_numpy(), remote[col].to_numpy()
        if col in rounded:
            np.testing.assert_allclose(b.astype(float), a.astype(float), rtol=ROUNDING)
        elif a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), col
        else:
            assert list(a) == list(b), col
    for col in ("el", "el_se", "pd", "wal_mean", "irr", "loss_q99"):  # the exact ones
        assert np.array_equal(local[col].to_numpy(float), remote[col].to_numpy(float),
                              equal_nan=True), col
    # the stress breaches triggers on some paths, not all: the comparison means something
    assert 0 < trig_local["p_breach"].min() < 1 and (local["el"] > 0).any()
    assert trig_remote.equals(trig_local)
    assert settings[0] == settings[1]


def test_structure_from_a_tape_gives_the_one_process_tables(book):
    """Run 3 (``--tape --structure``: the workers read the tape's partitions and send back
    their cells and their new loans' cells; each waterfall task computes the replenishment
    profile of its own blocks from the merged new-loan cells) against its one-process twin
    (the whole profile built here from the same cells): the partitions prepared here
    (``prepare_from_parts``, ``replenishment_part_cells``), every block run here, the same
    reducer and ``deal_tables``: every column of both tables the same bytes (the reducer's
    per-block sums do not depend on the task grouping). Against run 2 (no tape): this pool
    has cells under 6 × their remaining term loans, which a run from the loans draws loan by
    loan and a run from a tape by binomial counts, so the two agree within Monte Carlo error
    only (tests/portfolio/test_replenishment_cells.py compares them on a pool drawn by
    binomial counts in both: equal to 1e-12)."""
    db, a_path = book
    deal = load_deal(DEAL)
    a = apply_stress(load_assumptions(a_path), pd_multiplier=4.0)
    with open_store(db, read_only=True) as store:
        stored, local = load_tranche_results(store, 3), load_tranche_results(store, 2)
        triggers = load_deal_record(store, 3).triggers
        settings = load_deal_record(store, 3).settings, load_deal_record(store, 2).settings
        losses = load_path_losses(store, 3)
        inputs = get_run(store, 3).simulation_inputs()
        cutoff = get_pool(store, 1).cutoff_date
        parts = loan_parts(Path(inputs.book))
    prep = prepare_from_parts(parts, a)
    new = [replenishment_part_cells(p(), a, cutoff) for p in parts]
    profile = replenishment_from_cells(new, a, prep.T, N_PATHS, SEED,
                                       purchase_months=deal.revolving_months)
    paths = sim.run_blocks(prep, sim.root_seed(SEED), N_PATHS, "granular")
    assert np.array_equal(losses, paths.loss)
    tables, trig = deal_tables(deal, TranchesOnWorkers(deal, profile)(paths, 0),
                               paths.initial_balance)
    assert list(stored.columns) == list(tables.columns)
    for col in tables.columns:
        x, y = tables[col].to_numpy(), stored[col].to_numpy()
        if x.dtype.kind == "f":
            assert np.array_equal(x, y.astype(float), equal_nan=True), col
        else:
            assert [None if v is None or v != v else v for v in x] == \
                [None if v is None or v != v else v for v in y], col
    assert triggers.reset_index(drop=True).equals(trig.reset_index(drop=True))
    assert 0 < trig["p_breach"].max() and (tables["el"] > 0).any()  # stressed enough
    assert settings[0] == settings[1]  # the same profile length, the same waterfall months
    assert inputs.structure == str(DEAL.resolve()) and inputs.dask is not None
    # run 4, a deal that does not revolve: no profile; the same twin without one
    flat = load_deal(Path(db).parent / "deal_no_revolving.toml")
    with open_store(db, read_only=True) as store:
        stored4 = load_tranche_results(store, 4)
        settings4 = load_deal_record(store, 4).settings
    tables4, _ = deal_tables(flat, TranchesOnWorkers(flat, None)(paths, 0),
                             paths.initial_balance)
    for col in ("el", "el_se", "pd", "wal_mean", "irr", "price", "size"):
        assert np.array_equal(tables4[col].to_numpy(float), stored4[col].to_numpy(float),
                              equal_nan=True), col
    assert settings4 != settings[0]  # no replenishment profile stored
    # against the run from the loans: within Monte Carlo error (4 standard errors)
    el_se = np.hypot(local["el_se"].to_numpy(float), stored["el_se"].to_numpy(float))
    assert np.all(np.abs(local["el"].to_numpy(float) - stored["el"].to_numpy(float))
                  <= 4 * el_se + 1e-12)
    np.testing.assert_allclose(stored["size"].to_numpy(float), local["size"].to_numpy(float),
                               rtol=ROUNDING)


def test_only_summaries_are_recorded_and_they_equal_the_local_run(book):
    db, _ = book
    with open_store(db, read_only=True) as store:
        full = load_paths(store, 1)
        assert paths_stored(store, 1) and not paths_stored(store, 2)
        # every path's loss, hence every loss measure: the same bits
        assert np.array_equal(load_path_losses(store, 2), full.loss)
        assert run_loss_stats(store, 2).equals(run_loss_stats(store, 1))
        for key in ("el", "el_se", "var_0.999", "es_0.99", "initial_balance"):
            assert get_run(store, 2).summary[key] == get_run(store, 1).summary[key], key
        # monthly means and SEs: to float rounding (block sums joined in block order)
        m1, m2 = run_monthly(store, 1), run_monthly(store, 2)
        assert list(m1["period_end"]) == list(m2["period_end"])
        for name in FLOW_NAMES:
            # to float rounding of the flow's own scale (a flow that is the same on every
            # path, month 1's opening balance, has an SE of rounding noise on either side)
            scale = max(float(np.nanmax(np.abs(m1[name].to_numpy(float)))), 1e-300)
            for col in (name, f"{name}_se"):
                a, b = m1[col].to_numpy(float), m2[col].to_numpy(float)
                assert np.nanmax(np.abs(a - b)) <= ROUNDING * scale, col
        # the paths at the VaR levels: those rows of the local run, every flow
        levels, index, qpaths = load_quantile_paths(store, 2)
        assert levels == (0.95, 0.99, 0.999)
        order = np.sort(full.loss)
        assert [full.loss[i] for i in index] == [order[int(np.ceil(600 * q)) - 1]
                                                 for q in levels]
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(qpaths, name), getattr(full, name)[index]), name
        # no path file; a reader that needs the paths is told why, by name
        assert not (run_dir(store, 2) / "paths.parquet").exists()
        with pytest.raises(NotFound, match="recorded from summaries on Dask workers"):
            load_paths(store, 2)
        inputs = get_run(store, 2).simulation_inputs()
        back = get_run(store, 2).summary["bytes_back"]
        with pytest.raises(NotFound, match="no stored loss-quantile paths"):
            load_quantile_paths(store, 1)
    assert inputs.dask is not None and inputs.dask.workers == 2
    flows = sum(getattr(full, n).nbytes for n in FLOW_NAMES)
    assert 0 < back < flows / 5  # what came back: a fraction of the flows


def test_the_dashboard_shows_a_run_recorded_from_summaries(book, monkeypatch, cli):
    from pages_helpers import frame_with, metric, no_errors, page  # Streamlit's AppTest

    db, _ = book
    r = cli("allocate", "--db", db, "--partners", ROOT / "examples" / "partners.toml",
            "--originated", "2025-08-01", "2025-08-31")
    assert r.code == 0, r.err  # allocation 1: the Dispersion page and report section
    treasury = Viewer("tester", "treasury")
    local, remote = access.run_view(db, treasury, 1), access.run_view(db, treasury, 2)
    assert np.array_equal(remote.loss, local.loss) and remote.stats.equals(local.stats)
    assert remote.note.startswith("Run 2 was recorded from summaries") and not local.note
    assert list(remote.balance_fan.columns) == ["date", "mean"]  # no bands without the paths
    _close(local.balance_fan["mean"].to_numpy(), remote.balance_fan["mean"].to_numpy(),
           "balance mean")
    deal_toml = access.stored_deal_toml(db, treasury, 2)
    assert deal_toml is not None
    tv = access.tranches(db, treasury, 2, deal_toml)
    with open_store(db, read_only=True) as store:
        assert tv.table.equals(load_tranche_results(store, 2))
    assert tv.loss_shares == {} and "need every path" in tv.note
    with pytest.raises(NotFound, match="recorded from summaries"):  # another discount
        access.tranches(db, treasury, 2, deal_toml, discount=0.06)
    partner = Viewer("p", "partner:bank_east")  # such a run carries no party: never shown
    assert access.runs(db, partner).empty
    for call in (lambda: access.run_view(db, partner, 2),
                 lambda: access.compare(db, partner, 1, 2),
                 lambda: access.tranches(db, partner, 2, deal_toml)):
        with pytest.raises(access.AccessDenied):
            call()
    # a report without --run takes the latest run that kept its paths; aimed at the summary
    # run, its simulation and tranche sections say what they show
    as_of = dt.date(2025, 8, 31)
    assert report_target(db, treasury, as_of, None).run_id == 1
    target = report_target(db, treasury, as_of, None, run_id=2)
    sections = {x.key: x for x in collect_sections(db, treasury, as_of, target)}
    assert "recorded from summaries" in sections["simulation"].note
    assert "need every path" in sections["tranches"].note
    assert not sections["tranches"].figures
    assert "Not available: run 2 was recorded from summaries" in sections["dispersion"].note
    with pytest.raises(NotFound, match="recorded from summaries on Dask workers"):
        access.dispersion(db, treasury, 2, 1, deal_toml)
    monkeypatch.setenv("RISKPOOL_DB", str(db))
    at = page("simulation", "treasury", query={"run": "2"})
    no_errors(at)
    assert metric(at, "EL (CNY)") == f"{local.el:,.0f}"
    assert any("recorded from summaries" in str(i.value) for i in at.info)
    at = page("tranches", "treasury", query={"run": "2"})
    no_errors(at)
    shown = frame_with(at, "wal_mean")
    shown = shown[shown["tranche"] != "total"]  # the classes, without the notes' total row
    assert shown["el"].to_numpy(float).tolist() == tv.table["el"].to_numpy(float).tolist()
    assert any("need every path" in str(i.value) for i in at.info)
    at = page("dispersion", "treasury", query={"run": "2"})  # says why, no traceback
    assert not at.exception, [e.value for e in at.exception]
    assert any("recorded from summaries on Dask workers" in str(e.value) for e in at.error)


def test_bad_deal_with_workers_exits_2_before_any_cluster(book, tmp_path, cli):
    db, a_path = book
    bad = tmp_path / "deal.toml"
    bad.write_text("[deal]\nname = 'x'\n", encoding="utf-8")
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
            "--seed", "1", "--structure", bad, "--workers", "1")
    assert r.code == 2 and r.err.startswith("error:") and "Traceback" not in r.err
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
            "--seed", "1", "--workers", "0")
    assert r.code == 2 and "--workers" in r.err
    # with a tape: the same refusals, and a tape without a cluster, before any cluster
    tape = Path(db).parent / "tape"
    for extra, field in (((bad, "--workers", "1"), "deal"),
                         ((DEAL, "--engine", "loan", "--workers", "1"), "--engine"),
                         ((DEAL, "--deterministic", "base", "--workers", "1"), "--deterministic"),
                         ((DEAL,), "--tape")):
        r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
                "--seed", "1", "--tape", tape, "--structure", *extra)
        assert r.code == 2 and r.err.startswith("error:") and field in r.err, (extra, r.err)
        assert "Traceback" not in r.err
    with open_store(db, read_only=True) as store:
        assert len(list_runs(store, "simulation")) == 4
    shown = cli("runs", "show", "2", "--db", db)
    assert shown.code == 0 and "summaries only (run on Dask workers)" in shown.out
    assert "summaries only" not in cli("runs", "show", "1", "--db", db).out
    r = cli("tranche", "cashflows", "--db", db, "--run", "2", "--out", tmp_path / "t.csv")
    assert r.code == 2 and "recorded from summaries on Dask workers" in r.err


@pytest.mark.parametrize("cuts", [(600,), (256, 600), (256, 512, 600)])
def test_tranche_summary_is_the_same_bytes_whatever_the_task_grouping(cuts):
    """The reducer on 1, 2 or 3 tasks of the same paths (as 1, 2 or more workers would run
    them): the same summary bytes, hence the same tables; against the local tables: every
    column exact but the three priced on the mean cash flow (1e-12)."""

    loans, a = mixed_pool(300, seed=5), assumptions(pd_scale=6.0, rho=0.12)
    deal = load_deal(DEAL)
    paths = simulate(loans, a, N_PATHS, SEED)
    profile = simulate_replenishment(loans, a, N_PATHS, SEED)
    reducer = TranchesOnWorkers(deal, profile)
    starts = (0, *cuts[:-1])
    joined = reducer.combine([reducer(slice_paths(paths, lo, hi), lo)
                              for lo, hi in zip(starts, cuts, strict=True)])
    whole = reducer(paths, 0)  # one task: the reference grouping
    for name in ("tranche_loss", "wal", "irr", "block_cashflow"):
        assert np.array_equal(getattr(joined, name), getattr(whole, name), equal_nan=True)
    for k in whole.breached_ever:
        assert np.array_equal(joined.first_breach[k], whole.first_breach[k])
    tables, triggers = deal_tables(deal, joined, paths.initial_balance)
    result = run_waterfall(deal, paths, replenishment=profile)
    local = tranche_table(deal, result, paths)
    assert (local["el"] > 0).any() and triggers["p_breach"].max() > 0  # stressed enough
    assert trigger_table(deal, result).equals(triggers)
    for col in local.columns:
        if col in ("price", "yield", "mod_duration"):
            np.testing.assert_allclose(tables[col].to_numpy(float), local[col].to_numpy(float),
                                       rtol=ROUNDING)
        else:
            assert local[col].equals(tables[col]), col
    with pytest.raises(Exception, match="first_path"):
        reducer(slice_paths(paths, 100, 600), 100)  # not a block boundary
