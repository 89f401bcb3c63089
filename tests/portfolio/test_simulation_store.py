"""Simulation runs in a real DuckDB file: the runs row, summary tables, Parquet paths, and the
``riskpool simulate`` / ``riskpool runs`` commands end to end (exit 2 and nothing written on
bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_books import pooled_book
from simulation_pools import assumptions, mixed_pool

from portfolio.errors import NotFound
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.montecarlo.records import SimulationInputs, Stress, assumptions_from_json
from portfolio.montecarlo.simulation import loss_distribution, simulate
from portfolio.store.core import open_store
from portfolio.store.runs import (
    finish_run,
    get_run,
    list_runs,
    load_paths,
    record_run,
    record_simulation,
    run_loss_stats,
    run_monthly,
    runs_root,
)


@pytest.fixture
def small_paths():
    loans = mixed_pool(800, seed=3)
    shares = np.random.default_rng(2).dirichlet([1, 1], size=len(loans))
    a = assumptions(pd_scale=2.0)
    return simulate(loans, a, 300, seed=11, shares=shares, party_ids=("bank", "trust")), a


def test_record_and_read_back_a_simulation(db_path: Path, small_paths) -> None:
    paths, a = small_paths
    inputs = SimulationInputs(pool_id=4, n_paths=300, seed=11, engine="granular",
                              assumptions="/somewhere/a.toml")
    with open_store(db_path) as store:
        run_id = record_simulation(store, paths, inputs, "test-version", timings={"simulate_s": 1.0},
                                   assumptions=a)
        back = load_paths(store, run_id)
        rec = get_run(store, run_id)
        monthly = run_monthly(store, run_id)
        bank = run_monthly(store, run_id, "bank")
        losses = run_loss_stats(store, run_id)
        every = run_loss_stats(store, run_id, None)
        listed = list_runs(store)
        root = runs_root(store)
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(back, name), getattr(paths, name)), name
        assert np.array_equal(back.party_flows[name], paths.party_flows[name]), name
    assert np.array_equal(back.dates, paths.dates)
    assert back.initial_balance == paths.initial_balance
    assert back.seed_entropy == 11
    assert back.party_ids == ("bank", "trust")
    # the runs row
    assert rec.kind == "simulation" and rec.status == "done"
    assert rec.seed_entropy == 11 and rec.code_version == "test-version"
    assert rec.inputs.assumptions_source == "/somewhere/a.toml"
    assert rec.inputs.party_ids == ("bank", "trust")
    # the assumptions stored with the run, named relative to the database: the TOML for
    # people (12 significant digits) and the exact JSON a replay reads
    assert rec.inputs.assumptions == f"runs/{run_id}/assumptions.toml"
    assert rec.inputs.assumptions_exact == f"runs/{run_id}/assumptions.json"
    stored_a = load_assumptions(root / str(run_id) / "assumptions.toml")
    np.testing.assert_allclose(stored_a.default_hazard, a.default_hazard, rtol=1e-11)
    exact = assumptions_from_json(json.loads((root / str(run_id) / "assumptions.json").read_text()))
    assert np.array_equal(exact.default_hazard, a.default_hazard)
    assert np.array_equal(exact.prepay_smm, a.prepay_smm)
    assert exact.recovery_lag == a.recovery_lag and exact.recovery_rate == a.recovery_rate
    assert Path(rec.artifact_path) == root / str(run_id)
    assert rec.timings["simulate_s"] == 1.0
    # summary tables = the same statistics computed from the arrays
    assert len(monthly) == paths.n_months
    np.testing.assert_allclose(monthly["interest"], paths.interest.mean(0))
    np.testing.assert_allclose(monthly["default_se"],
                               paths.default.std(0, ddof=1) / np.sqrt(paths.n_paths))
    np.testing.assert_allclose(bank["balance_bop"], paths.party_flows["balance_bop"][0].mean(0))
    stats = loss_distribution(paths)
    el = losses[losses["measure"] == "EL"].iloc[0]
    assert el["loss"] == pytest.approx(stats.el) and el["se"] == pytest.approx(stats.el_se)
    var99 = losses[(losses["measure"] == "VaR") & (losses["level"] == 0.99)].iloc[0]
    assert var99["loss"] == pytest.approx(stats.var[1])
    assert set(every["party_id"]) == {"", "bank", "trust"}
    party_el = every[(every["measure"] == "EL") & (every["party_id"] != "")]["loss"].sum()
    assert party_el == pytest.approx(stats.el, rel=1e-9)
    row = listed.iloc[0]
    assert (row["run_id"], row["pool_id"], row["n_paths"], row["seed"], row["engine"]) == \
        (run_id, 4, 300, 11, "granular")
    assert row["parties"] == ("bank", "trust")


def test_a_failed_recording_leaves_nothing(db_path: Path, small_paths) -> None:
    paths, _ = small_paths
    inputs = SimulationInputs(pool_id=4, n_paths=300, seed=11, engine="granular",
                              assumptions="a.toml")
    with open_store(db_path) as store:
        with pytest.raises(TypeError):
            record_simulation(store, paths, inputs, "v", timings={"bad": object()})  # type: ignore[dict-item]
        assert store.con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert store.con.execute("SELECT count(*) FROM run_monthly").fetchone()[0] == 0
        root = runs_root(store)
    assert list(root.iterdir()) == []


def test_record_run_finish_run_and_unknown_ids(db_path: Path) -> None:
    with open_store(db_path) as store:
        inputs = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="loan",
                                  assumptions="a.toml", stress=Stress(scenario="severe"))
        rid = record_run(store, inputs, 5, "v", status="running")
        assert get_run(store, rid).status == "running"
        finish_run(store, rid, "failed", timings={"simulate_s": 0.5}, summary={"why": "test"})
        rec = get_run(store, rid)
        assert (rec.status, rec.timings, rec.summary) == ("failed", {"simulate_s": 0.5},
                                                          {"why": "test"})
        assert rec.kind == "simulation" and rec.inputs == inputs
        assert rec.finished_at is not None
        with pytest.raises(NotFound, match="run"):
            get_run(store, 99)
        with pytest.raises(NotFound, match="run"):
            finish_run(store, 99)
        with pytest.raises(NotFound, match="paths"):
            load_paths(store, rid)


# ------------------------------------------------------------------------------------------
# CLI end to end on a generated book


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path]:
    return pooled_book(tmp_path, assumptions())


def _nothing_recorded(db: Path) -> bool:
    with open_store(db, read_only=True) as store:
        n = store.con.execute("SELECT count(*) FROM runs").fetchone()[0]
        root = runs_root(store)
    return n == 0 and (not root.exists() or not any(root.iterdir()))


def test_cli_simulate_and_runs(cli, book) -> None:
    db, a_path = book
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "600",
            "--seed", "5", "--batch-size", "256")
    assert r.code == 0, r.err
    for word in ("EL", "VaR", "ES", "99.9%", "± SE", "run 1 recorded"):
        assert word in r.out
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "600",
            "--seed", "5", "--engine", "loan", "--scenario", "adverse", "--rho", "0.2")
    assert r.code == 0, r.err
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--seed", "5",
            "--deterministic", "severe")
    assert r.code == 0, r.err
    assert "deterministic severe" in r.out and "run 3 recorded" in r.out
    r = cli("runs", "list", "--db", db)
    assert r.code == 0 and "granular" in r.out and "loan" in r.out
    r = cli("runs", "show", "1", "--db", db)
    assert r.code == 0, r.err
    assert "seed entropy 5" in r.out and "loss distribution" in r.out and "period_end" in r.out
    with open_store(db, read_only=True) as store:
        rec = get_run(store, 2)
        paths = load_paths(store, 1)
    assert rec.inputs.stress.scenario == "adverse" and rec.inputs.engine == "loan"
    assert rec.inputs.stress.rho == 0.2 and rec.inputs.source == "riskpool simulate"
    # the engine's draw is recorded with the run, and shown
    assert rec.inputs.loan_sampler == "subset-binomial-v1"
    r = cli("runs", "show", "2", "--db", db)
    assert r.code == 0 and "loan_sampler: subset-binomial-v1" in r.out
    r = cli("runs", "show", "1", "--db", db)
    assert r.code == 0 and "loan_sampler: granular-lanes-v1" in r.out
    stressed = load_assumptions(Path(rec.artifact_path) / "assumptions.toml")
    assert stressed.rho == 0.2
    # the same seed through the CLI gives the same stored paths
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "600",
            "--seed", "5", "--batch-size", "5000")
    assert r.code == 0
    with open_store(db, read_only=True) as store:
        again = load_paths(store, 4)
    assert np.array_equal(again.default, paths.default)
    r = cli("runs", "show", "42", "--db", db)
    assert r.code == 2 and "run" in r.err


@pytest.mark.parametrize(("flags", "match"), [
    (("--paths", "0"), "--paths"),
    (("--paths", "2000000"), "--paths"),
    (("--engine", "fast"), "--engine"),
    (("--batch-size", "0"), "--batch-size"),
    (("--seed", "-1"), "--seed"),
    (("--deterministic", "mild"), "--deterministic"),
    (("--scenario", "awful"), "--scenario"),
    (("--pd-mult", "-2"), "--pd-mult"),
    (("--rho", "1.5"), "--rho"),
])
def test_cli_bad_flags_exit_2_and_write_nothing(cli, book, flags, match) -> None:
    db, a_path = book
    base = {"--pool": "1", "--assumptions": str(a_path), "--paths": "100", "--seed": "1"}
    for k, v in zip(flags[::2], flags[1::2], strict=True):
        base[k] = v
    args = [x for kv in base.items() for x in kv]
    r = cli("simulate", "--db", db, *args)
    assert r.code == 2
    assert match in r.err and "error:" in r.err
    assert _nothing_recorded(db)


def test_cli_unknown_pool_or_assumptions_exit_2(cli, book, tmp_path: Path) -> None:
    db, a_path = book
    r = cli("simulate", "--db", db, "--pool", "9", "--assumptions", a_path, "--seed", "1")
    assert r.code == 2 and "pool" in r.err
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", tmp_path / "nope.toml",
            "--seed", "1")
    assert r.code == 2 and "assumptions" in r.err
    bad = tmp_path / "bad.toml"
    bad.write_text(a_path.read_text().replace("rho = 0.08", "rho = 3.0"))
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", bad, "--seed", "1")
    assert r.code == 2 and "rho" in r.err
    assert _nothing_recorded(db)


def test_read_paths_gives_the_paths_back_in_any_row_order(tmp_path: Path, small_paths) -> None:
    """Files written in (path, month) order are read as they are; rows in another order
    (e.g. written by workers partition by partition) are put back in order first."""
    import pyarrow.parquet as pq

    from portfolio.store.runs import read_paths, write_paths

    paths = small_paths[0]
    d = write_paths(paths, tmp_path / "run")
    assert all(np.array_equal(getattr(read_paths(d), n), getattr(paths, n)) for n in FLOW_NAMES)
    for pf in ("paths.parquet", "party_paths.parquet"):
        table = pq.read_table(d / pf)
        pq.write_table(table.take(np.random.default_rng(3).permutation(table.num_rows)),
                       d / pf)
    back = read_paths(d)
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(back, name), getattr(paths, name)), name
        assert np.array_equal(back.party_flows[name], paths.party_flows[name]), name
