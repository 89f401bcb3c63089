"""The one-factor Gaussian copula references against SciPy numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import binom, multivariate_normal, norm

from tranching.errors import DealError
from tranching.reference import (
    bivariate_normal_cdf,
    conditional_pd,
    finite_pool_default_pmf,
    finite_pool_tranche_el,
    lhp_call,
    lhp_loss_cdf,
    lhp_tranche_el,
    tranche_loss_share,
)


@pytest.mark.parametrize("r", [-0.7, -0.2, 0.0, 0.1, 0.3164, 0.8, 0.95])
def test_bivariate_normal_matches_scipy_multivariate_normal(r: float) -> None:
    # independent source: scipy.stats.multivariate_normal.cdf (Genz's algorithm)
    pts = [(-2.0, 1.0), (0.0, 0.0), (0.5, -0.3), (0.0, 1.2), (-1.1, 0.0), (2.5, 2.5), (-3.0, -2.0)]
    for h, k in pts:
        expected = multivariate_normal.cdf([h, k], mean=[0, 0], cov=[[1, r], [r, 1]], abseps=1e-12,
                                           releps=1e-12)
        assert float(bivariate_normal_cdf(h, k, r)) == pytest.approx(expected, abs=1e-8)


def test_bivariate_normal_closed_forms() -> None:
    # Φ₂(0, 0; r) = 1/4 + arcsin(r)/(2π) (Sheppard); r = 0: product of marginals
    for r in (-0.5, 0.0, 0.3, 0.9):
        assert float(bivariate_normal_cdf(0.0, 0.0, r)) == pytest.approx(0.25 + np.arcsin(r) / (2 * np.pi),
                                                                         abs=1e-14)
    assert float(bivariate_normal_cdf(0.7, -0.4, 0.0)) == pytest.approx(norm.cdf(0.7) * norm.cdf(-0.4),
                                                                        abs=1e-14)
    assert float(bivariate_normal_cdf(np.inf, 0.3, 0.5)) == pytest.approx(norm.cdf(0.3))
    assert float(bivariate_normal_cdf(-np.inf, 0.3, 0.5)) == 0.0


def _lhp_call_quad(strike: float, pd: float, rho: float, lgd: float) -> float:
    # E[(LGD·p(Z) − K)⁺] by direct quadrature over the factor
    f = lambda z: max(lgd * float(conditional_pd(pd, rho, z)) - strike, 0.0) * norm.pdf(z)  # noqa: E731
    z_star = (norm.ppf(pd) - np.sqrt(1 - rho) * norm.ppf(min(strike / lgd, 1 - 1e-16))) / np.sqrt(rho)
    a, _ = integrate.quad(f, -12, z_star, epsabs=1e-13, epsrel=1e-11, limit=200)
    return a


@pytest.mark.parametrize(("pd", "rho", "lgd"), [(0.02, 0.05, 1.0), (0.1, 0.15, 0.6), (0.005, 0.3, 0.8)])
def test_lhp_call_matches_quadrature(pd: float, rho: float, lgd: float) -> None:
    for strike in (0.001, 0.01, 0.03, 0.07, 0.2):
        if strike >= lgd:
            continue
        assert lhp_call(strike, pd, rho, lgd) == pytest.approx(_lhp_call_quad(strike, pd, rho, lgd),
                                                               rel=1e-7, abs=1e-12)


def test_lhp_tranche_el_sums_to_pool_el_and_orders() -> None:
    pd, rho, lgd = 0.04, 0.12, 0.7
    cuts = [0.0, 0.03, 0.07, 0.15, 1.0]
    els = [lhp_tranche_el(a, d, pd, rho, lgd) for a, d in zip(cuts[:-1], cuts[1:], strict=True)]
    # size-weighted tranche ELs add up to the pool EL = LGD·PD (Vasicek: E[p(Z)] = PD)
    total = sum(el * (d - a) for el, a, d in zip(els, cuts[:-1], cuts[1:], strict=True))
    assert total == pytest.approx(lgd * pd, rel=1e-9)
    assert els == sorted(els, reverse=True)


def test_lhp_loss_cdf_matches_definition() -> None:
    pd, rho, lgd = 0.05, 0.2, 0.5
    for x in (0.005, 0.02, 0.1):
        # P(L ≤ x) = P(Z ≥ z*) by the monotone map z ↦ LGD·p(z)
        z_star = (norm.ppf(pd) - np.sqrt(1 - rho) * norm.ppf(x / lgd)) / np.sqrt(rho)
        assert float(lhp_loss_cdf(x, pd, rho, lgd)) == pytest.approx(1 - norm.cdf(z_star), abs=1e-12)


def test_finite_pool_pmf_matches_quadrature() -> None:
    n, pd, rho = 40, 0.05, 0.2
    pmf = finite_pool_default_pmf(n, pd, rho)
    assert pmf.sum() == pytest.approx(1.0)
    for k in (0, 1, 2, 5, 12):
        f = lambda z, k=k: binom.pmf(k, n, float(conditional_pd(pd, rho, z))) * norm.pdf(z)  # noqa: E731
        ref, _ = integrate.quad(f, -12, 12, epsabs=1e-13, limit=200)
        assert pmf[k] == pytest.approx(ref, rel=1e-6, abs=1e-12)
    # mean number of defaults = n·PD
    assert pmf @ np.arange(n + 1) == pytest.approx(n * pd, rel=1e-8)


def test_finite_pool_el_approaches_lhp_for_large_pools() -> None:
    pd, rho = 0.03, 0.1
    lhp = lhp_tranche_el(0.02, 0.06, pd, rho)
    gaps = [abs(finite_pool_tranche_el(0.02, 0.06, n, pd, rho) - lhp) for n in (50, 400, 2000)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.01 * lhp + 1e-4


def test_finite_pool_rho_zero_is_binomial() -> None:
    # ρ = 0: K ~ Binomial(n, PD) exactly
    n, pd = 20, 0.1
    k = np.arange(n + 1)
    expected = binom.pmf(k, n, pd) @ tranche_loss_share(k / n, 0.1, 0.3)
    assert finite_pool_tranche_el(0.1, 0.3, n, pd, 0.0) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("call", "field"), [
    (lambda: lhp_tranche_el(0.3, 0.1, 0.02, 0.1), "attach"),
    (lambda: lhp_tranche_el(0.0, 0.1, 1.5, 0.1), "pd"),
    (lambda: lhp_tranche_el(0.0, 0.1, 0.02, 1.0), "rho"),
    (lambda: lhp_call(0.1, 0.02, 0.1, lgd=0.0), "lgd"),
    (lambda: finite_pool_default_pmf(0, 0.02, 0.1), "n"),
])
def test_reference_inputs_are_checked(call, field: str) -> None:
    with pytest.raises(DealError, match=field):
        call()
