"""A revolving deal's replenishment profile from a loan tape's partitions, without the loans
(``replenishment.replenishment_part_cells`` / ``replenishment_from_cells``), and the deal's
tables of a run prepared from partitions against a run prepared from every loan.

The oracle of the profile is ``simulate_replenishment`` on the loans (the same conditional
expectations given the same factor paths). The two may differ in the last bits only: the
partitions' scheduled flows are summed partition by partition (``merge_cells``) and the
kernel adds the cells in lexicographic order, while one preparation of every loan sums each
cell's schedules in one pass and puts its small cells last. Measured here: at most a few
1e-16 of each flow's largest value (one ulp of a sum); the bound asserted is 1e-12.

The oracle of the deal's tables is the run prepared from every loan (what ``riskpool simulate
--workers --structure`` without a tape computes), on a pool whose every cell is drawn by
binomial counts: a run from partitions draws every cell so (``merge_cells``), one from the
loans draws a cell with fewer than 6 × its remaining term loans loan by loan — other random
numbers, so on such a pool the two runs agree only within Monte Carlo error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from simulation_pools import CUTOFF, assumptions, mixed_pool

from portfolio.errors import ValidationError
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.paths import FLOW_NAMES, slice_paths
from portfolio.montecarlo.replenishment import (
    default_cutoff,
    profile_from_cells,
    replenishment_from_cells,
    replenishment_part_cells,
    simulate_replenishment,
)
from portfolio.montecarlo.summaries import merge_cells, prepare_from_parts
from tranching.deal import load_deal
from tranching.distributed import TranchesOnWorkers, deal_tables

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"  # revolving 12 months, three triggers
N_PATHS = 600  # 3 canonical blocks
SEED = 31
ROUNDING = 1e-12  # relative to a column's largest value: float sums in another order


def _parts(loans: LoanArrays, n_parts: int) -> list[LoanArrays]:
    cuts = np.linspace(0, len(loans), n_parts + 1).astype(int)
    return [loans.take(np.arange(lo, hi)) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)]


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(a - b)))


def _profile_diff(got, want) -> float:
    worst = 0.0
    for g, w in zip((got, *got.later), (want, *want.later), strict=True):
        assert np.array_equal(g.dates, w.dates)
        for name in FLOW_NAMES:
            worst = max(worst, _rel_diff(getattr(w, name), getattr(g, name)))
    return worst


@pytest.mark.parametrize(("n_parts", "backend"), [(1, "numba"), (3, "numba"), (7, "numpy")])
def test_profile_from_partition_cells_equals_the_profile_of_the_loans(n_parts, backend):
    loans, a = mixed_pool(900, seed=8), assumptions(rho=0.12)
    cutoff = default_cutoff(loans)
    want = simulate_replenishment(loans, a, N_PATHS, SEED, purchase_months=4,
                                  cutoff=cutoff, backend=backend)
    cells = [replenishment_part_cells(p, a, cutoff) for p in _parts(loans, n_parts)]
    # the new loans: every pool loan as a new loan of its cell, the pool's loan count and
    # the sum of the original principals
    assert sum(c.n_loans for c in cells) == len(loans)
    assert np.array_equal(np.unique(np.concatenate([c.keys[:, 2] for c in cells])), [0])
    got = replenishment_from_cells(cells, a, int(loans.remaining_term.max()), N_PATHS, SEED,
                                   purchase_months=4, backend=backend)
    assert got.n_paths == N_PATHS and len(got.later) == 3
    assert got.initial_balance == pytest.approx(want.initial_balance, rel=ROUNDING)
    assert got.seed_entropy == want.seed_entropy
    worst = _profile_diff(got, want)
    assert worst <= ROUNDING, worst
    assert np.abs(want.default).max() > 0  # the comparison means something


def test_profile_from_cells_under_a_t_copula():
    loans, a = mixed_pool(500, seed=3), assumptions(rho=0.15, copula="t")
    cutoff = default_cutoff(loans)
    want = simulate_replenishment(loans, a, 300, SEED, purchase_months=2, cutoff=cutoff)
    cells = [replenishment_part_cells(p, a, cutoff) for p in _parts(loans, 2)]
    got = replenishment_from_cells(cells, a, int(loans.remaining_term.max()), 300, SEED,
                                   purchase_months=2)
    assert _profile_diff(got, want) <= ROUNDING


def test_empty_partition_and_bad_arguments_are_refused_by_name():
    loans, a = mixed_pool(200, seed=2), assumptions()
    cutoff = default_cutoff(loans)
    empty = replenishment_part_cells(loans.take(np.arange(0)), a, cutoff)
    assert empty.n_loans == 0
    cells = [empty, replenishment_part_cells(loans, a, cutoff)]
    ok = replenishment_from_cells(cells, a, int(loans.remaining_term.max()), 10, 1)
    assert ok.n_paths == 10
    for kwargs, field in (({"n_paths": 0}, "n_paths"), ({"main_term": 0}, "main_term"),
                          ({"purchase_months": 0}, "purchase_months"),
                          ({"horizon": -1}, "horizon"), ({"backend": "gpu"}, "backend")):
        args = {"n_paths": 10, "main_term": 3, "purchase_months": 1, **kwargs}
        n_paths, main_term = args.pop("n_paths"), args.pop("main_term")
        with pytest.raises(ValidationError, match=field):
            replenishment_from_cells(cells, a, main_term, n_paths, 1, **args)
    with pytest.raises(ValidationError, match="at least one loan"):
        replenishment_from_cells([empty], a, 3, 10, 1)


def _binomial_pool() -> LoanArrays:
    """mixed_pool's loans of the cells drawn by binomial counts (every cell holds at least
    6 × its remaining term loans), in pool order."""
    loans, a = mixed_pool(6000, seed=4), assumptions()
    prep = sim.prepare_pool(loans, a)
    keep = np.sort(prep.order[: prep.cell_first[prep.n_binomial_cells]])
    sub = loans.take(keep)
    again = sim.prepare_pool(sub, a)
    assert again.n_binomial_cells == again.n_cells >= 10
    return sub


def test_deal_tables_from_partitions_equal_the_run_from_every_loan():
    """What ``riskpool simulate --tape --structure`` computes (cells and new-loan cells from
    partitions, merged) against ``simulate --workers --structure`` without a tape (the pool and
    profile prepared from every loan), on a pool drawn by binomial counts in both: the same
    defaults on every path, flows and tables equal to float rounding."""
    loans, a = _binomial_pool(), assumptions(pd_scale=6.0, rho=0.12)
    deal = load_deal(DEAL)
    root = sim.root_seed(SEED)
    # without a tape: one preparation of every loan, the profile from the loans
    prep = sim.prepare_pool(loans, a)
    profile = simulate_replenishment(loans, a, N_PATHS, SEED, purchase_months=12,
                                     cutoff=np.datetime64(CUTOFF, "D"))
    # from a tape: partitions' cells merged in partition order
    parts = _parts(loans, 3)
    merged = prepare_from_parts([lambda p=p: p for p in parts], a)
    new = [replenishment_part_cells(p, a, np.datetime64(CUTOFF, "D")) for p in parts]
    profile_t = replenishment_from_cells(new, a, merged.T, N_PATHS, SEED, purchase_months=12)
    assert _profile_diff(profile_t, profile) <= ROUNDING
    paths = sim.run_blocks(prep, root, N_PATHS, "granular")
    paths_t = sim.run_blocks(merged, root, N_PATHS, "granular")
    # the same binomial counts on every path (the cells' probabilities are the same numbers):
    # the defaults differ only by the schedules' summation order
    for name in FLOW_NAMES:
        assert _rel_diff(getattr(paths, name), getattr(paths_t, name)) <= ROUNDING, name
    tables = {}
    for key, (pp, prof) in {"loans": (paths, profile), "tape": (paths_t, profile_t)}.items():
        reducer = TranchesOnWorkers(deal, prof)
        tables[key] = deal_tables(deal, reducer(pp, 0), pp.initial_balance)
    (tr_l, trig_l), (tr_t, trig_t) = tables["loans"], tables["tape"]
    assert (tr_l["el"] > 0).any() and 0 < trig_l["p_breach"].max()  # stressed enough
    assert list(tr_l.columns) == list(tr_t.columns)
    for col in tr_l.columns:
        x, y = tr_l[col].to_numpy(), tr_t[col].to_numpy()
        if x.dtype.kind == "f":
            assert np.allclose(x, y, rtol=ROUNDING, atol=ROUNDING * max(1.0, np.nanmax(
                np.abs(x))), equal_nan=True), col
        else:
            assert list(x) == list(y), col
    assert list(trig_l.columns) == list(trig_t.columns)
    for col in trig_l.columns:
        x, y = trig_l[col].to_numpy(), trig_t[col].to_numpy()
        if x.dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=ROUNDING, equal_nan=True)
        else:
            assert list(x) == list(y), col


def test_merged_new_loan_cells_are_the_new_loans_cells():
    """The new-loan cells of partitions merged equal one preparation of all the new loans with
    every cell binomial (``merge_cells``' own contract, for the new loans)."""
    loans, a = mixed_pool(700, seed=9), assumptions()
    cutoff = default_cutoff(loans)
    one = merge_cells([replenishment_part_cells(loans, a, cutoff)], a)
    three = merge_cells([replenishment_part_cells(p, a, cutoff) for p in _parts(loans, 3)], a)
    assert np.array_equal(one.cell_n, three.cell_n) and np.array_equal(one.cell_r, three.cell_r)
    assert np.array_equal(one.cell_thr, three.cell_thr)
    assert _rel_diff(one.cell_flows, three.cell_flows) <= ROUNDING
    # months on book 0 and remaining term = term: every new loan starts its full schedule
    assert one.n_loans == len(loans)
    assert one.initial_balance == pytest.approx(float(np.sum(loans.principal)), rel=ROUNDING)


def test_profile_computed_per_block_range_is_those_rows_of_the_whole():
    """``ProfileFromCells.paths`` (what each waterfall task on a worker computes for its own
    blocks) against ``replenishment_from_cells`` of the whole run: the same bytes, and the
    deal's tranche summary of 1, 2 or 3 tasks the same bytes as with the whole profile."""
    loans, a = mixed_pool(600, seed=6), assumptions(pd_scale=6.0, rho=0.12)
    cutoff = default_cutoff(loans)
    cells = [replenishment_part_cells(p, a, cutoff) for p in _parts(loans, 2)]
    main_term = int(loans.remaining_term.max())
    whole = replenishment_from_cells(cells, a, main_term, N_PATHS, SEED, purchase_months=12)
    source = profile_from_cells(cells, a, main_term, N_PATHS, SEED, purchase_months=12)
    assert source.n_months == whole.n_months and source.nbytes_cells < whole.balance_bop.nbytes
    for lo, hi in ((0, 600), (0, 256), (256, 600), (512, 600), (256, 512)):
        got = source.paths(lo, hi - lo)
        want = slice_paths(whole, lo, hi)
        assert got.n_paths == hi - lo and len(got.later) == len(want.later) == 11
        for g, w in zip((got, *got.later), (want, *want.later), strict=True):
            for name in FLOW_NAMES:
                assert np.array_equal(getattr(g, name), getattr(w, name)), (lo, hi, name)
            assert np.array_equal(g.dates, w.dates)
            assert g.initial_balance == w.initial_balance
    for lo, n in ((100, 156), (0, 300), (512, 100), (0, 0)):
        with pytest.raises(ValidationError, match="paths"):
            source.paths(lo, n)
    deal = load_deal(DEAL)
    paths = sim.simulate(loans, a, N_PATHS, SEED)
    ref = TranchesOnWorkers(deal, whole)(paths, 0)
    on_cells = TranchesOnWorkers(deal, source)
    on_cells.check(N_PATHS)
    with pytest.raises(ValidationError, match="replenishment"):
        on_cells.check(N_PATHS + 1)
    for cuts in ((600,), (256, 600), (256, 512, 600)):
        starts = (0, *cuts[:-1])
        joined = on_cells.combine([on_cells(slice_paths(paths, lo, hi), lo)
                                   for lo, hi in zip(starts, cuts, strict=True)])
        for name in ("tranche_loss", "wal", "irr", "block_cashflow"):
            assert np.array_equal(getattr(joined, name), getattr(ref, name), equal_nan=True)
        for k in ref.breached_ever:
            assert np.array_equal(joined.first_breach[k], ref.first_breach[k])
    assert (ref.tranche_loss > 0).any()  # stressed enough to mean something
