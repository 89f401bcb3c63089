"""The synthetic book's parameters (``GeneratorParams``) and the truth they imply.

The truth, for calibration (on the ``portfolio.montecarlo.assumptions.Assumptions`` grid: bands
``types.SCORE_BANDS`` × terms ``types.ALLOWED_TERMS`` × age 1..n_age)
------------------------------------------------------------------------------------------
* ``GeneratorParams.go_bad_hazard(n_age)`` — the model primitive of the performance
  simulator (``portfolio.synthetic.performance``), unconditional, i.e. averaged over Z:
  ``E[Φ((Φ⁻¹(h) − √ρZ)/√(1−ρ))] = h``. It depends on band, term and age only (not on
  repayment type, region or channel).
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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import (
    ALLOWED_TERMS,
    APR_CAP_DEFAULT,
    BULLET_MAX_TERM,
    DEFAULT_DPD,
    SCORE_BANDS,
    WRITE_OFF_DPD,
    RepaymentType,
)
from portfolio.montecarlo.assumptions import Assumptions

# (province, weight ~ share of online consumer-credit users)
_REGIONS: tuple[tuple[str, float], ...] = (
    ("广东", 12.0), ("江苏", 7.5), ("浙江", 7.0), ("山东", 6.5), ("河南", 6.5), ("四川", 5.5),
    ("河北", 5.0), ("湖北", 4.5), ("湖南", 4.5), ("安徽", 4.5), ("福建", 4.0), ("上海", 3.5),
    ("北京", 3.0), ("广西", 3.5), ("江西", 3.0), ("辽宁", 3.0), ("陕西", 3.0), ("云南", 3.0),
    ("重庆", 2.5), ("山西", 2.5), ("贵州", 2.5), ("黑龙江", 2.0), ("吉林", 1.5), ("天津", 1.0),
    ("内蒙古", 1.5), ("新疆", 1.5), ("甘肃", 1.5), ("海南", 0.7), ("宁夏", 0.4), ("青海", 0.3),
    ("西藏", 0.2),
)

CREDIT_MODELS: tuple[str, ...] = ("hazard", "markov")

_DI = RepaymentType.DAILY_INTEREST.code
_IO = RepaymentType.INTEREST_ONLY.code


@dataclass(frozen=True, slots=True)
class GeneratorParams:
    """Every knob of the synthetic book, with realistic defaults (what each one drives: the
    docstrings of ``portfolio.synthetic.originations`` and ``portfolio.synthetic.performance``)."""

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
    # share of the amortising loans (level annuity, equal principal) sold instead as flat-fee
    # instalments (等本等息), priced to the same risk-based APR and disclosing it (R8). 0 (the
    # default) keeps the book exactly as it was; e.g. 0.25 for a book with flat-fee loans.
    flat_fee_share: float = 0.0
    regions: tuple[tuple[str, float], ...] = _REGIONS
    channels: tuple[tuple[str, float], ...] = (("app", 0.60), ("mini_program", 0.28),
                                               ("partner", 0.12))
    # --- pricing (docs/model.md, "Risk-based pricing check"), annual decimals
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
    # --- credit model: "hazard" (the default book: go bad, then M1 → M2 → M3 → default with
    # transient cure episodes; ``portfolio.synthetic.performance``) or "markov" (a known
    # monthly Markov chain over delinquency buckets by score band, roll and cure rates moved
    # by the macro factor in opposite directions; ``portfolio.synthetic.markov``). Only the
    # "markov" fields below are read in that mode; the default book never reads them.
    credit_model: str = "hazard"
    markov_charge_off_dpd: int = 90  # charged off on the first row past this many DPD
    markov_entry: tuple[float, ...] = (0.040, 0.025, 0.017, 0.012, 0.008, 0.005)  # current → 1–30
    markov_roll: tuple[float, ...] = (0.30, 0.50, 0.65)  # bucket k → k+1 (the last: charge-off)
    markov_cure: tuple[float, ...] = (0.55, 0.35, 0.20)  # bucket k → current, of the non-rollers
    markov_band_roll: tuple[float, ...] = (1.35, 1.2, 1.05, 0.95, 0.85, 0.75)
    markov_band_cure: tuple[float, ...] = (0.8, 0.88, 0.96, 1.03, 1.1, 1.18)

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
        prob("flat_fee_share", self.flat_fee_share)
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
        if self.credit_model not in CREDIT_MODELS:
            raise ValidationError(must_be("credit_model", " or ".join(CREDIT_MODELS),
                                          self.credit_model))
        co = self.markov_charge_off_dpd
        if isinstance(co, bool) or not isinstance(co, int) or co % 30 or not 60 <= co <= 180:
            raise ValidationError(must_be("markov_charge_off_dpd",
                                          "a multiple of 30 in [60, 180]", co))
        k = co // 30
        per_band("markov_entry", self.markov_entry, 0.5)
        per_band("markov_band_roll", self.markov_band_roll, 10.0)
        per_band("markov_band_cure", self.markov_band_cure, 10.0)
        for name in ("markov_roll", "markov_cure"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (k,) or np.any(arr < 0):
                raise ValidationError(must_be(name, f"{k} values >= 0 (one per delinquency "
                                              f"bucket up to {co} DPD)", getattr(self, name)))
        for name, base, mult in (("markov_roll", self.markov_roll, self.markov_band_roll),
                                 ("markov_cure", self.markov_cure, self.markov_band_cure)):
            top = float(np.max(np.outer(mult, base)))
            if not top < 1.0:
                raise ValidationError(must_be(f"{name} x its band multiplier",
                                              "< 1 in every band and bucket", round(top, 6)))

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
        provenance={"source": "portfolio.synthetic.generate truth", "params_sha256": params_hash(params)},
    )


def _check_n_age(n_age: int) -> None:
    if not isinstance(n_age, (int, np.integer)) or n_age < 1:
        raise ValidationError(must_be("n_age", "an integer >= 1", n_age))


def params_hash(params: GeneratorParams, **extra: object) -> str:
    """sha256 of the parameters (and ``extra``). The Markov-mode fields enter only when
    ``credit_model`` is "markov", so the default book's hash is what it was before they existed."""
    fields = dataclasses.asdict(params)
    if params.credit_model == "hazard":
        fields = {k: v for k, v in fields.items()
                  if k != "credit_model" and not k.startswith("markov_")}
    payload = {"params": fields, **extra}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

