"""``disperse_paths``/``securitise`` reuse the caller's waterfall run of the whole pool: the
same numbers, bit for bit, as running the waterfall inside (B1 runs it once, not twice)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from partners_fixtures import make_loans, registry_doc

from partners.allocation import allocate, loan_risk_from_table
from partners.dispersion import (
    DispersionError,
    disperse_paths,
    party_paths,
    securitise,
    securitise_totals,
    waterfall_totals,
)
from partners.registry import PLATFORM_ID, parse_registry
from portfolio.montecarlo.simulation import simulate
from portfolio.synthetic.generate import GeneratorParams, true_assumptions
from tranching.deal import load_deal
from tranching.revolving import replenishment_for
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 11, 1)
N_PATHS, SEED = 200, 8


@pytest.fixture(scope="module")
def run():
    reg = parse_registry(registry_doc())
    loans = make_loans(400, seed=3)
    alloc = allocate(loans, reg, as_of=AS_OF)
    risk = loan_risk_from_table(loans, reg.expected_loss)
    ass = true_assumptions(GeneratorParams(), 30)
    paths = simulate(loans, ass, N_PATHS, SEED, shares=alloc.shares, party_ids=alloc.party_ids)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    profile = replenishment_for(deal, loans, ass, N_PATHS, SEED)
    return loans, alloc, risk, paths, deal, profile


def _same(a, b) -> None:
    """Equal bit for bit, field by field (arrays with array_equal, NaN equal to NaN)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_dispersion_with_the_callers_waterfall_is_identical(run):
    loans, alloc, risk, paths, deal, profile = run
    wf = run_waterfall(deal, paths, replenishment=profile)
    inside = disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                            replenishment=profile)
    reused = disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                            replenishment=profile, waterfall=wf)
    _same(inside, reused)
    _same(securitise(deal, paths, profile), securitise(deal, paths, profile, waterfall=wf))


def test_a_waterfall_of_other_paths_is_refused(run):
    _, _, _, paths, deal, profile = run
    fewer = simulate(make_loans(50, seed=4), true_assumptions(GeneratorParams(), 30), 10, 1)
    other = run_waterfall(deal, fewer)
    with pytest.raises(DispersionError, match="waterfall"):
        securitise(deal, paths, profile, waterfall=other)


def _bytes(a) -> object:
    """A value's exact content: an array's dtype, shape and bytes (so -0.0 differs from +0.0
    and NaN payloads count), a dataclass's or mapping's fields in order."""
    if dataclasses.is_dataclass(a):
        return (type(a).__name__, [(f.name, _bytes(getattr(a, f.name)))
                                   for f in dataclasses.fields(a)])
    if isinstance(a, dict):
        return [(k, _bytes(v)) for k, v in a.items()]
    if isinstance(a, (tuple, list)):
        return [_bytes(x) for x in a]
    if isinstance(a, np.ndarray):
        return (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())
    return repr(a)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("with_profile", [True, False])
def test_securitise_totals_is_securitise_of_the_full_waterfall_bit_for_bit(run, threads,
                                                                        with_profile):
    """``securitise_totals`` (the waterfall recording only what the positions and the
    per-path totals are made of) = ``securitise`` on the full waterfall with the totals
    taken from it, byte for byte, on the whole pool and the platform's share, with the
    replenishment profile and with the scaling approximation."""
    _, _, _, paths, deal, profile = run
    prof = profile if with_profile else None
    for p in (paths, party_paths(paths, PLATFORM_ID)):
        full = securitise(deal, p, prof, waterfall=run_waterfall(deal, p, prof, threads=threads))
        want = dataclasses.replace(full, waterfall=None, totals=waterfall_totals(full.waterfall))
        got = securitise_totals(deal, p, prof, threads=threads)
        assert got.waterfall is None and got.totals is not None
        assert _bytes(got) == _bytes(want)


def test_the_retained_securitisation_keeps_its_waterfalls_totals(run):
    """``disperse_paths``: the platform's retained securitisation ("both") holds the per-path
    totals of its waterfall (the full run's, byte for byte), not the month-by-month waterfall;
    the whole pool's keeps the caller's waterfall."""
    loans, alloc, risk, paths, deal, profile = run
    wf = run_waterfall(deal, paths, replenishment=profile)
    d = disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                       replenishment=profile, waterfall=wf)
    both = d.securitisations["both"]
    assert both.waterfall is None
    mine = party_paths(paths, PLATFORM_ID)
    assert _bytes(both.totals) == _bytes(waterfall_totals(
        run_waterfall(deal, mine, replenishment=profile)))
    assert d.securitisations["securitisation"].waterfall is wf


def test_the_loans_capital_computed_ahead_is_what_disperse_computes(run):
    """``disperse_paths`` computes the loans' capital (``loan_capital``: each loan's K, the
    parties' IRB capital and exposure, the scenarios' pool K_IRB) while the retained
    share's deal runs and hands it to ``disperse``: the same Dispersion, byte for byte, as
    ``disperse`` computing it itself; a ``capital`` without a scenario's pool is completed."""
    from partners.dispersion import (
        disperse,
        loan_capital,
        party_path_losses,
        path_loss,
        securitise_totals,
    )

    loans, alloc, risk, paths, deal, profile = run
    wf = run_waterfall(deal, paths, replenishment=profile)
    got = disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                         replenishment=profile, waterfall=wf)
    pf = paths.party_flows
    collected = sum(pf[name].sum(axis=2) for name in
                    ("interest", "scheduled_principal", "prepayment", "recovery"))
    args = dict(pool_loss=path_loss(paths), party_ids=tuple(paths.party_ids),
                party_loss=party_path_losses(paths), balance=alloc.balance,
                shares=alloc.shares, pd=risk.annual_pd, lgd=risk.lgd,
                securitisation_whole=securitise(deal, paths, profile, waterfall=wf),
                securitisation_retained=securitise_totals(
                    deal, party_paths(paths, PLATFORM_ID), profile),
                party_collections=collected)
    want = disperse(**args)
    assert _bytes(got) == _bytes(want)
    partial = loan_capital(alloc.balance, alloc.shares, risk.annual_pd, risk.lgd,
                           scenarios=("securitisation",))
    assert _bytes(disperse(**args, capital=partial)) == _bytes(want)
    assert set(loan_capital(alloc.balance, alloc.shares, risk.annual_pd, risk.lgd).pools) \
        == {"securitisation", "both"}
