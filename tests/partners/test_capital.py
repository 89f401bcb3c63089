"""Capital: Basel retail IRB against Basel II Annex 5; SEC-SA against a published worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from partners.capital import (
    irb_retail_other_k,
    irb_retail_other_rw,
    retail_other_correlation,
    sec_sa_ka,
    sec_sa_risk_weight,
)
from partners.errors import DispersionError

# Basel II (June 2006 comprehensive version), Annex 5 "Illustrative IRB risk weights",
# column "Other retail exposures", LGD 45% and LGD 85%: (PD, RW 45%, RW 85%) in percent.
ANNEX5_OTHER_RETAIL = [
    (0.03, 4.45, 8.41),
    (0.05, 6.63, 12.52),
    (0.10, 11.16, 21.08),
    (0.25, 21.15, 39.96),
    (0.40, 28.42, 53.69),
    (0.50, 32.36, 61.13),
    (0.75, 40.10, 75.74),
    (1.00, 45.77, 86.46),
    (1.30, 50.80, 95.95),
    (1.50, 53.37, 100.81),
    (2.00, 57.99, 109.53),
    (2.50, 60.90, 115.03),
]


@pytest.mark.parametrize(("pd_pct", "rw45", "rw85"), ANNEX5_OTHER_RETAIL)
def test_irb_other_retail_matches_basel_ii_annex_5(pd_pct, rw45, rw85):
    pd = pd_pct / 100
    # the table is rounded to 0.01 percentage points
    assert 100 * float(irb_retail_other_rw(pd, 0.45)) == pytest.approx(rw45, abs=0.006)
    assert 100 * float(irb_retail_other_rw(pd, 0.85)) == pytest.approx(rw85, abs=0.006)


def test_irb_formula_written_out_for_pd_1pct():
    # f = (1 − e^−0.35)/(1 − e^−35) = 0.295312; R = 0.03·f + 0.16·(1 − f) = 0.121609
    f = (1 - math.exp(-0.35)) / (1 - math.exp(-35))
    r = 0.03 * f + 0.16 * (1 - f)
    assert float(retail_other_correlation(0.01)) == pytest.approx(r, rel=1e-12)
    k = 0.45 * (norm.cdf((norm.ppf(0.01) + math.sqrt(r) * norm.ppf(0.999)) / math.sqrt(1 - r)) - 0.01)
    assert float(irb_retail_other_k(0.01, 0.45)) == pytest.approx(k, rel=1e-12)
    assert 12.5 * k == pytest.approx(0.4577, abs=5e-5)


def test_irb_is_vectorised_and_monotone_in_lgd():
    pd = np.array([0.005, 0.01, 0.05])
    k1, k2 = irb_retail_other_k(pd, 0.4), irb_retail_other_k(pd, 0.8)
    assert k1.shape == (3,) and np.allclose(k2, 2 * k1)


def test_sec_sa_matches_the_published_worked_example():
    # Central Bank of the UAE, Securitisation Standards (C 52/2017 STA), "III. Example
    # Calculations, A. Standardised Approach", §§33–39 (the example of the US capital rule):
    # K_SA = 9%, W = 6% of the 99% with known status, 1% unknown; tranche A = 5%, D = 25%.
    # K_A = 0.99 × (0.94 × 0.09 + 0.06 × 0.5) + 0.01 = 0.99 × 0.1146 + 0.01 = 0.1235;
    # the published risk weight is 954%.
    ka = sec_sa_ka(0.09, 0.06, unknown_share=0.01)
    assert ka == pytest.approx(0.1235, abs=5e-5)
    assert 100 * sec_sa_risk_weight(0.05, 0.25, ka) == pytest.approx(954, abs=0.5)


def test_sec_sa_by_hand_for_a_mezzanine_above_ka():
    # Hand calculation from the CRE40/41 formulas (no published figure): K_A = 0.06 (K_SA of
    # regulatory retail, W = 0), tranche A = 7%, D = 11%.
    # a = −1/0.06 = −16.6667; u = 0.11 − 0.06 = 0.05; l = 0.07 − 0.06 = 0.01
    # K_SSFA = (e^(a·u) − e^(a·l)) / (a·(u − l)) = (e^−0.83333 − e^−0.16667) / (−16.6667 × 0.04)
    #        = (0.434598 − 0.846482) / (−0.666667) = 0.617826; RW = 12.5 × 0.617826 = 7.7228
    a = -1 / 0.06
    k = (math.exp(a * 0.05) - math.exp(a * 0.01)) / (a * 0.04)
    assert k == pytest.approx(0.617826, abs=1e-6)
    assert sec_sa_risk_weight(0.07, 0.11, 0.06) == pytest.approx(12.5 * k, rel=1e-12)


def test_sec_sa_floor_and_cap():
    assert sec_sa_risk_weight(0.0, 0.05, 0.06) == pytest.approx(12.5)  # D ≤ K_A: 1250%
    assert sec_sa_risk_weight(0.30, 1.0, 0.06) == pytest.approx(0.15)  # senior: 15% floor
    with pytest.raises(DispersionError, match="attachment/detachment"):
        sec_sa_risk_weight(0.2, 0.1, 0.06)
    with pytest.raises(DispersionError, match="unknown_share"):
        sec_sa_ka(0.06, 0.0, unknown_share=0.2)
