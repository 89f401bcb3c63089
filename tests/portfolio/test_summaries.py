"""Per-path summaries and a pool prepared from partitions (portfolio.montecarlo.summaries),
without a cluster (the cluster runs: tests/portfolio/test_distributed.py).

Oracles: numpy's mean / standard deviation over the full path arrays (the summaries),
``np.sort`` and the VaR definition of ``portfolio.risk`` (⌈nα⌉-th smallest loss) for the
quantile paths, the rows of the full run for the recomputed paths, and
``prepare_pool(all loans, small_cells=0)`` for the pool merged from partitions (cell counts and
probability tables equal; scheduled flows to float rounding, summed in another order)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from simulation_pools import assumptions, mixed_pool

from portfolio.errors import ValidationError
from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.distributed import slice_paths
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths
from portfolio.montecarlo.summaries import (
    PathSummary,
    merge_cells,
    part_cells,
    paths_at,
    prepare_from_parts,
    quantile_path_index,
    summarise,
)
from portfolio.risk import loss_stats
from portfolio.store.parquet_book import loan_parts, write_loan_parts

N_PATHS = 600
SEED = 77


@pytest.fixture(scope="module")
def pool():
    return mixed_pool(1200, seed=11), assumptions(rho=0.1)


@pytest.fixture(scope="module")
def tape(pool, tmp_path_factory):
    loans, _ = pool
    out = tmp_path_factory.mktemp("tape")
    cuts = [0, 300, 310, 800, 1200]  # uneven partitions, one of 10 loans
    for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        write_loan_parts(loans.take(np.arange(lo, hi)), out, i)
    return out


def test_loan_tape_partitions_read_back_every_column(pool, tape):
    loans, _ = pool
    parts = [load() for load in loan_parts(tape)]
    assert [len(p) for p in parts] == [300, 10, 490, 400]
    for f in dataclasses.fields(loans):
        got = np.concatenate([np.asarray(getattr(p, f.name)) for p in parts])
        want = np.asarray(getattr(loans, f.name))
        if want.dtype.kind == "f":
            assert np.array_equal(got, want, equal_nan=True), f.name
        else:
            assert np.array_equal(got.astype(want.dtype), want), f.name
        assert got.dtype == want.dtype, f.name


def test_loan_tape_refuses_an_existing_part_and_an_empty_folder(pool, tape, tmp_path):
    loans, _ = pool
    with pytest.raises(ValidationError, match="nothing is overwritten"):
        write_loan_parts(loans.take(np.arange(3)), tape, 0)
    with pytest.raises(ValidationError, match="part-NNNNN.parquet"):
        loan_parts(tmp_path)


def test_pool_merged_from_partitions_equals_one_preparation_of_all_loans(pool, tape):
    loans, a = pool
    merged = prepare_from_parts(loan_parts(tape), a)
    whole = sim.prepare_pool(loans, a, small_cells=0.0)
    assert merged.n_loans == whole.n_loans == len(loans)
    assert merged.n_cells == whole.n_cells and merged.n_binomial_cells == merged.n_cells
    for name in ("cell_n", "cell_r", "cell_thr", "cell_thr_gauss", "cell_smm", "cell_first",
                 "dates", "recovery_lag"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name)), name
    assert (merged.T, merged.n_months) == (whole.T, whole.n_months)
    np.testing.assert_allclose(merged.cell_flows, whole.cell_flows, rtol=1e-12, atol=1e-9)
    assert math.isclose(merged.initial_balance, whole.initial_balance, rel_tol=1e-12)
    assert merged.order.size == 0  # no per-loan array: cells × months whatever the loan count
    # the same draws: each path's loss to float rounding of the scheduled sums
    root = sim.root_seed(SEED)
    pm = sim.run_blocks(merged, root, N_PATHS, "granular")
    pw = sim.run_blocks(whole, root, N_PATHS, "granular")
    np.testing.assert_allclose(pm.loss, pw.loss, rtol=1e-9, atol=1e-6)
    # partitions merged in another grouping: the same cells and counts
    again = merge_cells([part_cells(p(), a) for p in loan_parts(tape)][::-1], a)
    assert np.array_equal(again.cell_n, merged.cell_n)


def test_summary_moments_equal_numpy_over_the_full_paths(pool):
    loans, a = pool
    shares = np.random.default_rng(3).dirichlet([1.0, 1.0], len(loans))
    paths = sim.simulate(loans, a, N_PATHS, SEED, shares=shares, party_ids=("p", "q"))
    s = summarise(paths)
    assert s.n_paths == N_PATHS and s.block_sum.shape[0] == 3  # 256 + 256 + 88
    assert np.array_equal(s.loss, paths.loss)
    assert np.array_equal(s.party_loss, paths.party_flows["default"].sum(axis=2)
                          - paths.party_flows["recovery"].sum(axis=2))
    mean, se = s.flow_mean(), s.flow_se()
    for name in FLOW_NAMES:
        arr = getattr(paths, name)
        np.testing.assert_allclose(mean[name], arr.mean(axis=0), rtol=1e-12, atol=1e-6)
        np.testing.assert_allclose(se[name], arr.std(axis=0, ddof=1) / math.sqrt(N_PATHS),
                                   rtol=1e-6, atol=1e-6)
    # joined from task-sized parts: the same bytes (sums are per canonical block)
    joined = PathSummary.concat([summarise(slice_paths(paths, 0, 512), 0),
                                 summarise(slice_paths(paths, 512, N_PATHS), 512)])
    assert np.array_equal(joined.flow_sum(), s.flow_sum())
    assert np.array_equal(joined.loss, s.loss)
    with pytest.raises(ValidationError, match="first_path"):
        summarise(paths, 100)


def test_quantile_paths_are_the_var_paths_and_recompute_to_the_same_rows(pool):
    loans, a = pool
    prep = sim.prepare_pool(loans, a)
    root = sim.root_seed(SEED)
    paths = sim.run_blocks(prep, root, N_PATHS, "granular")
    levels = (0.5, 0.95, 0.99)
    idx = quantile_path_index(paths.loss, levels)
    stats = loss_stats(paths.loss, levels, paths.initial_balance)
    for k, lv in enumerate(levels):  # VaR_α = the ⌈nα⌉-th smallest loss
        assert paths.loss[idx[k]] == np.sort(paths.loss)[math.ceil(N_PATHS * lv) - 1]
        assert paths.loss[idx[k]] == stats.var[k]
    got = paths_at(prep, root, N_PATHS, idx)
    assert got.n_paths == len(levels)
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(got, name), getattr(paths, name)[idx]), name
    with pytest.raises(ValidationError, match="index"):
        paths_at(prep, root, N_PATHS, [N_PATHS])
    with pytest.raises(ValidationError, match="levels"):
        quantile_path_index(paths.loss, (1.0,))


def _random_paths(n: int, months: int, n_parties: int, seed: int) -> PoolPaths:
    """Random flows (the summaries do not care how they were made); a constant column (the
    first month's start balance, the same on every path) checks the standard error's
    cancellation."""
    rng = np.random.default_rng(seed)
    flows = {name: rng.gamma(2.0, 1000.0, (n, months)) for name in FLOW_NAMES}
    flows["balance_bop"][:, 0] = 1_234_567.89
    party = {name: rng.gamma(2.0, 100.0, (n_parties, n, months)) for name in FLOW_NAMES} \
        if n_parties else {}
    return PoolPaths(dates=np.arange(months).astype("datetime64[D]"), initial_balance=1e6,
                     party_ids=tuple(f"p{q}" for q in range(n_parties)), party_flows=party,
                     **flows)


@given(n=st.integers(1, 1300), months=st.integers(1, 8), n_parties=st.integers(0, 2),
       cuts=st.lists(st.integers(1, 5), max_size=4), seed=st.integers(0, 2**16))
def test_summaries_of_any_task_split_join_to_the_same_bytes(n, months, n_parties, cuts, seed):
    """Invariant: however the blocks are grouped into tasks, the joined summary is the same
    bytes; its mean and standard error agree with numpy's over all paths."""
    paths = _random_paths(n, months, n_parties, seed)
    whole = summarise(paths)
    bounds = sorted({min(n, c * sim.BLOCK_PATHS) for c in np.cumsum(cuts)} | {0, n})
    parts = [summarise(slice_paths(paths, lo, hi), lo)
             for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
    joined = PathSummary.concat(parts)
    for name in ("loss", "party_loss", "block_sum", "block_m2", "party_block_sum"):
        assert np.array_equal(getattr(joined, name), getattr(whole, name)), name
    mean, se = joined.flow_mean(), joined.flow_se()
    for name in FLOW_NAMES:
        arr = getattr(paths, name)
        np.testing.assert_allclose(mean[name], arr.mean(axis=0), rtol=1e-12)
        want = arr.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(months)
        np.testing.assert_allclose(se[name], want, rtol=1e-9, atol=1e-9)
    # a flow equal on every path: no spread but float dust (the sum of squares minus the
    # square of the sum would leave 0.03 here)
    assert se["balance_bop"][0] < 1e-9
