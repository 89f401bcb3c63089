"""ρ and persistence with profile-likelihood intervals (portfolio/book/factor_fit.py).

References: the closed-form likelihood-ratio interval of a normal variance with unknown mean
(n − 1 degrees of freedom, REML); a brute-force grid of the REML likelihood written
independently as the likelihood of error contrasts (Harville, 1974: Kᵀy with K orthogonal to
1, scipy.stats.multivariate_normal); the coverage over simulated histories with a known ρ.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg, optimize, stats
from scipy.special import ndtr, ndtri

from portfolio.book import factor_fit as ff
from portfolio.errors import ValidationError


def _history(seed: int, n_months: int = 24, rho: float = 0.05, phi: float = 0.6,
             n_groups: int = 40) -> tuple[ff.FactorCounts, np.ndarray]:
    """Binomial counts given an AR(1) factor path, groups with mixed signs (cures: −1)."""
    rng = np.random.default_rng(seed)
    z = np.empty(n_months)
    z[0] = rng.standard_normal()
    for t in range(1, n_months):
        z[t] = phi * z[t - 1] + np.sqrt(1 - phi * phi) * rng.standard_normal()
    base = rng.uniform(0.005, 0.4, n_groups)
    sign = np.where(rng.random(n_groups) < 0.7, 1.0, -1.0)
    n = rng.integers(50, 5_000, (n_groups, n_months)).astype(np.float64)
    p = ndtr((ndtri(base)[:, None] - sign[:, None] * np.sqrt(rho) * z[None])
             / np.sqrt(1 - rho))
    x = rng.binomial(n.astype(np.int64), p).astype(np.float64)
    return ff.FactorCounts.of(x, n, sign), z


def test_interval_equals_the_closed_form_for_independent_months() -> None:
    """Month effects observed without noise, φ fixed at 0: REML of a normal variance σ² = b²
    with unknown mean, ℓ(σ²) = −½((M − 1)·log σ² + S/σ²), S = Σ(y − ȳ)². Its maximum is
    σ̂² = S/(M − 1) and the LR interval solves (M − 1)(σ̂²/σ² − 1 + log(σ²/σ̂²)) = χ²₁(0.95);
    ρ = σ²/(1 + σ²)."""
    rng = np.random.default_rng(3)
    m = 20
    y = 0.3 + 0.2 * rng.standard_normal(m)
    fit = ff.fit_month_effects(y, np.full(m, 1e-7), np.arange(m), persistence=0.0)
    s = float(np.sum((y - y.mean()) ** 2))
    s2_hat = s / (m - 1)
    cut = stats.chi2.ppf(0.95, 1)

    def lr(s2: float) -> float:
        return (m - 1) * (s2_hat / s2 - 1 + np.log(s2 / s2_hat)) - cut

    lo = optimize.brentq(lr, s2_hat * 1e-3, s2_hat)
    hi = optimize.brentq(lr, s2_hat, s2_hat * 1e3)
    to_rho = lambda v: v / (1 + v)  # noqa: E731
    assert fit.rho == pytest.approx(to_rho(s2_hat), rel=1e-5)
    assert fit.rho_interval[0] == pytest.approx(to_rho(lo), rel=1e-5)
    assert fit.rho_interval[1] == pytest.approx(to_rho(hi), rel=1e-5)
    assert fit.persistence_interval == (0.0, 0.0)


def _contrast_loglik(y: np.ndarray, se: np.ndarray, rho: float, phi: np.ndarray | float
                     ) -> np.ndarray | float:
    """REML as the Gaussian likelihood of M − 1 error contrasts Kᵀy (independent of the
    module's formula; equal to it up to a constant); vectorised over φ."""
    m = len(y)
    k = _contrasts(m)
    lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    phis = np.atleast_1d(np.asarray(phi, dtype=np.float64))
    v = rho / (1 - rho) * phis[:, None, None] ** lag[None] + np.diag(se ** 2)[None]
    c = k.T[None] @ v @ k[None]  # (n_phi, m − 1, m − 1)
    u = k.T @ y
    _, logdet = np.linalg.slogdet(c)
    sol = np.linalg.solve(c, np.broadcast_to(u[:, None], (len(phis), m - 1, 1)))[..., 0]
    quad = sol @ u
    out = -0.5 * (logdet + quad + (m - 1) * np.log(2 * np.pi))
    return out if np.ndim(phi) else float(out[0])


_K: dict[int, np.ndarray] = {}


def _contrasts(m: int) -> np.ndarray:
    if m not in _K:
        _K[m] = linalg.null_space(np.ones((1, m)))  # (m, m − 1), orthonormal, ⟂ 1
    return _K[m]


def test_profile_interval_matches_a_brute_force_grid() -> None:
    counts, _ = _history(7, n_months=18, n_groups=20)
    y, se = ff.month_effects(counts)
    fit = ff.fit_month_effects(y, se, counts.month_index)
    rhos = np.arange(0.001, 0.30, 0.001)
    phis = np.linspace(-0.95, 0.95, 96)  # the module's bounds, step 0.02
    grid = np.array([_contrast_loglik(y, se, r, phis) for r in rhos])
    prof = grid.max(axis=1)
    best = prof.max()
    inside = rhos[2 * (best - prof) <= stats.chi2.ppf(0.95, 1)]
    # grid steps 0.001 in ρ and 0.02 in φ: the ends agree to about one or two steps
    assert fit.rho == pytest.approx(rhos[prof.argmax()], abs=2e-3)
    assert fit.rho_interval[0] == pytest.approx(inside.min(), abs=2e-3)
    assert fit.rho_interval[1] == pytest.approx(inside.max(), abs=2e-3)
    prof_phi = grid.max(axis=0)
    inside_phi = phis[2 * (prof_phi.max() - prof_phi) <= stats.chi2.ppf(0.95, 1)]
    assert fit.persistence_interval[0] == pytest.approx(inside_phi.min(), abs=0.03)
    assert fit.persistence_interval[1] == pytest.approx(inside_phi.max(), abs=0.03)
    # the module's log-likelihood differs from the contrasts' by a constant only
    diffs = [ff.reml_loglik(y, se, counts.month_index, r, p) - _contrast_loglik(y, se, r, p)
             for r, p in [(0.01, 0.0), (0.05, 0.6), (0.2, -0.3)]]
    assert np.ptp(diffs) < 1e-8


def test_month_effects_recover_the_factor_path() -> None:
    """With ~2,500 loan-months per group and month the probit month effects are b·(Z − Z̄)
    within their standard errors (|error| < 4 se in every month)."""
    counts, z = _history(11, rho=0.05)
    y, se = ff.month_effects(counts)
    b = np.sqrt(0.05 / 0.95)
    truth = b * (z - z.mean())
    assert np.all(np.abs(y - truth) < 4 * se + 1e-3)
    assert np.all(se < 0.02)


def test_intervals_cover_the_true_rho_and_persistence() -> None:
    """30 simulated 24-month histories with ρ = 0.05, φ = 0.6: a 95% interval should miss in
    about 1.5 of them; at least 26 covering (the chance of ≤ 25 at a true 95% is 0.6%)."""
    cover_rho = cover_phi = 0
    for seed in range(30):
        fit = ff.fit_factor(_history(100 + seed, n_groups=10)[0])
        cover_rho += fit.rho_interval[0] <= 0.05 <= fit.rho_interval[1]
        cover_phi += fit.persistence_interval[0] <= 0.6 <= fit.persistence_interval[1]
    assert cover_rho >= 26 and cover_phi >= 26, (cover_rho, cover_phi)


def test_rho_choice() -> None:
    fit = ff.FactorFit(0.02, 0.5, 0.0, (0.01, 0.09), (0.1, 0.9), 0.95, 24, 10)
    assert ff.choose_rho(fit, "point").rho_used == 0.02
    up = ff.choose_rho(fit, "upper")
    assert up.rho_used == 0.09 and up.to_json()["rho_interval"] == [0.01, 0.09]
    ttc = ff.choose_rho(fit, "ttc", 0.05)
    assert ttc.rho_used == 0.05 and ttc.to_json()["rho_ttc"] == 0.05
    with pytest.raises(ValidationError, match="--rho-ttc"):
        ff.choose_rho(fit, "ttc")
    with pytest.raises(ValidationError, match="--rho-choice"):
        ff.choose_rho(fit, "lower")
    with pytest.raises(ValidationError, match="--rho-ttc"):
        ff.choose_rho(fit, "ttc", 1.5)


def test_too_short_a_history_gives_the_widest_interval() -> None:
    counts, _ = _history(1, n_months=3)
    fit = ff.fit_factor(counts)
    assert fit.rho_interval == (0.0, ff.RHO_MAX) and fit.n_months == 3
