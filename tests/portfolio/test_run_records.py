"""The typed run records (``portfolio.montecarlo.records``, ``portfolio.store.records``): every
record survives its JSON round trip (hypothesis), and anything the record does not know — an
engine, a key, a scenario, a type — is refused with a ``ValidationError`` naming the field and
the run, never mapped to a default. The store refuses such a row when it reads it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from simulation_pools import assumptions as make_assumptions

from portfolio.errors import ValidationError
from portfolio.montecarlo.assumptions import NAMED_SCENARIOS
from portfolio.montecarlo.records import (
    MAX_PATHS,
    DaskPlacement,
    SimulationInputs,
    Stress,
    assumptions_from_json,
    assumptions_to_json,
    loan_sampler_for,
)
from portfolio.montecarlo.simulation import DETERMINISTIC_Z, ENGINES
from portfolio.store.core import open_store
from portfolio.store.records import ReportInputs, parse_run_inputs
from portfolio.store.runs import get_run, list_runs, record_run

# ------------------------------------------------------------------------------------------
# strategies: every valid record

_ids = st.integers(1, 2**40)
_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: s.strip() != "")
_share = st.floats(0, 50, allow_nan=False, allow_infinity=False)
_sha = st.text("0123456789abcdef", min_size=64, max_size=64)

stresses = st.builds(
    Stress,
    scenario=st.none() | st.sampled_from(tuple(NAMED_SCENARIOS)),
    pd_mult=st.none() | _share,
    rho=st.none() | st.floats(0, 1, exclude_max=True),
    smm_mult=st.none() | _share,
    recovery_mult=st.none() | _share,
)


@st.composite
def simulation_inputs(draw: st.DrawFn) -> SimulationInputs:
    deterministic = draw(st.none() | st.sampled_from(tuple(DETERMINISTIC_Z)))
    exact = draw(st.booleans())
    return SimulationInputs(
        pool_id=draw(_ids),
        n_paths=1 if deterministic else draw(st.integers(1, MAX_PATHS)),
        seed=draw(st.integers(0, 2**64)),
        engine=draw(st.sampled_from(ENGINES)),
        assumptions=draw(_text),
        assumptions_sha256=draw(st.none() | _sha),
        assumptions_exact=draw(_text) if exact else None,
        assumptions_exact_sha256=draw(_sha) if exact else None,
        assumptions_source=draw(st.none() | _text),
        stress=draw(stresses),
        deterministic=deterministic,
        deterministic_z=None if deterministic is None else DETERMINISTIC_Z[deterministic],
        batch_size=draw(st.none() | st.integers(1, 10**6)),
        allocation_id=draw(st.none() | _ids),
        party_ids=tuple(draw(st.lists(_text, max_size=5, unique=True))),
        pool_name=draw(st.none() | _text),
        n_loans=draw(st.none() | st.integers(1, 10**7)),
        cutoff_date=draw(st.none() | st.dates()),
        dask=None if deterministic else draw(st.none() | st.builds(
            DaskPlacement, workers=st.integers(1, 64), scheduler=_text)),
        book=draw(st.none() | _text),
        structure=draw(st.none() | _text),
        source=draw(st.none() | _text),
    )


def _through_json(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data))


@given(simulation_inputs())
def test_simulation_inputs_round_trip(rec: SimulationInputs) -> None:
    back = SimulationInputs.from_json(_through_json(rec.to_json()), "run 1")
    assert back == rec
    assert back.to_json() == rec.to_json()


@given(st.builds(ReportInputs, as_of=st.dates(), partner=st.none() | _text, out=_text))
def test_report_inputs_round_trip(rec: ReportInputs) -> None:
    assert ReportInputs.from_json(_through_json(rec.to_json())) == rec
    assert parse_run_inputs("report", rec.to_json()) == rec


@given(st.integers(0, 2**32 - 1), st.floats(0.5, 2.0), st.floats(0.1, 0.9))
def test_assumptions_round_trip_bit_for_bit(seed: int, scale: float, recovery: float) -> None:
    # values with all 17 significant digits (as calibration and stress multipliers give),
    # which the 12-digit assumptions TOML would round
    rng = np.random.default_rng(seed)
    base = make_assumptions()
    lag = rng.dirichlet(np.ones(5))
    a = dataclasses.replace(base, default_hazard=base.default_hazard * scale * 0.5,
                            prepay_smm=base.prepay_smm * rng.uniform(0.5, 1.0),
                            recovery_rate=recovery, recovery_lag=tuple(lag / lag.sum()),
                            rho=float(rng.uniform(0, 0.5)), rho_se=float(rng.uniform(0, 0.1)))
    back = assumptions_from_json(_through_json(assumptions_to_json(a)))
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(back, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


# ------------------------------------------------------------------------------------------
# refused, never mapped

BASE = SimulationInputs(pool_id=3, n_paths=500, seed=7, engine="granular",
                        assumptions="runs/4/assumptions.toml").to_json()


@pytest.mark.parametrize(("change", "field"), [
    ({"engine": "fast"}, "`inputs.engine`"),
    ({"engine": "Loan"}, "`inputs.engine`"),
    ({"engine": None}, "`inputs.engine`"),
    ({"note": "x"}, "`inputs.note`"),
    ({"seed": "7"}, "`inputs.seed`"),
    ({"seed": True}, "`inputs.seed`"),
    ({"seed": -1}, "`inputs.seed`"),
    ({"n_paths": 7.0}, "`inputs.n_paths`"),
    ({"n_paths": MAX_PATHS + 1}, "`inputs.n_paths`"),
    ({"pool_id": 0}, "`inputs.pool_id`"),
    ({"stress": {"scenario": "mild"}}, "`inputs.stress.scenario`"),
    ({"stress": {"pd_mult": -1.0}}, "`inputs.stress.pd_mult`"),
    ({"stress": {"rho": 1.0}}, "`inputs.stress.rho`"),
    ({"stress": {"shock": 1.0}}, "`inputs.stress.shock`"),
    ({"stress": None}, "`inputs.stress`"),
    ({"deterministic": "mild", "deterministic_z": 0.0, "n_paths": 1}, "`inputs.deterministic`"),
    ({"deterministic": "severe", "deterministic_z": -2.0, "n_paths": 1},
     "`inputs.deterministic_z`"),
    ({"deterministic": "base", "deterministic_z": 0.0}, "`inputs.n_paths`"),
    ({"deterministic_z": 0.0}, "`inputs.deterministic_z`"),
    ({"dask": {"workers": 0, "scheduler": "local"}}, "`inputs.dask.workers`"),
    ({"dask": {"workers": 2}}, "`inputs.dask.scheduler`"),
    ({"party_ids": ["a", "a"]}, "`inputs.party_ids[1]`"),
    ({"party_ids": "a"}, "`inputs.party_ids`"),
    ({"cutoff_date": "2026-13-01"}, "`inputs.cutoff_date`"),
    ({"assumptions_sha256": "abc"}, "`inputs.assumptions_sha256`"),
    ({"assumptions_exact": "runs/4/assumptions.json"}, "`inputs.assumptions_exact_sha256`"),
])
def test_unknown_keys_and_values_are_refused_naming_the_field(change: dict[str, Any],
                                                              field: str) -> None:
    data = {**BASE, **change}
    with pytest.raises(ValidationError) as info:
        SimulationInputs.from_json(data, "run 4")
    message = str(info.value)
    assert field in message and "run 4" in message


def test_a_missing_required_key_is_refused() -> None:
    for key in ("pool_id", "n_paths", "seed", "engine", "assumptions"):
        data = {k: v for k, v in BASE.items() if k != key}
        with pytest.raises(ValidationError, match=f"run 4: `inputs.{key}` must be given"):
            SimulationInputs.from_json(data, "run 4")


def test_an_unknown_engine_is_refused_when_built_in_code_too() -> None:
    with pytest.raises(ValidationError, match="`inputs.engine` must be one of 'granular', "
                                              "'loan'; got 'fast'"):
        SimulationInputs(pool_id=1, n_paths=1, seed=1, engine="fast",  # type: ignore[arg-type]
                         assumptions="a.toml")


def test_an_unknown_run_kind_or_report_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="run 9: `runs.kind` must be one of 'simulation', "
                                              "'report'"):
        parse_run_inputs("allocation", {}, "run 9")
    with pytest.raises(ValidationError, match="`inputs.path`"):
        ReportInputs.from_json({"as_of": "2026-06-30", "partner": None, "out": "r",
                                "path": "x"}, "run 9")


@given(st.dictionaries(st.sampled_from([*BASE, "note", "stress", "dask"]),
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text()
                       | st.lists(st.integers(), max_size=2)
                       | st.dictionaries(st.text(max_size=8), st.integers(), max_size=2)))
def test_any_json_object_gives_a_record_or_a_validation_error(data: dict[str, Any]) -> None:
    try:
        rec = SimulationInputs.from_json(data, "run 1")
    except ValidationError as exc:
        assert "`inputs" in str(exc) and "run 1" in str(exc)
    else:
        assert SimulationInputs.from_json(rec.to_json()) == rec


def test_nan_multiplier_is_refused() -> None:
    with pytest.raises(ValidationError, match="inputs.stress.pd_mult"):
        Stress(pd_mult=math.nan)


# ------------------------------------------------------------------------------------------
# the store writes and reads the typed records, and refuses a row it does not know


def test_loan_sampler_only_on_a_monte_carlo_run_with_a_versioned_draw() -> None:
    # recorded for the hazard model's loan engine (engines.LOAN_SAMPLER) and granular engine
    # (lanes.GRANULAR_SAMPLER); refused elsewhere, for another engine's draw and for a
    # sampler this code does not know
    assert loan_sampler_for("loan", "hazard", None) == "subset-binomial-v1"
    assert loan_sampler_for("granular", "hazard", None) == "granular-lanes-v1"
    assert loan_sampler_for("loan", "delinquency", None) is None
    assert loan_sampler_for("loan", "hazard", "base") is None
    rec = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="loan", assumptions="a.toml",
                           loan_sampler="subset-binomial-v1")
    assert SimulationInputs.from_json(rec.to_json()) == rec
    with pytest.raises(ValidationError, match="inputs.loan_sampler"):
        SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="granular",
                         assumptions="a.toml", loan_sampler="subset-binomial-v1")
    with pytest.raises(ValidationError, match="inputs.loan_sampler"):
        SimulationInputs.from_json({**rec.to_json(), "loan_sampler": "per-loan-v0"})


def test_store_refuses_a_stored_row_with_an_unknown_engine(db_path: Path) -> None:
    rec = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="loan", assumptions="a.toml",
                           cutoff_date=dt.date(2026, 6, 30))
    with open_store(db_path) as store:
        rid = record_run(store, rec, 5, "v", status="done")
        assert get_run(store, rid).inputs == rec
        listed = list_runs(store)
        assert listed.loc[0, "engine"] == "loan" and listed.loc[0, "inputs"] == rec
        # a row written by other means with an engine this code does not know
        bad = {**rec.to_json(), "engine": "gpu"}
        store.con.execute("UPDATE runs SET inputs = ? WHERE run_id = ?", [json.dumps(bad), rid])
        with pytest.raises(ValidationError, match=rf"run {rid}: `inputs.engine` .* got 'gpu'"):
            get_run(store, rid)
        with pytest.raises(ValidationError, match="`inputs.engine`"):
            list_runs(store)
