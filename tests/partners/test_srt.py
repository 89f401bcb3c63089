"""SRT tests (partners.srt) on hand-built structures: each verdict and its numbers."""

from __future__ import annotations

import math

import pytest

from partners.capital import (
    PoolCapitalInputs,
    SecApproach,
    SecuritisationCapital,
    position_capital,
)
from partners.srt import (
    SrtPolicy,
    Status,
    assess,
    cn_retention_test,
    first_loss_test,
    mezzanine_test,
)

POOL = PoolCapitalInputs(k_irb=0.13, lgd=0.8)


def _positions(layout, pool=POOL):
    """layout: (tranche, holder, A, D, amount, senior)."""
    return [position_capital(t, h, a, d, amt, senior=s, pool=pool, method=SecuritisationCapital())
            for t, h, a, d, amt, s in layout]


# the demo's CN deal on a pool of 1,000: A 89% (investors), B 4% (investors), Sub 7% (platform)
CN = [("A", "investors", 0.11, 1.0, 890.0, True), ("B", "investors", 0.07, 0.11, 40.0, False),
      ("Sub", "platform", 0.0, 0.07, 70.0, False)]


def test_cn_deal_fails_the_eu_first_loss_test_with_its_numbers():
    pos = _positions(CN)
    # K_IRB 0.13 > D of B (0.11): B and Sub are at 1250%, so there is no mezzanine position
    assert mezzanine_test(pos, "platform") is None
    t = first_loss_test(pos, "platform", expected_loss=35.0)
    # the platform holds the whole first loss tranche (Sub, 70 of 70): 100% > 20%
    assert t.status is Status.FAIL
    assert "100.00%" in t.detail and "70 of 70" in t.detail
    a = assess("securitisation", pos, originator="platform", tail_share_left=0.0,
               expected_loss=35.0, clean_up_call=0.10, policy=SrtPolicy(eu_tests=True))
    assert not a.passed and a.reasons()[0].startswith("CRR 244(2)(b)")


def test_the_basel_tail_test_and_the_cn_retention():
    pos = _positions(CN)
    a = assess("securitisation", pos, originator="platform", tail_share_left=0.0,
               expected_loss=35.0, clean_up_call=0.10)
    assert not a.passed
    assert [t.test_id for t in a.tests if t.status is Status.FAIL] == ["CRE40 (1)"]
    assert a.reasons()[0].startswith("CRE40 (1) (significant credit risk transferred")
    # China's 5%: the platform holds the whole Sub, 70 of the 1,000 issued (7%) → pass
    cn = cn_retention_test(pos, "platform")
    assert cn.status is Status.PASS and "7.00%" in cn.detail
    ok = assess("securitisation", pos, originator="platform", tail_share_left=0.6,
                expected_loss=35.0, clean_up_call=0.10)
    assert ok.passed and ok.reasons() == []


def test_mezzanine_test_by_hand():
    # K_IRB 0.07: Sub [0, 0.07) at 1250%; B [0.07, 0.11) above K_IRB, a mezzanine position
    pool = PoolCapitalInputs(k_irb=0.07, lgd=0.8)
    layout = [("A", "investors", 0.11, 1.0, 890.0, True), ("B", "platform", 0.07, 0.11, 10.0, False),
              ("B", "investors", 0.07, 0.11, 30.0, False), ("Sub", "investors", 0.0, 0.07, 70.0, False)]
    pos = _positions(layout, pool)
    t = mezzanine_test(pos, "platform")
    # RWA in proportion to the amounts of the same tranche: 10 / 40 = 25% ≤ 50%
    assert t is not None and t.status is Status.PASS and "25.00%" in t.detail
    layout[1] = ("B", "platform", 0.07, 0.11, 30.0, False)
    layout[2] = ("B", "investors", 0.07, 0.11, 10.0, False)
    assert mezzanine_test(_positions(layout, pool), "platform").status is Status.FAIL


def test_shortfall_undertaking_and_a_wide_clean_up_call_fail():
    pos = _positions(CN)
    a = assess("securitisation", pos, originator="platform", tail_share_left=0.9,
               expected_loss=35.0, clean_up_call=0.15,
               originator_support=("shortfall undertaking by platform",))
    ids = [t.test_id for t in a.tests if t.status is Status.FAIL]
    assert ids == ["CRE40 (6)", "CRE40 (5)"]
    assert "15.00%" in a.reasons()[1]


def test_cn_retention_vertical_and_too_little():
    # vertical 5% of every tranche passes; 4% first loss fails
    vert = [("A", "platform", 0.11, 1.0, 44.5, True), ("A", "investors", 0.11, 1.0, 845.5, True),
            ("Sub", "platform", 0.0, 0.11, 5.5, False), ("Sub", "investors", 0.0, 0.11, 104.5, False)]
    assert cn_retention_test(_positions(vert), "platform").status is Status.PASS
    thin = [("A", "investors", 0.04, 1.0, 960.0, True), ("Sub", "platform", 0.0, 0.04, 40.0, False)]
    t = cn_retention_test(_positions(thin), "platform")
    assert t.status is Status.FAIL and "4.00%" in t.detail


@pytest.mark.parametrize("declared", [True, False])
def test_legal_conditions_are_declared_not_computed(declared):
    a = assess("x", _positions(CN), originator="platform", tail_share_left=0.9, expected_loss=1.0,
               clean_up_call=None, policy=SrtPolicy(true_sale=declared))
    legal = next(t for t in a.tests if t.test_id.startswith("CRE40 (2)"))
    assert legal.status is (Status.DECLARED if declared else Status.FAIL)
    assert a.passed is declared


def test_a_shortfall_undertaking_by_the_platform_is_named_as_credit_support():
    from types import SimpleNamespace

    from partners.dispersion import originator_support

    su = SimpleNamespace(provider="platform", tranches=("A", "B"), cap=0.05)
    assert originator_support(SimpleNamespace(shortfall_undertaking=su)) == (
        "shortfall undertaking by platform on A, B up to 5.00% of the initial pool",)
    # a third party's guarantee is not the originator's support; no undertaking, nothing
    other = SimpleNamespace(provider="guarantor", tranches=("A",), cap=0.05)
    assert originator_support(SimpleNamespace(shortfall_undertaking=other)) == ()
    assert originator_support(SimpleNamespace(shortfall_undertaking=None)) == ()
    assert originator_support(SimpleNamespace()) == ()
    a = assess("securitisation", _positions(CN), originator="platform", tail_share_left=0.9,
               expected_loss=35.0, clean_up_call=0.10,
               originator_support=originator_support(SimpleNamespace(shortfall_undertaking=su)))
    assert not a.passed and "shortfall undertaking by platform on A, B" in a.reasons()[0]


# The EU tests as Regulation (EU) 2017/2401 amended the CRR (in force from 1 January 2019; the
# consolidated Regulation 575/2013): Art. 244(2)(b) counts the originator's share of "the
# exposure value of the first loss tranche", not of every position at 1250% (the pre-2019
# text), and Art. 242(18) defines a mezzanine position as subordinated to the senior position,
# MORE SENIOR THAN THE FIRST LOSS TRANCHE (Art. 242(17): the most subordinated tranche, the
# first to bear losses) and risk-weighted below 1250%. Hand calculations on the CN layout:


def test_eu_first_loss_test_counts_the_first_loss_tranche_not_every_1250_position():
    # SEC-IRBA, K_IRB 0.13: B [0.07, 0.11) and Sub [0, 0.07) at 1250%, no mezzanine position.
    # The first loss tranche is Sub (70), all of it the platform's: 70 / 70 = 100% > 20%
    # (the pre-2019 reading, 70 of the 110 at 1250% = 63.64%, is not the rule in force)
    t = first_loss_test(_positions(CN), "platform", expected_loss=35.0)
    assert t.status is Status.FAIL
    assert "100.00%" in t.detail and "70 of 70" in t.detail and "(Sub" in t.detail
    assert "2.00×" in t.detail  # the first loss tranche's 70 against the EL of 35
    # the platform holds B (at 1250%), investors the whole Sub: 0% of the first loss tranche,
    # which passes (the pre-2019 reading: 40 of 110 = 36.36%, a failure)
    swapped = [("A", "investors", 0.11, 1.0, 890.0, True), ("B", "platform", 0.07, 0.11, 40.0, False),
               ("Sub", "investors", 0.0, 0.07, 70.0, False)]
    t = first_loss_test(_positions(swapped), "platform", expected_loss=35.0)
    assert t.status is Status.PASS and "0.00%" in t.detail and "0 of 70" in t.detail
    # a first loss tranche no larger than the expected loss fails whoever holds it
    assert first_loss_test(_positions(swapped), "platform", expected_loss=70.0).status \
        is Status.FAIL


def test_eu_first_loss_tranche_includes_the_initial_oc_below_the_subordinated_class():
    # OC [0, 0.02) held by the Sub holder (as partners.dispersion builds it), Sub [0.02, 0.07)
    layout = [("A", "investors", 0.11, 1.0, 890.0, True), ("B", "investors", 0.07, 0.11, 40.0, False),
              ("Sub", "platform", 0.02, 0.07, 50.0, False), ("OC", "platform", 0.0, 0.02, 20.0, False)]
    t = first_loss_test(_positions(layout), "platform", expected_loss=35.0)
    assert "70 of 70" in t.detail and "OC, Sub" in t.detail


def test_eu_mezzanine_test_leaves_out_the_first_loss_tranche():
    # SEC-SA with K_A = 0.06 (CRE41 / CRR Art. 261; p = 1): Sub [0, 0.07) straddles K_A, so its
    # risk weight is 12.5·[(0.06 − 0) + (0.07 − 0.06)·K_SSFA] / 0.07 = 1235.91% < 1250%, with
    # K_SSFA = (e^(a·0.01) − 1) / (a·0.01), a = −1/0.06; B [0.07, 0.11) is at 772.28%. Sub is the
    # first loss tranche, so it is not a mezzanine position (Art. 242(18)) even below 1250%:
    # the mezzanine positions are B alone, none of it the platform's → 0% ≤ 50%, pass. (Counting
    # Sub gave 73.69% of the mezzanine RWA and a failure.)
    sa = SecuritisationCapital(override=SecApproach.SA)
    pos = [position_capital(t, h, a, d, amt, senior=s, pool=POOL, method=sa)
           for t, h, a, d, amt, s in CN]
    sub = next(p for p in pos if p.tranche == "Sub")
    a_ = -1.0 / 0.06
    k_ssfa = (math.exp(a_ * 0.01) - 1.0) / (a_ * 0.01)
    assert sub.risk_weight == pytest.approx(12.5 * (0.06 + 0.01 * k_ssfa) / 0.07, rel=1e-12)
    assert sub.risk_weight < 12.5
    t = mezzanine_test(pos, "platform")
    assert t is not None and t.status is Status.PASS
    assert "0.00%" in t.detail and "(B:" in t.detail and "Sub" not in t.detail
    # the platform holding B instead: 100% of the mezzanine RWA, a failure
    swapped = [("A", "investors", 0.11, 1.0, 890.0, True), ("B", "platform", 0.07, 0.11, 40.0, False),
               ("Sub", "investors", 0.0, 0.07, 70.0, False)]
    pos = [position_capital(t, h, a, d, amt, senior=s, pool=POOL, method=sa)
           for t, h, a, d, amt, s in swapped]
    t = mezzanine_test(pos, "platform")
    assert t is not None and t.status is Status.FAIL and "100.00%" in t.detail
