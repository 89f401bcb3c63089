"""Regulatory capital: Basel retail IRB ("other retail") for loans and loan shares, and the
securitisation standardised approach (SEC-SA, Basel CRE40/41) for tranche positions.

IRB, other retail (Basel II ¶330; docs/model.md, "Capital"), PD and LGD as decimals::

    f = (1 − e^(−35·PD)) / (1 − e^(−35))
    R = 0.03·f + 0.16·(1 − f)
    K = LGD·[Φ((Φ⁻¹(PD) + √R·Φ⁻¹(0.999)) / √(1 − R)) − PD]
    RW = 12.5·K;  capital = K·EAD;  RWA = 12.5·K·EAD

(no maturity adjustment for retail, no 1.06 scaling: these are the figures of Basel II
Annex 5, which the tests reproduce). PD is floored at ``PD_FLOOR`` (0.03%, Basel II §331).

SEC-SA (CRE41; EU CRR Art. 261 has the same formula)::

    K_A = (1 − W)·K_SA + 0.5·W          (then (1 − d)·K_A + d when the delinquency status of
                                         a share d ≤ 5% of the pool is unknown)
    a = −1 / (p·K_A),  u = D − K_A,  l = max(A − K_A, 0)
    K_SSFA = (e^(a·u) − e^(a·l)) / (a·(u − l))
    RW = 12.5                                   if D ≤ K_A
       = 12.5·K_SSFA                            if A ≥ K_A
       = 12.5·[(K_A − A) + (D − K_A)·K_SSFA] / (D − A)   otherwise
    floored at 15% (10% for a senior STC position); p = 1 (1.5 for a resecuritisation)

K_SA of a pool of regulatory-retail consumer loans: 8% × 75% risk weight = 0.06 (CRE20).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from partners.errors import DispersionError
from portfolio.errors import must_be

PD_FLOOR = 0.0003
RETAIL_K_SA = 0.08 * 0.75  # regulatory retail, 75% risk weight
SEC_SA_RW_FLOOR = 0.15
RW_MAX = 12.5  # 1250%


def retail_other_correlation(pd: np.ndarray | float) -> np.ndarray:
    pd = np.asarray(pd, dtype=np.float64)
    f = -np.expm1(-35.0 * pd) / -np.expm1(-35.0)
    return 0.03 * f + 0.16 * (1.0 - f)


def irb_retail_other_k(pd: np.ndarray | float, lgd: np.ndarray | float,
                       pd_floor: float = PD_FLOOR) -> np.ndarray:
    """Capital requirement K per unit of EAD (not in default: PD < 1)."""
    p = np.clip(np.asarray(pd, dtype=np.float64), pd_floor, 1.0 - 1e-12)
    lgd = np.asarray(lgd, dtype=np.float64)
    r = retail_other_correlation(p)
    # Φ⁻¹ and Φ as special.ndtri/ndtr: what scipy.stats.norm.ppf/cdf compute, without their
    # per-call argument checks (the same numbers)
    x = (special.ndtri(p) + np.sqrt(r) * special.ndtri(0.999)) / np.sqrt(1.0 - r)
    return np.maximum(lgd * (special.ndtr(x) - p), 0.0)


def irb_retail_other_rw(pd: np.ndarray | float, lgd: np.ndarray | float,
                        pd_floor: float = PD_FLOOR) -> np.ndarray:
    """Risk weight (1.0 = 100%)."""
    return 12.5 * irb_retail_other_k(pd, lgd, pd_floor)


def sec_sa_ka(k_sa: float, w: float, unknown_share: float = 0.0) -> float:
    """K_A from the pool's standardised capital K_SA, its delinquent share W and the share d
    (≤ 5%) whose delinquency status is unknown."""
    for name, v, hi in (("k_sa", k_sa, 1.0), ("w", w, 1.0), ("unknown_share", unknown_share, 0.05)):
        if not 0.0 <= v <= hi:
            raise DispersionError(must_be(name, f"in [0, {hi:g}]", v))
    ka = (1.0 - w) * k_sa + 0.5 * w
    return (1.0 - unknown_share) * ka + unknown_share


def sec_sa_risk_weight(attachment: float, detachment: float, ka: float, p: float = 1.0,
                       floor: float = SEC_SA_RW_FLOOR) -> float:
    """SEC-SA risk weight (1.0 = 100%) of a tranche [A, D) of a pool with capital K_A."""
    a_, d_ = float(attachment), float(detachment)
    if not 0.0 <= a_ < d_ <= 1.0 + 1e-12:
        raise DispersionError(must_be("attachment/detachment", "0 <= A < D <= 1", (a_, d_)))
    if not 0.0 < ka <= 1.0:
        raise DispersionError(must_be("ka", "in (0, 1]", ka))
    if d_ <= ka:
        return RW_MAX
    a = -1.0 / (p * ka)
    u = d_ - ka
    low = max(a_ - ka, 0.0)
    k_ssfa = (np.exp(a * u) - np.exp(a * low)) / (a * (u - low))
    if a_ >= ka:
        rw = 12.5 * k_ssfa
    else:
        rw = 12.5 * ((ka - a_) + (d_ - ka) * k_ssfa) / (d_ - a_)
    return float(min(max(rw, floor), RW_MAX))
