"""Assumptions TOML format, stress overlays and calibration from the book's own history.

Calibration tests simulate books from KNOWN monthly hazards (and a known factor), calibrate,
and compare exposure-weighted aggregates with tolerances derived from binomial standard errors
(stated next to each assert).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio.errors import ValidationError
from portfolio.montecarlo.assumptions import (
    NAMED_SCENARIOS,
    Assumptions,
    apply_stress,
    assumptions_from_toml,
    assumptions_to_toml,
    load_assumptions,
    save_assumptions,
)
from portfolio.validation import SchemaError


def _assumptions(seed: int = 0, n_age: int = 24) -> Assumptions:
    rng = np.random.default_rng(seed)
    return Assumptions(
        default_hazard=rng.uniform(0, 0.02, (6, 6, n_age)),
        prepay_smm=rng.uniform(0, 0.05, (6, 6, n_age)),
        recovery_rate=0.17,
        recovery_lag=(0.1, 0.2, 0.3, 0.4),
        rho=0.06,
        factor_persistence=0.5,
        rho_se=0.02,
        provenance={"pool_id": 3, "as_of": "2025-06-30", "n": 1234,
                    "stress": {"rho": None, "pd_multiplier": 1.0}},
    )


# ---------------------------------------------------------------- TOML format


def test_toml_round_trip() -> None:
    a = _assumptions()
    b = assumptions_from_toml(assumptions_to_toml(a))
    # values are written to 12 significant digits
    np.testing.assert_allclose(b.default_hazard, a.default_hazard, rtol=1e-11)
    np.testing.assert_allclose(b.prepay_smm, a.prepay_smm, rtol=1e-11)
    assert b.recovery_rate == a.recovery_rate and b.recovery_lag == a.recovery_lag
    assert (b.rho, b.rho_se, b.factor_persistence) == (a.rho, a.rho_se, a.factor_persistence)
    assert (b.copula, b.score_bands, b.terms) == (a.copula, a.score_bands, a.terms)
    assert b.provenance == {"pool_id": 3, "as_of": "2025-06-30", "n": 1234,
                            "stress": {"pd_multiplier": 1.0}}


@given(seed=st.integers(0, 2**32 - 1), n_age=st.integers(1, 30),
       rho=st.floats(0, 0.99), phi=st.floats(-0.99, 0.99), rate=st.floats(0, 1),
       n_lag=st.integers(1, 12))
def test_toml_round_trip_property(seed: int, n_age: int, rho: float, phi: float, rate: float,
                                  n_lag: int) -> None:
    rng = np.random.default_rng(seed)
    lag = rng.dirichlet(np.ones(n_lag))
    a = Assumptions(
        default_hazard=rng.uniform(0, 0.999, (6, 6, n_age)) * rng.integers(0, 2, (6, 6, n_age)),
        prepay_smm=rng.uniform(0, 0.5, (6, 6, n_age)),
        recovery_rate=rate, recovery_lag=tuple(lag), rho=rho, factor_persistence=phi,
        copula="t" if seed % 2 else "gaussian", t_dof=3.5,
    )
    b = assumptions_from_toml(assumptions_to_toml(a))
    np.testing.assert_allclose(b.default_hazard, a.default_hazard, rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(b.prepay_smm, a.prepay_smm, rtol=1e-11)
    np.testing.assert_allclose(b.recovery_lag, a.recovery_lag, rtol=1e-10, atol=1e-14)
    assert b.rho == pytest.approx(a.rho, rel=1e-11, abs=1e-300)
    assert b.factor_persistence == pytest.approx(a.factor_persistence, rel=1e-11, abs=1e-300)
    assert (b.copula, b.t_dof, b.n_age) == (a.copula, a.t_dof, a.n_age)


def test_save_and_load_with_exposure_beside_the_curves(tmp_path: Path) -> None:
    a = _assumptions(n_age=6)
    exposure = {"exposure": np.full((6, 6, 6), 100.0), "defaults": np.ones((6, 6, 6))}
    path = save_assumptions(a, tmp_path / "a.toml", exposure=exposure)
    text = path.read_text(encoding="utf-8")
    assert "exposure = [100, 100, 100, 100, 100, 100]" in text
    assert "[[segment]]" in text and 'score_band = "350-599"' in text
    b = load_assumptions(path)
    np.testing.assert_allclose(b.default_hazard, a.default_hazard, rtol=1e-11)
    assert not list(tmp_path.glob(".*.tmp"))


def test_short_curve_is_extended_with_its_last_value() -> None:
    text = assumptions_to_toml(_assumptions(n_age=4))
    text = text.replace("n_age = 4", "n_age = 6")
    b = assumptions_from_toml(text)
    assert b.n_age == 6
    np.testing.assert_array_equal(b.default_hazard[:, :, 5], b.default_hazard[:, :, 3])


def _edit(old: str, new: str, count: int = 1) -> str:
    text = assumptions_to_toml(_assumptions(n_age=3))
    assert old in text
    return text.replace(old, new, count)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_edit("rho = 0.06", "rhoo = 0.06"), r"^a.toml: `factor.rhoo` must be a known key \(did you mean `rho`\?"),
        (_edit("rho = 0.06", "rho = 1.2"), r"^a.toml: `factor.rho` must be a number in \[0, 1\); got 1.2$"),
        (_edit("rate = 0.17", "rate = -0.1"), r"`recovery.rate` must be a number in \[0, 1\]; got -0.1"),
        (_edit("lag = [0.1, 0.2, 0.3, 0.4]", "lag = [0.5, 0.2]"), r"`recovery.lag` must be .*sum to 1; got \[0.5, 0.2\]"),
        (_edit('copula = "gaussian"', 'copula = "clayton"'), r"`factor.copula` must be one of 'gaussian', 't'; got 'clayton'"),
        (_edit("factor_persistence = 0.5", "factor_persistence = 1.0"),
         r"`factor.factor_persistence` must be a number in \(-1, 1\); got 1.0"),
        (_edit('score_band = "350-599"', 'score_band = "350-600"'), r"`segment\[0\].score_band` must be one of 350-599, 600-649"),
        (_edit("term = 3", "term = 4"), r"`segment\[0\].term` must be one of \[3, 6, 9, 12, 18, 24\]; got 4"),
        (_edit("default_hazard = [", "default_hazard = [1.5, "), r"`segment\[0\].default_hazard\[0\]` must be a monthly probability in "
         r"\[0, 1\); got 1.5"),
        (_edit("prepay_smm = [", "prepay_smm = [-0.1, ").replace(
            "n_age = 3", "n_age = 4"), r"`segment\[0\].prepay_smm\[0\]` must be a monthly probability in \[0, 1\); got -0.1"),
        (_edit("[[segment]]\nscore_band = \"350-599\"\nterm = 3", "[[segment]]\nscore_band = "
               "\"350-599\"\nterm = 6"), r"`segment\[1\]` must be .*; got segment 350-599 × 6m again \(it appears twice\)"),
        (_edit("rho_se = 0.02", "rho_se = -1"), r"`factor.rho_se` must be a number >= 0; got -1"),
        (_edit("n_age = 3", "n_age = 0"), r"`grid.n_age` must be an integer in \[1, 600\]"),
        (_edit('format = "riskpool-assumptions/1"', 'format = "v0"'), r"`format` must be"),
        (_edit("[factor]", "[factor\n"), r"not valid TOML"),
        (_edit("default_hazard = [", "default_hazard = [0.1, 0.1, ").replace(
            "n_age = 3", "n_age = 4"), r"`segment\[0\].default_hazard` must be a list of 1 to 4 "
         r"monthly probabilities \(n_age\); got a list of 5 values"),
        (_edit("rho = 0.06", "rho = nan"), r"`factor.rho` must be a number in \[0, 1\); got nan"),
        (_edit("t_dof = 5.0", "t_dof = inf"), r"`factor.t_dof` must be a number > 2; got inf"),
        (_edit("lag = [0.1, 0.2, 0.3, 0.4]", "lag = []"), r"`recovery.lag` must be .*; got a list "
         r"of 0 values"),
        (_edit("score_bands = [[350, 600]", "score_bands = [[600, 350]"),
         r"`grid.score_bands\[0\]` must be a \[lo, hi\] pair of scores with lo < hi"),
        (_edit("terms = [3, ", "terms = [3, 3, "), r"`grid.terms\[1\]` must be not a repeat"),
        (_edit("[[segment]]", "[[segments]]"), r"`segments` must be a known key \(did you mean `segment`\?"),
    ],
)
def test_bad_assumptions_name_the_field(text: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match) as info:
        assumptions_from_toml(text, "a.toml")
    assert isinstance(info.value, ValidationError)
    assert info.value.where == "a.toml"
    assert info.value.field_path or "not valid TOML" in str(info.value)


def test_missing_segment_is_named() -> None:
    text = assumptions_to_toml(_assumptions(n_age=2))
    head, _, rest = text.partition("[[segment]]")
    first_removed = "[[segment]]".join(rest.split("[[segment]]")[1:])
    with pytest.raises(ValidationError, match=r"missing 350-599 × 3m"):
        assumptions_from_toml(head + "[[segment]]" + first_removed)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="assumptions file .*nope.toml does not exist"):
        load_assumptions(tmp_path / "nope.toml")


# ---------------------------------------------------------------- stress overlays


def test_named_scenarios_and_overrides() -> None:
    a = _assumptions()
    assert apply_stress(a) is a
    adverse = apply_stress(a, scenario="adverse")
    s = NAMED_SCENARIOS["adverse"]
    np.testing.assert_allclose(adverse.default_hazard,
                               np.minimum(a.default_hazard * s["pd_multiplier"], 0.999))
    np.testing.assert_allclose(adverse.prepay_smm, a.prepay_smm * s["smm_multiplier"])
    assert adverse.recovery_rate == pytest.approx(a.recovery_rate * s["recovery_multiplier"])
    assert adverse.provenance["stress"]["scenario"] == "adverse"
    # an explicit multiplier overrides the scenario's; rho is replaced
    b = apply_stress(a, scenario="severe", pd_multiplier=2.0, rho=0.2)
    np.testing.assert_allclose(b.default_hazard, a.default_hazard * 2.0)
    np.testing.assert_allclose(b.prepay_smm, a.prepay_smm * NAMED_SCENARIOS["severe"][
        "smm_multiplier"])
    assert b.rho == 0.2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scenario": "apocalypse"}, r"`scenario` must be one of base, adverse, severe"),
        ({"pd_multiplier": -1.0}, r"`pd_multiplier` must be >= 0"),
        ({"smm_multiplier": -0.5}, r"`smm_multiplier` must be >= 0"),
        ({"recovery_multiplier": -2.0}, r"`recovery_multiplier` must be >= 0"),
        ({"rho": 1.0}, r"`rho` must be in \[0, 1\)"),
    ],
)
def test_bad_stress_names_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        apply_stress(_assumptions(), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- estimators (pure)

import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402

import pandas as pd  # noqa: E402
from scipy.special import ndtr, ndtri  # noqa: E402

from portfolio.book import calibration as cal  # noqa: E402
from portfolio.loans.types import ALLOWED_TERMS  # noqa: E402
from portfolio.store.book import insert_loans, insert_performance  # noqa: E402
from portfolio.store.core import open_store  # noqa: E402


def test_credibility_weighting_by_hand() -> None:
    # one band, one term (12), three ages, k = 100. With a single band the relative risk is
    # the fixed point of RR = (6 + 5) / (Σ E·h_term + 5), h_term = (D + k·h_book) / (E·RR + k),
    # h_book = D / (E·RR) per age (overall D / ΣE·RR at the empty age 2).
    # Hand iteration from RR = 1: h_book = (0.02, 0.012, 0.01); h_term = (4/200, 1.2/100,
    # 5/500) = (0.02, 0.012, 0.01); expected = 100·0.02 + 400·0.01 = 6 → RR = 11/11 = 1:
    # the fixed point. Cells: (D + k·parent) / (E + k) = (4/200, parent, 5/500).
    d = np.array([[[2.0, 0.0, 4.0]]])
    e = np.array([[[100.0, 0.0, 400.0]]])
    est, parent = cal.credibility_curves(d, e, (12,), credibility=100.0)
    np.testing.assert_allclose(parent[0, 0], [0.02, 0.012, 0.01])
    np.testing.assert_allclose(est[0, 0], [0.02, 0.012, 0.01])
    # credibility 0: the raw ratio wherever there is exposure
    raw, _ = cal.credibility_curves(d, e, (12,), credibility=0.0)
    np.testing.assert_allclose(raw[0, 0, [0, 2]], [0.02, 0.01])
    # two bands: the result satisfies the documented fixed-point equations
    d2 = np.concatenate([d, np.array([[[0.0, 0.0, 8.0]]])])
    e2 = np.concatenate([e, np.array([[[0.0, 0.0, 400.0]]])])
    est2, parent2 = cal.credibility_curves(d2, e2, (12,), credibility=100.0)
    rr_ratio = parent2[1, 0] / parent2[0, 0]  # RR_1 / RR_0: the same at every age
    np.testing.assert_allclose(rr_ratio, rr_ratio[0])
    assert rr_ratio[0] > 1  # band 1 (8 events on 400) is riskier than band 0 (6 on 500)
    np.testing.assert_allclose(est2[:, 0], (d2[:, 0] + 100 * parent2[:, 0]) / (e2[:, 0] + 100))


def test_thin_segment_falls_back_to_band_risk_times_term_curve() -> None:
    rng = np.random.default_rng(3)
    n_age = 12
    true = np.zeros((6, 6, n_age))
    band_rr = np.array([4.0, 2.5, 1.6, 1.0, 0.6, 0.3])
    term_curve = 0.004 * np.ones((6, n_age))
    true[:] = band_rr[:, None, None] * term_curve[None]
    e = np.full(true.shape, 5_000.0)
    e[0, 2] = 0.0  # an empty segment
    d = rng.binomial(e.astype(np.int64), true).astype(float)
    est, _ = cal.credibility_curves(d, e, ALLOWED_TERMS, credibility=200.0)
    # the empty segment gets band 0's relative risk × the term-9 curve (fitted jointly, so
    # the band mix of term 9 does not bias it); band 0 has ≈ 4,000 events elsewhere, a
    # relative SE of ≈ 1.6 %, and each term-9 age ≈ 150 events (≈ 8 %) → 25 % covers 3 SE
    inside = cal.in_term_mask(ALLOWED_TERMS, n_age)[2]
    np.testing.assert_allclose(est[0, 2][inside], true[0, 2][inside], rtol=0.25)
    assert np.mean(est[0, 2][inside]) == pytest.approx(0.016, rel=0.08)
    # exposure-weighted band levels within 4 binomial standard errors
    for b in range(6):
        w = e[b] * cal.in_term_mask(ALLOWED_TERMS, n_age)
        got = (w * est[b]).sum() / w.sum()
        want = (w * true[b]).sum() / w.sum()
        se = np.sqrt((w * true[b] * (1 - true[b])).sum()) / w.sum()
        assert abs(got - want) <= 4 * se + 1e-12


@given(seed=st.integers(0, 2**32 - 1), k=st.floats(0, 5_000))
def test_credibility_estimates_are_probabilities_between_data_and_parent(seed: int,
                                                                         k: float) -> None:
    rng = np.random.default_rng(seed)
    e = rng.integers(0, 400, (6, 6, 8)).astype(float) * rng.integers(0, 2, (6, 6, 8))
    d = rng.binomial(e.astype(np.int64), rng.uniform(0, 0.2, e.shape)).astype(float)
    est, parent = cal.credibility_curves(d, e, ALLOWED_TERMS, k)
    assert np.all((est >= 0) & (est <= cal.PROB_CAP))
    assert np.all((parent >= 0) & (parent <= cal.PROB_CAP))
    # zero exposure: exactly the parent; otherwise between the raw rate and the parent
    np.testing.assert_allclose(est[e == 0], parent[e == 0])
    seen = e > 0
    raw = d[seen] / e[seen]
    lo = np.minimum(raw, parent[seen]) - 1e-12
    hi = np.maximum(raw, parent[seen]) + 1e-12
    assert np.all((est[seen] >= lo) & (est[seen] <= hi))
    # infinite credibility: the parent everywhere
    est_inf, parent_inf = cal.credibility_curves(d, e, ALLOWED_TERMS, 1e15)
    np.testing.assert_allclose(est_inf, parent_inf, rtol=1e-6, atol=1e-15)


def test_recovery_chain_ladder_by_hand() -> None:
    # default months Jan, Feb, Mar 2025 with balances 100, 200, 100; as-of Mar 2025.
    # recoveries: Jan cohort 10 at lag 1, 20 at lag 2; Feb cohort 20 at lag 1.
    # lag 1: observed cohorts Jan, Feb → (10 + 20) / 300 = 0.1
    # lag 2: observed cohort Jan only → 20 / 100 = 0.2
    # rate = 0.3; shares (1/3, 2/3)
    rc = cal.RecoveryCounts(
        months=np.array(["2025-01-31", "2025-02-28", "2025-03-31"], dtype="datetime64[D]"),
        defaulted_balance=np.array([100.0, 200.0, 100.0]),
        n_defaults=np.array([1, 2, 1]),
        recovered=np.array([[0, 10.0, 20.0], [0, 20.0, 0], [0, 0, 0]]),
        as_of=dt.date(2025, 3, 31),
    )
    rate, lag = cal.recovery_curve(rc)
    assert rate == pytest.approx(0.3)
    assert lag == pytest.approx((1 / 3, 2 / 3))
    empty = dataclasses.replace(rc, recovered=np.zeros((3, 1)))
    assert cal.recovery_curve(empty) == (0.0, (1.0,))


def _simulate_factor_counts(rho: float, phi: float, n_months: int, seed: int
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = np.array([0.02, 0.01, 0.006, 0.004, 0.002, 0.001])
    n = np.full((h.size, n_months), 30_000)
    z = np.empty(n_months)
    z[0] = rng.standard_normal()
    for t in range(1, n_months):
        z[t] = phi * z[t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal()
    p = ndtr((ndtri(h)[:, None] - np.sqrt(rho) * z[None, :]) / np.sqrt(1 - rho))
    d = rng.binomial(n, p)
    return d, n, h


def test_rho_and_persistence_recovered_from_known_factor() -> None:
    # 120 months, 6 cells of 30,000 loans: rho = 0.08, phi = 0.6.
    # Tolerance: 3 × the estimator's own standard error for rho; ±0.2 for phi
    # (its sampling SE with ~120 observations is √((1 − φ²)/n) ≈ 0.07).
    d, n, h = _simulate_factor_counts(0.08, 0.6, 120, seed=11)
    f = cal.estimate_factor(d, n, h)
    assert f.rho_se is not None and f.rho_se > 0
    assert abs(f.rho - 0.08) <= 3 * f.rho_se
    assert f.rho_se < 0.03
    assert abs(f.persistence - 0.6) <= 0.2
    assert np.all(f.used)


def test_rho_zero_when_defaults_are_independent() -> None:
    d, n, h = _simulate_factor_counts(0.0, 0.0, 36, seed=5)
    f = cal.estimate_factor(d, n, h)
    # binomial noise only: the estimate sits at (or within 3 SE of) the boundary 0
    assert f.rho <= 3 * (f.rho_se or 0.005) and f.rho < 0.01


# ---------------------------------------------------------------- counting rules (SQL)


def _me(y: int, m: int) -> dt.date:
    return (pd.Timestamp(y, m, 1) + pd.offsets.MonthEnd(0)).date()


def test_transition_counting_rules_on_a_tiny_book(db_path: Path) -> None:
    loans = pd.DataFrame({
        "loan_id": ["A", "B", "C"], "borrower_id": ["x", "y", "z"],
        "origination_date": [dt.date(2025, 1, 10)] * 3, "principal": [1000.0] * 3,
        "apr": [0.18] * 3, "term_months": [6, 6, 3],
        "repayment_type": ["level_annuity", "level_annuity", "daily_interest"],
        "credit_score": [720, 720, 610], "region": ["R"] * 3,
    })
    rows = []
    # A: current at ages 0..3, prepaid at age 4
    for age, status in enumerate(["current"] * 4 + ["prepaid"]):
        rows.append(("A", _me(2025, 1 + age), age, 0.0 if status == "prepaid" else 900.0, 0,
                     status, 0.0))
    # B: current 0, 1; delinquent 2 (dpd 20); default 3 (dpd 95, balance 800);
    #    default 4 with recovery 100, default 5 with recovery 50
    for age, (status, dpd, rec, bal) in enumerate([
        ("current", 0, 0, 900), ("current", 0, 0, 850), ("delinquent", 20, 0, 800),
        ("default", 95, 0, 800), ("default", 125, 100, 700), ("default", 155, 50, 650),
    ]):
        rows.append(("B", _me(2025, 1 + age), age, float(bal), dpd, status, float(rec)))
    # C (daily interest, term 3): no age-0 row; current at 1, 2 (repays 300 a month), matured 3
    for age, (status, bal, paid) in {1: ("current", 700, 300), 2: ("current", 400, 300),
                                     3: ("matured", 0, 400)}.items():
        rows.append(("C", _me(2025, 1 + age), age, float(bal), 0, status, 0.0, float(paid)))
    perf = pd.DataFrame([r[:7] + ((r[7],) if len(r) > 7 else (0.0,)) for r in rows],
                        columns=["loan_id", "as_of", "months_on_book", "balance", "dpd",
                                 "status", "recovery", "paid_principal"])
    with open_store(db_path) as store:
        with store.transaction() as con:
            insert_loans(con, loans)
            insert_performance(con, perf)
        counts, rc = cal.load_counts(store, _me(2025, 6), n_age=6)
    at_risk = counts.at_risk.sum(axis=3)
    # band of score 720 is 3 (700-749), term 6 is index 1; score 610 band 1, term 3 index 0
    # A at risk at ages 1..4 (prepaid at 4); B at ages 1..3 (defaults at 3, then never again)
    np.testing.assert_array_equal(at_risk[3, 1], [2, 2, 2, 1, 0, 0])
    np.testing.assert_array_equal(counts.defaults.sum(axis=3)[3, 1], [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(counts.prepays.sum(axis=3)[3, 1], [0, 0, 0, 1, 0, 0])
    # C: at risk from origination at age 1 (its first row), then ages 2, 3
    np.testing.assert_array_equal(at_risk[1, 0], [1, 1, 1, 0, 0, 0])
    # MPR of C: (300 + 300 + 400) / (1000 + 700 + 400)
    bop = counts.di_balance_bop.sum(axis=(0, 1, 2, 3))
    repaid = counts.di_principal_repaid.sum(axis=(0, 1, 2, 3))
    assert repaid / bop == pytest.approx(1000 / 2100)
    assert at_risk.sum() == 4 + 3 + 3
    # recovery: B defaulted in April with balance 800; 100 at lag 1, 50 at lag 2
    assert rc.defaulted_balance.tolist() == [800.0]
    assert rc.recovered[0].tolist() == [0.0, 100.0, 50.0]
    rate, lag = cal.recovery_curve(rc)
    assert rate == pytest.approx(150 / 800)
    assert lag == pytest.approx((100 / 150, 50 / 150))


def test_went_bad_counting_rules_on_a_tiny_book(db_path: Path) -> None:
    # E (term 12): current at ages 0..2, delinquent 3 (dpd 15), 4 (45), 5 (75), default at 6
    # (dpd 105): went bad at g = 6 − ceil(105 / 30) + 1 = 3. F: current at ages 0..8.
    # As-of = age 8's month-end (Sep 2025); known until 3 month-ends earlier (Jun 2025 =
    # age 5), so transitions ending at ages 1..5 count.
    loans = pd.DataFrame({
        "loan_id": ["E", "F"], "borrower_id": ["e", "f"],
        "origination_date": [dt.date(2025, 1, 10)] * 2, "principal": [1000.0] * 2,
        "apr": [0.18] * 2, "term_months": [12, 12], "repayment_type": ["level_annuity"] * 2,
        "credit_score": [720, 720], "region": ["R"] * 2,
    })
    e_rows = [("current", 0)] * 3 + [("delinquent", 15), ("delinquent", 45),
                                     ("delinquent", 75), ("default", 105), ("default", 135),
                                     ("default", 165)]
    rows = [("E", _me(2025, 1 + age), age, 900.0, dpd, status) for age, (status, dpd)
            in enumerate(e_rows)]
    rows += [("F", _me(2025, 1 + age), age, 900.0, 0, "current") for age in range(9)]
    perf = pd.DataFrame(rows, columns=["loan_id", "as_of", "months_on_book", "balance", "dpd",
                                       "status"])
    with open_store(db_path) as store:
        with store.transaction() as con:
            insert_loans(con, loans)
            insert_performance(con, perf)
        rec, _ = cal.load_counts(store, _me(2025, 9), n_age=12)
        wb, _ = cal.load_counts(store, _me(2025, 9), n_age=12, default_timing="went_bad")
    # recorded: E at risk at ages 1..6 (defaults at 6), F at 1..8
    np.testing.assert_array_equal(rec.at_risk.sum(axis=3)[3, 3, :9], [2, 2, 2, 2, 2, 2, 1, 1, 0])
    np.testing.assert_array_equal(rec.defaults.sum(axis=3)[3, 3, :7], [0, 0, 0, 0, 0, 1, 0])
    # went bad: E at risk at ages 1..3 (goes bad at 3), F at 1..5 (known until age 5)
    np.testing.assert_array_equal(wb.at_risk.sum(axis=3)[3, 3, :7], [2, 2, 2, 1, 1, 0, 0])
    np.testing.assert_array_equal(wb.defaults.sum(axis=3)[3, 3, :7], [0, 0, 1, 0, 0, 0, 0])
    with open_store(db_path) as store, pytest.raises(ValidationError, match="default-timing"):
        cal.load_counts(store, _me(2025, 9), default_timing="later")  # type: ignore[arg-type]


def test_calibration_of_a_book_without_defaults(db_path: Path) -> None:
    # 20 current loans for 6 months: hazards 0, rho 0 without a standard error, recovery 0
    # over one month — each stated in the notes rather than invented.
    n = 20
    loans = pd.DataFrame({
        "loan_id": [f"L{i}" for i in range(n)], "borrower_id": [f"b{i}" for i in range(n)],
        "origination_date": [dt.date(2025, 1, 5)] * n, "principal": [1000.0] * n,
        "apr": [0.18] * n, "term_months": [12] * n, "repayment_type": ["level_annuity"] * n,
        "credit_score": [700] * n, "region": ["R"] * n,
    })
    perf = pd.DataFrame([(f"L{i}", _me(2025, 1 + age), age, 1000.0 - 50 * age, 0, "current")
                         for i in range(n) for age in range(6)],
                        columns=["loan_id", "as_of", "months_on_book", "balance", "dpd",
                                 "status"])
    with open_store(db_path) as store:
        with store.transaction() as con:
            insert_loans(con, loans)
            insert_performance(con, perf)
        c = cal.calibrate_from_store(store, n_age=12, default_timing="recorded")
    a = c.assumptions
    assert float(a.default_hazard.max()) == 0.0 and float(a.prepay_smm.max()) == 0.0
    assert a.rho == 0.0 and a.rho_se is None
    assert (a.recovery_rate, a.recovery_lag) == (0.0, (1.0,))
    assert any("rho standard error" in n for n in c.notes)
    assert any("no recoveries" in n for n in c.notes)
    assert int(c.counts.at_risk.sum()) == n * 5


def test_calibrate_refuses_an_empty_or_future_window(db_path: Path) -> None:
    with open_store(db_path) as store:
        with pytest.raises(ValidationError, match="no performance history"):
            cal.calibrate_from_store(store)


# ---------------------------------------------------------------- generated books (known truth)

from portfolio.synthetic.generate import GeneratorParams, generate_book  # noqa: E402

AS_OF = dt.date(2025, 6, 30)


def _generated(path: Path, n_loans: int, n_months: int, seed: int, params: GeneratorParams
               ) -> tuple[cal.Calibration, object]:
    with open_store(path) as store:
        summary = generate_book(store, n_loans, n_months, seed=seed, as_of=AS_OF,
                                params=params)
        return cal.calibrate_from_store(store, default_timing="recorded"), summary


def _in_term_weights(c: cal.Calibration) -> np.ndarray:
    return c.counts.at_risk.sum(axis=3) * cal.in_term_mask(ALLOWED_TERMS, c.counts.n_age)[None]


ZERO_RHO = dataclasses.replace(GeneratorParams(), rho=0.0)


@pytest.fixture(scope="module")
def zero_rho_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30,000 loans over 24 months with rho = 0 (independent defaults: binomial SEs apply)."""
    path = tmp_path_factory.mktemp("zero_rho") / "g.duckdb"
    with open_store(path) as store:
        generate_book(store, 30_000, 24, seed=21, as_of=AS_OF, params=ZERO_RHO)
    return path


def test_calibration_recovers_a_generated_book_without_correlation(zero_rho_book: Path) -> None:
    params = ZERO_RHO
    with open_store(zero_rho_book, read_only=True) as store:
        c = cal.calibrate_from_store(store, default_timing="recorded")
    a = c.assumptions
    true_h = params.true_default_hazard(a.n_age)
    true_s = params.true_prepay_smm(a.n_age)
    w = _in_term_weights(c)
    for b in range(6):
        # Exposure-weighted in-term hazard of each band. With rho = 0 the defaults are
        # independent: binomial SE = sqrt(Σ E·h(1−h)) / ΣE. Allowance: 4 SE + 5 % for the
        # credibility shrinkage toward the band × term model (k = 200 loan-months).
        want = (w[b] * true_h[b]).sum() / w[b].sum()
        got = (w[b] * a.default_hazard[b]).sum() / w[b].sum()
        se = np.sqrt((w[b] * true_h[b] * (1 - true_h[b])).sum()) / w[b].sum()
        assert abs(got - want) <= 4 * se + 0.05 * want, (b, got, want, se)
        # SMM: the estimator also counts loans in the delinquency pipeline (which cannot
        # prepay) and is about 1 % low (portfolio/synthetic/params.py docstring): allowance 4 SE + 3 %.
        want_s = (w[b] * true_s[b]).sum() / w[b].sum()
        got_s = (w[b] * a.prepay_smm[b]).sum() / w[b].sum()
        se_s = np.sqrt((w[b] * true_s[b] * (1 - true_s[b])).sum()) / w[b].sum()
        assert abs(got_s - want_s) <= 4 * se_s + 0.03 * want_s, (b, got_s, want_s, se_s)
    # the overall level: all bands together (SE ≈ 1.5 % of the level)
    want = (w * true_h).sum() / w.sum()
    got = (w * a.default_hazard).sum() / w.sum()
    assert got == pytest.approx(want, rel=0.08)
    # recoveries are a fixed fraction of the balance at default spread over a fixed lag in
    # the generator: recovered exactly up to cent rounding
    assert a.recovery_rate == pytest.approx(params.recovery_rate, abs=0.005)
    assert len(a.recovery_lag) == len(params.recovery_lag)
    np.testing.assert_allclose(a.recovery_lag, params.recovery_lag, atol=0.01)
    # no correlation in the data: rho at (or near) its boundary 0
    assert a.rho < 0.03
    # lifetime PD of a 12-month loan by band, where the band has >= 30 defaults: within
    # 4 Poisson SE (relative 1/sqrt(defaults)) + 5 %, and falling as the score band rises
    got_pd = cal.lifetime_pd(a.default_hazard, 12)
    want_pd = cal.lifetime_pd(true_h, 12)
    n_def = c.counts.defaults.sum(axis=(1, 2, 3))
    solid = n_def >= 30
    assert solid.sum() >= 4
    rel = 4 / np.sqrt(n_def[solid]) + 0.05
    assert np.all(np.abs(got_pd[solid] / want_pd[solid] - 1) <= rel), (got_pd, want_pd)
    assert np.all(np.diff(got_pd[solid]) < 0)


def test_calibration_recovers_rho_and_persistence_of_a_generated_book(tmp_path: Path) -> None:
    params = GeneratorParams()  # rho 0.05, factor persistence 0.6
    c, summary = _generated(tmp_path / "g.duckdb", 40_000, 36, seed=4, params=params)
    f = c.factor
    assert f.rho_se is not None
    # rho from ~33 monthly observations: its relative SE is ~40 %, so compare on the log
    # scale (delta method: se(log rho) = se / rho): within 3 standard errors
    assert abs(np.log(f.rho) - np.log(params.rho)) <= 3 * f.rho_se / f.rho
    # persistence: AR(1) coefficient from n consecutive pairs, sampling SE sqrt((1−φ²)/n)
    # and small-sample bias ≈ (1 + 3φ)/n: within 3 SE + that bias
    n = int((f.used[1:] & f.used[:-1]).sum())
    phi = params.factor_persistence
    assert abs(f.persistence - phi) <= 3 * np.sqrt((1 - phi**2) / n) + (1 + 3 * phi) / n
    # Given the realised factor path, the defaults per band match the conditional truth:
    # a default recorded at month-end m went bad at m − 3 under Z_{m−3}; conditional hazard
    # ≈ Φ((Φ⁻¹(h) − √ρ·Z)/√(1−ρ)) (first order in rho, portfolio/synthetic/params.py docstring).
    # Allowance: 4 Poisson SE + 10 % for that approximation.
    z = np.asarray(summary.factor)
    z_months = np.asarray(summary.factor_months, dtype="datetime64[D]")
    h = np.clip(params.true_default_hazard(c.counts.n_age), 1e-12, 0.999)
    inside = cal.in_term_mask(ALLOWED_TERMS, c.counts.n_age)[None, :, :, None]
    expected = np.zeros(6)
    for mi, month in enumerate(c.counts.months):
        j = int(np.searchsorted(z_months, month)) - 3
        zz = z[j] if j >= 0 else 0.0
        cond = ndtr((ndtri(h) - np.sqrt(params.rho) * zz) / np.sqrt(1 - params.rho))
        expected += (c.counts.at_risk[..., mi] * cond * inside[..., 0]).sum(axis=(1, 2))
    observed = (c.counts.defaults * inside).sum(axis=(1, 2, 3))
    for b in range(6):
        assert abs(observed[b] - expected[b]) <= 4 * np.sqrt(expected[b]) + 0.1 * expected[b], (
            b, observed[b], expected[b])


# ---------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def small_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("book") / "small.duckdb"
    with open_store(path) as store:
        generate_book(store, 4_000, 12, seed=3, as_of=AS_OF)
    return path


def test_cli_calibrate_writes_a_loadable_file(cli, small_book: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.toml"
    r = cli("calibrate", "--db", small_book, "--out", out, "--scenario", "adverse",
            "--rho", "0.1")
    assert r.code == 0, r.err
    assert "calibrated from" in r.out and "rho" in r.out
    a = load_assumptions(out)
    assert a.rho == 0.1
    assert a.provenance["stress"]["scenario"] == "adverse"
    assert a.provenance["as_of"] == AS_OF.isoformat()
    assert a.provenance["n_loan_months_at_risk"] > 0
    assert "code_version" in a.provenance
    text = out.read_text(encoding="utf-8")
    assert "exposure = [" in text and "defaults = [" in text


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--scenario", "doom"], "`--scenario` must be one of base, adverse, severe"),
        (["--pd-mult", "-1"], "`--pd-mult` must be >= 0"),
        (["--smm-mult", "-0.5"], "`--smm-mult` must be >= 0"),
        (["--recovery-mult", "-2"], "`--recovery-mult` must be >= 0"),
        (["--rho", "1.5"], r"`--rho` must be in [0, 1)"),
        (["--as-of", "2025-06-15"], "`as-of` must be a month-end date"),
        (["--as-of", "2030-01-31"], "`as-of` must be a month-end on or before"),
        (["--as-of", "yesterday"], "`as-of` must be a date"),
        (["--pool", "9"], "`pool` must be an existing pool id"),
        (["--credibility", "-5"], "`credibility` must be >= 0"),
        (["--default-timing", "later"], "`--default-timing` must be recorded or went-bad"),
        (["--n-age", "0"], "`n-age` must be an integer in [1, 120]"),
    ],
)
def test_cli_calibrate_bad_flags_exit_2_and_write_nothing(cli, small_book: Path, tmp_path: Path,
                                                          flags: list[str], match: str) -> None:
    out = tmp_path / "a.toml"
    r = cli("calibrate", "--db", small_book, "--out", out, *flags)
    assert r.code == 2, r.out
    assert match in r.err and "Traceback" not in r.err
    assert not out.exists()


def test_went_bad_timing_recovers_the_go_bad_hazard(zero_rho_book: Path) -> None:
    # Went-bad timing dates each default at the start of its final delinquency: the
    # generator's model primitive ``go_bad_hazard`` (monthly, performing loans, within the
    # term). rho = 0, so binomial SEs apply; allowance 4 SE + 5 % for the credibility
    # shrinkage, as above.
    params = ZERO_RHO
    with open_store(zero_rho_book, read_only=True) as store:
        c = cal.calibrate_from_store(store, default_timing="went_bad")
    a = c.assumptions
    assert a.provenance["default_timing"] == "went_bad"
    true_h = params.go_bad_hazard(a.n_age)
    w = _in_term_weights(c)
    for b in range(6):
        want = (w[b] * true_h[b]).sum() / w[b].sum()
        got = (w[b] * a.default_hazard[b]).sum() / w[b].sum()
        se = np.sqrt((w[b] * true_h[b] * (1 - true_h[b])).sum()) / w[b].sum()
        assert abs(got - want) <= 4 * se + 0.05 * want, (b, got, want, se)
    # every default now falls inside the term: nothing at ages beyond it
    beyond = ~cal.in_term_mask(ALLOWED_TERMS, a.n_age)
    assert c.counts.defaults.sum(axis=3)[:, beyond].sum() == 0
    # 3-month loans carry default risk inside their term (with recorded timing they cannot:
    # a 3-month loan's first > 90 dpd row is at age 4 or later)
    assert a.default_hazard[:, 0, :3].sum() > 0


def test_defaults_factor_interval_on_a_book_without_correlation(zero_rho_book: Path) -> None:
    """rho = 0 in the generator: the profile-likelihood interval of the defaults' rho
    (portfolio/book/factor_fit.py) reaches 0, and the point is small."""
    from portfolio.book import factor_fit as ff
    from portfolio.book import transitions as tr
    with open_store(zero_rho_book, read_only=True) as store:
        counts, _ = cal.load_counts(store, AS_OF, default_timing="went_bad")
    fit = ff.fit_factor(tr.default_factor_counts(counts))
    assert fit.rho_interval[0] == 0.0 or fit.rho_interval[0] < 1e-3
    assert fit.rho < 0.01 and fit.rho_interval[0] <= fit.rho <= fit.rho_interval[1]
