"""Dispersion per party as a path reducer (partners.distributed): the parts of consecutive path
ranges, joined, give the same Dispersion as ``disperse_paths`` on the full paths (the oracle),
bit for bit — what a Dask run with ``per_paths=DispersionOnWorkers(...)`` returns (the cluster
run itself: tests/portfolio/test_distributed.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from partners_fixtures import allocated_paths

from partners.dispersion import disperse_paths
from partners.distributed import DispersionOnWorkers, disperse_joined
from partners.errors import DispersionError
from partners.reconciliation import economic_views, reconcile
from portfolio.montecarlo.distributed import slice_paths
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.synthetic.generate import GeneratorParams, true_assumptions
from tranching.deal import load_deal

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 11, 1)
N_PATHS = 600  # three canonical blocks: 256, 256, 88


@pytest.fixture(scope="module")
def run():
    loans, a, risk, _, paths = allocated_paths(800, N_PATHS, 21, AS_OF)
    return loans, a, risk, paths


def _by_tasks(reducer: DispersionOnWorkers, paths, cuts):
    parts = [reducer(slice_paths(paths, lo, hi), lo) for lo, hi in zip(cuts[:-1], cuts[1:],
                                                                        strict=True)]
    return reducer.combine(parts)


@pytest.mark.parametrize("with_deal", [False, True])
def test_joined_parts_give_the_same_dispersion_as_the_full_paths(run, with_deal):
    loans, a, risk, paths = run
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml") if with_deal else None
    expect = disperse_paths(paths, loans.balance, a.shares, risk.annual_pd, risk.lgd, deal)
    reducer = DispersionOnWorkers(deal)
    for cuts in ([0, 256, 512, N_PATHS], [0, 512, N_PATHS], [0, N_PATHS]):
        part = _by_tasks(reducer, paths, cuts)
        got = disperse_joined(part, loans.balance, a.shares, risk.annual_pd, risk.lgd)
        assert got.table() == expect.table()
        assert [h.row() for h in got.headlines] == [h.row() for h in expect.headlines]
        assert set(got.party_losses) == set(expect.party_losses)
        for pid, loss in expect.party_losses.items():
            assert np.array_equal(got.party_losses[pid], loss), pid
        assert np.array_equal(got.pool_loss, expect.pool_loss)
        # the reconciliation and the economic views: from the waterfall's per-path totals
        for r_got, r_exp in zip(reconcile(got), reconcile(expect), strict=True):
            assert r_got.rows() == r_exp.rows() and r_got.closes and r_exp.closes
            for x, y in zip(r_got.lines, r_exp.lines, strict=True):
                assert np.array_equal(x.values, y.values), x.label
        assert [(v.row(), v.line_rows()) for v in economic_views(got)] == \
            [(v.row(), v.line_rows()) for v in economic_views(expect)]
        if with_deal:
            for name, s in expect.securitisations.items():
                g = got.securitisations[name]
                assert g.waterfall is None  # the month-by-month waterfall stays on the worker
                assert g.totals is not None and g.totals.n_paths == N_PATHS
                assert np.array_equal(g.pool_loss, s.pool_loss), name
                assert [p.tranche for p in g.positions] == [p.tranche for p in s.positions]
            assert any("coupons" in r["economic_line"] for v in economic_views(got)
                       for r in v.line_rows())  # the deal's cash lines are there


def test_what_comes_back_is_per_path_vectors_not_flows(run):
    loans, a, risk, paths = run
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    part = DispersionOnWorkers(deal)(paths, 0)
    n_q = len(a.party_ids)
    n_pos = len(part.whole.positions) + len(part.retained.positions)
    n_tr, n_fees = len(deal.tranche_names), len(part.whole.totals.fees)
    # pool loss, party losses and collections; per securitisation 4 vectors + one per
    # position + the waterfall's totals: class losses and coupons per tranche, 8 more, fees
    totals = 2 * n_tr + 8 + n_fees
    assert part.nbytes == 8 * N_PATHS * (1 + 2 * n_q + 2 * 4 + n_pos + 2 * totals)
    flows = sum(getattr(paths, k).nbytes for k in ("balance_bop", "interest", "default"))
    assert part.nbytes < flows


def test_a_profile_of_another_path_count_is_refused(run):
    loans, _, _, _ = run
    profile = simulate_replenishment(loans, true_assumptions(GeneratorParams(), 30), 100, 1)
    with pytest.raises(DispersionError, match="replenishment"):
        DispersionOnWorkers(None, profile).check(N_PATHS)
