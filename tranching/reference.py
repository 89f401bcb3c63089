"""One-factor Gaussian copula references for tranche expected loss (docs/model.md, "Analytic references").

Conditional default probability p(Z) = Φ((Φ⁻¹(PD) − √ρ·Z) / √(1 − ρ)), Z ~ N(0, 1).
Pool loss fraction: L = LGD·p(Z) for a large homogeneous pool (LHP, Vasicek); L = LGD·K/n
with K | Z ~ Binomial(n, p(Z)) for a finite homogeneous pool of n equal loans.

A tranche [a, d) (attachment, detachment as shares of the pool, 0 ≤ a < d ≤ 1) loses
min(max(L − a, 0), d − a); its expected loss as a share of its size is
EL = (E[(L − a)⁺] − E[(L − d)⁺]) / (d − a).

LHP closed form: with c = Φ⁻¹(PD), L > K ⇔ Z < z* = (c − √(1−ρ)·Φ⁻¹(K/LGD)) / √ρ, and
E[p(Z)·1{Z < z*}] = P(√ρ·Z + √(1−ρ)·ε < c, Z < z*) = Φ₂(c, z*; √ρ), so
E[(L − K)⁺] = LGD·Φ₂(c, z*; √ρ) − K·Φ(z*).
Φ₂ is computed with Owen's T function (exact to double precision; tested against
``scipy.stats.multivariate_normal.cdf`` and SciPy quadrature).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, owens_t, xlog1py, xlogy
from scipy.stats import norm

from tranching.errors import DealError, must_be

_TINY = 1e-150  # stands in for an exact zero argument of Owen's T formula (continuous limit)


def conditional_pd(pd: float, rho: float, z: np.ndarray | float) -> np.ndarray:
    """p(Z) = Φ((Φ⁻¹(PD) − √ρ·Z)/√(1−ρ))."""
    return norm.cdf((norm.ppf(pd) - np.sqrt(rho) * np.asarray(z)) / np.sqrt(1.0 - rho))


def bivariate_normal_cdf(h: np.ndarray | float, k: np.ndarray | float, r: float) -> np.ndarray:
    """Φ₂(h, k; r) = P(X ≤ h, Y ≤ k) for standard normals with correlation r (|r| < 1).

    Owen (1956): Φ₂ = ½Φ(h) + ½Φ(k) − T(h, a_h) − T(k, a_k) − β, with
    a_h = (k − r·h)/(h·√(1−r²)), a_k = (h − r·k)/(k·√(1−r²)), β = ½ when h·k < 0 (or h·k = 0 with
    h + k < 0), else 0."""
    h = np.asarray(h, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    h, k = np.broadcast_arrays(h, k)
    out = np.empty(h.shape)
    lo_h, lo_k = np.isneginf(h), np.isneginf(k)
    inf_h, inf_k = np.isposinf(h), np.isposinf(k)
    finite = ~(lo_h | lo_k | inf_h | inf_k)
    out[lo_h | lo_k] = 0.0
    only_k = inf_h & ~lo_k
    out[only_k] = norm.cdf(k[only_k])
    only_h = inf_k & ~lo_h & ~inf_h
    out[only_h] = norm.cdf(h[only_h])
    hf, kf = h[finite], k[finite]
    s = np.sqrt(1.0 - r * r)
    hz = np.where(hf == 0.0, _TINY, hf)
    kz = np.where(kf == 0.0, _TINY, kf)
    beta = np.where(hz * kz < 0, 0.5, 0.0)
    val = (0.5 * norm.cdf(hf) + 0.5 * norm.cdf(kf)
           - owens_t(hz, (kz - r * hz) / (hz * s)) - owens_t(kz, (hz - r * kz) / (kz * s)) - beta)
    out[finite] = np.clip(val, 0.0, 1.0)
    return out


def _check(pd: float, rho: float, lgd: float) -> None:
    if not 0 < pd < 1:
        raise DealError(must_be("pd", "in (0, 1)", pd))
    if not 0 <= rho < 1:
        raise DealError(must_be("rho", "in [0, 1)", rho))
    if not 0 < lgd <= 1:
        raise DealError(must_be("lgd", "in (0, 1]", lgd))


def _check_tranche(attach: float, detach: float) -> None:
    if not 0 <= attach < detach <= 1:
        raise DealError(must_be("attach, detach", "0 ≤ attach < detach ≤ 1", (attach, detach)))


def lhp_loss_cdf(x: np.ndarray | float, pd: float, rho: float, lgd: float = 1.0) -> np.ndarray:
    """P(L ≤ x) = Φ((√(1−ρ)·Φ⁻¹(x/LGD) − Φ⁻¹(PD)) / √ρ) for 0 < x < LGD (Vasicek)."""
    _check(pd, rho, lgd)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        inner = (np.sqrt(1 - rho) * norm.ppf(np.clip(x / lgd, 0, 1)) - norm.ppf(pd)) / np.sqrt(rho)
    return np.where(x >= lgd, 1.0, np.where(x <= 0, 0.0, norm.cdf(inner)))


def lhp_call(strike: float, pd: float, rho: float, lgd: float = 1.0) -> float:
    """E[(L − K)⁺] for the large homogeneous pool (closed form with the bivariate normal)."""
    _check(pd, rho, lgd)
    if strike <= 0:
        return lgd * pd - strike
    if strike >= lgd:
        return 0.0
    if rho == 0:
        return max(lgd * pd - strike, 0.0)
    c = norm.ppf(pd)
    z_star = (c - np.sqrt(1 - rho) * norm.ppf(strike / lgd)) / np.sqrt(rho)
    phi2 = float(bivariate_normal_cdf(c, z_star, np.sqrt(rho)))
    return lgd * phi2 - strike * float(norm.cdf(z_star))


def lhp_tranche_el(attach: float, detach: float, pd: float, rho: float, lgd: float = 1.0) -> float:
    """Expected loss of the tranche [attach, detach) as a share of its size (LHP)."""
    _check_tranche(attach, detach)
    return (lhp_call(attach, pd, rho, lgd) - lhp_call(detach, pd, rho, lgd)) / (detach - attach)


def finite_pool_default_pmf(n: int, pd: float, rho: float, n_grid: int = 4001) -> np.ndarray:
    """(n + 1,) P(K = k) defaults out of n: the binomial integrated over the factor.

    Trapezoid rule on Z ∈ [−10, 10] (exponentially accurate for this smooth, Gaussian-weighted
    integrand; tested against ``scipy.integrate.quad``)."""
    _check(pd, rho, 1.0)
    if n < 1:
        raise DealError(must_be("n", "a pool of at least one loan", n))
    z = np.linspace(-10.0, 10.0, n_grid)
    w = norm.pdf(z) * (z[1] - z[0])
    w[[0, -1]] *= 0.5
    p = conditional_pd(pd, rho, z)
    k = np.arange(n + 1, dtype=np.float64)[:, None]
    log_choose = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
    log_pmf = log_choose + xlogy(k, p[None, :]) + xlog1py(n - k, -p[None, :])
    pmf = np.exp(log_pmf) @ w
    return pmf / pmf.sum()


def tranche_loss_share(loss: np.ndarray | float, attach: float, detach: float) -> np.ndarray:
    """min(max(L − a, 0), d − a) / (d − a)."""
    return np.clip(np.asarray(loss, dtype=np.float64) - attach, 0.0, detach - attach) / (detach - attach)


def finite_pool_tranche_el(attach: float, detach: float, n: int, pd: float, rho: float,
                           lgd: float = 1.0) -> float:
    """Exact expected loss of tranche [attach, detach) on n equal loans (share of its size)."""
    _check(pd, rho, lgd)
    _check_tranche(attach, detach)
    pmf = finite_pool_default_pmf(n, pd, rho)
    losses = lgd * np.arange(n + 1) / n
    return float(pmf @ tranche_loss_share(losses, attach, detach))
