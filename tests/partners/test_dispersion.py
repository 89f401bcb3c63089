"""Risk dispersion: party losses add up to the pool loss; measures, HHI and headline by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from partners_fixtures import allocated_paths

from partners.capital import irb_retail_other_k
from partners.dispersion import (
    disperse,
    disperse_paths,
    hhi,
    loss_measures,
    party_paths,
    securitise,
)

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def run():
    loans, a, risk, _, paths = allocated_paths(800, 400, 21, AS_OF)
    return loans, a, risk, paths


def test_party_losses_sum_to_pool_loss_on_every_path(run):
    loans, a, risk, paths = run
    d = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd)
    total = np.sum([d.party_losses[p] for p in a.party_ids], axis=0)
    np.testing.assert_allclose(total, d.pool_loss, rtol=0, atol=1e-6 * max(1.0, d.pool_loss.max()))
    assert set(d.party_losses) == set(a.party_ids)


def test_with_a_deal_every_party_including_tranche_holders_adds_up(run):
    from tranching.deal import load_deal

    loans, a, risk, paths = run
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    d = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd, deal)
    # a revolving deal (here without a replenishment profile: the scaling approximation) holds
    # more than the pool: the parties bear the pool loss + the loss on what it bought
    retained = securitise(deal, party_paths(paths, "platform"))
    np.testing.assert_allclose(d.total_loss, d.pool_loss + retained.purchased_loss)
    total = np.sum(list(d.party_losses.values()), axis=0)
    np.testing.assert_allclose(total, d.total_loss, rtol=0, atol=1e-6 * max(1.0, d.total_loss.max()))
    assert {"investors", "platform"} <= set(d.party_losses)
    assert [h.scenario for h in d.headlines] == ["joint lending", "securitisation", "both"]
    # the platform's exposure in "both" is its tranche positions, not loans
    plat = next(p for p in d.parties if p.party_id == "platform")
    assert plat.loan_exposure == 0 and plat.tranche_exposure > 0
    # but SRT fails (the platform keeps the whole first loss, so none of the tail leaves it):
    # its retained loans stay at IRB, its positions are not charged on top, nothing released
    both = d.headlines[2]
    assert both.srt is not None and not both.srt.passed
    assert any(r.startswith("CRE40 (1)") for r in both.srt.reasons())
    assert plat.capital_sec == 0 and plat.capital_irb == pytest.approx(both.platform_capital)
    assert both.capital_released == pytest.approx(d.baseline_capital - plat.capital_irb)
    # with a policy the deal passes (no tail requirement), the positions carry the capital —
    # once the originator's shortfall undertaking of the CN example (issue 12) is taken out:
    # with it, CRE40 (6) (no credit support from the originator) fails whatever the policy
    import dataclasses

    from partners.srt import SrtPolicy

    d1 = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd, deal,
                        srt=SrtPolicy(min_tail_transferred=0.0))
    assert not d1.headlines[2].srt.passed
    assert any(r.startswith("CRE40 (6)") for r in d1.headlines[2].srt.reasons())
    unsupported = dataclasses.replace(deal, shortfall_undertaking=None)
    d2 = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd, unsupported,
                        srt=SrtPolicy(min_tail_transferred=0.0))
    plat2 = next(p for p in d2.parties if p.party_id == "platform")
    assert d2.headlines[2].srt.passed
    assert plat2.capital_irb == 0 and plat2.capital_sec > 0
    assert d2.headlines[2].platform_capital == pytest.approx(plat2.capital_sec)


def test_securitise_attachment_points_follow_seniority(run):
    from tranching.deal import load_deal

    loans, a, risk, paths = run
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")  # A 89%, B 4%, Sub 7%
    s = securitise(deal, paths)
    ad = {p.tranche: (p.attachment, p.detachment) for p in s.positions}
    assert ad["A"] == pytest.approx((0.11, 1.0))
    assert ad["B"] == pytest.approx((0.07, 0.11))
    assert ad["Sub"] == pytest.approx((0.0, 0.07))
    total = sum(s.losses_by_holder().values())
    np.testing.assert_allclose(total, s.pool_loss, atol=1e-6 * max(1.0, s.pool_loss.max()))


def test_measures_hhi_and_headline_by_hand():
    rng = np.random.default_rng(0)
    pool_loss = rng.gamma(2.0, 100.0, size=5000)
    # three loans, platform keeps 30% of each, two partners share the rest 0.5 / 0.2
    shares = np.array([[0.3, 0.5, 0.2]] * 3)
    party_loss = np.vstack([0.3 * pool_loss, 0.5 * pool_loss, 0.2 * pool_loss])
    balance = np.array([1000.0, 2000.0, 3000.0])
    pd_, lgd = np.array([0.01, 0.02, 0.03]), np.full(3, 0.8)
    d = disperse(pool_loss=pool_loss, party_ids=("platform", "p1", "p2"), party_loss=party_loss,
                 balance=balance, shares=shares, pd=pd_, lgd=lgd)
    m = loss_measures(pool_loss)
    assert m.el == pytest.approx(pool_loss.mean())
    # portfolio.montecarlo.simulation's estimators, by hand: VaR = the ⌈nα⌉-th smallest loss, ES = the
    # mean of the n(1 − α) = 50 largest losses (n = 5000)
    xs = np.sort(pool_loss)
    assert m.var_999 == xs[4994]  # the ⌈4995⌉-th smallest
    assert m.es_99 == pytest.approx(xs[-50:].mean())
    joint = d.headlines[0]
    assert joint.el_share_left == pytest.approx(0.7)  # 1 − 0.3
    assert joint.tail_share_left == pytest.approx(0.7)
    k = irb_retail_other_k(pd_, lgd)
    assert d.baseline_capital == pytest.approx(float((k * balance).sum()))
    assert joint.capital_released == pytest.approx(0.7 * d.baseline_capital)
    # HHI of partner exposures 0.5·6000 and 0.2·6000: (5/7)² + (2/7)² = 29/49
    assert d.hhi_partners == pytest.approx(29 / 49)
    assert hhi([1, 1, 1, 1]) == pytest.approx(0.25)
