"""Projection assumptions calibrated from the book's own history.

Everything here is estimated from month-to-month transitions of ``loan_performance`` (see
``portfolio.store.calibration`` for the at-risk, default and prepayment rules) up to an as-of
month-end, on the ``Assumptions`` grid: score band (``types.SCORE_BANDS``) × original term
(``types.ALLOWED_TERMS``) × age. A transition from age a−1 to age a (the loan's a-th month on
book) is counted in age column a−1; ages above ``n_age`` are pooled into the last column.

Default timing
    ``recorded``: a default counts in the month of the loan's first row with status
    ``default`` or dpd > 90 — the definition of the book's analytics. ``went_bad`` (the
    default, because it is what a projection needs): it counts in the month the loan's final delinquency began (3 months earlier for a 91–120
    dpd default row), and the loan is at risk until then. The projection engines apply hazards
    only while a loan has instalments left, so with ``recorded`` timing the defaults of loans
    that go bad in their last three months (all of a 3-month loan's) fall after the term and
    are never projected; ``went_bad`` puts them inside the term. Use ``went_bad`` for
    projection and pricing of short terms; it needs three more months of history.

Default hazard and prepayment SMM (count-weighted)
    Monthly probability = events / loan-months at risk, each loan-month counting once
    (count-weighted, not balance-weighted: the projection engines draw one event per loan,
    so the per-loan probability is what they need; the balance-weighted MDR of the analytics
    differs only through any correlation of balance and risk inside a cell).

Smoothing and thin segments (credibility weighting, prior strength k loan-months)
    Each cell is shrunk toward a parent curve by its exposure E:
        ĥ(b, t, a) = (D + k·parent) / (E + k)      (credibility Z = E / (E + k))
    parent(b, t, a) = RR_b · h_term(t, a) inside the term (a ≤ t), h_term(t, a) beyond it
    (a multiplicative band × term-age model; beyond the term, where only loans in the
    delinquency pipeline remain at risk, h_term is the term's raw rate, 0 without data),
    fitted by iterative proportional fitting:
      h_term(t, a) = (D(·, t, a) + k·h_book(a)) / (W(·, t, a) + k)  — all bands of the term,
      h_book(a)    = D(·, ·, a) / W(·, ·, a)                         — the whole book at age a
                     (the book's all-age rate when no loan reached age a),
      with W = E·RR_b the risk-weighted exposure (inside the term; E beyond it), and
      RR_b = (D_b + c) / (Σ E·h_term + c)  — the band's relative risk over its in-term cells
                     (actual / expected events), shrunk toward 1 by c = 1 expected event.
    So a segment without data falls back to its band's relative risk times the term curve,
    a term without data to the book curve, and a book without data at that age to the book's
    overall rate. Probabilities are capped at 0.999 (``Assumptions`` requires < 1).

Recoveries (chain ladder)
    rate_k = Σ recoveries k months after default / Σ defaulted balance of the default months
    observed for at least k months (the balance on the first default row); lag 0 is folded
    into lag 1; recovery rate = Σ_k rate_k, lag shares = rate_k / rate. No recovery in the
    data gives rate 0 and lag (1.0,).

Factor correlation ρ (maximum likelihood) and persistence
    Given the calibrated cell hazards h_c (the age/segment effect), month m's defaults are
    Binomial(E_cm, p_c(Z_m)) with p_c(z) = Φ((Φ⁻¹(h_c) − √ρ·z)/√(1−ρ)) and Z_m ~ N(0, 1).
    ρ maximises Σ_m log ∫ Π_c Bin(D_cm; E_cm, p_c(z)) φ(z) dz (each month's integral by
    adaptive Gauss–Hermite quadrature around its mode), over in-term cells only.
    Standard error: from the observed information (numerical second derivative of the
    log-likelihood), inflated by √((1+φ²)/(1−φ²)) for the AR(1) persistence φ of Z (the
    months are not independent). The implied Z_m are the posterior modes at ρ̂; φ is their
    lag-1 regression coefficient over consecutive months with ≥ 10 expected defaults.
    With ~24 months of history ρ is imprecise: read rho_se.

MPR (daily-interest loans, informational)
    principal repaid (scheduled + prepaid) / balance at the start of the month, per cell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import log_ndtr, ndtri

from portfolio.book.pools import get_pool
from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import ALLOWED_TERMS, DEFAULT_DPD, SCORE_BAND_LABELS, SCORE_BANDS
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.store import calibration as sql
from portfolio.store.core import Store

PROB_CAP = 0.999
RR_PRIOR_EVENTS = 1.0
MIN_EXPECTED_DEFAULTS_FOR_Z = 10.0


# ---------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class CellCounts:
    """Transition counts, every array shaped (n_bands, n_terms, n_age, n_months)."""

    months: np.ndarray  # (n_months,) datetime64[D] month-ends the transitions end on
    at_risk: np.ndarray
    defaults: np.ndarray
    prepays: np.ndarray
    di_at_risk: np.ndarray
    di_balance_bop: np.ndarray
    di_principal_repaid: np.ndarray
    terms: tuple[int, ...] = ALLOWED_TERMS

    @property
    def n_age(self) -> int:
        return int(self.at_risk.shape[2])


@dataclass(frozen=True, slots=True)
class RecoveryCounts:
    """Defaulted balance by default month and recoveries by (default month, lag)."""

    months: np.ndarray  # (n_months,) datetime64[D] default months
    defaulted_balance: np.ndarray  # (n_months,)
    n_defaults: np.ndarray  # (n_months,)
    recovered: np.ndarray  # (n_months, n_lags) lag 0, 1, …
    as_of: dt.date


@dataclass(frozen=True, slots=True)
class FactorEstimate:
    rho: float
    rho_se: float | None
    persistence: float
    z: np.ndarray  # (n_months,) implied factor (posterior mode), NaN where not estimated
    used: np.ndarray  # (n_months,) bool, months in the persistence series
    loglik: float


@dataclass(frozen=True, slots=True)
class Calibration:
    assumptions: Assumptions
    counts: CellCounts
    factor: FactorEstimate
    recovery_observed_defaults: int
    daily_interest_mpr: np.ndarray  # (n_bands, n_terms, n_age)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def exposure_tables(self) -> dict[str, np.ndarray]:
        """Informational arrays written beside each segment's curves in the TOML."""
        c = self.counts
        return {
            "exposure": c.at_risk.sum(axis=3),
            "defaults": c.defaults.sum(axis=3),
            "prepayments": c.prepays.sum(axis=3),
            "daily_interest_mpr": np.round(self.daily_interest_mpr, 6),
            "daily_interest_exposure": c.di_at_risk.sum(axis=3),
        }

    def monthly(self) -> pd.DataFrame:
        """Per calendar month: loans at risk, defaults, expected defaults, implied Z."""
        c = self.counts
        h = self.assumptions.default_hazard[..., None]
        return pd.DataFrame({
            "month": c.months,
            "at_risk": c.at_risk.sum(axis=(0, 1, 2)),
            "defaults": c.defaults.sum(axis=(0, 1, 2)),
            "expected_defaults": (c.at_risk * h).sum(axis=(0, 1, 2)),
            "implied_z": self.factor.z,
        })

    def summary_text(self) -> str:
        a = self.assumptions
        c = self.counts
        e = c.at_risk.sum()
        f = self.factor
        lines = [
            f"calibrated from {int(e):,} loan-months at risk over {len(c.months)} months "
            f"({int(c.defaults.sum()):,} defaults, {int(c.prepays.sum()):,} full prepayments)",
            f"  monthly default rate (count-weighted) {c.defaults.sum() / max(e, 1):.5f}, "
            f"SMM {c.prepays.sum() / max(e, 1):.5f}",
        ]
        if "rho_choice" not in a.provenance:  # else the delinquency calibration reports them
            lines += [
                f"  rho {a.rho:.4f} (se {f.rho_se:.4f})" if f.rho_se is not None else
                f"  rho {a.rho:.4f} (se not available)",
                f"  factor persistence {a.factor_persistence:.3f}",
                f"  recovery rate {a.recovery_rate:.4f} over {a.recovery_lag_months} months "
                f"({self.recovery_observed_defaults:,} defaults observed)",
            ]
        lines.append(
            "  lifetime PD by score band (12-month term, no prepayment): "
            + ", ".join(f"{label} {pd_:.2%}" for label, pd_ in zip(
                SCORE_BAND_LABELS, lifetime_pd(a.default_hazard, 12, a.terms), strict=False)))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def lifetime_pd(hazard: np.ndarray, term: int, terms: tuple[int, ...] = ALLOWED_TERMS
                ) -> np.ndarray:
    """Per score band: 1 − Π_{a ≤ term} (1 − h(band, term, a)) — default within the term,
    ignoring prepayment. ``hazard`` is (n_bands, n_terms, n_age)."""
    j = terms.index(term)
    n = min(term, hazard.shape[2])
    return 1.0 - np.prod(1.0 - hazard[:, j, :n], axis=1)


# ---------------------------------------------------------------- estimators (pure)


def in_term_mask(terms: tuple[int, ...], n_age: int) -> np.ndarray:
    """(n_terms, n_age) True where age a = column + 1 is within the term."""
    ages = np.arange(1, n_age + 1)
    return ages[None, :] <= np.asarray(terms)[:, None]


def credibility_curves(
    events: np.ndarray,
    exposure: np.ndarray,
    terms: tuple[int, ...],
    credibility: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed monthly probabilities and their parent curves (module docstring).

    ``events`` and ``exposure`` are (n_bands, n_terms, n_age) counts. Returns (estimate,
    parent), both (n_bands, n_terms, n_age), capped at ``PROB_CAP``.
    """
    k = float(credibility)
    d = np.asarray(events, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    inside = in_term_mask(terms, e.shape[2])[None]  # (1, n_terms, n_age)
    d_age = d.sum(axis=(0, 1))
    d_t = d.sum(axis=0)
    events_b = (d * inside).sum(axis=(1, 2))
    rr = np.ones(d.shape[0])
    for _ in range(200):  # iterative proportional fitting of RR_b × h_term(t, a)
        w = e * np.where(inside, rr[:, None, None], 1.0)  # risk-weighted exposure
        total_w = w.sum()
        overall = d.sum() / total_w if total_w > 0 else 0.0
        w_age = w.sum(axis=(0, 1))
        w_t = w.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            h_book = np.where(w_age > 0, d_age / w_age, overall)
            h_term = np.where(w_t + k > 0, (d_t + k * h_book[None, :]) / (w_t + k),
                              h_book[None, :])
            # beyond the term only loans still in the delinquency pipeline are at risk: the
            # term's own raw rate there (0 where no loan of the term reached that age)
            h_term = np.where(inside[0], h_term, np.where(w_t > 0, d_t / w_t, 0.0))
        expected_b = (e * h_term[None] * inside).sum(axis=(1, 2))
        rr_new = (events_b + RR_PRIOR_EVENTS) / (expected_b + RR_PRIOR_EVENTS)
        done = np.max(np.abs(rr_new - rr)) < 1e-12
        rr = rr_new
        if done:
            break
    parent = np.where(inside, rr[:, None, None] * h_term[None], h_term[None])
    parent = np.minimum(parent, PROB_CAP)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(e > 0, (d + k * parent) / (e + k), parent)
    return np.minimum(est, PROB_CAP), parent


def recovery_curve(rc: RecoveryCounts, max_lag: int = 36) -> tuple[float, tuple[float, ...]]:
    """Chain-ladder recovery rate and lag shares (module docstring)."""
    bal = np.asarray(rc.defaulted_balance, dtype=np.float64)
    rec = np.asarray(rc.recovered, dtype=np.float64)
    if bal.size == 0 or bal.sum() <= 0 or rec.size == 0 or rec.sum() <= 0:
        return 0.0, (1.0,)
    as_of_m = np.datetime64(rc.as_of, "M")
    age_m = (as_of_m - rc.months.astype("datetime64[M]")).astype(np.int64)  # months observed
    n_lags = min(rec.shape[1], max_lag + 1)
    rates = np.zeros(n_lags)
    for k in range(n_lags):
        observed = age_m >= k
        denominator = bal[observed].sum()
        rates[k] = rec[observed, k].sum() / denominator if denominator > 0 else 0.0
    if n_lags > 1:
        rates[1] += rates[0]
        rates = rates[1:]
    last = int(np.flatnonzero(rates > 0)[-1]) + 1 if np.any(rates > 0) else 1
    rates = rates[:last]
    rate = float(min(rates.sum(), 1.0))
    if rate <= 0:
        return 0.0, (1.0,)
    shares = rates / rates.sum()
    shares = np.round(shares, 8)
    shares[-1] = 1.0 - shares[:-1].sum()
    return rate, tuple(float(s) for s in shares)


def _log_integrand(z: np.ndarray, a: np.ndarray, b: np.ndarray, d: np.ndarray,
                   n: np.ndarray) -> np.ndarray:
    """log Π_c p_c(z)^d (1−p_c(z))^(n−d) − z²/2 for every month and every z.

    z: (n_months, n_z); a = Φ⁻¹(h)/√(1−ρ) and b = √ρ/√(1−ρ): (n_cells,);
    d, n: (n_cells, n_months). Returns (n_months, n_z).
    """
    x = a[:, None, None] - b * z[None, :, :]  # (n_cells, n_months, n_z)
    ll = d[:, :, None] * log_ndtr(x) + (n - d)[:, :, None] * log_ndtr(-x)
    return ll.sum(axis=0) - 0.5 * z**2


_GH_X, _GH_W = np.polynomial.hermite.hermgauss(20)


def _month_loglik(rho: float, ginv: np.ndarray, d: np.ndarray, n: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-month marginal log-likelihood (up to binomial constants) and the posterior mode."""
    s = np.sqrt(1.0 - rho)
    a = ginv / s
    b = np.sqrt(rho) / s
    n_months = d.shape[1]
    grid = np.linspace(-6.0, 6.0, 49)
    vals = _log_integrand(np.broadcast_to(grid, (n_months, grid.size)), a, b, d, n)
    z = grid[np.argmax(vals, axis=1)].astype(np.float64)
    step = 1e-3
    curv = np.ones(n_months)
    for _ in range(8):  # Newton on the mode with central differences
        pts = np.stack([z - step, z, z + step], axis=1)
        f = _log_integrand(pts, a, b, d, n)
        g1 = (f[:, 2] - f[:, 0]) / (2 * step)
        g2 = (f[:, 2] - 2 * f[:, 1] + f[:, 0]) / step**2
        g2 = np.minimum(g2, -1e-6)
        z = np.clip(z - g1 / g2, -8.0, 8.0)
        curv = -g2
    sigma = 1.0 / np.sqrt(curv)
    nodes = z[:, None] + np.sqrt(2.0) * sigma[:, None] * _GH_X[None, :]
    f = _log_integrand(nodes, a, b, d, n)
    logw = np.log(_GH_W)[None, :] + _GH_X[None, :] ** 2
    m = (f + logw).max(axis=1, keepdims=True)
    log_int = m[:, 0] + np.log(np.exp(f + logw - m).sum(axis=1))
    loglik = log_int + np.log(np.sqrt(2.0) * sigma) - 0.5 * np.log(2 * np.pi)
    return loglik, z


def estimate_factor(
    defaults: np.ndarray,
    at_risk: np.ndarray,
    hazard: np.ndarray,
    *,
    rho_max: float = 0.6,
) -> FactorEstimate:
    """Maximum-likelihood ρ, its standard error, the implied Z_m and their persistence.

    ``defaults`` and ``at_risk`` are (n_cells, n_months); ``hazard`` (n_cells,) the cells'
    unconditional monthly probabilities. Cells with hazard 0 or no exposure carry no
    information about ρ and are dropped.
    """
    d = np.asarray(defaults, dtype=np.float64)
    n = np.asarray(at_risk, dtype=np.float64)
    h = np.asarray(hazard, dtype=np.float64)
    n_months = d.shape[1]
    keep = (h > 0) & (h < 1) & (n.sum(axis=1) > 0)
    d, n, h = d[keep], n[keep], h[keep]
    nan_z = np.full(n_months, np.nan)
    if d.size == 0 or d.sum() == 0 or n_months < 3:
        return FactorEstimate(0.0, None, 0.0, nan_z, np.zeros(n_months, bool), 0.0)
    ginv = ndtri(h)

    def negll(rho: float) -> float:
        return -float(_month_loglik(rho, ginv, d, n)[0].sum())

    lo = 1e-5
    res = optimize.minimize_scalar(negll, bounds=(lo, rho_max), method="bounded",
                                   options={"xatol": 1e-5})
    rho = float(res.x)
    ll_hat, z = _month_loglik(rho, ginv, d, n)
    expected = (n * h[:, None]).sum(axis=0)
    used = expected >= MIN_EXPECTED_DEFAULTS_FOR_Z
    pairs = used[1:] & used[:-1]
    if pairs.sum() >= 3:
        z0, z1 = z[:-1][pairs], z[1:][pairs]
        phi = float(np.sum(z0 * z1) / np.sum(z0 * z0)) if np.sum(z0 * z0) > 0 else 0.0
    else:
        phi = 0.0
    phi = float(np.clip(phi, -0.95, 0.95))
    step = max(1e-4, 0.05 * rho)
    r_lo = max(rho - step, 1e-6)
    r_hi = min(rho + step, 0.95)
    f_lo, f_0, f_hi = -negll(r_lo), float(ll_hat.sum()), -negll(r_hi)
    h1, h2 = rho - r_lo, r_hi - rho
    second = 2 * (h2 * f_lo - (h1 + h2) * f_0 + h1 * f_hi) / (h1 * h2 * (h1 + h2))
    rho_se = None
    if second < 0 and np.isfinite(second):
        inflation = np.sqrt((1 + phi**2) / (1 - phi**2))
        rho_se = float(inflation / np.sqrt(-second))
    z_out = np.where(used, z, np.nan)
    return FactorEstimate(rho, rho_se, phi, z_out, used, float(ll_hat.sum()))


def calibrate_counts(
    counts: CellCounts,
    recoveries: RecoveryCounts,
    *,
    credibility: float = 200.0,
    score_bands: tuple[tuple[int, int], ...] = SCORE_BANDS,
    provenance: dict[str, Any] | None = None,
) -> Calibration:
    """Assumptions from transition and recovery counts (pure; module docstring)."""
    if not credibility >= 0:
        raise ValidationError(must_be("credibility", ">= 0 loan-months", credibility))
    terms = counts.terms
    e = counts.at_risk.sum(axis=3)
    notes: list[str] = []
    if e.sum() == 0:
        raise ValidationError(
            "no loan-month at risk in the history: calibration needs at least two "
            "consecutive month-end rows per loan (load performance history first)")
    hazard, _ = credibility_curves(counts.defaults.sum(axis=3), e, terms, credibility)
    smm, _ = credibility_curves(counts.prepays.sum(axis=3), e, terms, credibility)
    hazard = np.round(hazard, 8)
    smm = np.round(smm, 8)
    inside = in_term_mask(terms, counts.n_age)
    cells = np.broadcast_to(inside[None], hazard.shape)
    factor = estimate_factor(counts.defaults[cells], counts.at_risk[cells], hazard[cells])
    if factor.rho_se is None:
        notes.append("rho standard error not available (flat likelihood or too few months)")
    z_used = factor.used & np.isfinite(factor.z)
    mean_z = None
    if z_used.any():
        # weights: expected defaults per month (the months' weight in the hazard estimates)
        expected = (counts.at_risk * hazard[..., None]).sum(axis=(0, 1, 2))
        mean_z = float(np.average(factor.z[z_used], weights=expected[z_used] + 1e-12))
        if abs(mean_z) > 0.5:
            notes.append(
                f"the history window was {'a downturn' if mean_z < 0 else 'benign'} "
                f"(exposure-weighted mean implied Z = {mean_z:+.2f}): the hazards are "
                "point-in-time averages of this window, consider a stress or a re-level")
    rate, lag = recovery_curve(recoveries)
    if rate == 0.0:
        notes.append("no recoveries observed: recovery rate 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        bop = counts.di_balance_bop.sum(axis=3)
        mpr = np.where(bop > 0, counts.di_principal_repaid.sum(axis=3) / bop, 0.0)
    prov = {
        "source": "calibrated from the book's history (riskpool calibrate)",
        "weighting": "count (loan-months at risk)",
        "smoothing": f"credibility toward band relative risk x term curve, k = {credibility:g}"
                     " loan-months; terms toward the book curve",
        "rho_method": "maximum likelihood, binomial cells given calibrated hazards, "
                      "adaptive Gauss-Hermite over Z; se from observed information x "
                      "sqrt((1+phi^2)/(1-phi^2))",
        "recovery_method": "chain ladder on the balance at the first default row",
        "n_months": int(len(counts.months)),
        "first_month": str(counts.months[0]) if len(counts.months) else None,
        "last_month": str(counts.months[-1]) if len(counts.months) else None,
        "n_loan_months_at_risk": int(e.sum()),
        "n_defaults": int(counts.defaults.sum()),
        "n_prepayments": int(counts.prepays.sum()),
        "n_defaults_for_recovery": int(np.sum(recoveries.n_defaults)),
        "credibility_loan_months": float(credibility),
        "mean_implied_z": None if mean_z is None else round(mean_z, 4),
        **(provenance or {}),
    }
    a = Assumptions(
        default_hazard=hazard,
        prepay_smm=smm,
        recovery_rate=round(rate, 8),
        recovery_lag=lag,
        rho=round(factor.rho, 6),
        factor_persistence=round(factor.persistence, 6),
        score_bands=score_bands,
        terms=terms,
        rho_se=None if factor.rho_se is None else round(factor.rho_se, 6),
        provenance={k: v for k, v in prov.items() if v is not None},
    )
    return Calibration(a, counts, factor, int(np.sum(recoveries.n_defaults)), mpr,
                       tuple(notes))


# ---------------------------------------------------------------- from the store


def _month_end(d: dt.date) -> dt.date:
    first_next = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first_next - dt.timedelta(days=1)


DefaultTiming = Literal["recorded", "went_bad"]
DEFAULT_TIMINGS: tuple[str, ...] = ("recorded", "went_bad")


def _months_back(d: dt.date, months: int) -> dt.date:
    m = np.datetime64(d, "M") - months
    return _month_end(m.astype("datetime64[D]").item())


def load_counts(store: Store, as_of: dt.date, n_age: int = 24,
                score_bands: tuple[tuple[int, int], ...] = SCORE_BANDS,
                terms: tuple[int, ...] = ALLOWED_TERMS,
                default_timing: DefaultTiming = "recorded",
                ) -> tuple[CellCounts, RecoveryCounts]:
    """Transition and recovery counts of the book up to ``as_of`` on the grid.

    ``default_timing``: ``recorded`` dates a default at its first row with status
    ``default`` / dpd > 90; ``went_bad`` at the month its final delinquency began (see
    ``portfolio.store.calibration``), counting transitions up to three months before
    ``as_of`` only.
    """
    if default_timing not in DEFAULT_TIMINGS:
        raise ValidationError(must_be("default-timing", "recorded or went_bad", default_timing))
    if isinstance(n_age, bool) or not isinstance(n_age, int) or not 1 <= n_age <= 120:
        raise ValidationError(must_be("n-age", "an integer in [1, 120]", n_age))
    edges = [lo for lo, _ in score_bands[1:]]
    known_until = _months_back(as_of, DEFAULT_DPD // 30)
    raw = sql.transition_counts(store.con, as_of, edges, n_age, known_until)
    if default_timing == "went_bad":
        raw = raw.drop(columns=["at_risk", "defaults", "prepays"]).rename(columns={
            "wb_at_risk": "at_risk", "wb_defaults": "defaults", "wb_prepays": "prepays"})
        raw = raw[raw["at_risk"] > 0]
    months = np.array(sorted(pd.to_datetime(raw["as_of"]).unique()), dtype="datetime64[D]") \
        if len(raw) else np.array([], dtype="datetime64[D]")
    shape = (len(score_bands), len(terms), n_age, len(months))
    arrays = {k: np.zeros(shape) for k in ("at_risk", "defaults", "prepays", "di_at_risk",
                                           "di_balance_bop", "di_principal_repaid")}
    if len(raw):
        term_index = {t: j for j, t in enumerate(terms)}
        ti = raw["term_months"].map(term_index)
        ok = ti.notna().to_numpy()
        raw = raw[ok]
        ti = ti[ok].astype(int).to_numpy()
        bi = raw["band"].to_numpy(dtype=np.int64)
        ai = raw["age"].to_numpy(dtype=np.int64) - 1
        mi = np.searchsorted(months, pd.to_datetime(raw["as_of"]).to_numpy().astype(
            "datetime64[D]"))
        for key in arrays:
            np.add.at(arrays[key], (bi, ti, ai, mi), raw[key].to_numpy(dtype=np.float64))
    counts = CellCounts(months=months, terms=terms, **arrays)
    balances, recs = sql.recovery_counts(store.con, as_of)
    if len(balances):
        d_months = pd.to_datetime(balances["default_month"]).to_numpy().astype("datetime64[D]")
        n_lags = int(recs["lag"].max()) + 1 if len(recs) else 1
        recovered = np.zeros((len(d_months), n_lags))
        if len(recs):
            ri = np.searchsorted(d_months, pd.to_datetime(recs["default_month"]).to_numpy()
                                 .astype("datetime64[D]"))
            np.add.at(recovered, (ri, recs["lag"].to_numpy(dtype=np.int64)),
                      recs["recovered"].to_numpy(dtype=np.float64))
        rc = RecoveryCounts(d_months, balances["defaulted_balance"].to_numpy(dtype=np.float64),
                            balances["n_defaults"].to_numpy(dtype=np.int64), recovered, as_of)
    else:
        rc = RecoveryCounts(np.array([], dtype="datetime64[D]"), np.zeros(0),
                            np.zeros(0, dtype=np.int64), np.zeros((0, 1)), as_of)
    return counts, rc


def calibrate_from_store(
    store: Store,
    *,
    pool_id: int | None = None,
    as_of: dt.date | None = None,
    credibility: float = 200.0,
    n_age: int = 24,
    default_timing: DefaultTiming = "went_bad",
) -> Calibration:
    """Calibrate on the book's history up to ``as_of`` (default: the pool's cut-off when a
    pool is given, else the last month-end in the book)."""
    info = get_pool(store, pool_id) if pool_id is not None else None
    last = sql.last_as_of(store.con)
    if last is None:
        raise ValidationError("the book has no performance history to calibrate on "
                              "(`riskpool generate` or `riskpool ingest` first)")
    if as_of is None:
        as_of = info.cutoff_date if info is not None else last
    if not isinstance(as_of, dt.date):
        raise ValidationError(must_be("as-of", "a date (datetime.date)", as_of))
    if as_of != _month_end(as_of):
        raise ValidationError(must_be("as-of", "a month-end date", as_of.isoformat()))
    if as_of > last:
        raise ValidationError(must_be("as-of", f"a month-end on or before the book's last "
                                      f"performance date {last.isoformat()}", as_of.isoformat()))
    counts, rc = load_counts(store, as_of, n_age, default_timing=default_timing)
    prov: dict[str, Any] = {"as_of": as_of.isoformat(), "db": str(store.path),
                            "default_timing": default_timing}
    if info is not None:
        prov.update({"pool_id": info.pool_id, "pool_name": info.name,
                     "pool_cutoff": info.cutoff_date.isoformat()})
    return calibrate_counts(counts, rc, credibility=credibility, provenance=prov)


def with_provenance(c: Calibration, **extra: Any) -> Calibration:
    """The calibration with extra provenance entries (e.g. the code version)."""
    a = dataclasses.replace(c.assumptions, provenance={**c.assumptions.provenance, **extra})
    return dataclasses.replace(c, assumptions=a)
