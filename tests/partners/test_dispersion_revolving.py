"""Risk dispersion of a revolving deal run with its replenishment profile (the loans bought
while revolving), and one VaR/ES estimator shared with ``portfolio.montecarlo.simulation``."""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from partners_fixtures import allocated_paths

from partners.dispersion import (
    LEVELS,
    disperse_paths,
    loss_measures,
    party_paths,
    path_loss,
    securitise,
)
from partners.registry import PLATFORM_ID
from portfolio.montecarlo.paths import PoolPaths, ReplenishmentProfile
from portfolio.montecarlo.simulation import loss_distribution, simulate
from tranching.analytics import tranche_table
from tranching.deal import deal_from_dict
from tranching.revolving import replenishment_for
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
DEAL_FILE = ROOT / "examples" / "deal_cn_consumer.toml"  # 12-month revolving period
AS_OF = dt.date(2026, 11, 1)
N_PATHS, SEED = 300, 21


def _deal(fixed_fee_scale: float = 1.0, call: bool = True):
    doc = tomllib.loads(DEAL_FILE.read_text(encoding="utf-8"))
    if not call:
        del doc["deal"]["clean_up_call"]
    for fee in doc["fees"]:
        if fee["kind"] == "fixed":
            fee["amount"] *= fixed_fee_scale
    return deal_from_dict(doc, str(DEAL_FILE))


@pytest.fixture(scope="module")
def run():
    loans, a, risk, ass, paths = allocated_paths(600, N_PATHS, SEED, AS_OF)
    deal = _deal()
    profile = replenishment_for(deal, loans, ass, N_PATHS, SEED)
    assert profile is not None and deal.revolving_months == 12
    return loans, a, risk, ass, paths, deal, profile


def _atol(x: np.ndarray) -> float:
    return 1e-6 * max(1.0, float(np.abs(x).max()))


def test_holders_bear_the_collateral_net_loss_of_the_waterfall_run_with_the_profile(run):
    _, _, _, _, paths, deal, profile = run
    # each vintage's loss per unit of initial balance (a purchase of P at month s loses
    # P × unit[s], the vintage bought that month: it saw the factor of months s + 1 …)
    assert profile.n_vintages == deal.revolving_months
    unit = np.stack([(profile.vintage(m).default.sum(axis=1)
                      - profile.vintage(m).recovery.sum(axis=1)) / profile.initial_balance
                     for m in range(profile.n_vintages)], axis=1)  # (n_paths, n_vintages)
    for p in (paths, party_paths(paths, PLATFORM_ID)):
        for d in (deal, _deal(call=False)):
            s = securitise(d, p, profile)
            res = run_waterfall(d, p, replenishment=profile)
            assert res.purchases.sum() > 0  # the deal did buy new loans
            # Σ positions + residual holder's absorbed part = the collateral net loss per path
            by_holder = s.losses_by_holder()
            total = sum(by_holder.values()) - s.called_loss
            np.testing.assert_allclose(total, s.collateral_loss, rtol=0,
                                       atol=_atol(s.collateral_loss))
            # collateral net loss = the waterfall's cnl at the last month × initial balance
            np.testing.assert_allclose(s.collateral_loss,
                                       res.metrics["cnl"][:, -1] * p.initial_balance, rtol=1e-12)
            # independent of the waterfall's bookkeeping: the securitised loans over their life
            # = pool loss + Σ_s purchases_s × unit_s; the caller's part adds up to it
            bought = res.purchases[:, : profile.n_vintages]  # no purchase after revolving
            assert np.all(res.purchases[:, profile.n_vintages:] == 0)
            life = path_loss(p) + (bought * unit[:, : bought.shape[1]]).sum(axis=1)
            np.testing.assert_allclose(sum(by_holder.values()), life, rtol=0, atol=_atol(life))
            np.testing.assert_allclose(s.purchased_loss, life - path_loss(p), rtol=0,
                                       atol=_atol(life))
            assert s.purchased_loss.mean() > 0
            called = res.call_proceeds.sum(axis=1) > 0
            if d.clean_up_call is None:
                # no call: the deal held every loan for life, the collateral loss is all of it
                assert not called.any()
                np.testing.assert_allclose(s.collateral_loss, life, rtol=0, atol=_atol(life))
                np.testing.assert_allclose(s.called_loss, 0.0, atol=_atol(life))
            else:
                assert called.any()  # the example deal is called: the caller's part shows
                assert np.abs(s.called_loss[called]).max() > 0


def test_tranche_els_equal_the_tranche_table_with_the_same_profile(run):
    _, _, _, _, paths, deal, profile = run
    for p in (paths, party_paths(paths, PLATFORM_ID)):
        s = securitise(deal, p, profile)
        table = tranche_table(deal, run_waterfall(deal, p, replenishment=profile), p).set_index(
            "tranche")
        for name in deal.tranche_names:
            el = sum(pos.loss for pos in s.positions if pos.tranche == name).mean()
            assert el == pytest.approx(table.loc[name, "el"] * table.loc[name, "size"],
                                       rel=1e-12, abs=1e-9)
    # and they are not the scaling approximation's (the profile is used)
    old = securitise(deal, paths)
    assert not np.allclose(old.collateral_loss, securitise(deal, paths, profile).collateral_loss)


def test_per_unit_profile_fits_a_partys_share_of_the_pool(run):
    """The waterfall reads the profile per unit of its initial balance: a profile in other
    units gives the same result, and a uniform 30% share of every loan (with the fixed fee
    scaled by 0.3, the one amount that is not a share of the pool) gives 0.3 × the pool's."""
    loans, _, _, ass, _, deal, _ = run
    paths = simulate(loans, ass, 100, 4, shares=np.tile([0.3, 0.7], (len(loans), 1)),
                     party_ids=(PLATFORM_ID, "p1"))
    prof = replenishment_for(deal, loans, ass, 100, 4)
    a = securitise(deal, paths, prof)
    names = ("balance_bop", "interest", "scheduled_principal", "prepayment", "default",
             "recovery", "balance_eop")

    def tripled(v: PoolPaths) -> dict:
        return {"dates": v.dates, "initial_balance": 3.0 * v.initial_balance,
                "seed_entropy": v.seed_entropy, **{n: 3.0 * getattr(v, n) for n in names}}

    assert isinstance(prof, ReplenishmentProfile)
    b = securitise(deal, paths, ReplenishmentProfile(
        **tripled(prof), later=tuple(PoolPaths(**tripled(v)) for v in prof.later)))
    np.testing.assert_allclose(b.collateral_loss, a.collateral_loss, rtol=1e-9)
    part = securitise(_deal(0.3), party_paths(paths, PLATFORM_ID), prof)
    assert part.pool_balance == pytest.approx(0.3 * a.pool_balance, rel=1e-12)
    np.testing.assert_allclose(part.collateral_loss, 0.3 * a.collateral_loss, rtol=1e-7,
                               atol=_atol(a.collateral_loss))
    np.testing.assert_allclose(part.purchased_loss, 0.3 * a.purchased_loss, rtol=1e-7,
                               atol=_atol(a.purchased_loss))
    for x, y in zip(part.positions, a.positions, strict=True):
        np.testing.assert_allclose(x.loss, 0.3 * y.loss, rtol=1e-7, atol=_atol(y.loss))


def test_dispersion_with_a_revolving_deal_adds_up_and_keeps_the_pool_row(run):
    loans, a, risk, _, paths, deal, profile = run
    d = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd, deal,
                       replenishment=profile)
    retained = securitise(deal, party_paths(paths, PLATFORM_ID), profile)
    assert d.total_loss is not None
    np.testing.assert_allclose(d.total_loss, d.pool_loss + retained.purchased_loss, rtol=0,
                               atol=_atol(d.total_loss))
    total = np.sum(list(d.party_losses.values()), axis=0)
    np.testing.assert_allclose(total, d.total_loss, rtol=0, atol=_atol(d.total_loss))
    # the pool row is the Simulation page's: loss_distribution of the same paths, exactly
    stats = loss_distribution(paths)
    m = d.pool_measures
    assert m.el == stats.el
    for lvl, var, es in ((0.99, m.var_99, m.es_99), (0.999, m.var_999, m.es_999)):
        k = stats.levels.index(lvl)
        assert var == stats.var[k] and es == stats.es[k]
    # the investors' loss is their tranche positions' loss
    inv = sum(p.loss for p in retained.positions if p.holder == "investors")
    np.testing.assert_allclose(d.party_losses["investors"], inv)


def test_headline_compares_a_revolving_deal_with_every_loan_it_held(run):
    # The baseline of a securitisation headline is the platform holding everything the deal
    # held: the pool and the loans its collections bought. The platform, as residual holder,
    # bears at most that, so the share that left lies in [0, 1]; against the pool alone the
    # purchases' losses would make it negative.
    loans, a, risk, _, paths, deal, profile = run
    d = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd, deal,
                       replenishment=profile)
    whole = securitise(deal, paths, profile)
    assert np.any(whole.purchased_loss > 0)
    head = {h.scenario: h for h in d.headlines}
    plat = whole.losses_by_holder()[PLATFORM_ID]
    baseline = loss_distribution(np.asarray(d.pool_loss) + whole.purchased_loss).el
    sec = head["securitisation"]
    assert sec.el_share_left == pytest.approx(1.0 - plat.mean() / baseline, rel=1e-12)
    for h in head.values():
        assert -1e-9 <= h.el_share_left <= 1.0 + 1e-9


def test_loss_measures_are_loss_distributions_estimators():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 100.0, size=4321)
    m = loss_measures(x)
    stats = loss_distribution(x, LEVELS)
    assert (m.el, m.var_99, m.es_99, m.var_999, m.es_999) == (
        stats.el, stats.var[0], stats.es[0], stats.var[1], stats.es[1])
    # by hand: VaR_α = the ⌈nα⌉-th smallest loss; ES_α = the mean of the n(1−α) largest,
    # the boundary loss weighted by the fractional part
    xs, n = np.sort(x), x.size
    for lvl, var, es in ((0.99, m.var_99, m.es_99), (0.999, m.var_999, m.es_999)):
        assert var == xs[math.ceil(n * lvl) - 1]
        tail = n * (1 - lvl)
        whole = math.floor(tail)
        hand = (xs[n - whole:].sum() + (tail - whole) * xs[n - whole - 1]) / tail
        assert es == pytest.approx(hand, rel=1e-12)
