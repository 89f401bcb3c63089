"""SRT tests (partners.srt) on hand-built structures: each verdict and its numbers."""

from __future__ import annotations

import pytest

from partners.capital import PoolCapitalInputs, SecuritisationCapital, position_capital
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
    # the platform holds 70 of the 110 at 1250%: 63.64% > 20%
    assert t.status is Status.FAIL
    assert "63.64%" in t.detail and "70 of 110" in t.detail
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
