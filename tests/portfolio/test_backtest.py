"""The back-test (``portfolio.book.backtest``, ``riskpool backtest``).

References: the Gaussian conditioning of a normal prior for a common level with independent
observations (closed form written out below); AR(1) histories simulated with a known ρ and φ
(the factor scenarios' 90% intervals must cover 90% of the realised shifts); hand-built fans
for the coverage; Markov books with known truth (``portfolio.synthetic.markov``) for the
acceptance (coverage of the 90% fan between 80% and 98% of the months).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio.book import backtest as bt
from portfolio.errors import ValidationError
from portfolio.store.backtest import month_ends
from portfolio.store.core import open_store
from portfolio.synthetic.generate import GeneratorParams, generate_book

AS_OF = dt.date(2025, 6, 30)
MARKOV = GeneratorParams(credit_model="markov")


# ---------------------------------------------------------------- factor scenarios


def test_conditional_shifts_equal_the_closed_form_for_independent_months() -> None:
    """φ = 0: future months are independent of the window, so y_f = u_f + c with the level c
    known only through ŷ_m = u_m + c + e_m. Conjugate normal: c | ŷ ~ N(m, 1/P) with
    P = 1/κ² + Σ 1/v_m, m = Σ (ŷ_m / v_m) / P, v_m = b² + se_m²; then
    E[y_f] = m and Cov(y_f) = b²·I + (1/P)·11ᵀ."""
    y = np.array([0.12, -0.30, 0.05, 0.20, -0.07])
    se = np.array([0.05, 0.10, 0.02, 0.08, 0.04])
    b = 0.3
    v = b * b + se * se
    prec = 1.0 / bt.KAPPA ** 2 + np.sum(1.0 / v)
    m = np.sum(y / v) / prec
    mean, cov = bt.conditional_shifts(y, se, np.arange(5), np.arange(5, 8), b, 0.0)
    np.testing.assert_allclose(mean, np.full(3, m), rtol=1e-9)
    np.testing.assert_allclose(cov, b * b * np.eye(3) + np.full((3, 3), 1.0 / prec), rtol=1e-9)


def test_factor_scenarios_cover_the_realised_shift_at_their_stated_level() -> None:
    """400 AR(1) histories (ρ 0.05, φ 0.6, 20 months observed as ŷ = b·Z − mean + noise, as
    the month effects are): the realised shift of each of the next 12 months relative to the
    window's exposure-weighted level falls inside the central 90% of its conditional
    distribution in 90% ± 3% of the cases, and its standardised error has mean 0 ± 0.1 and
    standard deviation 1 ± 0.1 — neither a fixed path nor the unconditional AR(1)."""
    rng = np.random.default_rng(5)
    b, phi, n, h = np.sqrt(0.05 / 0.95), 0.6, 20, 12
    se = np.full(n, 0.03)
    w = np.linspace(1.0, 3.0, n)  # a growing book: later months weigh more
    zs = []
    for _ in range(400):
        z = np.empty(n + h)
        z[0] = rng.standard_normal()
        for t in range(1, n + h):
            z[t] = phi * z[t - 1] + np.sqrt(1 - phi * phi) * rng.standard_normal()
        u = b * z
        y_hat = u[:n] - u[:n].mean() + se * rng.standard_normal(n)
        mean, cov = bt.conditional_shifts(y_hat, se, np.arange(n), np.arange(n, n + h), b, phi)
        truth = u[n:] - w @ u[:n] / w.sum()
        zs.append((truth - (mean - w @ y_hat / w.sum())) / np.sqrt(np.diag(cov)))
    z = np.array(zs)
    coverage = float((np.abs(z) < 1.6449).mean())
    assert 0.87 <= coverage <= 0.93, coverage
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.1, (z.mean(), z.std())


@given(st.integers(4, 30), st.floats(0.0, 1.0), st.floats(-0.95, 0.95),
       st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_conditioning_never_adds_variance(n: int, b: float, phi: float, h: int,
                                          seed: int) -> None:
    """Invariants of the Gaussian conditioning: the covariance of the future shifts is
    symmetric positive semi-definite and no larger, month by month, than its prior
    b² + κ² (observing the window can only remove variance)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 0.3, n)
    se = rng.uniform(0.01, 0.5, n)
    months = np.cumsum(rng.integers(1, 3, n))
    future = months[-1] + np.arange(1, h + 1)
    _, cov = bt.conditional_shifts(y - y.mean(), se, months, future, b, phi)
    assert np.allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > -1e-8 * (1 + b * b + bt.KAPPA ** 2)
    assert (np.diag(cov) <= b * b + bt.KAPPA ** 2 + 1e-9).all()


# ---------------------------------------------------------------- coverage


def test_compare_counts_the_months_inside_the_fan_by_hand() -> None:
    """Paths 0..100 in steps of 1 (p5 = 5, median 50, p95 = 95 by numpy's linear quantile);
    actual 5 (the edge: inside), 96 (outside), 50 (inside); a month with fan and actual all 0
    is not compared."""
    base = np.arange(101.0)[:, None]
    paths = np.hstack([base, base, base, np.zeros((101, 1))])
    table, cov = bt.compare({"s": paths}, {"s": np.array([5.0, 96.0, 50.0, 0.0])},
                            [dt.date(2025, m, 28) for m in (1, 2, 3, 4)], {"s": "a series"})
    assert table["p5"].tolist()[:3] == [5.0, 5.0, 5.0]
    assert table["inside"].tolist() == [True, False, True, True]
    assert table["informative"].tolist() == [True, True, True, False]
    row = cov.iloc[0]
    assert (row["months"], row["inside"], row["coverage"]) == (3, 2, pytest.approx(2 / 3))


# ---------------------------------------------------------------- no look-ahead


@pytest.fixture(scope="module")
def small_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Markov book of 2,000 loans over 24 months."""
    path = tmp_path_factory.mktemp("bt") / "m.duckdb"
    with open_store(path) as store:
        generate_book(store, 2000, 24, seed=3, as_of=AS_OF, params=MARKOV)
    return path


def _calibration(path: Path, until: dt.date) -> tuple[dict[str, np.ndarray], np.ndarray]:
    with open_store(path, read_only=True) as store:
        a, dq = bt.calibrate_until(store, until)
        loans = bt.cohort_loans(store, until)
        scen = bt.factor_scenarios(dq, until, 6, 200, np.random.default_rng(1))
    arrays = {"default_hazard": a.default_hazard, "prepay_smm": a.prepay_smm,
              "roll_current": a.delinquency.roll_current, "roll": a.delinquency.roll,
              "cure": a.delinquency.cure, "recovery_lag": np.asarray(a.recovery_lag),
              "recovery_rate": np.array([a.recovery_rate]), "counts": dq.counts.n,
              "factor": np.array([dq.factor.rho, dq.factor.persistence]),
              "balance": np.asarray(loans.balance), "y": scen.y}
    return arrays, np.asarray(loans.loan_id)


def test_data_after_the_train_until_date_cannot_change_the_calibration(
        small_book: Path, tmp_path: Path) -> None:
    """Rewrite every row after the date (all delinquent 60 DPD, nothing paid, charge-offs
    and recoveries invented) and delete half of them: the calibration, the cohort and the
    factor scenarios are the same arrays, bit for bit."""
    until = dt.date(2024, 12, 31)
    before, ids = _calibration(small_book, until)
    changed = tmp_path / "changed.duckdb"
    shutil.copy(small_book, changed)
    with open_store(changed) as store:
        n_after = store.con.execute("SELECT count(*) FROM loan_performance WHERE as_of > ?",
                                    [until]).fetchone()[0]
        store.con.execute("""
            UPDATE loan_performance SET dpd = 60, status = 'delinquent', paid_principal = 0,
                   paid_interest = 0, prepaid_principal = 0, charge_off = balance,
                   recovery = 1.0
            WHERE as_of > ?""", [until])
        store.con.execute("DELETE FROM loan_performance WHERE as_of > ? AND hash(loan_id) % 2 = 0",
                          [until])
        left = store.con.execute("SELECT count(*) FROM loan_performance WHERE as_of > ?",
                                 [until]).fetchone()[0]
    assert n_after > 1000 and 0 < left < n_after
    after, ids_after = _calibration(changed, until)
    assert np.array_equal(ids, ids_after)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_cohort_is_the_loans_current_and_open_at_the_date(small_book: Path) -> None:
    until = dt.date(2024, 12, 31)
    with open_store(small_book, read_only=True) as store:
        loans = bt.cohort_loans(store, until)
        rows = store.con.execute("""
            SELECT p.loan_id, p.balance, p.dpd, p.status, p.months_on_book, l.term_months
            FROM loan_performance p JOIN loans l USING (loan_id) WHERE p.as_of = ?""",
                                 [until]).df()
    want = rows[(rows["dpd"] == 0) & (rows["balance"] > 0)
                & rows["status"].isin(["current", "delinquent"])
                & (rows["months_on_book"] < rows["term_months"])]
    assert sorted(map(str, loans.loan_id)) == sorted(want["loan_id"])
    assert float(np.sum(loans.balance)) == pytest.approx(float(want["balance"].astype(float)
                                                               .sum()))


# ---------------------------------------------------------------- acceptance


@pytest.mark.slow
def test_backtest_coverage_of_the_90pct_fan_on_markov_books(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Three Markov books with known truth (ρ 0.05, φ 0.6; seeds 1, 2, 3), 4,000 loans over
    42 months each; from train-until dates every 4 months (month-ends 13 to 29) the loans
    current then are projected 12 months ahead on 300 paths. Pooled over the books and dates
    (135 to 180 compared months per series), the share of months whose actual lies inside the
    5–95% fan is between 80% and 98% for 30+ DPD, charge-offs and collections (the
    acceptance). One book's factor path is one draw: a single book's coverage ranges from
    about 50% to 100% (measured on seeds 3–8: 84–100% for charge-offs), hence the pooling;
    measured here 87%, 93% and 88%."""
    tables = []
    for seed in (1, 2, 3):
        path = tmp_path_factory.mktemp("acc") / f"b{seed}.duckdb"
        with open_store(path) as store:
            generate_book(store, 4000, 42, seed=seed, as_of=AS_OF, params=MARKOV)
            me = month_ends(store.con)
            for i in range(12, 30, 4):
                r = bt.run_backtest(store, me[i], n_paths=300, horizon=12, seed=seed)
                tables.append(r.table.assign(book=seed, origin=me[i]))
    tab = pd.concat(tables)
    used = tab[tab["informative"]]
    coverage = used.groupby("series")["inside"].mean()
    print(coverage, used.groupby("series").size())
    for series in bt.HEADLINE:
        assert 0.80 <= coverage[series] <= 0.98, (series, coverage[series])


def test_window_offsets_solve_the_level_equation(small_book: Path) -> None:
    """Σ_m n_m·Φ(Φ⁻¹(P̂) + Δ − s·ŷ_m) = Σ_m x_m for every move (the definition, checked with
    scipy's ndtr on the counts), and Δ = 0 when every month has the same shift."""
    from scipy.special import ndtr, ndtri

    from portfolio.book.factor_fit import month_effects
    from portfolio.book.transitions import factor_counts
    until = dt.date(2024, 12, 31)
    with open_store(small_book, read_only=True) as store:
        _, dq = bt.calibrate_until(store, until)
    fc = factor_counts(dq.counts)
    y, _ = month_effects(fc)
    off = bt.window_offsets(dq, y, fc.month_index)
    n = dq.counts.n.sum(axis=(0, 1, 2))
    keep = np.isin(dq.counts.months.astype("datetime64[M]").astype(np.int64), fc.month_index)
    n = n[keep]
    moves = [("entry", 0, n[:, 0, 1], 1.0)]
    moves += [("roll", i - 1, n[:, i, i + 1], 1.0) for i in (1, 2, 3)]
    moves += [("cure", i - 1, n[:, i, 0] + n[:, i, 6], -1.0) for i in (1, 2, 3)]
    for name, j, x, sign in moves:
        i = 0 if name == "entry" else j + 1
        expo = n[:, i].sum(axis=1)
        mu = ndtri(x.sum() / expo.sum()) + off[name][j]
        assert float(expo @ ndtr(mu - sign * y)) == pytest.approx(float(x.sum()), rel=1e-8)
    flat = bt.window_offsets(dq, np.zeros_like(y), fc.month_index)
    for arr in flat.values():
        np.testing.assert_allclose(arr, 0.0, atol=1e-9)


# ---------------------------------------------------------------- command line


def test_cli_backtest_prints_the_table_and_writes_csv_and_chart(cli, small_book: Path,
                                                                 tmp_path: Path) -> None:
    out, chart = tmp_path / "bt.csv", tmp_path / "bt.png"
    r = cli("backtest", "--db", small_book, "--train-until", "2024-10-31", "--paths", "200",
            "--seed", "4", "--months", "6", "--out", out, "--chart", chart)
    assert r.code == 0, r.err
    assert "back-test: calibrated on the history up to 2024-10-31" in r.out
    assert "200 paths, seed 4" in r.out and "== coverage" in r.out
    table = pd.read_csv(tmp_path / "bt_backtest.csv")
    cov = pd.read_csv(tmp_path / "bt_coverage.csv")
    assert list(table.columns) == ["series", "month", "actual", "p5", "median", "p95", "inside"]
    assert set(table["series"]) >= set(bt.HEADLINE) and len(table) == 6 * len(cov)
    assert ((table["p5"] <= table["median"]) & (table["median"] <= table["p95"])).all()
    inside = (table["actual"] >= table["p5"] - 0.005) & (table["actual"] <= table["p95"] + 0.005)
    assert (inside == table["inside"]).all()
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same seed gives the same table
    again = cli("backtest", "--db", small_book, "--train-until", "2024-10-31", "--paths", "200",
                "--seed", "4", "--months", "6", "--out", tmp_path / "again.csv")
    assert again.code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again_backtest.csv"), table)


@pytest.mark.parametrize(("flags", "match"), [
    (["--train-until", "2024-10-15"], "`--train-until` must be a month-end of the book's history"),
    (["--train-until", "2019-12-31"], "`--train-until` must be a month-end of the book's history"),
    (["--train-until", "2023-09-30"], "at least 6 month-ends of history"),
    (["--train-until", "2025-06-30"], "before the book's last (2025-06-30)"),
    (["--train-until", "June"], "`--train-until` must be a date YYYY-MM-DD"),
    (["--train-until", "2024-10-31", "--paths", "10"], "`--paths` must be an integer in [100"),
    (["--train-until", "2024-10-31", "--months", "0"], "`--months` must be an integer in [1"),
    (["--train-until", "2024-10-31", "--charge-off-dpd", "60"], "`--charge-off-dpd` must be"),
    (["--train-until", "2024-10-31", "--charge-off-dpd", "120"],
     "must be a charge-off point the book reaches (it writes loans off earlier: 100% of its"),
    (["--train-until", "2024-10-31", "--engine", "fast"], "`--engine` must be loan or granular"),
    (["--train-until", "2024-10-31", "--chart", "x.svg"], "`--chart` must be a file name"),
    (["--train-until", "2024-10-31", "--out", "x.txt"], "`--out` must be a file name ending"),
])
def test_cli_backtest_bad_input_exits_2_naming_the_flag(cli, small_book: Path, tmp_path: Path,
                                                        flags: list[str], match: str) -> None:
    r = cli("backtest", "--db", small_book, *flags)
    assert r.code == 2 and match in r.err and "Traceback" not in r.err, r.err


def test_cli_backtest_without_loans_or_history_exits_2(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    with open_store(empty):
        pass
    r = cli("backtest", "--db", empty, "--train-until", "2024-10-31")
    assert r.code == 2 and "no performance history" in r.err
    r = cli("backtest", "--db", tmp_path / "none.duckdb", "--train-until", "2024-10-31")
    assert r.code == 2 and "`--db` must be an existing riskpool database" in r.err


def test_no_loan_current_at_the_date_is_refused(small_book: Path, tmp_path: Path) -> None:
    """Every loan delinquent at the date: nothing to project, a clear refusal."""
    path = tmp_path / "late.duckdb"
    shutil.copy(small_book, path)
    until = dt.date(2024, 10, 31)
    with open_store(path) as store:
        store.con.execute("UPDATE loan_performance SET dpd = 20, status = 'delinquent' "
                          "WHERE as_of = ? AND balance > 0", [until])
        with pytest.raises(ValidationError, match="no loan is current and open on the book "
                                                  "at 2024-10-31"):
            bt.run_backtest(store, until, n_paths=100)
