"""The systematic factor's ρ and persistence φ from transition counts, with profile-likelihood
intervals, and the documented choice of ρ for a run.

Model
    Month m's factor Z_m is AR(1) with unit variance (corr(Z_m, Z_k) = φ^|m−k|, calendar
    months). Given Z_m, group c's events that month are Binomial(n_cm, p_c(Z_m)) with the
    one-factor Gaussian link

        p_c(z) = Φ((Φ⁻¹(p̄_c) − s_c·√ρ·z) / √(1 − ρ)) = Φ(μ_c − s_c·b·z),   b = √(ρ / (1 − ρ)),

    s_c = +1 for moves that rise in a downturn (current → 1–30, rolls, defaults), −1 for
    cures. So in probit units month m shifts every group by s_c·y_m with y_m = b·Z_m.

Stage 1: the month effects (fixed-effects probit)
    x_cm ~ Binomial(n_cm, Φ(μ_c − s_c·y_m)), with a level μ_c per group and an effect y_m per
    month (Σ_m y_m = 0: a common shift is a level), fitted by alternating Newton steps on the
    concave log-likelihood. Each ŷ_m has the standard error 1/√I_m from the probit Fisher
    information I_m = Σ_c n_cm·φ(η)² / (Φ(η)·Φ(−η)), η = μ̂_c − s_c·ŷ_m.

Stage 2: ρ and φ by restricted maximum likelihood on the month effects
    ŷ ~ N(c·1, V),  V = b²·R_φ + diag(se²),  R_φ[m, k] = φ^|t_m − t_k|,
    with the REML log-likelihood (Patterson and Thompson, 1971, Biometrika 58; the window's
    mean c is estimated, so plain ML would understate the variance of a short series):

        ℓ(b, φ) = −½·[log det V + log(1ᵀV⁻¹1) + rᵀV⁻¹r],   r = ŷ − ĉ·1,  ĉ = 1ᵀV⁻¹ŷ / 1ᵀV⁻¹1.

    (ρ̂, φ̂) maximise ℓ (a grid in ρ with φ profiled out by a bounded search, then a bounded
    search between the best grid point's neighbours). The profile likelihood of ρ is
    ℓ_p(ρ) = max_φ ℓ(b(ρ), φ); the 1 − α interval is {ρ : 2(ℓ(ρ̂, φ̂) − ℓ_p(ρ)) ≤ χ²₁(1 − α)}
    (3.841 at 95%; Wilks' theorem, e.g. Pawitan, *In All Likelihood*, 2001, ch. 3), its ends
    found by root-finding on the profile (an end at 0 or at the bound ``RHO_MAX`` means the
    profile never falls below the cut-off there). The same for φ with ρ profiled out. Unlike
    an SE at the estimate, the interval follows the likelihood's asymmetry near ρ = 0 and its
    width with a short window. Tested against the closed form of the variance of normal
    observations, a brute-force grid of the likelihood, and the coverage over simulated
    histories with a known ρ.

Choice for the run (``RHO_CHOICES``): ``point`` = ρ̂; ``upper`` = the interval's upper end (a
prudent choice when the window is short); ``ttc`` = a through-the-cycle value the user gives.
The choice, both estimates and the interval are recorded with the assumptions
(``RhoChoice``, stored in their provenance and so in every run that uses them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg, optimize, stats
from scipy.special import log_ndtr, ndtri

from portfolio.errors import ValidationError, must_be

RHO_MAX = 0.5
PHI_BOUND = 0.95
RHO_CHOICES: tuple[str, ...] = ("point", "upper", "ttc")


@dataclass(frozen=True, slots=True)
class FactorCounts:
    """Events and exposure per group and month (groups × months) and each group's sign
    (+1: rises in a downturn, −1: falls)."""

    events: np.ndarray
    exposure: np.ndarray
    sign: np.ndarray
    month_index: np.ndarray  # (months,) calendar month numbers (gaps allowed)

    @staticmethod
    def of(events: np.ndarray, exposure: np.ndarray, sign: np.ndarray,
           month_index: np.ndarray | None = None) -> FactorCounts:
        """Drop the groups with no event or only events (no information about the factor)
        and the months without exposure."""
        x = np.asarray(events, dtype=np.float64)
        n = np.asarray(exposure, dtype=np.float64)
        months = (np.arange(x.shape[1]) if month_index is None
                  else np.asarray(month_index, dtype=np.int64))
        keep = (x.sum(axis=1) > 0) & (x.sum(axis=1) < n.sum(axis=1))
        x, n = x[keep], n[keep]
        used = n.sum(axis=0) > 0
        return FactorCounts(x[:, used], n[:, used], np.asarray(sign, dtype=np.float64)[keep],
                            months[used])


@dataclass(frozen=True, slots=True)
class FactorFit:
    rho: float
    persistence: float
    loglik: float
    rho_interval: tuple[float, float]
    persistence_interval: tuple[float, float]
    confidence: float
    n_months: int
    n_groups: int

    def to_json(self) -> dict[str, Any]:
        return {"rho": self.rho, "persistence": self.persistence, "loglik": self.loglik,
                "rho_interval": list(self.rho_interval),
                "persistence_interval": list(self.persistence_interval),
                "confidence": self.confidence, "n_months": self.n_months,
                "n_groups": self.n_groups,
                "method": "fixed-effects probit month effects, then REML of an AR(1) factor; "
                          "profile-likelihood intervals with the chi2_1 cut-off"}


@dataclass(frozen=True, slots=True)
class RhoChoice:
    """Which ρ a run uses and why (recorded in the assumptions' provenance)."""

    choice: str  # one of RHO_CHOICES
    rho_used: float
    rho_point: float
    rho_interval: tuple[float, float]
    confidence: float
    rho_ttc: float | None = None

    def __post_init__(self) -> None:
        if self.choice not in RHO_CHOICES:
            raise ValidationError(must_be("rho choice", " or ".join(RHO_CHOICES), self.choice))
        if self.choice == "ttc" and self.rho_ttc is None:
            raise ValidationError(must_be("--rho-ttc", "a value in [0, 1) with --rho-choice ttc",
                                          None))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"choice": self.choice, "rho_used": self.rho_used,
                               "rho_point": self.rho_point,
                               "rho_interval": list(self.rho_interval),
                               "confidence": self.confidence}
        if self.rho_ttc is not None:
            out["rho_ttc"] = self.rho_ttc
        return out


def check_rho_choice(choice: str, rho_ttc: float | None = None) -> None:
    """``choice`` one of ``RHO_CHOICES``; ``rho_ttc`` in [0, 1), given with ``ttc`` and only
    with it (checked before anything is fitted, and again by :func:`choose_rho`)."""
    if choice not in RHO_CHOICES:
        raise ValidationError(must_be("--rho-choice", " or ".join(RHO_CHOICES), choice))
    if rho_ttc is not None and not 0 <= rho_ttc < 1:
        raise ValidationError(must_be("--rho-ttc", "in [0, 1)", rho_ttc))
    if choice == "ttc" and rho_ttc is None:
        raise ValidationError(must_be("--rho-ttc", "a value in [0, 1) with --rho-choice ttc",
                                      "nothing"))
    if choice != "ttc" and rho_ttc is not None:
        raise ValidationError(must_be("--rho-ttc", "given only with --rho-choice ttc (the run "
                                      f"would use the {choice} estimate)", rho_ttc))


def choose_rho(fit: FactorFit, choice: str, rho_ttc: float | None = None) -> RhoChoice:
    """ρ for the run: the point estimate, the interval's upper end, or the user's value."""
    check_rho_choice(choice, rho_ttc)
    if choice == "point":
        used = fit.rho
    elif choice == "upper":
        used = fit.rho_interval[1]
    else:
        used = float(rho_ttc)  # type: ignore[arg-type]  # checked above
    return RhoChoice(choice, float(used), fit.rho, fit.rho_interval, fit.confidence,
                     rho_ttc if choice == "ttc" else None)


def month_effects(counts: FactorCounts, iterations: int = 100
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: (ŷ_m, se_m) of the fixed-effects probit (module docstring)."""
    x, n, s = counts.events, counts.exposure, counts.sign[:, None]
    mu = ndtri(np.clip(x.sum(axis=1) / n.sum(axis=1), 1e-9, 1 - 1e-9))
    y = np.zeros(x.shape[1])

    def derivs(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dℓ/dη and −d²ℓ/dη² of x·log Φ(η) + (n − x)·log Φ(−η) per cell (ℓ concave)."""
        log_dens = -0.5 * eta * eta - 0.5 * np.log(2 * np.pi)
        a = np.exp(log_dens - log_ndtr(eta))  # φ(η)/Φ(η)
        c = np.exp(log_dens - log_ndtr(-eta))  # φ(η)/Φ(−η)
        return x * a - (n - x) * c, x * a * (a + eta) + (n - x) * c * (c - eta)

    for _ in range(iterations):
        g, h = derivs(mu[:, None] - s * y[None, :])
        mu = mu + np.clip(g.sum(axis=1) / np.maximum(h.sum(axis=1), 1e-12), -1.0, 1.0)
        g, h = derivs(mu[:, None] - s * y[None, :])
        step = np.clip(-(s * g).sum(axis=0) / np.maximum(h.sum(axis=0), 1e-12), -1.0, 1.0)
        y = y + step
        shift = y.mean()  # Σ y = 0: a common shift belongs to the levels
        y = y - shift
        mu = mu - s[:, 0] * shift
        if np.max(np.abs(step)) < 1e-10:
            break
    eta = mu[:, None] - s * y[None, :]
    log_dens = -0.5 * eta * eta - 0.5 * np.log(2 * np.pi)
    info = (n * np.exp(2 * log_dens - log_ndtr(eta) - log_ndtr(-eta))).sum(axis=0)
    return y, 1.0 / np.sqrt(np.maximum(info, 1e-300))


def reml_loglik(y: np.ndarray, se: np.ndarray, months: np.ndarray, rho: float,
                phi: float) -> float:
    """Stage 2: the REML log-likelihood ℓ(b(ρ), φ) of the month effects (module docstring)."""
    b2 = rho / (1.0 - rho)
    lag = np.abs(months[:, None] - months[None, :]).astype(np.float64)
    v = b2 * np.power(phi, lag) + np.diag(se * se)
    factor = linalg.cho_factor(v, lower=True, check_finite=False)
    sol = linalg.cho_solve(factor, np.column_stack([np.ones_like(y), y]), check_finite=False)
    s11 = float(sol[:, 0].sum())
    c = float(sol[:, 1].sum()) / s11
    quad = float(y @ sol[:, 1]) - c * c * s11  # rᵀV⁻¹r with r = y − c·1
    logdet = 2.0 * float(np.log(np.diag(factor[0])).sum())
    return -0.5 * (logdet + np.log(s11) + quad)


def fit_factor(counts: FactorCounts, *, confidence: float = 0.95,
               persistence: float | None = None) -> FactorFit:
    """(ρ̂, φ̂) and their profile-likelihood intervals (module docstring).

    ``persistence`` fixes φ (e.g. 0: independent months) instead of estimating it; its
    interval is then that single value.
    """
    if not 0 < confidence < 1:
        raise ValidationError(must_be("confidence", "in (0, 1)", confidence))
    n_groups, n_months = counts.events.shape
    if n_groups == 0 or n_months < 4:
        phi0 = 0.0 if persistence is None else float(persistence)
        return FactorFit(0.0, phi0, 0.0, (0.0, RHO_MAX),
                         (-PHI_BOUND, PHI_BOUND) if persistence is None else (phi0, phi0),
                         confidence, n_months, n_groups)
    y, se = month_effects(counts)
    return fit_month_effects(y, se, counts.month_index, confidence=confidence,
                             persistence=persistence, n_groups=n_groups)


def fit_month_effects(y: np.ndarray, se: np.ndarray, months: np.ndarray, *,
                      confidence: float = 0.95, persistence: float | None = None,
                      n_groups: int = 0) -> FactorFit:
    """Stage 2 on given month effects: estimates and profile-likelihood intervals."""
    months = np.asarray(months, dtype=np.int64)

    def ll(rho: float, phi: float) -> float:
        return reml_loglik(y, se, months, rho, phi)

    def prof_rho(rho: float) -> tuple[float, float]:
        if persistence is not None:
            return ll(rho, persistence), float(persistence)
        r = optimize.minimize_scalar(lambda p: -ll(rho, p), bounds=(-PHI_BOUND, PHI_BOUND),
                                     method="bounded", options={"xatol": 1e-5})
        return -float(r.fun), float(r.x)

    rhos = np.concatenate([[0.0], np.geomspace(1e-4, RHO_MAX, 24)])
    prof = [prof_rho(r) for r in rhos]
    i = int(np.argmax([p[0] for p in prof]))
    rho_hat, (ll_hat, phi_hat) = float(rhos[i]), prof[i]
    lo_b, hi_b = rhos[max(i - 1, 0)], rhos[min(i + 1, len(rhos) - 1)]
    if hi_b > lo_b:
        r = optimize.minimize_scalar(lambda x: -prof_rho(x)[0], bounds=(lo_b, hi_b),
                                     method="bounded", options={"xatol": 1e-7})
        if -float(r.fun) > ll_hat:
            rho_hat = float(r.x)
            ll_hat, phi_hat = prof_rho(rho_hat)
    cut = ll_hat - 0.5 * float(stats.chi2.ppf(confidence, 1))

    def end(f: Any, x_hat: float, bound: float) -> float:
        """Where f crosses the cut-off between x_hat and bound (bound if it never does)."""
        if f(bound) >= cut:
            return float(bound)
        return float(optimize.brentq(lambda x: f(x) - cut, min(x_hat, bound),
                                     max(x_hat, bound), xtol=1e-8))

    rho_lo = end(lambda x: prof_rho(x)[0], rho_hat, 0.0)
    rho_hi = end(lambda x: prof_rho(x)[0], rho_hat, RHO_MAX)
    if persistence is not None:
        phi_int = (float(persistence), float(persistence))
    else:
        coarse = rhos[::3]

        def prof_phi(phi: float) -> float:
            grid = max(ll(r, phi) for r in coarse)
            res = optimize.minimize_scalar(lambda x: -ll(x, phi), bounds=(0.0, RHO_MAX),
                                           method="bounded", options={"xatol": 1e-7})
            return max(-float(res.fun), grid)

        phi_int = (end(prof_phi, phi_hat, -PHI_BOUND), end(prof_phi, phi_hat, PHI_BOUND))
    return FactorFit(rho_hat, phi_hat, ll_hat, (rho_lo, rho_hi), phi_int, confidence,
                     len(y), n_groups)
