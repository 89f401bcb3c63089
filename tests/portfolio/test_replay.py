"""``portfolio.book.replay.replay_run``: a recorded run simulated again from its typed record
gives the run's arrays bit for bit — the pool flows, the party flows of the allocation it
carried, and the replenishment profile a revolving deal buys — also when the assumptions it
used have more digits than the assumptions TOML keeps. A changed or missing assumptions file
is refused."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from portfolio.book.pools import create_pool, load_pool_loans, parse_criteria
from portfolio.book.replay import replay_run
from portfolio.errors import NotFound, ValidationError
from portfolio.montecarlo.assumptions import apply_stress, load_assumptions
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths
from portfolio.montecarlo.records import SimulationInputs, loan_sampler_for
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.montecarlo.simulation import DETERMINISTIC_Z, simulate
from portfolio.store import allocations as allocation_sql
from portfolio.store.core import open_store
from portfolio.store.records import ReportInputs
from portfolio.store.runs import get_run, load_paths, record_run, record_simulation
from portfolio.synthetic.generate import GeneratorParams, generate_book, true_assumptions

CUTOFF = dt.date(2026, 6, 30)
PARTIES = ("platform", "bank", "trust")


def _assert_same(a: PoolPaths, b: PoolPaths) -> None:
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.party_ids == b.party_ids
    assert sorted(a.party_flows) == sorted(b.party_flows)
    for name, arr in a.party_flows.items():
        assert np.array_equal(arr, b.party_flows[name]), f"party {name}"
    assert np.array_equal(a.dates, b.dates)
    assert a.initial_balance == b.initial_balance and a.seed_entropy == b.seed_entropy


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory):
    """A generated book, a pool, an allocation of it between three parties (rows written
    through the store) and stressed assumptions with full-precision values."""
    db = tmp_path_factory.mktemp("replay") / "book.duckdb"
    with open_store(db) as store:
        generate_book(store, 2500, 12, seed=5, as_of=CUTOFF)
        pool = create_pool(store, "p", parse_criteria({"eligibility": {"dpd_max": 0}}), CUTOFF)
        loans = load_pool_loans(store, pool.pool_id)
        patterns = np.array([[1, 0, 0], [0.5, 0.5, 0], [0.25, 0.25, 0.5], [0, 0, 1.0]])
        shares = patterns[np.random.default_rng(1).integers(0, 4, len(loans))]
        keep = np.flatnonzero(shares.ravel() > 0)
        ids = np.asarray(loans.loan_id).astype(str)
        with store.transaction() as con:
            allocation_sql.insert_allocation(
                con, allocation_id=1, mode="joint", objective="max-transfer",
                pool_id=pool.pool_id, inputs={}, checks={}, summary={},
                shares=pa.table({"loan_id": ids[keep // 3],
                                 "party_id": np.array(PARTIES)[keep % 3],
                                 "share": shares.ravel()[keep]}),
                loans=pa.table({"loan_id": ids, "balance": loans.balance,
                                "annual_pd": np.zeros(len(ids)), "lgd": np.zeros(len(ids)),
                                "lifetime_pd": np.zeros(len(ids))}))
    # stress multipliers give values with every digit (the TOML keeps 12)
    a = apply_stress(true_assumptions(GeneratorParams(), 24), pd_multiplier=1.37,
                     smm_multiplier=0.91, recovery_multiplier=0.83, rho=0.117)
    return db, pool, loans, shares, a


def _record(db: Path, paths: PoolPaths, inputs: SimulationInputs, a) -> int:  # type: ignore[no-untyped-def]
    with open_store(db) as store:
        return record_simulation(store, paths, inputs, "test", assumptions=a)


@pytest.mark.parametrize("engine", ["granular", "loan"])
def test_replay_equals_the_recorded_run_with_its_party_split(book, engine: str) -> None:
    db, pool, loans, shares, a = book
    original = simulate(loans, a, 300, 11, engine=engine, shares=shares, party_ids=PARTIES)
    run_id = _record(db, original, SimulationInputs(
        pool_id=pool.pool_id, n_paths=300, seed=11, engine=engine, assumptions="a.toml",
        allocation_id=1, party_ids=PARTIES, batch_size=256,
        loan_sampler=loan_sampler_for(engine, "hazard", None)), a)  # as `simulate` records
    with open_store(db, read_only=True) as store:
        stored = load_paths(store, run_id)
        replay = replay_run(store, run_id)
    again = replay.paths()
    _assert_same(stored, original)
    _assert_same(again, original)
    # the same seed and factor paths with another split: the pool flows do not move
    other = replay.paths(shares=np.full((len(loans), 2), 0.5), party_ids=("x", "y"))
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(other, name), getattr(original, name)), name
    # and the revolving deal's replenishment profile is the one the run would have built
    want = simulate_replenishment(loans, a, 300, 11, engine, cutoff=pool.cutoff_date)
    _assert_same(replay.replenishment(), want)
    # the TOML copy for people is rounded; replaying from it would not be exact
    toml_copy = load_assumptions(db.parent / "runs" / str(run_id) / "assumptions.toml")
    assert not np.array_equal(toml_copy.default_hazard, a.default_hazard)


def test_replay_of_a_deterministic_projection(book) -> None:
    db, pool, loans, _, a = book
    z = DETERMINISTIC_Z["adverse"]
    original = simulate(loans, a, 1, 3, deterministic_z=z)
    run_id = _record(db, original, SimulationInputs(
        pool_id=pool.pool_id, n_paths=1, seed=3, engine="granular", assumptions="a.toml",
        deterministic="adverse", deterministic_z=z), a)
    with open_store(db, read_only=True) as store:
        replay = replay_run(store, run_id)
    _assert_same(replay.paths(), original)
    _assert_same(replay.replenishment(),
                 simulate_replenishment(loans, a, 1, 3, cutoff=pool.cutoff_date,
                                        deterministic_z=z))


def test_a_changed_or_missing_assumptions_file_is_refused(book) -> None:
    db, pool, loans, _, a = book
    original = simulate(loans, a, 50, 2)
    run_id = _record(db, original, SimulationInputs(
        pool_id=pool.pool_id, n_paths=50, seed=2, engine="granular", assumptions="a.toml"), a)
    with open_store(db, read_only=True) as store:
        inputs = get_run(store, run_id).simulation_inputs()
    assert inputs.assumptions_exact == f"runs/{run_id}/assumptions.json"
    exact = db.parent / inputs.assumptions_exact
    data = json.loads(exact.read_text())
    data["rho"] = 0.5
    exact.write_text(json.dumps(data))
    with open_store(db, read_only=True) as store, \
            pytest.raises(ValidationError, match=rf"inputs.assumptions_exact.*run {run_id}"):
        replay_run(store, run_id)
    exact.unlink()
    with open_store(db, read_only=True) as store, pytest.raises(NotFound, match="missing"):
        replay_run(store, run_id)


def test_a_report_run_is_not_replayed(book) -> None:
    db = book[0]
    with open_store(db) as store:
        rid = record_run(store, ReportInputs(CUTOFF, None, "reports"), None, "v", status="done")
        with pytest.raises(ValidationError, match="a simulation run"):
            replay_run(store, rid)
