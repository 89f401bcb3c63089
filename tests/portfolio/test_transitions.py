"""Delinquency transition matrices from the book's history, and the generator's Markov mode.

References: scipy.stats.binomtest(...).proportion_ci (Wilson and Clopper–Pearson intervals);
hand-counted moves on a tiny book; the generator's known truth (``portfolio.synthetic.markov``,
the conditional probabilities given the realised factor path, exposure-weighted over months,
which is what a pooled count estimator converges to).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from portfolio.book import calibration as cal
from portfolio.book import transitions as tr
from portfolio.errors import ValidationError
from portfolio.loans.types import ALLOWED_TERMS
from portfolio.store.book import insert_loans, insert_performance
from portfolio.store.core import open_store
from portfolio.synthetic.generate import GeneratorParams, generate_book, simulate_book
from portfolio.synthetic.markov import transition_truth

AS_OF = dt.date(2025, 6, 30)
MARKOV = GeneratorParams(credit_model="markov")


def _me(y: int, m: int) -> dt.date:
    return (pd.Timestamp(y, m, 1) + pd.offsets.MonthEnd(0)).date()


# ---------------------------------------------------------------- intervals


@pytest.mark.parametrize("method, scipy_method", [("wilson", "wilson"),
                                                  ("clopper-pearson", "exact")])
def test_binomial_interval_equals_scipy(method: str, scipy_method: str) -> None:
    cases = [(0, 1), (0, 7), (1, 7), (7, 7), (3, 40), (17, 250), (250, 250), (1, 10_000),
             (4_321, 98_765)]
    x = np.array([c[0] for c in cases])
    n = np.array([c[1] for c in cases])
    for conf in (0.9, 0.95, 0.99):
        lo, hi = tr.binomial_interval(x, n, conf, method)
        for i, (xi, ni) in enumerate(cases):
            ref = stats.binomtest(xi, ni).proportion_ci(conf, method=scipy_method)
            assert lo[i] == pytest.approx(ref.low, abs=1e-10), (xi, ni, conf)
            assert hi[i] == pytest.approx(ref.high, abs=1e-10), (xi, ni, conf)


def test_binomial_interval_without_trials_and_bad_arguments() -> None:
    lo, hi = tr.binomial_interval(np.array([0]), np.array([0]))
    assert (lo[0], hi[0]) == (0.0, 1.0)
    with pytest.raises(ValidationError, match="interval method"):
        tr.binomial_interval(np.array([1]), np.array([2]), method="agresti")
    with pytest.raises(ValidationError, match="confidence"):
        tr.binomial_interval(np.array([1]), np.array([2]), confidence=1.0)


# ---------------------------------------------------------------- counting rules (SQL)


def test_bucket_moves_counted_by_hand(db_path: Path) -> None:
    loans = pd.DataFrame({
        "loan_id": ["A", "B", "C"], "borrower_id": ["x", "y", "z"],
        "origination_date": [dt.date(2025, 1, 10)] * 3, "principal": [1000.0] * 3,
        "apr": [0.18] * 3, "term_months": [6, 6, 3],
        "repayment_type": ["level_annuity", "level_annuity", "daily_interest"],
        "credit_score": [720, 720, 610], "region": ["R"] * 3,
    })
    rows = [
        # A: current, 1–30, cured, 1–30, 31–60, 61–90
        *[("A", _me(2025, 1 + a), a, 900.0, d, s, 0.0, 0.0, 0.0, 0.0) for a, (d, s) in
          enumerate([(0, "current"), (12, "delinquent"), (0, "current"), (12, "delinquent"),
                     (42, "delinquent"), (72, "delinquent")])],
        # B: current, current, 1–30, charged off (dpd 102: > 90), then recoveries at lags 1, 2
        ("B", _me(2025, 1), 0, 1000.0, 0, "current", 0.0, 0.0, 0.0, 0.0),
        ("B", _me(2025, 2), 1, 900.0, 0, "current", 0.0, 0.0, 0.0, 0.0),
        ("B", _me(2025, 3), 2, 900.0, 11, "delinquent", 0.0, 0.0, 0.0, 0.0),
        ("B", _me(2025, 4), 3, 0.0, 102, "default", 0.0, 900.0, 0.0, 0.0),
        ("B", _me(2025, 5), 4, 0.0, 132, "default", 60.0, 0.0, 0.0, 0.0),
        ("B", _me(2025, 6), 5, 0.0, 162, "default", 30.0, 0.0, 0.0, 0.0),
        # C (daily interest, term 3, no age-0 row): current with a partial repayment of 100
        #   on a 1000 start, current (no partial, start 600), matured
        ("C", _me(2025, 2), 1, 600.0, 0, "current", 0.0, 0.0, 300.0, 100.0),
        ("C", _me(2025, 3), 2, 300.0, 0, "current", 0.0, 0.0, 300.0, 0.0),
        ("C", _me(2025, 4), 3, 0.0, 0, "matured", 0.0, 0.0, 300.0, 0.0),
    ]
    perf = pd.DataFrame(rows, columns=["loan_id", "as_of", "months_on_book", "balance", "dpd",
                                       "status", "recovery", "charge_off", "paid_principal",
                                       "prepaid_principal"])
    with open_store(db_path) as store:
        with store.transaction() as con:
            insert_loans(con, loans)
            insert_performance(con, perf)
        c = tr.load_transition_counts(store, _me(2025, 6), n_age=6)
        rc = tr.load_charge_off_recoveries(store, _me(2025, 6))
    n = c.n.sum(axis=3)  # (band, term, age, from, to)
    fr, to = tr.state_names(90)
    assert fr == ("current", "1-30", "31-60", "61-90")
    assert to[4:] == ("charged_off", "prepaid", "matured")
    # A (band 3 = 700–749, term 6 = index 1): 0→1 at age 1, 1→0 at 2, 0→1 at 3, 1→2 at 4,
    # 2→3 at 5; B: 0→0 at 1, 0→1 at 2, 1→charged off (4) at 3, nothing after
    expected = np.zeros((6, 4, 7))
    for age, i, j in [(1, 0, 1), (2, 1, 0), (3, 0, 1), (4, 1, 2), (5, 2, 3),
                      (1, 0, 0), (2, 0, 1), (3, 1, 4)]:
        expected[age - 1, i, j] += 1
    np.testing.assert_array_equal(n[3, 1], expected)
    # C (band 1 = 600–649, term 3 = index 0): 0→0 from origination at age 1, 0→0, 0→matured
    assert n[1, 0, 0, 0, 0] == 1 and n[1, 0, 1, 0, 0] == 1 and n[1, 0, 2, 0, 6] == 1
    assert n.sum() == 5 + 3 + 3
    # partial repayment rate: 100 / (1000 + 600) over C's current→current months
    est = tr.estimate_transitions(c, min_exposure=1)
    assert est.partial_repayment_rate == pytest.approx(100 / 1600)
    assert est.partial_repayment_exposure == 2
    # cell (band 3, term 6, age 3) from current: A 0→1 only; own exposure 1
    assert est.prob[3, 1, 2, 0, 1] == 1.0 and est.own_exposure[3, 1, 2, 0] == 1
    # recoveries from the charge-off month (April, 900): 60 at lag 1, 30 at lag 2
    assert rc.defaulted_balance.tolist() == [900.0]
    assert rc.recovered[0].tolist() == [0.0, 60.0, 30.0]
    rate, lag = cal.recovery_curve(rc)
    assert rate == pytest.approx(90 / 900) and lag == pytest.approx((2 / 3, 1 / 3))


def test_pooling_takes_the_narrowest_level_with_enough_exposure() -> None:
    """Hand case: one band × term; age 1 has 40 loans from current, ages 2 and 3 have 5 each
    (age group 1–3 pools to 50), age 7 has 3 (group 7–12 has 3: pooled over all ages, 53)."""
    n = np.zeros((1, 1, 12, 1, 4, 7))
    n[0, 0, 0, 0, 0, 1], n[0, 0, 0, 0, 0, 0] = 4, 36  # age 1: 4 of 40 enter 1–30
    n[0, 0, 1, 0, 0, 1], n[0, 0, 1, 0, 0, 0] = 1, 4
    n[0, 0, 2, 0, 0, 0] = 5
    n[0, 0, 6, 0, 0, 1], n[0, 0, 6, 0, 0, 0] = 2, 1
    z = np.zeros((1, 1, 12, 1))
    c = tr.TransitionCounts(np.array(["2025-01-31"], dtype="datetime64[D]"), n, z, z, z, 90,
                            (12,))
    e = tr.estimate_transitions(c, min_exposure=30)
    assert e.level[0, 0, 0, 0] == 0 and e.prob[0, 0, 0, 0, 1] == pytest.approx(4 / 40)
    assert e.level[0, 0, 1, 0] == 1 and e.prob[0, 0, 1, 0, 1] == pytest.approx(5 / 50)
    assert e.exposure[0, 0, 2, 0] == 50
    assert e.level[0, 0, 6, 0] == 2 and e.prob[0, 0, 6, 0, 1] == pytest.approx(7 / 53)
    # the band (level 3) and book (4) are the same single band here; from 1–30 no exposure
    # anywhere: the book level with exposure 0, probability 0 and interval (0, 1)
    assert e.level[0, 0, 0, 1] == 4 and e.exposure[0, 0, 0, 1] == 0
    assert (e.lo[0, 0, 0, 1] == 0).all() and (e.hi[0, 0, 0, 1] == 1).all()
    # Wilson interval of the pooled counts
    ref = stats.binomtest(7, 53).proportion_ci(0.95, method="wilson")
    assert e.lo[0, 0, 6, 0, 1] == pytest.approx(ref.low)
    table = e.table()
    assert set(table["pooled"]) <= set(tr.POOL_LEVELS)


def test_ages_past_the_term_pool_only_with_ages_past_the_term() -> None:
    """Hand case, term 3 with 6 age columns: in-term ages 1–3 from 1–30 have 100 loan-months
    (40 roll), ages 4–6 (past the term: loans delinquent after their last instalment) have 9
    (all roll). Past-term cells pool the past-term counts (9 of 9 → 1, at the book level as the
    group has only 9 < 30), never the in-term 40 / 100; in-term cells never see the past-term
    9."""
    n = np.zeros((1, 1, 6, 1, 4, 7))
    n[0, 0, 0, 0, 1, 2], n[0, 0, 0, 0, 1, 0] = 40, 60  # age 1: 40 of 100 roll to 31–60
    n[0, 0, 3, 0, 1, 2] = 5  # ages 4 and 5: every one rolls
    n[0, 0, 4, 0, 1, 2] = 4
    z = np.zeros((1, 1, 6, 1))
    c = tr.TransitionCounts(np.array(["2025-01-31"], dtype="datetime64[D]"), n, z, z, z, 90,
                            (3,))
    e = tr.estimate_transitions(c, min_exposure=30)
    assert e.prob[0, 0, 0, 1, 2] == pytest.approx(0.4)  # own cell
    assert e.prob[0, 0, 1, 1, 2] == pytest.approx(0.4) and e.exposure[0, 0, 1, 1] == 100
    for age in (4, 5, 6):
        assert e.prob[0, 0, age - 1, 1, 2] == pytest.approx(1.0), age
        assert e.exposure[0, 0, age - 1, 1] == 9
    assert e.level[0, 0, 5, 1] == 4


# ---------------------------------------------------------------- generator's Markov mode


def test_markov_mode_leaves_the_default_book_alone() -> None:
    """The default book (and its parameter hash) do not see the Markov fields; the Markov
    book differs from it only in the performance rows."""
    from portfolio.synthetic.params import params_hash
    a = simulate_book(2_000, 12, 7, AS_OF)
    b = simulate_book(2_000, 12, 7, AS_OF, GeneratorParams(markov_entry=(0.1,) * 6))
    assert a.performance.equals(b.performance) and a.loans.equals(b.loans)
    assert params_hash(GeneratorParams()) == params_hash(GeneratorParams(markov_roll=(0.1,) * 3))
    m = simulate_book(2_000, 12, 7, AS_OF, MARKOV)
    assert m.loans.equals(a.loans) and not m.performance.equals(a.performance)
    with pytest.raises(ValidationError, match="credit_model"):
        GeneratorParams(credit_model="chain")
    with pytest.raises(ValidationError, match="markov_roll"):
        GeneratorParams(credit_model="markov", markov_charge_off_dpd=120)


def test_markov_book_rows_follow_the_model() -> None:
    """Every row: charge-off rows have balance 0 and dpd past the charge-off point; a loan's
    recoveries come strictly after its charge-off month and sum to recovery_rate × the
    amount; buckets move by at most one step up per month; delinquent rows pay no more than
    what cures owe (a roll pays nothing)."""
    book = simulate_book(6_000, 18, 11, AS_OF, MARKOV)
    df = book.performance.to_pandas().sort_values(["loan_id", "as_of"])
    df["bucket"] = np.ceil(df["dpd"] / 30).astype(int)
    g = df.groupby("loan_id", observed=True)
    df["prev_bucket"] = g["bucket"].shift()
    co = df[df["charge_off"] > 0]
    assert len(co) > 50
    assert (co["balance"] == 0).all() and (co["dpd"] > 90).all() and (co["dpd"] <= 120).all()
    assert (co["prev_bucket"] == 3).all()
    first_co = co.groupby("loan_id", observed=True)["as_of"].min()
    rec = df[df["recovery"] > 0].join(first_co.rename("co"), on="loan_id")
    assert (rec["as_of"] > rec["co"]).all()  # never in or before the charge-off month
    # finished recoveries (charge-offs at least 9 months before the end) sum to 15% (cents)
    done = first_co[first_co <= pd.Timestamp(2024, 9, 30).date()]
    total = df[df["loan_id"].isin(done.index)].groupby("loan_id", observed=True)
    ratio = total["recovery"].sum() / total["charge_off"].sum()
    assert np.allclose(ratio, 0.15, atol=0.01 / total["charge_off"].sum().min() * 100 + 1e-3)
    open_rows = df[df["prev_bucket"].notna() & (df["charge_off"] == 0) & (df["balance"] > 0)]
    assert (open_rows["bucket"] <= open_rows["prev_bucket"] + 1).all()
    rolled = open_rows[open_rows["bucket"] == open_rows["prev_bucket"] + 1]
    assert (rolled["paid_principal"] + rolled["paid_interest"] == 0).all()


@pytest.fixture(scope="module")
def markov_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """30,000 loans over 18 months from the Markov mode (rho 0.05, persistence 0.6)."""
    path = tmp_path_factory.mktemp("markov") / "m.duckdb"
    with open_store(path) as store:
        summary = generate_book(store, 30_000, 18, seed=5, as_of=AS_OF, params=MARKOV)
    return path, summary


def test_calibrated_roll_rates_recover_the_generator(markov_book: tuple[Path, object]) -> None:
    """Every in-term cell with its own exposure (no pooling, ≥ 30 loan-months from the state):
    the truth is the exposure-weighted mean over months of the generator's conditional
    probability given the realised factor (``transition_truth``). At 95% per cell about 5%
    miss by chance; the multiple-testing-aware statement: ≥ 90% of the cells inside, and the
    joint statistic Σ z² over cells (z = (x − Σ n_m p_m)/√Σ n_m p_m(1 − p_m), independent
    across cells given the factor) below the χ²_N 0.999 quantile."""
    path, summary = markov_book
    with open_store(path, read_only=True) as store:
        c = tr.load_transition_counts(store, AS_OF)
    e = tr.estimate_transitions(c)
    truth = transition_truth(MARKOV, np.asarray(summary.factor))  # (T, band, from, to)
    fm = np.array(summary.factor_months, dtype="datetime64[D]")
    ti = np.searchsorted(fm, c.months)
    assert (fm[ti] == c.months).all()
    k = 3
    inside, zs, checked = 0, [], []
    for j, term in enumerate(ALLOWED_TERMS):
        for a in range(1, term + 1):
            for b in range(6):
                for i, dest in [(0, 1), (1, 2), (2, 3), (3, 4), (1, 0), (2, 0), (3, 0)]:
                    if e.level[b, j, a - 1, i] != 0:
                        continue
                    nm = c.n[b, j, a - 1, :, i, :].sum(axis=1)
                    xm = c.n[b, j, a - 1, :, i, dest]
                    to_truth = truth[ti, b, i, min(dest, k + 1)]
                    if dest == 0 and i > 0:  # a cure on the last instalment is 'matured'
                        xm = xm + c.n[b, j, a - 1, :, i, k + 3]
                        est = xm.sum() / nm.sum()
                    else:
                        est = e.prob[b, j, a - 1, i, dest]
                    p_true = float((nm * to_truth).sum() / nm.sum())
                    lo, hi = tr.binomial_interval(np.array([xm.sum()]), np.array([nm.sum()]))
                    assert est == pytest.approx(xm.sum() / nm.sum())
                    inside += int(lo[0] <= p_true <= hi[0])
                    var = float((nm * to_truth * (1 - to_truth)).sum())
                    zs.append((xm.sum() - (nm * to_truth).sum()) / np.sqrt(var))
                    checked.append((b, term, a, i, dest))
    n_cells = len(checked)
    assert n_cells >= 300  # entries, rolls and cures of many cells
    assert sum(1 for c_ in checked if c_[3] > 0) >= 25  # rolls and cures from 1–30 .. 61–90
    print(f"cells {n_cells}, inside {inside} ({inside / n_cells:.1%}), chi2 {np.sum(np.square(zs)):.1f}")
    assert inside / n_cells >= 0.90, (inside, n_cells)
    chi2 = float(np.sum(np.square(zs)))
    assert chi2 < stats.chi2.ppf(0.999, n_cells), (chi2, n_cells)


def test_recovery_lag_from_charge_off_recovers_the_generator(
        markov_book: tuple[Path, object]) -> None:
    """Chain ladder from the charge-off month: the generator collects 15% of every charged-off
    amount at lags 1..9 by ``recovery_lag`` (cent rounding only), so the estimate equals it
    to 1e-3 wherever the lag has been observed."""
    path, _ = markov_book
    with open_store(path, read_only=True) as store:
        rc = tr.load_charge_off_recoveries(store, AS_OF)
    rate, lag = cal.recovery_curve(rc)
    assert rc.n_defaults.sum() > 300
    assert rate == pytest.approx(MARKOV.recovery_rate, abs=1e-3)
    np.testing.assert_allclose(lag, MARKOV.recovery_lag, atol=1e-3)
    # nothing is collected in or before the charge-off month
    assert rc.recovered[:, 0].sum() == 0


def test_cli_generate_markov_writes_the_truth_next_to_the_book(cli, tmp_path: Path) -> None:
    import json
    db = tmp_path / "m.duckdb"
    r = cli("generate", "--db", db, "--loans", "500", "--months", "6", "--seed", "3",
            "--as-of", "2025-06-30", "--credit-model", "markov")
    assert r.code == 0, r.err
    truth = json.loads((tmp_path / "m.duckdb.truth.json").read_text(encoding="utf-8"))
    assert truth["charge_off_dpd"] == 90 and truth["rho"] == MARKOV.rho
    assert truth["buckets"] == ["current", "1-30", "31-60", "61-90"]
    assert len(truth["factor"]) == 6 and truth["factor_months"][-1] == "2025-06-30"
    np.testing.assert_allclose(truth["roll_rate"][2], np.multiply(MARKOV.markov_roll,
                                                                  MARKOV.markov_band_roll[2]))
    bad = cli("generate", "--db", tmp_path / "x.duckdb", "--loans", "5", "--credit-model",
              "chain")
    assert bad.code == 2 and "--credit-model" in bad.err and "markov" in bad.err
    assert not (tmp_path / "x.duckdb").exists()


def test_factor_fit_on_the_markov_book_covers_the_generator(
        markov_book: tuple[Path, object]) -> None:
    """The generator's rho 0.05 and persistence 0.6 lie inside the 95% profile-likelihood
    intervals fitted on the book's transitions (18 months; the intervals' coverage itself is
    tested on simulated histories in tests/portfolio/test_factor_fit.py), and the month
    effects follow the realised factor path (correlation > 0.9)."""
    from portfolio.book import factor_fit as ff
    path, summary = markov_book
    with open_store(path, read_only=True) as store:
        c = tr.load_transition_counts(store, AS_OF)
    fc = tr.factor_counts(c)
    fit = ff.fit_factor(fc)
    print(fit)
    assert fit.rho_interval[0] <= MARKOV.rho <= fit.rho_interval[1]
    assert fit.persistence_interval[0] <= MARKOV.factor_persistence \
        <= fit.persistence_interval[1]
    y, _ = ff.month_effects(fc)
    z = np.asarray(summary.factor)[-len(y):]
    assert np.corrcoef(y, z)[0, 1] > 0.9


def test_cli_calibrate_records_the_rho_choice_and_writes_the_cells(
        cli, markov_book: tuple[Path, object], tmp_path: Path) -> None:
    from portfolio.montecarlo.assumptions import load_assumptions
    path, _ = markov_book
    out = tmp_path / "a.toml"
    r = cli("calibrate", "--db", path, "--out", out, "--rho-choice", "ttc", "--rho-ttc", "0.05")
    assert r.code == 0, r.err
    a = load_assumptions(out)
    assert a.rho == 0.05
    choice = a.provenance["rho_choice"]
    assert choice["choice"] == "ttc" and choice["rho_ttc"] == 0.05
    lo, hi = choice["rho_interval"]  # of the defaults' fit (the hazard model's [factor])
    assert lo <= choice["rho_point"] <= hi
    assert a.provenance["factor_fit"]["rho_interval"] == [lo, hi]
    # the transitions' fit is the Markov model's own loading: it covers the generator's
    moves = a.provenance["transitions_factor_fit"]
    assert moves["rho_interval"][0] <= MARKOV.rho <= moves["rho_interval"][1]
    assert moves["persistence_interval"][0] <= 0.6 <= moves["persistence_interval"][1]
    # recoveries from the charge-off month: the generator's 15% over 9 months
    assert a.recovery_rate == pytest.approx(0.15, abs=1e-3)
    np.testing.assert_allclose(a.recovery_lag, MARKOV.recovery_lag, atol=1e-3)
    cells = pd.read_csv(tmp_path / "a.transitions.csv")
    assert {"band", "term", "age", "from", "to", "prob", "lo", "hi", "exposure",
            "pooled"} <= set(cells.columns)
    assert ((cells["lo"] <= cells["prob"]) & (cells["prob"] <= cells["hi"])).all()
    one = cells.groupby(["band", "term", "age", "from"])["prob"].sum()
    assert np.allclose(one[one > 0], 1.0)  # each row of a matrix sums to 1
    assert "roll 61-90->charged_off" in r.out and "rho for the run: 0.0500 (ttc" in r.out
    up = cli("calibrate", "--db", path, "--out", tmp_path / "u.toml", "--rho-choice", "upper")
    assert up.code == 0 and load_assumptions(tmp_path / "u.toml").rho == pytest.approx(hi,
                                                                                      abs=1e-6)


@pytest.mark.parametrize(("flags", "match"), [
    (["--rho-choice", "lower"], "`--rho-choice` must be point or upper or ttc"),
    (["--rho-choice", "ttc"], "`--rho-ttc` must be a value in [0, 1) with --rho-choice ttc"),
    (["--rho-ttc", "2"], "`--rho-ttc` must be in [0, 1)"),
    (["--charge-off-dpd", "100"], "`--charge-off-dpd` must be one of 60, 90, 120, 150, 180"),
    (["--min-exposure", "0"], "`--min-exposure` must be an integer >= 1"),
    (["--transitions-out", "cells.txt"], "`--transitions-out` must be a .csv file path"),
])
def test_cli_calibrate_bad_delinquency_flags_exit_2(cli, tmp_path: Path, flags: list[str],
                                                    match: str) -> None:
    out = tmp_path / "a.toml"
    r = cli("calibrate", "--db", tmp_path / "none.duckdb", "--out", out, *flags)
    assert r.code == 2 and match in r.err and "Traceback" not in r.err
    assert not out.exists()


def test_delinquency_arrays_on_the_projection_grid(markov_book: tuple[Path, object]) -> None:
    path, _ = markov_book
    with open_store(path, read_only=True) as store:
        e = tr.estimate_transitions(tr.load_transition_counts(store, AS_OF))
    arr = tr.delinquency_arrays(e)
    assert arr["roll_current"].shape == (6, 6, 24)
    assert arr["roll"].shape == arr["cure"].shape == (6, 6, 24, 6)
    np.testing.assert_array_equal(arr["roll_current"], e.prob[..., 0, 1])
    np.testing.assert_array_equal(arr["roll"][..., 2], e.prob[..., 3, 4])  # 61–90 → charged off
    np.testing.assert_array_equal(arr["cure"][..., 0], e.prob[..., 1, 0] + e.prob[..., 1, 6])
    assert (arr["roll"][..., 3:] == 1).all() and (arr["cure"][..., 3:] == 0).all()
    assert (arr["roll"] + arr["cure"] <= 1 + 1e-12).all()


def test_delinquency_arrays_at_a_later_charge_off_point_roll_on(
        markov_book: tuple[Path, object]) -> None:
    """At 120 DPD on a book that writes off at 90: the book's charge-offs from 61–90 count as
    rolls to 91–120, a bucket never seen, which rolls on (to the charge-off) with
    probability 1 — a loan is charged off one month later, as the later point says."""
    path, _ = markov_book
    with open_store(path, read_only=True) as store:
        e = tr.estimate_transitions(tr.load_transition_counts(store, AS_OF,
                                                              charge_off_dpd=120))
    arr = tr.delinquency_arrays(e)
    np.testing.assert_allclose(arr["roll"][..., 2], e.prob[..., 3, 4] + e.prob[..., 3, 5])
    assert (e.exposure[..., 4] == 0).all() and (arr["roll"][..., 3] == 1).all()
    assert (arr["cure"][..., 3] == 0).all()
    assert arr["roll"][..., 2].max() > 0.5  # the 61–90 bucket's write-offs
