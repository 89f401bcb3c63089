"""A synthetic Jiebei-like loan book: originations and month-end performance history.

``generate_book(store, n_loans, n_months, seed, as_of, params)`` writes ``loans`` and
``loan_performance`` into an empty book in one transaction (plus one ``ingest_batches`` row,
kind ``generate``, source ``generate(seed=…, loans=…, months=…)``, sha256 of the parameters);
``simulate_book(...)`` returns the same tables in memory; ``riskpool generate`` is the CLI.
The same arguments give the same database content, bit for bit: every random draw comes from
``numpy.random.SeedSequence(seed)`` children (originations, the macro factor, and one child per
fixed-size chunk of loans for the performance history), so the result never depends on memory
or timing.

Originations
------------
``n_months`` monthly vintages end in the month of ``as_of`` (a month-end); vintage volume grows
by ``volume_growth`` a month. Borrowers (pseudonymous ``'B' + 16 hex``, about
``loans_per_borrower`` loans each) carry a region (province, weighted) and a base credit score
(a normal around ~705 plus a sub-prime component, on 350–950); each loan's score is the
borrower's plus a little noise. Credit limit grows exponentially with the score. Term and
repayment type follow ``term_shares`` / ``repayment_mix`` (interest-only and daily-interest only
up to 12 months: rule R6 — both repay principal at maturity). Principal is lognormal (scaled by
term), rounded to 100 CNY, at most the limit and 200,000. APR is risk-based (DOMAIN §6):
funding cost + annual PD × LGD + operating cost + capital ratio × hurdle + margin (+ a partner
channel mark-up and noise), quoted as a daily rate to 0.001 %/day and clipped to
[``apr_floor``, ``apr_cap``].

Performance (one row per loan per month-end from the origination month, months_on_book = 0)
--------------------------------------------------------------------------------------------
Instalment ``a`` of a loan is due in its ``a``-th month on book (schedules from
``portfolio.loans.schedules.schedule_matrix``); the month-end row of age ``a`` shows it paid or
missed. In month ``a`` (1 ≤ a ≤ term) a *performing* loan (not gone bad, not closed):

1. **goes bad** with probability ``Φ((Φ⁻¹(h) − √ρ·Z_t) / √(1−ρ))``, ``h = go_bad_hazard[band,
   term, a]`` and ``Z_t`` the macro factor of the calendar month (AR(1), persistence
   ``factor_persistence``, unit variance, shared by all loans). It pays any arrears but misses
   instalment ``a`` and every later one: M1 (dpd 1–30) at age a, M2 at a+1, M3 at a+2 and
   **default** (dpd > 90, status ``default``) at a+3, with ``dpd = 30·(k−1) + r`` in its k-th
   month of delinquency (r ∈ [1, 30] = days from the missed due date to that month-end). The
   balance stays frozen; recoveries (``recovery_rate`` × the balance at default, spread over
   ``recovery_lag`` = shares 1, 2, … months after default) reduce it; at ``writeoff_dpd`` it is
   written off (``charge_off`` = the balance left, balance 0). Rows continue (status
   ``default``) until the later of write-off and the last recovery.
2. otherwise **prepays in full** with probability ``prepay_smm[band, term, a]`` (status
   ``prepaid``, ``prepaid_principal`` = the balance left after the month's instalment);
3. otherwise may start a **transient delinquency** (probability ``cure_episode_prob[band]``):
   it misses L = 1, 2 or 3 instalments (``cure_episode_months``) and then pays all arrears,
   back to current, by its maturity — so roll and cure rates are non-trivial. An episode
   never changes the go-bad or prepayment draws of the loan;
4. a daily-interest loan may repay part of its balance (probability ``partial_repay_prob``,
   a uniform fraction) — counted in ``prepaid_principal``, status stays ``current``;
5. otherwise pays its instalment; the last one leaves status ``matured`` (balance 0).

Daily-interest interest is balance × apr × days/365 over the actual days of the period (on the
balance after partial repayments); the other types pay the schedule.

The truth, for calibration (on the ``portfolio.montecarlo.assumptions.Assumptions`` grid: bands
``types.SCORE_BANDS`` × terms ``types.ALLOWED_TERMS`` × age 1..n_age)
------------------------------------------------------------------------------------------
* ``GeneratorParams.go_bad_hazard(n_age)`` — the model primitive above (unconditional, i.e.
  averaged over Z: ``E[Φ((Φ⁻¹(h) − √ρZ)/√(1−ρ))] = h``). It depends on band, term and age only
  (not on repayment type, region or channel).
* ``GeneratorParams.true_default_hazard(n_age)`` — the probability that a loan at risk at the
  start of age a (its row at age a−1 has status ``current`` or ``delinquent``: open and not yet
  defaulted) is first recorded ``default`` (> 90 DPD) in its row at age a. Defaults at age a are
  the loans that went bad at a−3, but the at-risk set also holds the loans in the delinquency
  pipeline (which no longer prepay), so it is computed by the exact expected-count recursion
  ``P[a+1] = P[a]·(1−h[a])·(1−s[a])`` (P = performing, 0 after the term), ``B[a] = P[a]·h[a]``,
  ``hazard[a] = B[a−3] / (P[a] + B[a−1] + B[a−2] + B[a−3])``. This is exact in expectation
  with ρ = 0 and correct to first order in ρ otherwise (the ratio of expectations a pooled
  estimator — defaults / loans at risk — converges to). After a loan's term only pipeline
  loans are at risk (hazards 1/3, 1/2, 1 at term+1..term+3); ``true_assumptions`` caps
  probabilities at 0.999 because ``Assumptions`` requires < 1 (those ages carry no balance in a
  projection).
* ``GeneratorParams.true_prepay_smm(n_age)`` — the full-prepayment probability of a performing
  loan that did not go bad that month (0 from the loan's last instalment on). An estimator
  over ``current``/``delinquent`` loans also counts pipeline loans (which cannot prepay) and is
  lower by a factor of about ``P[a]·(1−h)/R[a]`` (≈ 0.99). Partial repayments of daily-interest
  loans are not in it.
* ``rho``, ``factor_persistence``: the go-bad draws of calendar month t use Z_t; a default
  recorded at month-end t therefore reflects Z_{t−3}. ``GenerateSummary.factor`` is the
  realised path.
* ``recovery_rate`` and ``recovery_lag``: of the balance on the first ``default`` row.
* ``true_assumptions(params, n_age)`` packs these into an ``Assumptions``.

Calibration anchors (DOMAIN §3) with the default parameters: lifetime default of 12-month
loans ≈ 2.5 % of original balance, 90+ DPD ≈ 1 % of balance in a seasoned book, default rate
falling as the score band rises, mean principal ≈ 8,000 CNY, APRs in [0.073, 0.24].
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import ndtr, ndtri

from portfolio.montecarlo.assumptions import Assumptions
from portfolio.errors import RiskpoolError, ValidationError, must_be
from portfolio.loans.schedules import schedule_matrix
from portfolio.store import book as store_book
from portfolio.store import ingest as store_ingest
from portfolio.store.core import Store
from portfolio.loans.types import (
    ALLOWED_TERMS,
    APR_CAP_DEFAULT,
    BULLET_MAX_TERM,
    DEFAULT_DPD,
    PRINCIPAL_MAX,
    SCORE_BANDS,
    SCORE_MAX,
    SCORE_MIN,
    WRITE_OFF_DPD,
    LoanStatus,
    RepaymentType,
)

__all__ = [
    "CHUNK_LOANS",
    "GenerateSummary",
    "GeneratorParams",
    "SyntheticBook",
    "check_request",
    "generate_book",
    "last_month_end_before",
    "simulate_book",
    "true_assumptions",
]

CHUNK_LOANS = 250_000  # loans simulated per chunk; fixed so results never depend on memory
MAX_LOANS = 10_000_000  # the loans table is built in one piece (≈ 1.7 GB peak at 1M loans)
MAX_MONTHS = 240

# (province, weight ~ share of online consumer-credit users)
_REGIONS: tuple[tuple[str, float], ...] = (
    ("广东", 12.0), ("江苏", 7.5), ("浙江", 7.0), ("山东", 6.5), ("河南", 6.5), ("四川", 5.5),
    ("河北", 5.0), ("湖北", 4.5), ("湖南", 4.5), ("安徽", 4.5), ("福建", 4.0), ("上海", 3.5),
    ("北京", 3.0), ("广西", 3.5), ("江西", 3.0), ("辽宁", 3.0), ("陕西", 3.0), ("云南", 3.0),
    ("重庆", 2.5), ("山西", 2.5), ("贵州", 2.5), ("黑龙江", 2.0), ("吉林", 1.5), ("天津", 1.0),
    ("内蒙古", 1.5), ("新疆", 1.5), ("甘肃", 1.5), ("海南", 0.7), ("宁夏", 0.4), ("青海", 0.3),
    ("西藏", 0.2),
)

_STATUS_NAMES: tuple[str, ...] = tuple(s.value for s in LoanStatus)
_S_CURRENT = _STATUS_NAMES.index("current")
_S_DELINQUENT = _STATUS_NAMES.index("delinquent")
_S_DEFAULT = _STATUS_NAMES.index("default")
_S_PREPAID = _STATUS_NAMES.index("prepaid")
_S_MATURED = _STATUS_NAMES.index("matured")
_DI = RepaymentType.DAILY_INTEREST.code
_IO = RepaymentType.INTEREST_ONLY.code
_TYPE_NAMES: tuple[str, ...] = tuple(RepaymentType.from_code(i).value for i in range(4))


@dataclass(frozen=True, slots=True)
class GeneratorParams:
    """Every knob of the synthetic book, with realistic defaults (module docstring)."""

    # --- originations
    volume_growth: float = 0.02  # monthly growth of origination volume
    loans_per_borrower: float = 1.25
    score_mean: float = 705.0
    score_sd: float = 50.0
    subprime_share: float = 0.07
    subprime_mean: float = 575.0
    subprime_sd: float = 45.0
    score_noise_sd: float = 10.0  # loan score around the borrower's
    limit_at_650: float = 12_000.0  # CNY; limit = this × exp(slope × (score − 650)/100) × noise
    limit_slope: float = 0.8
    limit_noise_sd: float = 0.3
    principal_median: float = 7_100.0  # CNY, before the term multiplier and the limit cap
    principal_sigma: float = 0.75
    principal_term_multiplier: tuple[float, ...] = (0.6, 0.8, 0.95, 1.05, 1.35, 1.6)
    term_shares: tuple[float, ...] = (0.12, 0.22, 0.10, 0.38, 0.09, 0.09)
    # shares of level_annuity, equal_principal, interest_only, daily_interest per term
    repayment_mix: tuple[tuple[float, float, float, float], ...] = (
        (0.30, 0.08, 0.17, 0.45),
        (0.45, 0.10, 0.15, 0.30),
        (0.55, 0.12, 0.13, 0.20),
        (0.60, 0.14, 0.10, 0.16),
        (0.80, 0.20, 0.00, 0.00),
        (0.80, 0.20, 0.00, 0.00),
    )
    regions: tuple[tuple[str, float], ...] = _REGIONS
    channels: tuple[tuple[str, float], ...] = (("app", 0.60), ("mini_program", 0.28),
                                               ("partner", 0.12))
    # --- pricing (DOMAIN §6), annual decimals
    funding_cost: float = 0.030
    operating_cost: float = 0.025
    capital_ratio: float = 0.08
    hurdle_rate: float = 0.15
    margin: float = 0.030
    partner_markup: float = 0.010
    apr_noise_sd: float = 0.008
    apr_floor: float = 0.073  # 0.02 %/day × 365
    apr_cap: float = APR_CAP_DEFAULT
    # --- credit: lifetime go-bad probability of a 12-month loan by score band (no prepayment)
    pd_12m: tuple[float, ...] = (0.15, 0.072, 0.045, 0.027, 0.015, 0.007)
    term_pd_exponent: float = 0.7  # lifetime PD of term t = 1 − (1 − pd_12m)^((t/12)^this)
    hazard_peak_age: float = 4.0  # go-bad age profile a·exp(−a/peak)
    rho: float = 0.05
    factor_persistence: float = 0.6
    cure_episode_prob: tuple[float, ...] = (0.045, 0.03, 0.02, 0.013, 0.008, 0.005)
    cure_episode_months: tuple[float, ...] = (0.80, 0.15, 0.05)  # P(L = 1, 2, 3)
    default_dpd: int = DEFAULT_DPD
    writeoff_dpd: int = WRITE_OFF_DPD
    recovery_rate: float = 0.15
    recovery_lag: tuple[float, ...] = (0.05, 0.15, 0.15, 0.15, 0.12, 0.12, 0.1, 0.08, 0.08)
    # --- prepayment
    smm_base: float = 0.028
    smm_band_multiplier: tuple[float, ...] = (0.6, 0.8, 0.9, 1.0, 1.15, 1.3)
    smm_term_multiplier: tuple[float, ...] = (0.7, 0.85, 1.0, 1.0, 1.1, 1.2)
    smm_ramp_months: int = 3
    partial_repay_prob: float = 0.2  # daily-interest loans, per month
    partial_repay_fraction: tuple[float, float] = (0.1, 0.6)

    def __post_init__(self) -> None:
        nb, nt = len(SCORE_BANDS), len(ALLOWED_TERMS)

        def prob(name: str, value: float, hi: float = 1.0) -> None:
            if not (0.0 <= value <= hi):
                raise ValidationError(must_be(name, f"in [0, {hi:g}]", value))

        def shares(name: str, values: tuple[float, ...], n: int) -> None:
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (n,) or np.any(arr < 0) or abs(arr.sum() - 1.0) > 1e-9:
                raise ValidationError(must_be(name, f"{n} non-negative shares summing to 1",
                                              values))

        def per_band(name: str, values: tuple[float, ...], hi: float) -> None:
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (nb,) or np.any(arr < 0) or np.any(arr > hi):
                raise ValidationError(must_be(name, f"{nb} values (one per score band) in "
                                              f"[0, {hi:g}]", values))

        if not -0.5 < self.volume_growth < 1.0:
            raise ValidationError(must_be("volume_growth", "in (-0.5, 1)", self.volume_growth))
        if not self.loans_per_borrower >= 1.0:
            raise ValidationError(must_be("loans_per_borrower", ">= 1", self.loans_per_borrower))
        for name in ("score_sd", "subprime_sd", "limit_at_650", "principal_median",
                     "principal_sigma", "hazard_peak_age"):
            if not getattr(self, name) > 0:
                raise ValidationError(must_be(name, "> 0", getattr(self, name)))
        for name in ("score_noise_sd", "limit_noise_sd", "apr_noise_sd", "limit_slope",
                     "term_pd_exponent"):
            if not getattr(self, name) >= 0:
                raise ValidationError(must_be(name, ">= 0", getattr(self, name)))
        prob("subprime_share", self.subprime_share)
        shares("term_shares", self.term_shares, nt)
        if len(self.principal_term_multiplier) != nt or min(self.principal_term_multiplier) <= 0:
            raise ValidationError(must_be("principal_term_multiplier",
                                          f"{nt} positive values (one per term)",
                                          self.principal_term_multiplier))
        if len(self.repayment_mix) != nt:
            raise ValidationError(must_be("repayment_mix", f"{nt} rows (one per term)",
                                          len(self.repayment_mix)))
        for term, row in zip(ALLOWED_TERMS, self.repayment_mix, strict=True):
            shares(f"repayment_mix[{term}]", tuple(row), 4)
            if term > BULLET_MAX_TERM and (row[_IO] > 0 or row[_DI] > 0):
                raise ValidationError(must_be(
                    f"repayment_mix[{term}]",
                    f"zero interest_only and daily_interest shares above {BULLET_MAX_TERM} "
                    "months (R6: principal-at-maturity loans at most one year)", row))
        for name in ("regions", "channels"):
            pairs = getattr(self, name)
            if not pairs or any(w < 0 for _, w in pairs) or sum(w for _, w in pairs) <= 0:
                raise ValidationError(must_be(name, "(name, weight) pairs with weights >= 0 "
                                              "and a positive total", pairs))
        for name in ("funding_cost", "operating_cost", "capital_ratio", "hurdle_rate", "margin",
                     "partner_markup"):
            prob(name, getattr(self, name))
        if not 0 <= self.apr_floor <= self.apr_cap <= APR_CAP_DEFAULT:
            raise ValidationError(must_be("apr_floor, apr_cap",
                                          f"0 <= apr_floor <= apr_cap <= {APR_CAP_DEFAULT}",
                                          (self.apr_floor, self.apr_cap)))
        per_band("pd_12m", self.pd_12m, 0.99)
        per_band("cure_episode_prob", self.cure_episode_prob, 0.5)
        per_band("smm_band_multiplier", self.smm_band_multiplier, 10.0)
        if len(self.smm_term_multiplier) != nt or min(self.smm_term_multiplier) < 0:
            raise ValidationError(must_be("smm_term_multiplier",
                                          f"{nt} values >= 0 (one per term)",
                                          self.smm_term_multiplier))
        if not 0 <= self.rho < 1:
            raise ValidationError(must_be("rho", "in [0, 1)", self.rho))
        if not -1 < self.factor_persistence < 1:
            raise ValidationError(must_be("factor_persistence", "in (-1, 1)",
                                          self.factor_persistence))
        shares("cure_episode_months", self.cure_episode_months, 3)
        if self.default_dpd != DEFAULT_DPD:
            raise ValidationError(must_be("default_dpd", f"{DEFAULT_DPD} (more than 90 DPD)",
                                          self.default_dpd))
        if self.writeoff_dpd % 30 or not 120 <= self.writeoff_dpd <= 360:
            raise ValidationError(must_be("writeoff_dpd", "a multiple of 30 in [120, 360]",
                                          self.writeoff_dpd))
        prob("recovery_rate", self.recovery_rate)
        lag = np.asarray(self.recovery_lag, dtype=np.float64)
        if lag.size == 0 or np.any(lag < 0) or abs(lag.sum() - 1.0) > 1e-9:
            raise ValidationError(must_be("recovery_lag", "non-negative shares that sum to 1",
                                          self.recovery_lag))
        prob("smm_base", self.smm_base, 0.5)
        if float(np.max(self.smm_band_multiplier) * np.max(self.smm_term_multiplier)
                 * self.smm_base) >= 1:
            raise ValidationError(must_be("smm_base", "small enough that every SMM is < 1",
                                          self.smm_base))
        if self.smm_ramp_months < 1:
            raise ValidationError(must_be("smm_ramp_months", ">= 1", self.smm_ramp_months))
        prob("partial_repay_prob", self.partial_repay_prob)
        lo, hi = self.partial_repay_fraction
        if not 0 < lo <= hi < 1:
            raise ValidationError(must_be("partial_repay_fraction", "(lo, hi) with 0 < lo <= hi "
                                          "< 1", self.partial_repay_fraction))

    # ---------------------------------------------------------------- the truth

    @property
    def pipeline_months(self) -> int:
        """Months from going bad to the first ``default`` row (3 for > 90 DPD)."""
        return self.default_dpd // 30

    @property
    def writeoff_month(self) -> int:
        """k (1 = the month the loan goes bad) of the write-off row: first dpd > writeoff_dpd."""
        return self.writeoff_dpd // 30 + 1

    def lifetime_go_bad(self) -> np.ndarray:
        """(bands, terms): probability of going bad over the whole term, without prepayment."""
        pd12 = np.asarray(self.pd_12m, dtype=np.float64)[:, None]
        expo = (np.asarray(ALLOWED_TERMS, dtype=np.float64) / 12.0) ** self.term_pd_exponent
        return 1.0 - (1.0 - pd12) ** expo[None, :]

    def go_bad_hazard(self, n_age: int) -> np.ndarray:
        """(bands, terms, n_age): monthly go-bad probability in the a-th month (a = 1..n_age).

        Zero after the loan's term. Over the term the hazards multiply to the lifetime PD:
        ∏(1 − h) = 1 − lifetime_go_bad.
        """
        _check_n_age(n_age)
        ages = np.arange(1, n_age + 1, dtype=np.float64)
        out = np.zeros((len(SCORE_BANDS), len(ALLOWED_TERMS), n_age))
        life = self.lifetime_go_bad()
        for j, term in enumerate(ALLOWED_TERMS):
            full = np.arange(1, term + 1, dtype=np.float64)
            w = np.where(ages <= term, ages * np.exp(-ages / self.hazard_peak_age), 0.0)
            w /= (full * np.exp(-full / self.hazard_peak_age)).sum()  # weights sum to 1
            out[:, j, :] = -np.expm1(np.log1p(-life[:, j])[:, None] * w[None, :])
        return out

    def true_prepay_smm(self, n_age: int) -> np.ndarray:
        """(bands, terms, n_age): full-prepayment probability of a performing loan at age a."""
        _check_n_age(n_age)
        ages = np.arange(1, n_age + 1)
        ramp = np.minimum(1.0, ages / self.smm_ramp_months)
        band = np.asarray(self.smm_band_multiplier, dtype=np.float64)
        term_mult = np.asarray(self.smm_term_multiplier, dtype=np.float64)
        smm = self.smm_base * band[:, None, None] * term_mult[None, :, None] * ramp[None, None, :]
        before_last = ages[None, :] < np.asarray(ALLOWED_TERMS)[:, None]  # (terms, age)
        return np.where(before_last[None, :, :], smm, 0.0)

    def true_default_hazard(self, n_age: int) -> np.ndarray:
        """(bands, terms, n_age): P(first recorded ``default`` at age a | at risk at start of a).

        At risk = open and not yet defaulted (row a−1 is ``current`` or ``delinquent``); see
        the module docstring for the recursion. Zero where nobody is at risk.
        """
        _check_n_age(n_age)
        lag = self.pipeline_months
        horizon = n_age + 1
        h = self.go_bad_hazard(horizon)
        s = self.true_prepay_smm(horizon)
        shape = h.shape[:2]
        perf = np.zeros(shape + (horizon + 1,))  # P[a], a = 1..horizon (index a)
        bad = np.zeros(shape + (horizon + 1,))  # B[a]
        perf[:, :, 1] = 1.0
        terms = np.asarray(ALLOWED_TERMS)
        for a in range(1, horizon):
            bad[:, :, a] = perf[:, :, a] * h[:, :, a - 1]
            nxt = (perf[:, :, a] - bad[:, :, a]) * (1.0 - s[:, :, a - 1])
            perf[:, :, a + 1] = np.where(terms[None, :] > a, nxt, 0.0)
        out = np.zeros(shape + (n_age,))
        for a in range(1, n_age + 1):
            pipe = [bad[:, :, a - i] if a - i >= 1 else np.zeros(shape) for i in range(1, lag + 1)]
            at_risk = perf[:, :, a] + sum(pipe)
            new_default = pipe[-1]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, :, a - 1] = np.where(at_risk > 0, new_default / at_risk, 0.0)
        return out


def true_assumptions(params: GeneratorParams, n_age: int) -> Assumptions:
    """The generator's truth as projection ``Assumptions`` (probabilities capped at 0.999)."""
    cap = 0.999
    return Assumptions(
        default_hazard=np.minimum(params.true_default_hazard(n_age), cap),
        prepay_smm=np.minimum(params.true_prepay_smm(n_age), cap),
        recovery_rate=params.recovery_rate,
        recovery_lag=tuple(params.recovery_lag),
        rho=params.rho,
        factor_persistence=params.factor_persistence,
        provenance={"source": "portfolio.synthetic.generate truth", "params_sha256": _params_hash(params)},
    )


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    """What ``generate_book`` wrote (for the CLI's summary and for calibration tests)."""

    batch_id: int
    seed: int
    n_loans: int
    n_months: int
    n_performance_rows: int
    as_of: dt.date
    first_origination_month: dt.date  # first day of the oldest vintage's month
    total_principal: float
    balance_at_as_of: float  # outstanding balance on the as_of rows
    seconds: float
    params_sha256: str
    factor: tuple[float, ...] = field(default=())  # Z_t per history month (oldest first)
    factor_months: tuple[dt.date, ...] = field(default=())  # the month-ends of ``factor``


# ---------------------------------------------------------------------------- helpers


def _check_n_age(n_age: int) -> None:
    if not isinstance(n_age, (int, np.integer)) or n_age < 1:
        raise ValidationError(must_be("n_age", "an integer >= 1", n_age))


def _params_hash(params: GeneratorParams, **extra: object) -> str:
    payload = {"params": dataclasses.asdict(params), **extra}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def last_month_end_before(today: dt.date) -> dt.date:
    """The last month-end strictly before ``today`` (the default ``as_of``)."""
    return today.replace(day=1) - dt.timedelta(days=1)


def _is_month_end(d: dt.date) -> bool:
    return (d + dt.timedelta(days=1)).day == 1


def _month_ends(as_of: dt.date, n_months: int) -> np.ndarray:
    """datetime64[D] month-ends of the n_months history months, oldest first."""
    last = np.datetime64(as_of, "M")
    months = np.arange(last - (n_months - 1), last + 1)
    return (months + 1).astype("datetime64[D]") - 1


def _draw_factor(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """AR(1) with unit stationary variance: Z_0 ~ N(0,1), Z_t = φZ_{t−1} + √(1−φ²)ε_t."""
    eps = rng.standard_normal(n)
    z = np.empty(n)
    z[0] = eps[0]
    scale = np.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        z[t] = phi * z[t - 1] + scale * eps[t]
    return z


def _borrower_ids(index: np.ndarray, key: int) -> list[str]:
    """Pseudonymous borrower ids 'B' + 16 hex digits: a keyed splitmix64 of the index."""
    x = index.astype(np.uint64) ^ np.uint64(key)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return [f"B{v:016x}" for v in x.tolist()]


def _categorical(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _batch_column(n: int, batch_id: int | None) -> pa.Array:
    if batch_id is None:
        return pa.nulls(n, pa.int64())
    return pa.array(np.full(n, batch_id, dtype=np.int64))


def _round2(x: np.ndarray) -> np.ndarray:
    """Round non-negative amounts to the cent, half up (the schedules' convention)."""
    return np.floor(np.asarray(x, dtype=np.float64) * 100.0 + (0.5 + 1e-9)) / 100.0


# ---------------------------------------------------------------------------- originations


@dataclass(frozen=True, slots=True)
class _Book:
    """The originated loans as arrays, in loan_id order (origination date order)."""

    vintage: np.ndarray  # int32, 0 = oldest history month
    origination_date: np.ndarray  # datetime64[D]
    principal: np.ndarray  # float64
    apr: np.ndarray  # float64
    term: np.ndarray  # int16
    term_idx: np.ndarray  # int8
    rtype: np.ndarray  # int8
    score: np.ndarray  # int16
    band: np.ndarray  # int8
    limit: np.ndarray  # float64
    borrower: np.ndarray  # int64 borrower index
    region: np.ndarray  # int16 index into params.regions
    channel: np.ndarray  # int8
    product: np.ndarray  # int8


_PRODUCTS: tuple[str, ...] = ("cash_loan", "consumer_instalment", "merchant_finance")


def _originate(params: GeneratorParams, n_loans: int, month_ends: np.ndarray,
               rng: np.random.Generator) -> _Book:
    n_months = len(month_ends)
    # vintages: volume grows by volume_growth a month
    w = (1.0 + params.volume_growth) ** np.arange(n_months)
    counts = rng.multinomial(n_loans, w / w.sum())
    vintage = np.repeat(np.arange(n_months, dtype=np.int32), counts)
    month_start = (month_ends.astype("datetime64[M]")).astype("datetime64[D]")
    days_in_month = (month_ends - month_start).astype(np.int64) + 1
    day = np.floor(rng.random(n_loans) * days_in_month[vintage]).astype(np.int64)
    orig = month_start[vintage] + day
    order = np.argsort(orig, kind="stable")
    vintage, orig = vintage[order], orig[order]

    # borrowers: region and base score
    n_borrowers = max(1, int(round(n_loans / params.loans_per_borrower)))
    b_sub = rng.random(n_borrowers) < params.subprime_share
    b_score = np.where(b_sub,
                       rng.normal(params.subprime_mean, params.subprime_sd, n_borrowers),
                       rng.normal(params.score_mean, params.score_sd, n_borrowers))
    b_region = _categorical(rng, np.array([wt for _, wt in params.regions]), n_borrowers)
    borrower = rng.integers(0, n_borrowers, n_loans)
    score = np.clip(np.rint(b_score[borrower] + rng.normal(0.0, params.score_noise_sd, n_loans)),
                    SCORE_MIN, SCORE_MAX).astype(np.int16)
    edges = np.array([lo for lo, _ in SCORE_BANDS[1:]])
    band = np.searchsorted(edges, score, side="right").astype(np.int8)

    # limit from score
    limit = params.limit_at_650 * np.exp(params.limit_slope * (score - 650.0) / 100.0)
    limit *= np.exp(rng.normal(0.0, params.limit_noise_sd, n_loans))
    limit = np.clip(np.round(limit / 500.0) * 500.0, 1_000.0, PRINCIPAL_MAX)

    # term, repayment type
    term_idx = _categorical(rng, np.asarray(params.term_shares), n_loans).astype(np.int8)
    term = np.asarray(ALLOWED_TERMS, dtype=np.int16)[term_idx]
    mix_cdf = np.cumsum(np.asarray(params.repayment_mix, dtype=np.float64), axis=1)
    mix_cdf /= mix_cdf[:, -1:]
    u = rng.random(n_loans)
    rtype = np.minimum((u[:, None] >= mix_cdf[term_idx]).sum(axis=1), 3).astype(np.int8)

    # principal: lognormal × term multiplier, rounded to 100, capped by the limit
    mult = np.asarray(params.principal_term_multiplier)[term_idx]
    raw = params.principal_median * mult * np.exp(rng.normal(0.0, params.principal_sigma,
                                                             n_loans))
    principal = np.clip(np.round(raw / 100.0) * 100.0, 500.0, None)
    principal = np.minimum(principal, limit)

    # channel and product
    channel = _categorical(rng, np.array([wt for _, wt in params.channels]), n_loans)
    channel = channel.astype(np.int8)
    names = [c for c, _ in params.channels]
    partner = channel == names.index("partner") if "partner" in names else np.zeros(n_loans, bool)
    u = rng.random(n_loans)
    product = np.where(partner, np.where(u < 0.7, 2, 1), np.where(u < 0.75, 0, 1)).astype(np.int8)

    # risk-based APR: PD from a log-linear scorecard through the band mid-points
    mids = np.array([(lo + min(hi, SCORE_MAX)) / 2.0 for lo, hi in SCORE_BANDS])
    log_pd = np.interp(score.astype(np.float64), mids, np.log(np.asarray(params.pd_12m)))
    annual_pd = np.exp(log_pd)
    apr = (params.funding_cost + annual_pd * (1.0 - params.recovery_rate)
           + params.operating_cost + params.capital_ratio * params.hurdle_rate + params.margin
           + np.where(partner, params.partner_markup, 0.0)
           + rng.normal(0.0, params.apr_noise_sd, n_loans))
    daily = np.round(apr / 365.0, 5)  # quoted as a daily rate to 0.001 %/day
    lo_daily = np.ceil(params.apr_floor / 365.0 * 1e5 - 1e-9) / 1e5
    hi_daily = np.floor(params.apr_cap / 365.0 * 1e5 + 1e-9) / 1e5
    apr = np.round(np.clip(daily, lo_daily, hi_daily) * 365.0, 8)

    return _Book(
        vintage=vintage,
        origination_date=orig,
        principal=principal,
        apr=apr,
        term=term,
        term_idx=term_idx,
        rtype=rtype,
        score=score,
        band=band,
        limit=limit,
        borrower=borrower,
        region=b_region[borrower].astype(np.int16),
        channel=channel,
        product=product,
    )


def _loans_table(book: _Book, params: GeneratorParams, loan_ids: pa.Array, borrower_key: int,
                 batch_id: int | None) -> pa.Table:
    n = len(book.principal)
    uniq, inverse = np.unique(book.borrower, return_inverse=True)
    borrower_ids = pa.array(_borrower_ids(uniq, borrower_key))
    return pa.table({
        "loan_id": loan_ids,
        "borrower_id": pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)),
                                                      borrower_ids),
        "origination_date": pa.array(book.origination_date.astype("datetime64[D]")
                                     .astype(np.int32)).view(pa.date32()),
        "principal": book.principal,
        "apr": book.apr,
        "term_months": book.term,
        "repayment_type": pa.DictionaryArray.from_arrays(pa.array(book.rtype),
                                                         pa.array(_TYPE_NAMES)),
        "credit_score": book.score,
        "region": pa.DictionaryArray.from_arrays(pa.array(book.region),
                                                 pa.array([r for r, _ in params.regions])),
        "channel": pa.DictionaryArray.from_arrays(pa.array(book.channel),
                                                  pa.array([c for c, _ in params.channels])),
        "product": pa.DictionaryArray.from_arrays(pa.array(book.product), pa.array(_PRODUCTS)),
        "credit_limit": book.limit,
        "batch_id": _batch_column(n, batch_id),
    })


# ---------------------------------------------------------------------------- performance


def _simulate_chunk(
    params: GeneratorParams,
    book: _Book,
    sl: slice,
    month_ends: np.ndarray,
    hazard_by_month: np.ndarray,  # (n_months, bands, terms, n_age) conditional go-bad
    smm: np.ndarray,  # (bands, terms, n_age)
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Month-end rows of one chunk of loans; ``loan`` indexes within the chunk."""
    vint = book.vintage[sl].astype(np.int64)
    n = len(vint)
    n_months = len(month_ends)
    principal = book.principal[sl]
    apr = book.apr[sl]
    term = book.term[sl].astype(np.int64)
    rtype = book.rtype[sl]
    band = book.band[sl].astype(np.int64)
    term_idx = book.term_idx[sl].astype(np.int64)
    is_di = rtype == _DI
    n_cols = max(0, min(int(term.max()) if n else 0, n_months - 1))
    sched = schedule_matrix(principal, apr, term, rtype, book.origination_date[sl],
                            n_months=n_cols)
    # cumulative principal/interest/days after k instalments, k = 0..n_cols (column k)
    cum_p = np.zeros((n, n_cols + 1), order="F")
    cum_i = np.zeros((n, n_cols + 1), order="F")
    cum_d = np.zeros((n, n_cols + 1), order="F")
    if n_cols:
        np.cumsum(sched.principal, axis=1, out=cum_p[:, 1:])
        np.cumsum(sched.interest, axis=1, out=cum_i[:, 1:])
        np.cumsum(sched.days, axis=1, out=cum_d[:, 1:])
    flat_p = cum_p.ravel(order="F")
    flat_i = cum_i.ravel(order="F")
    flat_d = cum_d.ravel(order="F")
    due_flat = sched.due_dates.ravel(order="F")

    def at(flat: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return flat[cols * n + rows]

    # state
    closed = np.zeros(n, dtype=bool)
    bal = principal.copy()
    paid_through = np.zeros(n, dtype=np.int64)
    bad_age = np.zeros(n, dtype=np.int64)  # 0 = performing
    ep_end = np.zeros(n, dtype=np.int64)  # cure age of a transient delinquency, 0 = none
    r_bad = np.zeros(n, dtype=np.int64)
    rec_total = np.zeros(n)
    rec_done = np.zeros(n)
    pipe = params.pipeline_months
    k_wo = params.writeoff_month
    lag_cum = np.concatenate([[0.0], np.cumsum(params.recovery_lag)])
    n_lag = len(params.recovery_lag)
    k_last = max(k_wo, pipe + 1 + n_lag)  # last row of a defaulted loan
    ep_p = np.asarray(params.cure_episode_prob)
    ep_len_cdf = np.cumsum(params.cure_episode_months)
    lo_f, hi_f = params.partial_repay_fraction

    out: dict[str, list[np.ndarray]] = {k: [] for k in (
        "loan", "as_of", "mob", "balance", "paid_principal", "paid_interest", "prepaid",
        "dpd", "status", "charge_off", "recovery")}

    for t in range(n_months):
        idx = np.flatnonzero((vint <= t) & ~closed)
        if idx.size == 0:
            continue
        age = t - vint[idx]
        m = idx.size
        paid_p = np.zeros(m)
        paid_i = np.zeros(m)
        prepaid = np.zeros(m)
        charge = np.zeros(m)
        recov = np.zeros(m)
        dpd = np.zeros(m, dtype=np.int64)
        status = np.full(m, _S_CURRENT, dtype=np.int8)

        # --- loans already bad: k-th month of delinquency (k >= 2)
        sel_b = np.flatnonzero((bad_age[idx] > 0) & (age > 0))
        if sel_b.size:
            li = idx[sel_b]
            k = age[sel_b] - bad_age[li] + 1
            dpd[sel_b] = 30 * (k - 1) + r_bad[li]
            status[sel_b] = np.where(k <= pipe, _S_DELINQUENT, _S_DEFAULT)
            first_def = k == pipe + 1
            rec_total[li[first_def]] = _round2(params.recovery_rate * bal[li[first_def]])
            j = np.clip(k - (pipe + 1), 0, n_lag)  # recovery months elapsed after default
            target = _round2(rec_total[li] * lag_cum[j])
            r = _round2(np.maximum(target - rec_done[li], 0.0))
            recov[sel_b] = r
            rec_done[li] += r
            bal[li] = np.maximum(_round2(bal[li] - r), 0.0)
            wo = k == k_wo
            charge[sel_b[wo]] = bal[li[wo]]
            bal[li[wo]] = 0.0
            closed[li[k >= k_last]] = True

        # --- performing loans, age >= 1 (age <= term by construction)
        sel_p = np.flatnonzero((bad_age[idx] == 0) & (age > 0))
        if sel_p.size:
            li = idx[sel_p]
            a = age[sel_p]
            mp = li.size
            bnd, trm = band[li], term_idx[li]
            u = rng.random((6, mp))
            go_bad = u[0] < hazard_by_month[t, bnd, trm, a - 1]
            prepay = ~go_bad & (u[1] < smm[bnd, trm, a - 1])
            in_ep = ep_end[li] > a  # still missing (episode started earlier, cure later)
            cure_now = ep_end[li] == a
            ep_len = 1 + np.searchsorted(ep_len_cdf, u[3] * ep_len_cdf[-1], side="right")
            ep_len = np.minimum(ep_len, 3)
            start_ep = (~go_bad & ~prepay & ~in_ep & ~cure_now & (u[2] < ep_p[bnd])
                        & (a + ep_len <= term[li]))
            ep_end[li[start_ep]] = a[start_ep] + ep_len[start_ep]
            missing = (in_ep | start_ep) & ~go_bad & ~prepay
            old = paid_through[li]
            new = np.where(go_bad, a - 1, np.where(missing, old, a))
            ep_end[li[go_bad | prepay | cure_now]] = 0
            # scheduled amounts paid this month
            di = is_di[li]
            pp = at(flat_p, li, new) - at(flat_p, li, old)
            ip = at(flat_i, li, new) - at(flat_i, li, old)
            days = at(flat_d, li, new) - at(flat_d, li, old)
            b0 = bal[li]
            di_int = _round2(b0 * apr[li] * days / 365.0)
            di_prin = np.where(new >= term[li], b0, 0.0)
            pp = np.where(di, di_prin, _round2(pp))
            ip = np.where(di, di_int, _round2(ip))
            b1 = np.maximum(_round2(b0 - pp), 0.0)
            # full prepayment: the balance left after the month's instalment
            pre = np.where(prepay, b1, 0.0)
            # partial repayment of daily-interest loans
            part = (di & ~go_bad & ~prepay & ~missing & (a < term[li])
                    & (u[4] < params.partial_repay_prob))
            frac = lo_f + (hi_f - lo_f) * u[5]
            pre = np.where(part, _round2(b1 * frac), pre)
            b1 = np.maximum(_round2(b1 - pre), 0.0)
            bal[li] = b1
            paid_through[li] = new
            paid_p[sel_p], paid_i[sel_p], prepaid[sel_p] = pp, ip, pre
            # delinquency of the first unpaid instalment (new + 1, due in month vint + new + 1)
            late = new < a
            if late.any():
                ll, nl = li[late], new[late]
                due = at(due_flat.view(np.int64), ll, nl)
                month_end = month_ends.astype(np.int64)[vint[ll] + nl + 1]
                r = np.clip(month_end - due, 1, 30)
                dpd[sel_p[late]] = 30 * (a[late] - nl - 1) + r
                status[sel_p[late]] = _S_DELINQUENT
                gb = go_bad[late]
                r_bad[ll[gb]] = r[gb]
            bad_age[li[go_bad]] = a[go_bad]
            matured = ~go_bad & ~prepay & (new >= term[li])
            status[sel_p[prepay]] = _S_PREPAID
            status[sel_p[matured]] = _S_MATURED
            closed[li[prepay | matured]] = True

        out["loan"].append(idx.astype(np.int32))
        out["as_of"].append(np.full(m, month_ends[t].astype(np.int64), dtype=np.int32))
        out["mob"].append(age.astype(np.int16))
        out["balance"].append(bal[idx].copy())
        out["paid_principal"].append(paid_p)
        out["paid_interest"].append(paid_i)
        out["prepaid"].append(prepaid)
        out["dpd"].append(dpd.astype(np.int16))
        out["status"].append(status)
        out["charge_off"].append(charge)
        out["recovery"].append(recov)
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def _performance_table(rows: dict[str, np.ndarray], loan_ids: pa.Array,
                       batch_id: int | None) -> pa.Table:
    n = len(rows["loan"])
    return pa.table({
        "loan_id": pa.DictionaryArray.from_arrays(pa.array(rows["loan"], pa.int32()), loan_ids),
        "as_of": pa.array(rows["as_of"], pa.int32()).view(pa.date32()),
        "months_on_book": rows["mob"],
        "balance": rows["balance"],
        "paid_principal": rows["paid_principal"],
        "paid_interest": rows["paid_interest"],
        "prepaid_principal": rows["prepaid"],
        "dpd": rows["dpd"],
        "status": pa.DictionaryArray.from_arrays(pa.array(rows["status"], pa.int8()),
                                                 pa.array(_STATUS_NAMES)),
        "charge_off": rows["charge_off"],
        "recovery": rows["recovery"],
        "batch_id": _batch_column(n, batch_id),
    })


# ---------------------------------------------------------------------------- entry points


def check_request(n_loans: object, n_months: object, seed: object,
                  as_of: dt.date | None = None, today: dt.date | None = None) -> dt.date:
    """Validate the arguments of a generation; returns ``as_of`` (default resolved).

    ``as_of`` must be a month-end not after ``today``; default the last month-end before it.
    """
    for name, value, hi in (("loans", n_loans, MAX_LOANS), ("months", n_months, MAX_MONTHS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                1 <= value <= hi):
            raise ValidationError(must_be(name, f"an integer in [1, {hi:,}]", value))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(must_be("seed", "an integer >= 0", seed))
    today = today or dt.date.today()
    if as_of is None:
        return last_month_end_before(today)
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise ValidationError(must_be("as_of", "a date (a month-end)", as_of))
    if not _is_month_end(as_of) or as_of > today:
        raise ValidationError(must_be("as_of", f"a month-end date not after today ({today})",
                                      as_of.isoformat()))
    return as_of


@dataclass(frozen=True, slots=True)
class SyntheticBook:
    """A generated book in memory (``simulate_book``); tables have the store's columns."""

    loans: pa.Table
    performance: pa.Table
    factor: np.ndarray  # (n_months,) Z_t, oldest first
    month_ends: np.ndarray  # (n_months,) datetime64[D]


class _Plan:
    """Originations, macro path and conditional hazards of one request; performance by chunk."""

    def __init__(self, n_loans: int, n_months: int, seed: int, as_of: dt.date,
                 params: GeneratorParams) -> None:
        self.params = params
        self.seed = seed
        self.n_loans = n_loans
        self.month_ends = _month_ends(as_of, n_months)
        seq_orig, seq_factor = (np.random.SeedSequence(seed, spawn_key=(i,)) for i in (0, 1))
        rng_orig = np.random.Generator(np.random.PCG64(seq_orig))
        self.book = _originate(params, n_loans, self.month_ends, rng_orig)
        self.borrower_key = int(rng_orig.integers(0, 2**63))
        self.factor = _draw_factor(np.random.Generator(np.random.PCG64(seq_factor)), n_months,
                                   params.factor_persistence)
        h = params.go_bad_hazard(n_months)
        self.smm = params.true_prepay_smm(n_months)
        with np.errstate(divide="ignore"):
            q = ndtri(h)
        sr, s1 = np.sqrt(params.rho), np.sqrt(1.0 - params.rho)
        # (n_months, bands, terms, age): go-bad probability given Z_t
        self.hazard_by_month = ndtr((q[None] - sr * self.factor[:, None, None, None]) / s1)
        self.loan_ids = pa.array([f"L{i:09d}" for i in range(1, n_loans + 1)])

    def loans_table(self, batch_id: int | None) -> pa.Table:
        return _loans_table(self.book, self.params, self.loan_ids, self.borrower_key, batch_id)

    def performance_chunks(self, batch_id: int | None) -> Iterator[pa.Table]:
        for c, lo in enumerate(range(0, self.n_loans, CHUNK_LOANS)):
            sl = slice(lo, min(lo + CHUNK_LOANS, self.n_loans))
            rng = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence(self.seed, spawn_key=(2, c))))
            rows = _simulate_chunk(self.params, self.book, sl, self.month_ends,
                                   self.hazard_by_month, self.smm, rng)
            yield _performance_table(rows, self.loan_ids[sl], batch_id)


def simulate_book(
    n_loans: int,
    n_months: int,
    seed: int,
    as_of: dt.date | None = None,
    params: GeneratorParams | None = None,
) -> SyntheticBook:
    """The book ``generate_book`` would write, as Arrow tables in memory (no database)."""
    params = params or GeneratorParams()
    as_of = check_request(n_loans, n_months, seed, as_of)
    plan = _Plan(int(n_loans), int(n_months), int(seed), as_of, params)
    perf = pa.concat_tables(list(plan.performance_chunks(None)))
    return SyntheticBook(plan.loans_table(None), perf, plan.factor.copy(), plan.month_ends)


def generate_book(
    store: Store,
    n_loans: int,
    n_months: int,
    seed: int,
    as_of: dt.date | None = None,
    params: GeneratorParams | None = None,
) -> GenerateSummary:
    """Originate ``n_loans`` over ``n_months`` vintages ending at ``as_of`` and write their
    month-end history to ``as_of`` into an empty book, all in one transaction.

    ``as_of`` must be a month-end, not in the future; default: the last month-end before today.
    Records one ``ingest_batches`` row (kind ``generate``; sha256 of the parameters).
    """
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    params = params or GeneratorParams()
    as_of = check_request(n_loans, n_months, seed, as_of)
    n_loans, n_months, seed = int(n_loans), int(n_months), int(seed)
    if store.read_only:
        raise RiskpoolError(f"database {store.path} is open read-only; cannot generate into it")
    existing = store_book.count_rows(store.con, "loans")
    if existing:
        raise RiskpoolError(
            f"database {store.path} already holds {existing:,} loans; `generate` builds a "
            "whole book into an empty database — use a new --db file")

    plan = _Plan(n_loans, n_months, seed, as_of, params)
    params_sha = _params_hash(params, seed=seed, loans=n_loans, months=n_months,
                              as_of=as_of.isoformat())
    n_rows = 0
    bal_as_of = 0.0
    last_day = pa.scalar(plan.month_ends[-1].item(), pa.date32())
    with store.transaction() as con:
        batch_id = store_ingest.next_batch_id(con)
        store_book.insert_loans(con, plan.loans_table(batch_id))
        for table in plan.performance_chunks(batch_id):
            n_rows += table.num_rows
            on_last = pc.equal(table["as_of"], last_day)
            bal_as_of += float(pc.sum(pc.filter(table["balance"], on_last)).as_py() or 0.0)
            store_book.insert_performance(con, table)
        store_ingest.insert_batch(con, store_ingest.BatchRecord(
            batch_id=batch_id,
            kind="generate",
            source=f"generate(seed={seed}, loans={n_loans}, months={n_months})",
            sha256=params_sha,
            n_rows=n_loans,
            n_loaded=n_loans,
            n_rejected=0,
            started_at=started_at,
            finished_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            note=f"as_of={as_of.isoformat()}; performance_rows={n_rows}",
        ))
    first_month = plan.month_ends[0].astype("datetime64[M]").astype("datetime64[D]").item()
    return GenerateSummary(
        batch_id=batch_id,
        seed=seed,
        n_loans=n_loans,
        n_months=n_months,
        n_performance_rows=n_rows,
        as_of=as_of,
        first_origination_month=first_month,
        total_principal=float(np.round(plan.book.principal.sum(), 2)),
        balance_at_as_of=round(bal_as_of, 2),
        seconds=time.perf_counter() - started,
        params_sha256=params_sha,
        factor=tuple(float(z) for z in plan.factor),
        factor_months=tuple(d.item() for d in plan.month_ends),
    )
