"""``riskpool calibrate`` writes the ``[delinquency]`` section: the file feeds ``simulate
--model delinquency`` directly and round-trips through the assumptions' validation schema.

Reference for the projection check: the one-factor Gaussian identity
E_Z[Φ((Φ⁻¹(q) − √ρ·Z)/√(1−ρ))] = q for Z ~ N(0, 1) (Vasicek, "Probability of loss on loan
portfolio", 1987), so the expected balance entering 1–30 in month 1 of a pool that is all
current at cut-off is Σ_i balance_i · roll_current(cell_i, age_i + 1) whatever the loading.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from portfolio.book import transitions as tr
from portfolio.book.pools import create_pool, load_pool_loans, parse_criteria
from portfolio.book.replay import replay_run
from portfolio.montecarlo.assumptions import (
    assumptions_from_toml,
    assumptions_to_toml,
    load_assumptions,
)
from portfolio.store.core import open_store
from portfolio.store.runs import get_run, load_paths

AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A Markov book (3,000 loans, 18 months), a pool at the as-of, its calibration."""
    from riskpool.cli import main

    tmp = tmp_path_factory.mktemp("cal_dq")
    db, out = tmp / "m.duckdb", tmp / "a.toml"
    for args in (["generate", "--db", db, "--loans", "3000", "--months", "18", "--seed", "11",
                  "--as-of", AS_OF.isoformat(), "--credit-model", "markov"],
                 ["calibrate", "--db", db, "--out", out, "--rho-choice", "upper"]):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:  # typer exits 0 on success
            assert not exc.code, args
    with open_store(db) as store:
        create_pool(store, "all", parse_criteria({"eligibility": {"score_min": 350}}), AS_OF)
    return db, out, out.read_text(encoding="utf-8")


def test_calibrate_writes_the_transitions_as_the_delinquency_section(calibrated) -> None:
    db, out, text = calibrated
    a = load_assumptions(out)
    assert a.delinquency is not None and "[[delinquency.segment]]" in text
    with open_store(db, read_only=True) as store:
        dq = tr.calibrate_delinquency(store, AS_OF)
    want = tr.delinquency_arrays(dq.estimate)
    # the file holds the estimates (written to 12 significant digits; trailing repeats trimmed
    # and re-extended by the reader)
    for name in ("roll_current", "roll", "cure"):
        np.testing.assert_allclose(getattr(a.delinquency, name), want[name], rtol=1e-11,
                                   atol=0, err_msg=name)
    assert a.delinquency.charge_off_dpd == 90 and a.delinquency.cure_rule == "catch_up"
    # --rho-choice upper applies to the transitions' own fit for the loading
    assert a.delinquency.factor_loading == pytest.approx(dq.factor.rho_interval[1], abs=1e-6)
    choice = a.delinquency.provenance["factor_loading_choice"]
    assert choice["choice"] == "upper" and choice["rho_point"] == pytest.approx(dq.factor.rho)
    # round trip through the validation schema: parse → write → the same text
    again = assumptions_to_toml(assumptions_from_toml(text, str(out)))
    assert assumptions_from_toml(again, "again").delinquency is not None
    assert again == assumptions_to_toml(a)


def test_calibrated_file_feeds_simulate_with_the_delinquency_model(cli, calibrated) -> None:
    """The run works and its month-1 1–30 balance matches the closed form (module doc)
    within 4 SE; nothing is charged off before month 3 (90 DPD from an all-current pool)."""
    db, out, _ = calibrated
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", out, "--paths", "400",
            "--seed", "3", "--model", "delinquency", "--engine", "loan")
    assert r.code == 0, r.err
    a = load_assumptions(out)
    with open_store(db, read_only=True) as store:
        run = get_run(store, 1)
        paths = replay_run(store, 1).paths()  # the stored run re-simulated with its states
        stored = load_paths(store, 1)
        loans = load_pool_loans(store, 1)
    assert run.inputs.model == "delinquency" and paths.delinquency is not None
    assert np.array_equal(paths.default, stored.default)
    # the run stores the balances by state and the cures, not only the flows
    assert stored.delinquency is not None and stored.delinquency.charge_off_dpd == 90
    np.testing.assert_array_equal(stored.delinquency.state_balance,
                                  paths.delinquency.state_balance)
    np.testing.assert_array_equal(stored.delinquency.cures, paths.delinquency.cures)
    band = np.asarray(loans.score_band, dtype=np.int64)
    term = np.searchsorted(np.asarray(a.terms), np.asarray(loans.term_months, dtype=np.int64))
    age = np.minimum(np.asarray(loans.months_on_book, dtype=np.int64) + 1, a.n_age) - 1
    q = a.delinquency.roll_current[band, term, age]
    expected = float(np.sum(np.asarray(loans.balance) * q))
    month1 = paths.delinquency.state_balance[:, 0, 1]
    se = month1.std(ddof=1) / np.sqrt(len(month1))
    assert abs(month1.mean() - expected) < 4 * se, (month1.mean(), expected, se)
    assert expected > 0 and np.all(paths.default[:, :2] == 0) and paths.default[:, 2:].sum() > 0


def test_party_states_round_trip_through_the_run_files(calibrated, tmp_path: Path) -> None:
    """write_paths / read_paths keep the delinquency states per party (two parties sharing
    each loan 30/70): the same arrays, and the parties' states add up to the pool's."""
    from portfolio.montecarlo.delinquency import simulate_delinquency
    from portfolio.store.runs import read_paths, write_paths
    db, out, _ = calibrated
    with open_store(db, read_only=True) as store:
        loans = load_pool_loans(store, 1)
    shares = np.tile([0.3, 0.7], (len(loans), 1))
    paths = simulate_delinquency(loans, load_assumptions(out), 64, 9, engine="loan",
                                 shares=shares, party_ids=("a", "b"))
    back = read_paths(write_paths(paths, tmp_path / "run"))
    d, e = paths.delinquency, back.delinquency
    assert d is not None and e is not None and e.cure_rule == d.cure_rule
    for name in ("state_balance", "cures", "party_state_balance", "party_cures"):
        np.testing.assert_array_equal(getattr(e, name), getattr(d, name), err_msg=name)
    np.testing.assert_allclose(e.party_state_balance.sum(axis=0), e.state_balance, rtol=1e-9,
                               atol=1e-6)


@pytest.mark.parametrize(("flags", "field"), [
    (("--rho-choice", "ttc"), "--rho-ttc"),  # ttc without its value
    (("--rho-choice", "lower"), "--rho-choice"),
    (("--rho-ttc", "1.5"), "--rho-ttc"),
])
def test_a_bad_rho_choice_is_refused_and_nothing_is_written(cli, calibrated, tmp_path: Path,
                                                          flags, field) -> None:
    """``riskpool calibrate`` checks the ρ flags up front (``factor_fit.check_rho_choice``, the
    same check ``choose_rho`` makes after the fit): exit 2 naming the flag, no file written."""
    db, _, _ = calibrated
    out = tmp_path / "a.toml"
    r = cli("calibrate", "--db", db, "--out", out, *flags)
    assert r.code == 2 and field in r.err, (r.code, r.err)
    assert not out.exists() and not out.with_name("a.transitions.csv").exists()
