"""The synthetic book generator (portfolio/synthetic/): realism, anchors, truth, invariants.

Independent sources used below, each named where it is used:
* calibration anchors (Fitch 360 Microcredit: ≈ 8,000 CNY average loan, 2.5 %
  base-case lifetime default; Ant: 90+ DPD ≈ 0.7–1.05 % of balance);
* ``portfolio.loans.schedules.schedule`` (one-loan schedules, themselves tested against
  numpy-financial and QuantLib) for the payments of loans that pay as agreed;
* hand derivations written out in comments (the pipeline shift of the default hazard with no
  prepayment, recovery totals, cent rounding);
* ``scipy.stats.norm`` for the Vasicek conditional probability.

Tolerances for the anchors are stated at each test; they are checked on the unconditional
book (ρ = 0: every month at the average macro state, E[Φ(…)] = h) because with ρ > 0 one
24-month macro path moves a single book's figures far from the average (that is the point of
the factor, tested separately).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from portfolio.errors import RiskpoolError, ValidationError
from portfolio.loans.schedules import schedule
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.store.core import open_store
from portfolio.synthetic.generate import (
    GeneratorParams,
    check_request,
    generate_book,
    last_month_end_before,
    simulate_book,
    true_assumptions,
)

AS_OF = dt.date(2025, 12, 31)
EDGES = np.array([lo for lo, _ in SCORE_BANDS[1:]])


# ------------------------------------------------------------------------------- helpers


def _frames(book) -> tuple[pd.DataFrame, pd.DataFrame]:
    loans = book.loans.to_pandas()
    perf = book.performance.to_pandas()
    for c in ("loan_id", "status"):
        perf[c] = perf[c].astype(str)
    for c in ("borrower_id", "repayment_type", "region", "channel", "product"):
        loans[c] = loans[c].astype(str)
    loans["origination_date"] = pd.to_datetime(loans["origination_date"])
    perf["as_of"] = pd.to_datetime(perf["as_of"])
    loans["band"] = np.searchsorted(EDGES, loans["credit_score"].to_numpy(), side="right")
    loans["term_idx"] = np.searchsorted(ALLOWED_TERMS, loans["term_months"].to_numpy())
    perf = perf.merge(loans[["loan_id", "band", "term_idx", "term_months", "principal",
                             "repayment_type", "origination_date", "apr"]], on="loan_id")
    return loans, perf.sort_values(["loan_id", "as_of"], kind="stable").reset_index(drop=True)


def _months_between(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    return ((later.dt.year - earlier.dt.year) * 12 + later.dt.month - earlier.dt.month).to_numpy()


def _first_default(perf: pd.DataFrame) -> pd.DataFrame:
    return perf[perf.status == "default"].drop_duplicates("loan_id")[
        ["loan_id", "months_on_book", "balance", "as_of"]]


def _lifetime_default_12m(loans: pd.DataFrame, perf: pd.DataFrame, as_of: dt.date) -> float:
    """Defaulted balance (balance on the first ``default`` row) / original balance of the
    12-month loans whose whole term plus the 3-month pipeline is observed (age ≥ 15)."""
    d = _first_default(perf).rename(columns={"balance": "def_bal"})
    x = loans.merge(d[["loan_id", "def_bal"]], on="loan_id", how="left").fillna({"def_bal": 0})
    age = _months_between(pd.Series([pd.Timestamp(as_of)] * len(x)), x.origination_date)
    seasoned = x[(x.term_months == 12) & (age >= 15)]
    return float(seasoned.def_bal.sum() / seasoned.principal.sum())


def _ratio_dpd(perf: pd.DataFrame, as_of: dt.date, dpd: int) -> float:
    last = perf[(perf.as_of == pd.Timestamp(as_of)) & (perf.balance > 0)
                & perf.status.isin(["current", "delinquent", "default"])]
    return float(last.balance[last.dpd > dpd].sum() / last.balance.sum())


def _check_invariants(loans: pd.DataFrame, perf: pd.DataFrame, params: GeneratorParams,
                      as_of: dt.date) -> None:
    """Every documented property of a generated book (used on fixed and random books)."""
    # loans
    assert loans.loan_id.is_unique
    assert loans.loan_id.str.fullmatch(r"L\d{9}").all()
    assert loans.borrower_id.str.fullmatch(r"B[0-9a-f]{16}").all()
    assert loans.apr.between(params.apr_floor, params.apr_cap).all()
    assert (loans.principal > 0).all() and (loans.principal <= loans.credit_limit).all()
    assert (loans.credit_limit <= 200_000).all()
    assert loans.credit_score.between(350, 950).all()
    assert loans.term_months.isin(ALLOWED_TERMS).all()
    bullet = loans.repayment_type.isin(["interest_only", "daily_interest"])
    assert (loans.term_months[bullet] <= 12).all()  # R6
    assert (loans.origination_date <= pd.Timestamp(as_of)).all()
    # one row per loan per month-end, from the origination month, contiguous
    if perf.empty:
        return
    assert (perf.as_of + pd.offsets.Day(1)).dt.day.eq(1).all()  # month-ends
    assert (perf.as_of <= pd.Timestamp(as_of)).all()
    assert (_months_between(perf.as_of, perf.origination_date) == perf.months_on_book).all()
    g = perf.groupby("loan_id", sort=False)
    assert (g.months_on_book.min() == 0).all()
    assert (g.months_on_book.max() + 1 == g.size()).all()
    assert set(perf.loan_id) == set(loans.loan_id)
    # money: cents, non-negative; balances never rise
    for col in ("balance", "paid_principal", "paid_interest", "prepaid_principal",
                "charge_off", "recovery"):
        v = perf[col].to_numpy()
        assert (v >= 0).all(), col
        assert np.allclose(v * 100, np.round(v * 100), atol=1e-6), col
    step = g.balance.diff().fillna(0.0)
    assert (step <= 1e-9).all()
    # status and dpd agree (current 0; delinquent 1–90; default > 90; exits 0 with balance 0)
    st_ = perf.status
    assert (perf.dpd[st_ == "current"] == 0).all()
    assert perf.dpd[st_ == "delinquent"].between(1, 90).all()
    assert (perf.dpd[st_ == "default"] > 90).all()
    closed = st_.isin(["prepaid", "matured"])
    assert (perf.dpd[closed] == 0).all() and (perf.balance[closed] == 0).all()
    last_row = ~perf.loan_id.duplicated(keep="last")
    assert last_row[closed].all()  # nothing after prepaid / matured
    assert (perf.months_on_book[st_ == "matured"] == perf.term_months[st_ == "matured"]).all()
    # default only after M1, M2, M3 in the three previous rows (go-bad pipeline)
    fd = perf.index[(st_ == "default") & (g.status.shift(1) != "default")]
    for k, lo, hi in ((1, 61, 90), (2, 31, 60), (3, 1, 30)):
        prev = perf.loc[fd - k]
        assert (prev.loan_id.to_numpy() == perf.loan_id[fd].to_numpy()).all()
        assert (prev.status == "delinquent").all()
        assert prev.dpd.between(lo, hi).all()
    # principal is conserved: principal − Σ(paid + prepaid + recovery) = balance until the
    # write-off, and the write-off takes the rest
    repaid = g.paid_principal.cumsum() + g.prepaid_principal.cumsum()
    wo_seen = g.charge_off.cumsum() > 0
    rec_cum = g.recovery.cumsum()
    open_rows = ~wo_seen
    assert np.allclose((perf.principal - repaid - rec_cum - perf.balance)[open_rows], 0,
                       atol=0.005)
    wo = perf.charge_off > 0
    assert np.allclose((perf.principal - repaid - rec_cum - perf.charge_off)[wo], 0, atol=0.005)
    assert (perf.balance[wo] == 0).all()
    assert (perf.dpd[wo] > params.writeoff_dpd).all()
    assert (wo.groupby(perf.loan_id).sum() <= 1).all()
    # recoveries: recovery_rate × the defaulted balance once the lag has run (hand rule:
    # the cumulative target is rounded to the cent, so the total is exactly that rounding)
    fd_rows = perf.loc[fd]
    total_rec = g.recovery.sum()[fd_rows.loan_id].to_numpy()
    rows_after = (g.months_on_book.max()[fd_rows.loan_id].to_numpy()
                  - fd_rows.months_on_book.to_numpy())
    full = rows_after >= len(params.recovery_lag)
    expect = np.floor(params.recovery_rate * fd_rows.balance.to_numpy() * 100 + 0.5 + 1e-9) / 100
    assert np.allclose(total_rec[full], expect[full], atol=0.005)
    assert (total_rec <= expect + 0.005).all()
    # partial repayments without closing only for daily-interest loans
    partial = (perf.prepaid_principal > 0) & (st_ != "prepaid")
    assert (perf.repayment_type[partial] == "daily_interest").all()


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def neutral_book() -> tuple[pd.DataFrame, pd.DataFrame]:
    """60,000 loans, 24 months, ρ = 0 (the unconditional calibration), seed 3."""
    return _frames(simulate_book(60_000, 24, 3, AS_OF, GeneratorParams(rho=0.0)))


@pytest.fixture(scope="module")
def db_book(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("gen") / "book.duckdb"
    with open_store(path) as store:
        summary = generate_book(store, 8_000, 24, 5, AS_OF)
    return path, summary


def _fingerprint(path) -> dict[str, tuple[int, int]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table in ("loans", "loan_performance"):
            n, h = con.execute(
                f"SELECT count(*), coalesce(sum(hash(t)), 0)::HUGEINT::VARCHAR FROM {table} t"
            ).fetchone()
            out[table] = (int(n), int(h))
        return out
    finally:
        con.close()


# ------------------------------------------------------------------------------- the database


def test_same_seed_same_database_content_and_different_seed_differs(tmp_path, db_book) -> None:
    path, _ = db_book
    again = tmp_path / "again.duckdb"
    other = tmp_path / "other.duckdb"
    with open_store(again) as store:
        generate_book(store, 8_000, 24, 5, AS_OF)
    with open_store(other) as store:
        generate_book(store, 8_000, 24, 6, AS_OF)
    first = _fingerprint(path)
    assert first["loans"][0] == 8_000 and first["loan_performance"][0] > 8_000
    assert _fingerprint(again) == first
    fp_other = _fingerprint(other)
    assert fp_other["loans"][1] != first["loans"][1]
    assert fp_other["loan_performance"][1] != first["loan_performance"][1]


def test_generate_records_the_batch_and_summary(db_book) -> None:
    path, summary = db_book
    con = duckdb.connect(str(path), read_only=True)
    try:
        batch = con.execute("SELECT batch_id, kind, source, sha256, n_rows, n_loaded, n_rejected "
                            "FROM ingest_batches").fetchall()
        n_perf, bal = con.execute(
            "SELECT count(*), sum(balance) FILTER (WHERE as_of = ?) FROM loan_performance",
            [AS_OF]).fetchone()
        batch_ids = con.execute("SELECT DISTINCT batch_id FROM loan_performance").fetchall()
    finally:
        con.close()
    assert len(batch) == 1
    batch_id, kind, source, sha, n_rows, n_loaded, n_rejected = batch[0]
    assert (kind, source) == ("generate", "generate(seed=5, loans=8000, months=24)")
    assert re.fullmatch(r"[0-9a-f]{64}", sha) and sha == summary.params_sha256
    assert (n_rows, n_loaded, n_rejected) == (8_000, 8_000, 0)
    assert batch_ids == [(batch_id,)] and summary.batch_id == batch_id
    assert summary.n_performance_rows == n_perf
    assert summary.balance_at_as_of == pytest.approx(float(bal), abs=0.01)
    assert summary.as_of == AS_OF and summary.first_origination_month == dt.date(2024, 1, 1)
    assert len(summary.factor) == 24 and summary.factor_months[-1] == AS_OF


def test_generate_refuses_a_book_that_already_has_loans(db_book) -> None:
    path, _ = db_book
    before = _fingerprint(path)
    with open_store(path) as store, pytest.raises(RiskpoolError, match="already holds 8,000"):
        generate_book(store, 100, 3, 1, AS_OF)
    assert _fingerprint(path) == before


def test_simulate_book_equals_what_generate_writes(db_book) -> None:
    path, _ = db_book
    book = simulate_book(8_000, 24, 5, AS_OF)
    con = duckdb.connect(str(path), read_only=True)
    try:
        db = con.execute("SELECT loan_id, as_of, balance, dpd, status FROM loan_performance "
                         "ORDER BY loan_id, as_of").df()
    finally:
        con.close()
    mem = book.performance.to_pandas()
    mem["loan_id"] = mem["loan_id"].astype(str)
    mem = mem.sort_values(["loan_id", "as_of"]).reset_index(drop=True)
    assert len(db) == len(mem)
    assert (db.loan_id.to_numpy() == mem.loan_id.to_numpy()).all()
    assert np.allclose(db.balance.astype(float).to_numpy(), mem.balance.to_numpy(), atol=1e-9)
    assert (db.status.to_numpy() == mem.status.astype(str).to_numpy()).all()


# ------------------------------------------------------------------------------- realism


def test_originations_look_like_a_jiebei_book(neutral_book) -> None:
    loans, _ = neutral_book
    # anchor: average loan ≈ 8,000 CNY (Fitch 360 Microcredit); tolerance ±12 %
    assert 7_000 <= loans.principal.mean() <= 9_000
    assert loans.principal.median() < loans.principal.mean()  # right-skewed
    assert loans.principal.max() <= 200_000
    assert loans.apr.min() >= 0.073 and loans.apr.max() <= 0.24
    assert ((loans.credit_score >= 600) & (loans.credit_score <= 800)).mean() >= 0.8
    # risk-based pricing: APR falls as the score band rises
    assert (np.diff(loans.groupby("band").apr.mean().to_numpy()) < 0).all()
    # credit limit grows with the score
    assert (np.diff(loans.groupby("band").credit_limit.median().to_numpy()) >= 0).all()
    assert set(loans.term_months) == set(ALLOWED_TERMS)
    mix = loans.repayment_type.value_counts(normalize=True)
    assert set(mix.index) == {"level_annuity", "equal_principal", "interest_only",
                              "daily_interest"}
    assert mix["level_annuity"] > 0.4
    short = loans[loans.term_months <= 6].repayment_type.value_counts(normalize=True)
    assert short["daily_interest"] > mix["daily_interest"]  # daily interest common when short
    top = loans.region.value_counts()
    assert top.index[0] == "广东" and len(top) >= 25
    assert set(loans.channel) == {"app", "mini_program", "partner"}
    # repeat borrowers keep their province
    per_borrower = loans.groupby("borrower_id").region.nunique()
    assert (per_borrower == 1).all() and loans.borrower_id.nunique() < len(loans)
    # 24 monthly vintages ending at the as-of month, growing volume
    months = loans.origination_date.dt.to_period("M")
    assert months.nunique() == 24 and months.max() == pd.Period(AS_OF, "M")
    counts = months.value_counts().sort_index().to_numpy()
    assert counts[-6:].sum() > counts[:6].sum()


def test_apr_is_risk_based_pricing(neutral_book) -> None:
    """The pricing rule written out for a direct-channel loan scored 725 (band 700–749's mid-point,
    where the scorecard PD is that band's pd_12m = 0.027): funding 0.030 + EL 0.027 × (1 −
    0.15) + opex 0.025 + capital 0.08 × hurdle 0.15 + margin 0.030 = 0.11995; the quoted APR
    is a daily rate to 0.001 %/day (× 365) with N(0, 0.008) noise."""
    loans, _ = neutral_book
    expected = 0.030 + 0.027 * (1 - 0.15) + 0.025 + 0.08 * 0.15 + 0.030
    sel = loans[(loans.credit_score == 725) & (loans.channel != "partner")]
    assert len(sel) > 100
    assert sel.apr.median() == pytest.approx(expected, abs=0.003)
    partner = loans[(loans.credit_score == 725) & (loans.channel == "partner")]
    assert partner.apr.median() == pytest.approx(expected + 0.010, abs=0.004)
    daily = loans.apr.to_numpy() / 365 * 1e5
    assert np.allclose(daily, np.round(daily), atol=1e-6)


def test_book_invariants(neutral_book) -> None:
    loans, perf = neutral_book
    _check_invariants(loans, perf, GeneratorParams(rho=0.0), AS_OF)


@given(
    n_loans=st.integers(1, 300),
    n_months=st.integers(1, 16),
    seed=st.integers(0, 2**32),
    rho=st.floats(0.0, 0.3),
    recovery_rate=st.floats(0.0, 0.5),
    writeoff_dpd=st.sampled_from([120, 180, 360]),
    pd_scale=st.floats(0.5, 5.0),
)
def test_invariants_hold_for_any_seed_and_parameters(n_loans, n_months, seed, rho, recovery_rate,
                                                     writeoff_dpd, pd_scale) -> None:
    base = GeneratorParams()
    params = dataclasses.replace(
        base, rho=rho, recovery_rate=recovery_rate, writeoff_dpd=writeoff_dpd,
        pd_12m=tuple(min(0.9, p * pd_scale) for p in base.pd_12m))
    loans, perf = _frames(simulate_book(n_loans, n_months, seed, AS_OF, params))
    assert len(loans) == n_loans
    _check_invariants(loans, perf, params, AS_OF)


def test_payments_follow_the_schedule_for_loans_paying_as_agreed(neutral_book) -> None:
    """Source: portfolio.loans.schedules.schedule (tested against numpy-financial and QuantLib)."""
    loans, perf = neutral_book
    flags = perf.assign(
        other=~perf.status.isin(["current", "matured"]) | (perf.prepaid_principal > 0),
        matured=perf.status == "matured",
    ).groupby("loan_id")[["other", "matured"]].any()
    good = flags.index[flags.matured & ~flags.other]
    clean = perf[perf.loan_id.isin(good)]
    checked = 0
    for rtype in ("level_annuity", "equal_principal", "interest_only", "daily_interest"):
        ids = clean[clean.repayment_type == rtype].loan_id.unique()[:5]
        assert len(ids) > 0, rtype
        for loan_id in ids:
            rows = clean[clean.loan_id == loan_id].sort_values("months_on_book")
            ln = loans[loans.loan_id == loan_id].iloc[0]
            ref = schedule(float(ln.principal), float(ln.apr), int(ln.term_months), rtype,
                           ln.origination_date.date())
            paid = rows[rows.months_on_book > 0]
            assert np.allclose(paid.paid_interest.to_numpy(), ref.interest.to_numpy(), atol=1e-9)
            assert np.allclose(paid.paid_principal.to_numpy(), ref.principal.to_numpy(),
                               atol=1e-9)
            assert np.allclose(paid.balance.to_numpy(), ref.balance.to_numpy(), atol=1e-9)
            checked += 1
    assert checked >= 12


def test_daily_interest_accrues_on_the_balance_after_partial_repayments(neutral_book) -> None:
    """Hand rule: interest = B · apr · days / 365 (Actual/365F), B the balance
    left after last month's repayments, rounded half up to the cent."""
    _, perf = neutral_book
    di = perf[perf.repayment_type == "daily_interest"].copy()
    di["prev_balance"] = di.groupby("loan_id").balance.shift(1)
    di["prev_as_of"] = di.groupby("loan_id").as_of.shift(1)
    di["prev_status"] = di.groupby("loan_id").status.shift(1)
    rows = di[(di.status == "current") & (di.prev_status == "current")
              & (di.months_on_book >= 2) & (di.paid_principal == 0)]
    assert (rows.prepaid_principal > 0).sum() > 50  # partial repayments happen
    # the period runs between due dates that keep the origination day; for a loan that pays
    # every month it has the length of the calendar month before the due date
    def due_date(k: pd.Series) -> pd.Series:  # origination day kept, clipped to month-end
        month = rows.origination_date.dt.to_period("M") + k.to_numpy()
        first = month.dt.to_timestamp()
        day = np.minimum(rows.origination_date.dt.day, month.dt.days_in_month)
        return first + pd.to_timedelta(day - 1, unit="D")

    due = due_date(rows.months_on_book)
    prev_due = due_date(rows.months_on_book - 1)
    days = (due - prev_due).dt.days
    expect = np.floor(rows.prev_balance * rows.apr * days / 365 * 100 + 0.5 + 1e-9) / 100
    assert np.allclose(rows.paid_interest, expect, atol=1e-9)


def test_roll_and_cure_rates_are_non_trivial(neutral_book) -> None:
    _, perf = neutral_book
    perf = perf.copy()
    perf["bucket"] = pd.cut(perf.dpd, [-1, 0, 30, 60, 90, 10_000],
                            labels=["current", "M1", "M2", "M3", "default"]).astype(str)
    perf.loc[perf.status.isin(["prepaid", "matured"]), "bucket"] = "closed"
    perf["next"] = perf.groupby("loan_id").bucket.shift(-1)
    m1 = perf[(perf.bucket == "M1") & perf.next.notna()].next.value_counts(normalize=True)
    m2 = perf[(perf.bucket == "M2") & perf.next.notna()].next.value_counts(normalize=True)
    m3 = perf[(perf.bucket == "M3") & perf.next.notna()].next.value_counts(normalize=True)
    assert 0.3 < m1["current"] + m1.get("closed", 0) < 0.95  # cure from M1
    assert 0.05 < m1["M2"] < 0.7  # roll M1 → M2
    assert m2["current"] > 0.02 and m2["M3"] > 0.3  # some cure from M2, most roll
    assert m3["default"] > 0.5 and m3["current"] > 0.0


# ------------------------------------------------------------------------------- anchors


def test_lifetime_default_of_12_month_loans_is_near_2_5_percent(neutral_book) -> None:
    """Fitch base-case lifetime default 2.5 %; tolerance [2 %, 3 %]."""
    loans, perf = neutral_book
    assert 0.02 <= _lifetime_default_12m(loans, perf, AS_OF) <= 0.03


def test_90_plus_dpd_is_about_1_percent_of_a_seasoned_book(neutral_book) -> None:
    """Ant 90+ DPD 0.68–1.05 % of balance; tolerance [0.5 %, 1.6 %]; 30+ is
    above it and below 3 %."""
    _, perf = neutral_book
    r90 = _ratio_dpd(perf, AS_OF, 90)
    r30 = _ratio_dpd(perf, AS_OF, 30)
    assert 0.005 <= r90 <= 0.016
    assert r90 < r30 <= 0.03


def test_default_rate_falls_as_the_score_band_rises(neutral_book) -> None:
    loans, perf = neutral_book
    d = _first_default(perf)
    age = _months_between(pd.Series([pd.Timestamp(AS_OF)] * len(loans)), loans.origination_date)
    seasoned = loans[age >= 12].assign(defaulted=lambda x: x.loan_id.isin(d.loan_id))
    rate = seasoned.groupby("band").defaulted.mean().to_numpy()
    assert len(rate) == 6 and (np.diff(rate) < 0).all()


# ------------------------------------------------------------------------------- the truth


def test_truth_arrays_sit_on_the_assumptions_grid() -> None:
    p = GeneratorParams()
    h, s, gb = p.true_default_hazard(30), p.true_prepay_smm(30), p.go_bad_hazard(30)
    assert h.shape == s.shape == gb.shape == (len(SCORE_BANDS), len(ALLOWED_TERMS), 30)
    # go-bad hazards multiply up to the lifetime PD over the term, zero after it
    for j, term in enumerate(ALLOWED_TERMS):
        surv = np.prod(1 - gb[:, j, :term], axis=1)
        assert np.allclose(1 - surv, p.lifetime_go_bad()[:, j])
        assert (gb[:, j, term:] == 0).all() and (s[:, j, term - 1:] == 0).all()
    assert (h[:, :, :3] == 0).all()  # nobody can be 90+ DPD before month 4
    assert (np.diff(gb[:, :, 0], axis=0) < 0).all()  # riskier bands, higher hazard
    a = true_assumptions(p, 30)
    assert isinstance(a, Assumptions)
    assert a.rho == p.rho and a.factor_persistence == p.factor_persistence
    assert a.recovery_rate == p.recovery_rate and a.recovery_lag == p.recovery_lag
    assert np.array_equal(a.prepay_smm, s) and a.default_hazard.max() < 1


def test_default_hazard_without_prepayment_is_the_go_bad_hazard_shifted_by_3_months() -> None:
    """Hand derivation: with s = 0 and a ≤ term the loans at risk at age a are P[a] + B[a−1]
    + B[a−2] + B[a−3] = P[a−3] (everyone performing at a−3 who has not defaulted since), so
    the hazard is B[a−3] / P[a−3] = h[a−3]. After the term the performing loans have matured
    and only the pipeline is at risk: at term+3 the one cohort left defaults for sure."""
    p = GeneratorParams(smm_base=0.0)
    h, gb = p.true_default_hazard(27), p.go_bad_hazard(27)
    for j, term in enumerate(ALLOWED_TERMS):
        assert np.allclose(h[:, j, 3:term], gb[:, j, :term - 3])
        assert np.allclose(h[:, j, term + 2], 1.0)
        b = gb[:, j, :term] * np.cumprod(np.hstack([np.ones((6, 1)), 1 - gb[:, j, :term - 1]]),
                                         axis=1)  # B[a] = P[a]·h[a] with P[a] = ∏(1 − h)
        assert np.allclose(h[:, j, term], b[:, -3] / b[:, -3:].sum(axis=1))


def test_empirical_hazards_match_the_truth(neutral_book) -> None:
    """Pooled over terms and ages per score band: observed first defaults vs Σ at-risk ×
    true hazard (at risk = row a−1 current or delinquent), and observed full prepayments of
    loans current at a−1 vs Σ (1 − go-bad) × SMM. Tolerance ±15 % per band (≥ 100 events)."""
    _, perf = neutral_book
    p = GeneratorParams(rho=0.0)
    hz, smm, gb = p.true_default_hazard(24), p.true_prepay_smm(24), p.go_bad_hazard(24)
    prev = perf.groupby("loan_id").status.shift(1)
    rows = perf[prev.isin(["current", "delinquent"]) & (perf.months_on_book >= 1)]
    b, t, a = rows.band.to_numpy(), rows.term_idx.to_numpy(), rows.months_on_book.to_numpy() - 1
    first_def = (rows.status == "default").to_numpy()
    exp_def = pd.Series(hz[b, t, a]).groupby(b).sum()
    obs_def = pd.Series(first_def.astype(float)).groupby(b).sum()
    cur = (prev.loc[rows.index] == "current").to_numpy()
    exp_pre = pd.Series((1 - gb[b, t, a]) * smm[b, t, a] * cur).groupby(b).sum()
    obs_pre = pd.Series(((rows.status == "prepaid").to_numpy() & cur).astype(float)).groupby(b).sum()
    for band in range(6):
        if obs_def[band] >= 100:
            assert obs_def[band] / exp_def[band] == pytest.approx(1.0, abs=0.15), band
        assert obs_pre[band] / exp_pre[band] == pytest.approx(1.0, abs=0.1), band
    total = obs_def.sum() / exp_def.sum()
    assert total == pytest.approx(1.0, abs=0.08)


def test_the_macro_factor_moves_defaults_together() -> None:
    """With ρ = 0.2 the share of performing loans going bad in calendar month t follows the
    Vasicek conditional probability Φ((Φ⁻¹(h) − √ρ·Z_t)/√(1−ρ)) (scipy.stats.norm): the
    monthly go-bad rate is strongly negatively correlated with Z_t, and ρ = 0 gives the same
    books' averages without that dependence."""
    params = GeneratorParams(rho=0.2)
    book = simulate_book(30_000, 24, 11, AS_OF, params)
    _, perf = _frames(book)
    z = book.factor
    # a loan goes bad in the month of its first delinquent row that leads to default
    d = _first_default(perf)
    went_bad = (d.as_of - pd.offsets.MonthEnd(3)).dt.to_period("M")
    per_month = went_bad.value_counts()
    performing = perf[perf.status == "current"].as_of.dt.to_period("M").value_counts()
    months = pd.period_range(pd.Period(AS_OF, "M") - 20, pd.Period(AS_OF, "M") - 3, freq="M")
    rate = np.array([per_month.get(m, 0) / performing.get(m - 1, 1) for m in months])
    zz = np.array([z[23 - (pd.Period(AS_OF, "M") - m).n] for m in months])
    assert np.corrcoef(rate, zz)[0, 1] < -0.5
    # the one-month Vasicek formula itself, at a typical hazard
    h = 0.004
    q = (norm.ppf(h) - np.sqrt(0.2) * -2.0) / np.sqrt(0.8)
    assert norm.cdf(q) > 3 * h  # a −2σ month at ρ = 0.2 more than triples the hazard


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_loans": 0}, "loans"),
        ({"n_loans": 2.5}, "loans"),
        ({"n_months": 0}, "months"),
        ({"n_months": 241}, "months"),
        ({"seed": -1}, "seed"),
        ({"as_of": dt.date(2025, 6, 15)}, "as_of"),
        ({"as_of": dt.date(2999, 12, 31)}, "as_of"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(kwargs, field) -> None:
    args = {"n_loans": 10, "n_months": 3, "seed": 1, "as_of": AS_OF} | kwargs
    with pytest.raises(ValidationError, match=f"`{field}`"):
        check_request(**args)
    with pytest.raises(ValidationError, match=f"`{field}`"):
        simulate_book(**args)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rho": 1.0}, "rho"),
        ({"factor_persistence": 1.0}, "factor_persistence"),
        ({"recovery_rate": 1.5}, "recovery_rate"),
        ({"recovery_lag": (0.5, 0.2)}, "recovery_lag"),
        ({"writeoff_dpd": 100}, "writeoff_dpd"),
        ({"default_dpd": 60}, "default_dpd"),
        ({"pd_12m": (0.1, 0.05)}, "pd_12m"),
        ({"term_shares": (0.5, 0.5, 0.1, 0, 0, 0)}, "term_shares"),
        ({"repayment_mix": GeneratorParams().repayment_mix[:4]
          + ((0.7, 0.2, 0.1, 0.0), (0.8, 0.2, 0.0, 0.0))}, r"repayment_mix\[18\]"),
        ({"apr_cap": 0.3}, "apr_cap"),
        ({"smm_base": 0.9}, "smm_base"),
        ({"partial_repay_fraction": (0.5, 1.0)}, "partial_repay_fraction"),
        ({"cure_episode_months": (0.5, 0.5, 0.5)}, "cure_episode_months"),
        ({"loans_per_borrower": 0.5}, "loans_per_borrower"),
        ({"volume_growth": 1.5}, "volume_growth"),
        ({"score_sd": 0.0}, "score_sd"),
        ({"subprime_share": 1.2}, "subprime_share"),
        ({"principal_median": -1.0}, "principal_median"),
        ({"principal_term_multiplier": (1.0,) * 5}, "principal_term_multiplier"),
        ({"regions": ()}, "regions"),
        ({"channels": (("app", -1.0),)}, "channels"),
        ({"funding_cost": -0.01}, "funding_cost"),
        ({"cure_episode_prob": (0.9,) * 6}, "cure_episode_prob"),
        ({"smm_band_multiplier": (1.0,) * 5}, "smm_band_multiplier"),
        ({"smm_term_multiplier": (-1.0,) * 6}, "smm_term_multiplier"),
        ({"smm_ramp_months": 0}, "smm_ramp_months"),
        ({"partial_repay_prob": 2.0}, "partial_repay_prob"),
        ({"limit_slope": -0.1}, "limit_slope"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(changes, field) -> None:
    with pytest.raises(ValidationError, match=field):
        GeneratorParams(**changes)


def test_true_arrays_refuse_a_bad_age_count() -> None:
    with pytest.raises(ValidationError, match="n_age"):
        GeneratorParams().true_default_hazard(0)


def test_default_as_of_is_the_last_month_end_before_today() -> None:
    assert last_month_end_before(dt.date(2026, 3, 1)) == dt.date(2026, 2, 28)
    assert last_month_end_before(dt.date(2024, 3, 31)) == dt.date(2024, 2, 29)
    assert check_request(5, 2, 0, None, today=dt.date(2026, 1, 15)) == dt.date(2025, 12, 31)


# ------------------------------------------------------------------------------- CLI


def test_cli_generate_prints_a_summary(cli, tmp_path) -> None:
    db = tmp_path / "cli.duckdb"
    r = cli("generate", "--db", db, "--loans", "2000", "--months", "6", "--seed", "1",
            "--as-of", "2025-06-30")
    assert r.code == 0, r.err
    assert "2,000 loans" in r.out and "2025-06-30" in r.out and "performance rows" in r.out
    assert re.search(r"\d+\.\d s", r.out)
    r2 = cli("generate", "--db", db, "--loans", "10", "--months", "2", "--seed", "1",
             "--as-of", "2025-06-30")
    assert r2.code == 2 and "already holds 2,000 loans" in r2.err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--as-of", "2025-06-15"), "as_of"),
        (("--as-of", "June"), "--as-of"),
        (("--loans", "0"), "--loans"),
        (("--months", "0"), "--months"),
    ],
)
def test_cli_generate_refuses_bad_flags_and_writes_nothing(cli, tmp_path, args, field) -> None:
    db = tmp_path / "bad.duckdb"
    r = cli("generate", "--db", db, "--seed", "1", *args)
    assert r.code == 2
    assert f"`{field}`" in r.err
    assert not db.exists()
