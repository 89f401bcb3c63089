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


# --------------------------------------------------------------------------- retail IRB floors
from partners.capital import (  # noqa: E402
    ErbaRow,
    Framework,
    OriginatorApproach,
    PoolCapitalInputs,
    RetailClass,
    RetailIrb,
    SecApproach,
    SecuritisationCapital,
    irb_retail_el_rate,
    irb_retail_k,
    pool_k_irb,
    pool_k_irb_per_loan,
    position_capital,
    sec_erba_risk_weight,
    sec_irba_p,
    sec_irba_risk_weight,
)

BASEL3 = RetailIrb(Framework.BASEL3, RetailClass.OTHER)
BASEL2 = RetailIrb(Framework.BASEL2, RetailClass.OTHER)
QRRE = RetailIrb(Framework.BASEL3, RetailClass.QRRE_REVOLVER)


def _k_by_formula(pd: float, lgd: float, r: float) -> float:
    """The framework's formula written out with scipy.stats.norm (CRE31.14-31.16)."""
    return lgd * (norm.cdf((norm.ppf(pd) + math.sqrt(r) * norm.ppf(0.999)) / math.sqrt(1 - r)) - pd)


def test_basel3_other_retail_pd_floor_is_five_basis_points():
    # hand case 1: PD 0.03% is floored to 0.05% (CRE32.58); LGD 45% is above the 30% floor.
    # Basel II Annex 5, other retail, PD 0.05%, LGD 45%: RW 6.63% (published, rounded)
    rw = 12.5 * float(irb_retail_k(0.0003, 0.45, BASEL3))
    assert 100 * rw == pytest.approx(6.63, abs=0.006)
    f = (1 - math.exp(-35 * 0.0005)) / (1 - math.exp(-35))
    r = 0.03 * f + 0.16 * (1 - f)
    assert float(irb_retail_k(0.0003, 0.45, BASEL3)) == pytest.approx(_k_by_formula(0.0005, 0.45, r),
                                                                     rel=1e-12)
    # Basel II keeps its own 0.03% floor: Annex 5 PD 0.03%, LGD 45% = 4.45%
    assert 100 * 12.5 * float(irb_retail_k(0.0003, 0.45, BASEL2)) == pytest.approx(4.45, abs=0.006)


def test_basel3_unsecured_other_retail_lgd_floor_is_thirty_percent():
    # hand case 2: PD 1%, LGD 20% → LGD 30% (CRE32.58). K is linear in LGD, so
    # RW = Annex 5's 45.77% (PD 1%, LGD 45%) × 30/45 = 30.513%; by the formula 30.5151%
    rw = 12.5 * float(irb_retail_k(0.01, 0.20, BASEL3))
    assert 100 * rw == pytest.approx(45.77 * 30 / 45, abs=0.005)
    assert rw == pytest.approx(12.5 * float(irb_retail_other_k(0.01, 0.30)), rel=1e-12)
    # Basel II: no LGD floor, the 20% stands
    assert float(irb_retail_k(0.01, 0.20, BASEL2)) == pytest.approx(
        float(irb_retail_other_k(0.01, 0.20)), rel=1e-12)


def test_qrre_revolver_floors_and_correlation_by_hand():
    # hand case 3: QRRE revolver, PD 0.05% → 0.10%, LGD 40% → 50%, R = 0.04 (CRE31.15):
    # Φ⁻¹(0.001) = −3.090232; x = (−3.090232 + 0.2 × 3.090232) / √0.96 = −2.523164;
    # Φ(x) = 0.0058152; K = 0.5 × (0.0058152 − 0.001) = 0.0024076; RW = 3.0095%
    k = float(irb_retail_k(0.0005, 0.40, QRRE))
    assert k == pytest.approx(0.0024076, abs=1e-7)
    assert k == pytest.approx(_k_by_formula(0.001, 0.5, 0.04), rel=1e-12)


def test_defaulted_exposure_capital_is_lgd_minus_best_estimate_el():
    # hand case 4: defaulted, LGD 60%, best-estimate EL 45% → K = 0.15, RW 187.5%;
    # EL_BE above LGD → K = 0; a defaulted LGD below the 30% floor is floored first
    k = irb_retail_k(np.array([1.0, 1.0, 0.02]), np.array([0.6, 0.6, 0.6]), BASEL3,
                     defaulted=np.array([True, True, False]),
                     el_best_estimate=np.array([0.45, 0.70, 0.0]))
    assert k[0] == pytest.approx(0.15, abs=1e-15)
    assert k[1] == 0.0
    assert k[2] == pytest.approx(float(irb_retail_other_k(0.02, 0.6)), rel=1e-12)
    assert float(irb_retail_k(1.0, 0.2, BASEL3, el_best_estimate=0.1)) == pytest.approx(0.2)


def test_retail_irb_refuses_bad_pd_and_lgd():
    with pytest.raises(DispersionError, match="pd"):
        irb_retail_k(1.5, 0.5)
    with pytest.raises(DispersionError, match="lgd"):
        irb_retail_k(0.01, float("nan"))


# --------------------------------------------------------------------------- securitisation
def test_k_irb_includes_the_expected_loss_by_hand():
    # CRE44.2: K_IRB = Σ (K_i + PD_i·LGD_i)·EAD_i / Σ EAD_i. Two loans, 100 at PD 5% and 300 at
    # PD 10%, LGD 85%: (100·(K(5%) + 0.0425) + 300·(K(10%) + 0.085)) / 400
    k5, k10 = (float(irb_retail_other_k(p, 0.85)) for p in (0.05, 0.10))
    want = (100 * (k5 + 0.05 * 0.85) + 300 * (k10 + 0.10 * 0.85)) / 400
    got = pool_k_irb(np.array([100.0, 300.0]), np.array([0.05, 0.10]), np.array([0.85, 0.85]))
    assert got.k_irb == pytest.approx(want, rel=1e-12)
    assert got.k_irb == pytest.approx(0.185080355, abs=1e-9)
    assert got.lgd == pytest.approx(0.85)
    assert float(irb_retail_el_rate(0.0001, 0.1, BASEL3)) == pytest.approx(0.0005 * 0.3)


@pytest.mark.parametrize("method", [RetailIrb(), BASEL3])
def test_pool_k_irb_from_its_per_loan_figures_is_the_same(method: RetailIrb) -> None:
    """The dispersion weighs each loan's K + EL and floored LGD (pool_k_irb_per_loan, once)
    by two scenarios' exposures: the same bytes as pool_k_irb computing them itself, and
    the by-hand case above."""
    rng = np.random.default_rng(5)
    pd = rng.choice([0.0, 0.0001, 0.004, 0.03, 0.2, 1.0], 5_000)
    lgd = rng.choice([0.0, 0.05, 0.45, 0.85], 5_000)
    per_loan = pool_k_irb_per_loan(pd, lgd, method)
    for weights in (rng.random(5_000) * 1e4, np.where(rng.random(5_000) < 0.5, 0.0, 7.0)):
        want = pool_k_irb(weights, pd, lgd, method)
        got = pool_k_irb(weights, pd, lgd, method, per_loan=per_loan)
        assert np.float64(got.k_irb).tobytes() == np.float64(want.k_irb).tobytes()
        assert np.float64(got.lgd).tobytes() == np.float64(want.lgd).tobytes()
    two = pool_k_irb_per_loan(np.array([0.05, 0.10]), np.array([0.85, 0.85]))
    got2 = pool_k_irb(np.array([100.0, 300.0]), np.array([0.05, 0.10]), np.array([0.85, 0.85]),
                      per_loan=two)
    assert got2.k_irb == pytest.approx(0.185080355, abs=1e-9)


def test_sec_irba_p_by_hand():
    # CRE44.5 retail: senior p = −7.48·K_IRB + 0.71·LGD + 0.24·M_T; non-senior
    # −5.78·K_IRB + 0.55·LGD + 0.27·M_T; floor 0.3. K_IRB 0.04, LGD 0.9, M_T 3:
    # senior −0.2992 + 0.639 + 0.72 = 1.0598; non-senior −0.2312 + 0.495 + 0.81 = 1.0738;
    # STC senior: max(0.3, 0.5 × 1.0598) = 0.5299
    assert sec_irba_p(0.04, 0.9, 3.0, senior=True) == pytest.approx(1.0598, abs=1e-12)
    assert sec_irba_p(0.04, 0.9, 3.0, senior=False) == pytest.approx(1.0738, abs=1e-12)
    assert sec_irba_p(0.04, 0.9, 3.0, senior=True, sts=True) == pytest.approx(0.5299, abs=1e-12)
    # K_IRB 0.13, LGD 0.8, M_T 1: senior −0.9724 + 0.568 + 0.24 = −0.1644 → the 0.3 floor
    assert sec_irba_p(0.13, 0.8, 1.0, senior=True) == 0.3
    # M_T is bounded to [1, 5]: 9 years counts as 5
    assert sec_irba_p(0.04, 0.9, 9.0, senior=True) == pytest.approx(
        sec_irba_p(0.04, 0.9, 5.0, senior=True))
    # wholesale, senior, granular (N = 100): 0 + 3.56/100 − 1.85·0.04 + 0.55·0.45 + 0.07·2.5
    assert sec_irba_p(0.04, 0.45, 2.5, senior=True, retail=False, n_effective=100) == \
        pytest.approx(0.0356 - 0.074 + 0.2475 + 0.175, abs=1e-12)


# SEC-IRBA around K_IRB = 0.13 with p = 0.3 (the floor, as for the demo's retail pool):
# a = −1/(p·K_IRB) = −1/0.039 = −25.641026.
@pytest.mark.parametrize(("a_", "d_", "want", "how"), [
    # D ≤ K_IRB: 1250%
    (0.07, 0.11, 12.5, "D = 0.11 <= K_IRB"),
    # straddling: u = 0.87, l = 0, K_SSFA = (e^(−22.30769) − 1)/(−22.30769) = 0.044827586;
    # RW = 12.5·[(0.13 − 0.11) + 0.87·0.044827586]/0.89 = 0.828652
    (0.11, 1.0, 12.5 * (0.02 + 0.87 * 0.04482758619770396) / 0.89, "A < K_IRB < D"),
    # thin tranche just above K_IRB: u = 0.02, l = 0, K_SSFA = (e^(−0.512821) − 1)/(−0.512821)
    # = 0.78233169; RW = 12.5 × 0.78233169 = 9.779146
    (0.13, 0.15, 12.5 * 0.7823316936854214, "A = K_IRB"),
    # straddling, thin: u = 0.01, l = 0, K_SSFA = 0.88208469;
    # RW = 12.5·[0.01 + 0.01·0.88208469]/0.02 = 11.763029
    (0.12, 0.14, 12.5 * (0.01 + 0.01 * 0.8820846948176767) / 0.02, "thin straddle"),
    # senior above K_IRB: u = 0.87, l = 0.07, K_SSFA = (e^(−22.30769) − e^(−1.794872))/(−20.512821)
    # = 0.0080997517 → 12.5 × that = 10.12% → the 15% floor
    (0.20, 1.0, 0.15, "15% floor"),
])
def test_sec_irba_around_k_irb_by_hand(a_, d_, want, how):
    assert sec_irba_risk_weight(a_, d_, 0.13, 0.3) == pytest.approx(want, abs=1e-6), how


def test_sec_irba_sts_senior_floor_is_ten_percent():
    # same senior tranche as above with STC: 10.12% stands above the 10% floor
    assert sec_irba_risk_weight(0.20, 1.0, 0.13, 0.3, senior=True, sts=True) == pytest.approx(
        12.5 * 0.008099751655048656, abs=1e-6)
    # a thicker cushion: below 10% → 10%
    assert sec_irba_risk_weight(0.40, 1.0, 0.13, 0.3, senior=True, sts=True) == 0.10


@pytest.mark.parametrize(("a_", "d_", "want"), [
    # SEC-SA, K_A = 0.06, p = 1, a = −16.666667
    (0.0, 0.06, 12.5),  # D ≤ K_A
    # straddling: u = 0.01, l = 0, K_SSFA = (e^(−0.166667) − 1)/(−0.166667) = 0.92110965;
    # RW = 12.5·[(0.06 − 0.05) + 0.01·0.92110965]/0.02 = 12.006935
    (0.05, 0.07, 12.5 * (0.01 + 0.01 * 0.9211096506563157) / 0.02),
    # A = K_A: u = 0.04, K_SSFA = (e^(−0.666667) − 1)/(−0.666667) = 0.72987432; RW = 9.123429
    (0.06, 0.10, 12.5 * 0.729874321451112),
    (0.30, 1.0, 0.15),  # senior: the 15% floor
])
def test_sec_sa_around_ka_by_hand(a_, d_, want):
    assert sec_sa_risk_weight(a_, d_, 0.06) == pytest.approx(want, abs=1e-6)


def test_sec_erba_interpolates_maturity_and_thickness_by_hand():
    table = {"A": ErbaRow(0.60, 1.00, 1.00, 2.00), "B": ErbaRow(0.05, 0.08, 0.10, 0.12)}
    # non-senior, M_T 3: 1.00 + (2.00 − 1.00)·(3 − 1)/4 = 1.50; thickness 0.04 → × 0.96 = 1.44
    assert sec_erba_risk_weight("A", table, 0.07, 0.11, 3.0, senior=False) == pytest.approx(1.44)
    # senior, M_T 2: 0.60 + 0.40/4 = 0.70 (no thickness adjustment)
    assert sec_erba_risk_weight("A", table, 0.11, 1.0, 2.0, senior=True) == pytest.approx(0.70)
    # non-senior thick (T = 0.8 → capped at 50%): 0.10 × 0.5 = 0.05 → the 15% floor
    assert sec_erba_risk_weight("B", table, 0.1, 0.9, 1.0, senior=False) == 0.15
    with pytest.raises(DispersionError, match="rating"):
        sec_erba_risk_weight("C", table, 0.0, 0.1, 1.0, senior=False)


def test_the_hierarchy_picks_by_the_originators_approach_with_an_override():
    pool = PoolCapitalInputs(k_irb=0.13, lgd=0.8)
    irb = SecuritisationCapital()
    pos = position_capital("B", "investors", 0.07, 0.11, 40.0, senior=False, pool=pool, method=irb)
    assert pos.approach is SecApproach.IRBA and pos.risk_weight == 12.5
    assert pos.capital == pytest.approx(0.08 * 12.5 * 40.0)  # the whole position
    sa = SecuritisationCapital(originator=OriginatorApproach.SA)
    pos = position_capital("B", "investors", 0.07, 0.11, 40.0, senior=False, pool=pool, method=sa)
    # SEC-SA with K_A = 0.06: u = 0.04, l = 0.01: K_SSFA = 0.617826 (the hand case above)
    assert pos.approach is SecApproach.SA and pos.risk_weight == pytest.approx(12.5 * 0.617826,
                                                                               abs=1e-5)
    rated = SecuritisationCapital(originator=OriginatorApproach.SA, ratings={"B": "A"},
                                  erba_table={"A": ErbaRow(0.6, 1.0, 1.0, 2.0)})
    pos = position_capital("B", "investors", 0.07, 0.11, 40.0, senior=False, pool=pool,
                           method=rated)
    assert pos.approach is SecApproach.ERBA and pos.risk_weight == pytest.approx(0.96)
    forced = SecuritisationCapital(override=SecApproach.SA)
    assert position_capital("B", "x", 0.07, 0.11, 1.0, senior=False, pool=pool,
                            method=forced).approach is SecApproach.SA
    sts = SecuritisationCapital(originator=OriginatorApproach.SA, sts=True)
    pos = position_capital("A", "x", 0.11, 1.0, 1.0, senior=True, pool=pool, method=sts)
    assert pos.p == 0.5 and pos.risk_weight == 0.10
