"""Back-test of the delinquency-state model against the book's own later history
(``riskpool backtest --train-until DATE``; docs/model.md, "Back-test").

1. **Calibrate on the history up to DATE only**: the hazard curves
   (``calibration.calibrate_from_store``), the transition matrices, recoveries from the
   charge-off and the factor's month effects (``transitions.calibrate_delinquency``), each
   reading rows with ``as_of <= DATE`` and nothing later. The prepayment of a current loan
   comes from the same transition counts (``transition_smm``).
2. **The cohort**: the loans on the book at DATE that are current (0 DPD), open and not past
   maturity — ``pools.select_pool`` with the default criteria (``dpd_max = 0``). Loans
   originated after DATE are not projected, and loans already delinquent at DATE are left out
   (the projection starts every loan current), so the back-test compares this cohort's
   projection with what this cohort did.
3. **Project the cohort** with the delinquency-state kernels on ``n_paths`` paths whose factor
   carries the uncertainty the history leaves (below), and its daily-interest loans repaying
   in part at the calibrated monthly rate (MPR).
4. **Compare month by month** with what the cohort actually did: the balance by delinquency
   bucket and 30+ DPD (past 30 days), charge-offs, prepayments (full and partial) and
   collections (interest + scheduled principal + prepayments + recoveries). A month is inside
   when p5 ≤ actual ≤ p95 of the paths; the coverage of a series is the share of its months
   inside, over the months where the fan or the actual is not identically zero (a month whose
   fan and actual are all 0, e.g. 31–60 DPD in month 1 of an all-current cohort, says nothing).

The factor scenarios (what the fan must include to be honest)
    The calibration sees one realised factor path. Its month effects ŷ_m (probit shifts of
    every move, Σ ŷ = 0, ``factor_fit.month_effects``) estimate b·Z_m − c with b = √(ρ/(1−ρ))
    and an unknown level c: the calibrated rates are those of the window's average factor,
    which is itself one draw. A projection with a fixed factor path, or with the unconditional
    AR(1) around calibrated rates, is too narrow. Each path draws

    * (ρ, φ) from the REML likelihood of the month effects (``factor_fit.reml_loglik``) on a
      grid uniform in b ∈ [0, 1] (ρ ≤ 0.5) and φ ∈ [−0.95, 0.95] — a flat prior on the
      factor's standard deviation (Gelman, "Prior distributions for variance parameters in
      hierarchical models", Bayesian Analysis 1, 2006);
    * given them, the future shifts y_{T+t} = b·Z_{T+t} − c from their Gaussian conditional
      distribution given ŷ: u = b·Z over the window and the horizon is N(0, b²·R_φ)
      (R_φ[m, k] = φ^|m−k|), ŷ = u_window − c + e with e ~ N(0, diag se²) and c ~ N(0, κ²),
      κ = 3 (flat against b ≤ 1), so
          mean = Σ_fo Σ_oo⁻¹ ŷ,  cov = Σ_ff − Σ_fo Σ_oo⁻¹ Σ_of,
          Σ_oo = b²R_oo + κ²·11ᵀ + diag se², Σ_fo = b²R_fo + κ²·11ᵀ, Σ_ff = b²R_ff + κ²·11ᵀ.

    The calibrated cell rate p̂ pools the window's months by their exposure, so it is not the
    rate at y = 0: per move (entry, roll from k, cure from k) the offset Δ = μ − Φ⁻¹(P̂)
    with μ solving Σ_m n_m·Φ(μ − s·ŷ_m) = Σ_m x_m over the book's counts (``window_offsets``;
    exact where a linearisation around the mean shift fails, e.g. early months without any
    event). The projection's probabilities are Φ(Φ⁻¹(p̂) + Δ − s·y_t) (s = −1 for cures): the
    kernels' thresholds (Φ⁻¹(p̂) + Δ)/√2 and scaled factor y/√2.

Partial repayments
    A daily-interest loan that pays may repay part of its balance; the calibration measures
    the monthly rate MPR (``TransitionEstimate.partial_repayment_rate``). The projection gives
    the cohort's daily-interest loans a prepayment probability 1 − (1 − smm)(1 − MPR): the same
    expected principal, as full prepayments of a share MPR of the loans.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize
from scipy.special import ndtr, ndtri

from portfolio.book.calibration import calibrate_from_store
from portfolio.book.factor_fit import choose_rho, month_effects, reml_loglik
from portfolio.book.pools import next_due_dates, parse_criteria, select_pool
from portfolio.book.transitions import (
    DelinquencyCalibration,
    calibrate_delinquency,
    delinquency_assumptions,
    factor_counts,
)
from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.types import RepaymentType
from portfolio.montecarlo import dq_kernels as K
from portfolio.montecarlo.assumptions import CHARGE_OFF_DPD, Assumptions
from portfolio.montecarlo.delinquency import draw_given_factor, prepare_delinquency
from portfolio.montecarlo.simulation import ENGINES, Engine
from portfolio.store import backtest as sql
from portfolio.store.core import Store
from portfolio.store.pools import snapshot_candidates

MIN_HISTORY_MONTHS = 6
"""Month-ends of history a calibration needs up to the train-until date (the factor fit
needs at least 4 months of moves)."""
B_GRID = np.linspace(0.0, 1.0, 41)  # b = √(ρ/(1−ρ)); 1 ↔ ρ = 0.5 (factor_fit.RHO_MAX)
PHI_GRID = np.linspace(-0.95, 0.95, 39)
KAPPA = 3.0
HEADLINE = ("dpd30_plus", "charge_offs", "collections")


@dataclass(frozen=True, slots=True)
class FactorScenarios:
    """Per path: the shifts y (n_paths, H) and the (ρ, φ) drawn; the posterior grid."""

    y: np.ndarray
    rho: np.ndarray
    phi: np.ndarray
    y_hat: np.ndarray
    y_se: np.ndarray
    offsets: dict[str, np.ndarray]  # window_offsets: the calibrated rates → rates at y = 0


@dataclass(frozen=True, slots=True)
class BacktestResult:
    train_until: dt.date
    months: tuple[dt.date, ...]
    table: pd.DataFrame  # series, month, actual, p5, median, p95, inside, informative
    coverage: pd.DataFrame  # series, months, inside, coverage
    n_loans: int
    balance: float
    n_paths: int
    seed: int
    engine: str
    charge_off_dpd: int
    mpr: float
    factor: dict[str, Any]
    rho_drawn: tuple[float, float, float]  # p5, median, p95 of the paths' ρ
    phi_drawn: tuple[float, float, float]

    def coverage_of(self, series: str) -> float:
        row = self.coverage[self.coverage["series"] == series]
        return float(row["coverage"].iloc[0])

    def summary_text(self) -> str:
        f = self.factor
        lines = [
            f"back-test: calibrated on the history up to {self.train_until.isoformat()}, "
            f"projected the {self.n_loans:,} loans current on the book then "
            f"({self.balance:,.2f}) over {len(self.months)} months with the delinquency "
            f"model ({self.n_paths:,} paths, seed {self.seed}, engine {self.engine}, "
            f"charge-off past {self.charge_off_dpd} DPD)",
            f"factor of the transitions: rho {f['rho']:.4f} [{f['rho_interval'][0]:.4f}, "
            f"{f['rho_interval'][1]:.4f}], persistence {f['persistence']:.3f} "
            f"[{f['persistence_interval'][0]:.3f}, {f['persistence_interval'][1]:.3f}]; "
            f"paths drew rho {self.rho_drawn[1]:.4f} ({self.rho_drawn[0]:.4f} to "
            f"{self.rho_drawn[2]:.4f}, 5-95%), persistence {self.phi_drawn[1]:.2f} "
            f"({self.phi_drawn[0]:.2f} to {self.phi_drawn[2]:.2f}); daily-interest MPR "
            f"{self.mpr:.4f} a month",
        ]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# inputs


def check_history(months: list[dt.date], train_until: dt.date,
                  min_history: int = MIN_HISTORY_MONTHS) -> list[dt.date]:
    """The month-ends after ``train_until`` to compare; ``ValidationError`` when the date is
    not a month-end of the history, has fewer than ``min_history`` month-ends up to it, or
    none after it."""
    if not months:
        raise ValidationError("the book has no performance history (`riskpool generate` or "
                              "`riskpool ingest` first)")
    span = f"{months[0].isoformat()} to {months[-1].isoformat()}"
    if train_until not in months:
        raise ValidationError(must_be("--train-until", f"a month-end of the book's history "
                                      f"({span})", train_until.isoformat()))
    before = sum(1 for m in months if m <= train_until)
    if before < min_history:
        raise ValidationError(must_be("--train-until", f"a month-end with at least "
                                      f"{min_history} month-ends of history up to it (the "
                                      f"book's run {span})",
                                      f"{train_until.isoformat()} ({before})"))
    after = [m for m in months if m > train_until]
    if not after:
        raise ValidationError(must_be("--train-until", f"a month-end before the book's last "
                                      f"({months[-1].isoformat()}), so that there is "
                                      "something to compare", train_until.isoformat()))
    return after


def cohort_loans(store: Store, train_until: dt.date) -> LoanArrays:
    """The loans current (0 DPD), open and not past maturity at ``train_until``."""
    cand = snapshot_candidates(store.con, train_until)
    sel = select_pool(cand, parse_criteria({}), train_until).loans
    codes = np.array([RepaymentType.parse(str(t)).code for t in sel["repayment_type"]],
                     dtype=np.int8)
    return LoanArrays(
        loan_id=sel["loan_id"].astype(object),
        balance=sel["cutoff_balance"].astype(np.float64),
        apr=sel["apr"].astype(np.float64),
        term_months=sel["term_months"].astype(np.int16),
        remaining_term=sel["remaining_term"].astype(np.int16),
        months_on_book=sel["months_on_book"].astype(np.int16),
        repayment_type=codes,
        credit_score=sel["credit_score"].astype(np.int16),
        region=sel["region"].astype(object),
        origination_date=sel["origination_date"].astype("datetime64[D]"),
        next_due_date=next_due_dates(sel["origination_date"], train_until),
        principal=sel["principal"].astype(np.float64),
        disclosed_apr=sel["disclosed_apr"].astype(np.float64),
    )


def calibrate_until(store: Store, train_until: dt.date, *, charge_off_dpd: int = 90,
                    n_age: int = 24, min_exposure: int = 30, credibility: float = 200.0
                    ) -> tuple[Assumptions, DelinquencyCalibration]:
    """The assumptions (with the ``[delinquency]`` record, loading = the transitions' point
    estimate) and the delinquency calibration, from the rows up to ``train_until`` only."""
    cal = calibrate_from_store(store, as_of=train_until, credibility=credibility, n_age=n_age)
    dq = calibrate_delinquency(store, train_until, charge_off_dpd=charge_off_dpd, n_age=n_age,
                               min_exposure=min_exposure)
    a = cal.assumptions
    if dq.n_charge_offs:
        a = dataclasses.replace(a, recovery_rate=dq.recovery_rate,
                                recovery_lag=dq.recovery_lag)
    k = charge_off_dpd // 30
    moves = dq.counts.n.sum(axis=(0, 1, 2, 3))  # (from, to)
    early, total = float(moves[1:k, k + 1].sum()), float(moves[:, k + 1].sum())
    if total > 0 and early > 0.5 * total:
        raise ValidationError(must_be(
            "--charge-off-dpd", "a charge-off point the book reaches (it writes loans off "
            f"earlier: {early / total:.0%} of its {int(total):,} charge-offs up to "
            f"{train_until.isoformat()} come from buckets below {charge_off_dpd} DPD)",
            charge_off_dpd))
    record = delinquency_assumptions(dq, choose_rho(dq.factor, "point"))
    return dataclasses.replace(a, delinquency=record, prepay_smm=transition_smm(dq)), dq


def transition_smm(dq: DelinquencyCalibration) -> np.ndarray:
    """The prepayment probability of a current loan that pays, from the same transition
    counts: p̂(current → prepaid) / (1 − p̂(current → 1–30)) per cell (the kernels prepay a
    current loan with (1 − roll_current)·smm). The hazard calibration's SMM divides by every
    loan at risk, delinquent ones included, which the delinquency model must not."""
    k = dq.counts.charge_off_dpd // 30
    p = dq.estimate.prob
    with np.errstate(invalid="ignore", divide="ignore"):
        smm = p[..., 0, k + 2] / (1.0 - p[..., 0, 1])
    return np.clip(np.nan_to_num(smm), 0.0, 0.999)


# ------------------------------------------------------------------------------------------
# factor scenarios


def _corr(months: np.ndarray, phi: float) -> np.ndarray:
    lag = np.abs(months[:, None] - months[None, :]).astype(np.float64)
    return np.power(phi, lag)


def factor_posterior(y: np.ndarray, se: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Posterior weights on ``B_GRID`` × ``PHI_GRID`` ∝ exp(REML log-likelihood) (module
    doc); b = 0 is ρ = 0."""
    ll = np.empty((len(B_GRID), len(PHI_GRID)))
    for i, b in enumerate(B_GRID):
        rho = b * b / (1.0 + b * b)
        for j, phi in enumerate(PHI_GRID):
            ll[i, j] = reml_loglik(y, se, months, rho, float(phi))
    w = np.exp(ll - ll.max())
    return w / w.sum()


def conditional_shifts(y: np.ndarray, se: np.ndarray, months: np.ndarray,
                       future: np.ndarray, b: float, phi: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the future shifts b·Z − c given the month effects (module
    doc)."""
    allm = np.concatenate([months, future]).astype(np.int64)
    r = b * b * _corr(allm, phi) + KAPPA * KAPPA
    n = len(months)
    s_oo = r[:n, :n] + np.diag(se * se)
    s_fo = r[n:, :n]
    s_ff = r[n:, n:]
    fac = linalg.cho_factor(s_oo, lower=True, check_finite=False)
    mean = s_fo @ linalg.cho_solve(fac, y, check_finite=False)
    cov = s_ff - s_fo @ linalg.cho_solve(fac, s_fo.T, check_finite=False)
    return mean, 0.5 * (cov + cov.T)


def factor_scenarios(dq: DelinquencyCalibration, train_until: dt.date, horizon: int,
                     n_paths: int, rng: np.random.Generator) -> FactorScenarios:
    """``n_paths`` draws of (ρ, φ) and of the shifts of the ``horizon`` months after
    ``train_until`` given the calibration's month effects (module doc)."""
    fc = factor_counts(dq.counts)
    if fc.events.shape[1] < 4:
        raise ValidationError(must_be("--train-until", "a date with at least 4 months of "
                                      "delinquency moves before it (the factor's month "
                                      "effects)", f"{train_until.isoformat()} "
                                      f"({fc.events.shape[1]})"))
    y, se = month_effects(fc)
    months = fc.month_index.astype(np.int64)
    last = np.datetime64(train_until, "M").astype(np.int64)
    future = last + np.arange(1, horizon + 1)
    w = factor_posterior(y, se, months).ravel()
    cells = rng.choice(w.size, size=n_paths, p=w)
    out = np.empty((n_paths, horizon))
    for cell in np.unique(cells):
        rows = np.flatnonzero(cells == cell)
        i, j = divmod(int(cell), len(PHI_GRID))
        mean, cov = conditional_shifts(y, se, months, future, float(B_GRID[i]),
                                       float(PHI_GRID[j]))
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        out[rows] = mean + rng.standard_normal((len(rows), horizon)) @ root.T
    b = B_GRID[cells // len(PHI_GRID)]
    return FactorScenarios(out, b * b / (1.0 + b * b), PHI_GRID[cells % len(PHI_GRID)], y, se,
                           window_offsets(dq, y, months))


def window_offsets(dq: DelinquencyCalibration, y: np.ndarray, months: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """Probit offsets Δ that turn the calibrated (pooled) rates into the rates at y = 0.

    For each move — entry (current → 1–30, s = +1), roll from bucket k (to k + 1 or charged
    off, s = +1), cure from bucket k (to current or matured, s = −1) — with x_m events out of
    n_m loan-months in window month m, μ solves Σ_m n_m·Φ(μ − s·ŷ_m) = Σ_m x_m (the level of
    the month-effects model given the effects) and Δ = μ − Φ⁻¹(Σx / Σn). The pooled rate
    averages the window's months by their exposure; Δ removes that average, so that a
    projected month with shift y has Φ(Φ⁻¹(p̂) + Δ − s·y). Returns ``entry`` (1,), ``roll``
    and ``cure`` (K,); 0 where a move has no event or only events."""
    k = dq.counts.charge_off_dpd // 30
    n = dq.counts.n.sum(axis=(0, 1, 2))  # (months, from, to)
    cm = dq.counts.months.astype("datetime64[M]").astype(np.int64)
    pos = {int(m): i for i, m in enumerate(months)}
    rows = np.array([pos.get(int(m), -1) for m in cm])
    seen = rows >= 0
    ym = y[rows[seen]]
    n = n[seen]

    def offset(x: np.ndarray, expo: np.ndarray, sign: float) -> float:
        tx, tn = float(x.sum()), float(expo.sum())
        if tx <= 0 or tx >= tn:
            return 0.0
        mu = optimize.brentq(lambda m: float(expo @ ndtr(m - sign * ym)) - tx, -12.0, 12.0,
                             xtol=1e-12)
        return float(mu - ndtri(tx / tn))

    entry = offset(n[:, 0, 1], n[:, 0].sum(axis=1), 1.0)
    roll = [offset(n[:, i, i + 1], n[:, i].sum(axis=1), 1.0) for i in range(1, k + 1)]
    cure = [offset(n[:, i, 0] + n[:, i, k + 3], n[:, i].sum(axis=1), -1.0)
            for i in range(1, k + 1)]
    return {"entry": np.array([entry]), "roll": np.array(roll), "cure": np.array(cure)}


# ------------------------------------------------------------------------------------------
# projection


def _recoveries(charge_off: np.ndarray, rate: float, lag: tuple[float, ...]) -> np.ndarray:
    """``rate · lag[k]`` of month t's charge-off in month t + k + 1 (last axis = months)."""
    rec = np.zeros_like(charge_off)
    n = charge_off.shape[-1]
    for k, share in enumerate(lag):
        if k + 1 < n:
            rec[..., k + 1:] += rate * share * charge_off[..., : n - k - 1]
    return rec


def project_cohort(loans: LoanArrays, assumptions: Assumptions, mpr: float, y: np.ndarray,
                   seed: np.random.SeedSequence, engine: Engine = "granular",
                   offsets: dict[str, np.ndarray] | None = None
                   ) -> dict[str, np.ndarray]:
    """Per path and month (the first ``y.shape[1]`` months): the end balance by bucket
    (``bucket_k``, k = 0 current … K), ``charge_offs``, ``prepayments``, ``interest``,
    ``principal``, ``recoveries``; daily-interest loans with the partial repayments (module
    doc). ``y`` (n_paths, H ≥ months) are the factor shifts of each path."""
    if engine not in ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    n_paths, horizon = y.shape
    di = np.asarray(loans.repayment_type) == RepaymentType.DAILY_INTEREST.code
    dq = assumptions.delinquency_model()
    k = dq.n_buckets
    acc = np.zeros((n_paths, horizon, K.N_DQ))
    rec = np.zeros((n_paths, horizon))
    seeds = seed.spawn(2)
    for part, sub_seed in zip((di, ~di), seeds, strict=True):
        if not part.any():
            continue
        prep = prepare_delinquency(loans.take(np.flatnonzero(part)), assumptions,
                                   engine=engine)
        # thresholds √(1 + σ²_w)·Φ⁻¹(p̂)/√2 (module doc)
        to_probit = math.sqrt(1.0 - prep.loading) * math.sqrt(2.0)  # thr·this = Φ⁻¹(p̂)
        smm = prep.smm
        if part is di:
            smm = 1.0 - (1.0 - smm) * (1.0 - mpr)
        rc, roll, cure = (thr * to_probit for thr in (prep.thr_rc, prep.thr_roll,
                                                       prep.thr_cure))
        if offsets is not None:  # the rates at y = 0 (window_offsets)
            rc = rc + offsets["entry"][0]
            roll = roll + offsets["roll"]
            cure = cure + offsets["cure"]
        prep = dataclasses.replace(prep, thr_rc=rc / math.sqrt(2.0),
                                   thr_roll=roll / math.sqrt(2.0),
                                   thr_cure=cure / math.sqrt(2.0),
                                   smm=np.ascontiguousarray(smm))
        zb = np.zeros((n_paths, prep.H))
        h = min(prep.H, horizon)
        zb[:, :h] = y[:, :h] / math.sqrt(2.0)
        if prep.H > horizon:  # months past the compared horizon: the last shift held
            zb[:, horizon:] = zb[:, horizon - 1: horizon]
        flows, _ = draw_given_factor(prep, zb, np.random.Generator(np.random.PCG64(sub_seed)),
                                     engine)
        m = min(horizon, flows.shape[1])
        acc[:, :m] += flows[:, :m]
        rec[:, :m] += _recoveries(flows[:, :, K.CHARGE_OFF], assumptions.recovery_rate,
                                  assumptions.recovery_lag)[:, :m]
    out = {f"bucket_{b}": acc[..., K.EOP_BUCKET0 + b] for b in range(k + 1)}
    out.update(charge_offs=acc[..., K.CHARGE_OFF], prepayments=acc[..., K.PREPAY],
               interest=acc[..., K.INTEREST], principal=acc[..., K.PRINCIPAL],
               recoveries=rec)
    return out


# ------------------------------------------------------------------------------------------
# comparison


def series_labels(charge_off_dpd: int) -> dict[str, str]:
    """Series name → label: 30+ DPD, each bucket, charge-offs, prepayments, collections."""
    k = charge_off_dpd // 30
    labels = {"dpd30_plus": "30+ DPD balance (past 30 days)"}
    for b in range(1, k + 1):
        labels[f"dpd_{30 * (b - 1) + 1}_{30 * b}"] = f"{30 * (b - 1) + 1}-{30 * b} DPD balance"
    labels.update(charge_offs="charge-offs", prepayments="prepayments (full and partial)",
                  collections="collections (interest, principal, prepayments, recoveries)")
    return labels


def projected_series(proj: dict[str, np.ndarray], charge_off_dpd: int
                     ) -> dict[str, np.ndarray]:
    """The compared series per path and month from ``project_cohort``'s output."""
    k = charge_off_dpd // 30
    out = {"dpd30_plus": np.sum([proj[f"bucket_{b}"] for b in range(2, k + 1)], axis=0)}
    for b in range(1, k + 1):
        out[f"dpd_{30 * (b - 1) + 1}_{30 * b}"] = proj[f"bucket_{b}"]
    out["charge_offs"] = proj["charge_offs"]
    out["prepayments"] = proj["prepayments"]
    out["collections"] = (proj["interest"] + proj["principal"] + proj["prepayments"]
                          + proj["recoveries"])
    return out


def actual_series(balances: pd.DataFrame, flows: pd.DataFrame, months: list[dt.date],
                  charge_off_dpd: int) -> dict[str, np.ndarray]:
    """The same series from the cohort's rows (``portfolio.store.backtest``), per month."""
    k = charge_off_dpd // 30
    idx = pd.DatetimeIndex(pd.to_datetime(months))
    bal = (balances.assign(as_of=pd.to_datetime(balances["as_of"]))
           .pivot_table(index="as_of", columns="bucket", values="balance", aggfunc="sum")
           .reindex(idx).fillna(0.0))
    fl = flows.assign(as_of=pd.to_datetime(flows["as_of"])).set_index("as_of").reindex(
        idx).fillna(0.0)

    def bucket(b: int) -> np.ndarray:
        return bal[b].to_numpy(dtype=np.float64) if b in bal.columns else np.zeros(len(idx))

    out = {"dpd30_plus": np.sum([bucket(b) for b in bal.columns if b >= 2] + [np.zeros(len(idx))],
                                axis=0)}
    for b in range(1, k + 1):
        out[f"dpd_{30 * (b - 1) + 1}_{30 * b}"] = bucket(b)
    out["charge_offs"] = fl["charge_off"].to_numpy(dtype=np.float64)
    out["prepayments"] = fl["prepaid"].to_numpy(dtype=np.float64)
    out["collections"] = (fl["interest"] + fl["principal"] + fl["prepaid"]
                          + fl["recovery"]).to_numpy(dtype=np.float64)
    return out


def compare(projected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
            months: list[dt.date], labels: dict[str, str]
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, coverage): per series and month the actual, p5, median, p95 of the paths and
    whether the actual is inside [p5, p95]; per series the coverage over its informative
    months (module doc)."""
    rows, cov = [], []
    for name, label in labels.items():
        paths = projected[name][:, : len(months)]
        p5, med, p95 = np.quantile(paths, [0.05, 0.5, 0.95], axis=0)
        act = actual[name]
        # tolerance of a cent: the book's amounts are in cents, the paths' sums in floats
        inside = (act >= p5 - 0.005) & (act <= p95 + 0.005)
        informative = ~((np.abs(p95) < 0.005) & (np.abs(act) < 0.005))
        for t, m in enumerate(months):
            rows.append({"series": name, "month": m, "t": t + 1, "actual": act[t],
                         "p5": p5[t], "median": med[t], "p95": p95[t],
                         "inside": bool(inside[t]), "informative": bool(informative[t])})
        n = int(informative.sum())
        k = int((inside & informative).sum())
        cov.append({"series": name, "label": label, "months": n, "inside": k,
                    "coverage": k / n if n else float("nan")})
    return pd.DataFrame(rows), pd.DataFrame(cov)


def run_backtest(store: Store, train_until: dt.date, *, n_paths: int = 1000, seed: int = 2026,
                 horizon: int = 12, charge_off_dpd: int = 90, engine: Engine = "loan",
                 min_exposure: int = 30) -> BacktestResult:
    """Calibrate up to ``train_until``, project the cohort, compare (module doc)."""
    if isinstance(n_paths, bool) or not isinstance(n_paths, int) or not 100 <= n_paths <= 100_000:
        raise ValidationError(must_be("--paths", "an integer in [100, 100000] (a 5-95% fan "
                                      "needs at least 100)", n_paths))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(must_be("--seed", "an integer >= 0", seed))
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= 120:
        raise ValidationError(must_be("--months", "an integer in [1, 120]", horizon))
    if charge_off_dpd not in CHARGE_OFF_DPD:
        raise ValidationError(must_be("--charge-off-dpd", "one of "
                                      + ", ".join(map(str, CHARGE_OFF_DPD)), charge_off_dpd))
    if engine not in ENGINES:
        raise ValidationError(must_be("--engine", "granular or loan", engine))
    after = check_history(sql.month_ends(store.con), train_until)
    months = after[:horizon]
    loans = cohort_loans(store, train_until)
    if len(loans) == 0:
        raise ValidationError(f"no loan is current and open on the book at "
                              f"{train_until.isoformat()}: nothing to project")
    assumptions, dq = calibrate_until(store, train_until, charge_off_dpd=charge_off_dpd,
                                      min_exposure=min_exposure)
    root = np.random.SeedSequence(seed)
    s_factor, s_loans = root.spawn(2)
    scen = factor_scenarios(dq, train_until, len(months), n_paths,
                            np.random.Generator(np.random.PCG64(s_factor)))
    mpr = dq.estimate.partial_repayment_rate
    proj = project_cohort(loans, assumptions, mpr, scen.y, s_loans, engine,
                          scen.offsets)
    ids = [str(x) for x in loans.loan_id]
    balances = sql.cohort_balances(store.con, ids, train_until, months[-1], charge_off_dpd)
    flows = sql.cohort_flows(store.con, ids, train_until, months[-1], charge_off_dpd)
    labels = series_labels(charge_off_dpd)
    table, coverage = compare(projected_series(proj, charge_off_dpd),
                              actual_series(balances, flows, months, charge_off_dpd),
                              months, labels)
    q = (5, 50, 95)
    return BacktestResult(
        train_until=train_until, months=tuple(months), table=table, coverage=coverage,
        n_loans=len(loans), balance=float(np.sum(loans.balance)), n_paths=n_paths, seed=seed,
        engine=engine, charge_off_dpd=charge_off_dpd, mpr=float(mpr),
        factor=dq.factor.to_json(),
        rho_drawn=tuple(float(v) for v in np.percentile(scen.rho, q)),  # type: ignore[arg-type]
        phi_drawn=tuple(float(v) for v in np.percentile(scen.phi, q)),  # type: ignore[arg-type]
    )
