"""The Simulation page's Compare tab: densities (share of each run's paths on common bins), the
delta table of ``portfolio.book.compare`` (the numbers of ``riskpool runs diff``) with standard
errors, and a warning when a quantile rests on fewer than 50 tail paths.

Two recorded runs of the dashboard book: the demo's 500-path run A and a 2,000-path run B of
the same pool made here with ``riskpool simulate`` (another seed).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pages_helpers import PARTNER, frame_with, no_errors, page

from dashboards import access, charts
from dashboards.auth import Viewer
from partners.records import load_allocation
from portfolio.book.compare import MIN_TAIL_PATHS, compare_runs
from portfolio.book.pools import load_pool_loans
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.records import SimulationInputs
from portfolio.montecarlo.simulation import simulate
from portfolio.store.core import open_store
from portfolio.store.runs import list_runs, record_simulation, run_loss_stats

TREASURY = Viewer("t", "treasury")


@pytest.fixture(scope="module")
def two_runs(demo_book, tmp_path_factory) -> Path:
    """A private copy of the dashboard book (database, run files, assumptions) with a second,
    2,000-path run of the same pool."""
    root = tmp_path_factory.mktemp("compare")
    src = Path(demo_book.db).parent
    db = root / "demo.duckdb"
    shutil.copy(demo_book.db, db)
    shutil.copytree(src / "runs", root / "runs")
    a = root / f"assumptions_pool{demo_book.pool_id}.toml"
    shutil.copy(src / a.name, a)
    # as ``riskpool demo`` records its run: the pool's paths carrying the allocation's shares
    with open_store(db) as store:
        stored = load_allocation(store, demo_book.allocation_id)
        loans = load_pool_loans(store, demo_book.pool_id)
        index = np.searchsorted(stored.loan_id.astype(str),
                                np.asarray(loans.loan_id).astype(str))
        paths = simulate(loans, load_assumptions(a), 2000, 7, shares=stored.shares[index],
                         party_ids=stored.party_ids)
        record_simulation(store, paths, SimulationInputs(
            pool_id=demo_book.pool_id, n_paths=2000, seed=7, engine="granular",
            assumptions=str(a), allocation_id=demo_book.allocation_id,
            party_ids=stored.party_ids, n_loans=len(loans), source="test"),
            "test", assumptions=load_assumptions(a))
    with open_store(db, read_only=True) as store:
        newest = int(list_runs(store, "simulation")["run_id"].max())
    return db, demo_book.run_id, newest


@pytest.fixture
def env(two_runs, demo_book, monkeypatch):
    monkeypatch.setenv("RISKPOOL_DB", str(two_runs[0]))
    monkeypatch.setenv("RISKPOOL_USERS", str(demo_book.users_file))
    return two_runs


def test_compare_tab_shows_the_runs_diff_table_and_warns(env) -> None:
    db, ra, rb = env
    at = page("simulation", "treasury", {"a": f"run {ra}", "b": f"run {rb}"})
    no_errors(at)
    assert at.selectbox(key="cmp_a").value == f"run {ra}"
    assert at.selectbox(key="cmp_b").value == f"run {rb}"
    shown = frame_with(at, "delta_se")
    with open_store(db, read_only=True) as store:
        expected = compare_runs(store, ra, rb).results
        s1, s2 = run_loss_stats(store, ra), run_loss_stats(store, rb)
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected)
    # the pool's EL row by hand from the two runs' stored statistics: delta = B - A and its
    # SE the two SEs in quadrature (independent seeds)
    el = shown[(shown["party"] == "(pool)") & (shown["measure"] == "EL")].iloc[0]
    e1, e2 = (s[s["measure"] == "EL"].iloc[0] for s in (s1, s2))
    assert el["a"] == e1["loss"] and el["b"] == e2["loss"]
    assert el["delta"] == pytest.approx(e2["loss"] - e1["loss"], rel=1e-12)
    assert el["delta_se"] == pytest.approx(math.sqrt(e1["se"] ** 2 + e2["se"] ** 2), rel=1e-12)
    # 500 paths: 25 beyond the 95% quantile, 5 beyond 99%, 0 beyond 99.9% (VaR and ES each)
    pool = shown[shown["party"] == "(pool)"]
    flagged = pool[pool["note"] != ""]
    assert sorted(set(flagged["level"])) == [0.95, 0.99, 0.999]
    assert "too few paths: 0 beyond the 99.9% quantile" in " ".join(flagged["note"])
    warnings = [w.value for w in at.warning if "fewer than" in str(w.value)]
    assert any(f"fewer than {MIN_TAIL_PATHS} paths beyond their quantile" in w
               for w in warnings), warnings
    inputs = frame_with(at, "differs")
    differs = set(inputs.loc[inputs["differs"], "input"])
    assert {"n_paths", "seed"} <= differs
    # counts with separators (as the runs table and the Paths metric), a seed plain
    by_input = inputs.set_index("input")
    assert list(by_input.loc["n_paths", ["a", "b"]]) == ["500", "2,000"]
    assert list(by_input.loc["seed", ["a", "b"]]) == ["13", "7"]


def test_recorded_run_warns_about_its_thin_tail(env) -> None:
    at = page("simulation", "treasury", {"run": str(env[1])})
    no_errors(at)
    text = " ".join(str(w.value) for w in at.warning)
    assert "VaR and ES 99.9% rest on 0 path(s)" in text
    assert "VaR and ES 95.0% rest on 25 path(s)" in text


def test_compare_without_tail_warning_on_enough_paths(env) -> None:
    view = access.run_view(env[0], TREASURY, env[2])  # 2,000 paths: 100 beyond 95%, 20 beyond 99%
    assert [line.split(" rest")[0] for line in access.thin_tails(view)] == [
        "VaR and ES 99.0%", "VaR and ES 99.9%"]


def test_session_runs_use_the_same_arithmetic(env) -> None:
    """compare_views (runs made in the session, no stored inputs) gives the recorded runs'
    table when given their views."""
    db, ra, rb = env
    a, b = access.run_view(db, TREASURY, ra), access.run_view(db, TREASURY, rb)
    got = access.compare_views(TREASURY, a, b).results
    want = access.compare(db, TREASURY, ra, rb).results
    want = want[want["party"] == "(pool)"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, rtol=1e-12)


def test_a_partner_compares_its_own_share_only(env) -> None:
    db, ra, rb = env
    me = Viewer("p", f"partner:{PARTNER}")
    cmp = access.compare(db, me, ra, rb)
    assert set(cmp.results["party"]) == {PARTNER}
    assert set(cmp.inputs["input"]) <= set(access.PARTNER_INPUTS) | {
        k for k in cmp.inputs["input"] if k.startswith("stress.")}
    assert "party_ids" not in set(cmp.inputs["input"])
    with pytest.raises(access.AccessDenied):
        access.compare(db, Viewer("q", "partner:nobody"), ra, rb)
    at = page("simulation", f"partner:{PARTNER}", {"a": f"run {ra}", "b": f"run {rb}"})
    no_errors(at)
    assert set(frame_with(at, "delta_se")["party"]) == {PARTNER}


def test_densities_put_runs_of_any_size_on_one_scale() -> None:
    small = np.repeat([0.0, 1.0, 2.0, 3.0], 125)  # 500 paths
    large = np.repeat([0.0, 1.0, 2.0, 3.0], 2500)  # 10,000 paths, the same distribution
    edges, shares = charts.density_bins({"small": small, "large": large}, bins=4)
    assert len(edges) == 5
    np.testing.assert_allclose(shares["small"], [0.25] * 4)
    np.testing.assert_allclose(shares["large"], shares["small"])  # raw counts differ 20x
    skew = np.array([0.0] * 9 + [3.0])
    _, s = charts.density_bins({"x": skew, "y": small}, bins=4)
    np.testing.assert_allclose(s["x"], [0.9, 0.0, 0.0, 0.1])
    assert all(abs(v.sum() - 1.0) < 1e-12 for v in s.values())
