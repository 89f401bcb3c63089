"""Kernels of the Monte Carlo engine: numba against the numpy twins, the factor process, the
t copula, loss statistics, stress monotonicity (the binomial sampler: test_binomial.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from simulation_pools import assumptions, flat_assumptions, homogeneous_pool, mixed_pool

from portfolio.montecarlo import engines
from portfolio.montecarlo.simulation import (
    BLOCK_PATHS,
    block_layout,
    block_seed,
    factor_paths,
    loss_distribution,
    prepare_pool,
    simulate,
    simulate_batch,
)

SMALL = mixed_pool(2_000, seed=5)
_pool = mixed_pool(6_000, seed=6)
SHORT = _pool.take(np.flatnonzero(_pool.term_months <= 6))  # few cells: cheap hypothesis runs


def _concat(*pools):
    from dataclasses import fields

    return type(pools[0])(**{f.name: np.concatenate([getattr(p, f.name) for p in pools])
                             for f in fields(pools[0])})


# small cells (drawn per loan by the granular engine) and one large cell (binomial counts)
HYBRID = _concat(mixed_pool(1_500, seed=8), homogeneous_pool(800, term=12, mob=3))


@pytest.mark.parametrize(("engine", "small_cells"), [("granular", 6.0), ("granular", 0.0),
                                                     ("loan", 6.0)])
def test_numba_kernels_match_their_numpy_twins(engine, small_cells):
    shares = np.random.default_rng(1).dirichlet([1, 1], size=len(HYBRID))
    prep = prepare_pool(HYBRID, assumptions(pd_scale=3.0, smm=0.05), shares, loan_level=True,
                        small_cells=small_cells)
    if small_cells:
        assert 0 < prep.n_binomial_cells < prep.n_cells
    else:
        assert prep.n_binomial_cells == prep.n_cells
    root = np.random.SeedSequence(77)
    fast = simulate_batch(prep, 3, block_seed(root, 3), 40, engine, backend="numba")
    slow = simulate_batch(prep, 3, block_seed(root, 3), 40, engine, backend="numpy")
    np.testing.assert_allclose(fast.flows, slow.flows, rtol=1e-10, atol=1e-6)
    np.testing.assert_allclose(fast.party_flows, slow.party_flows, rtol=1e-10, atol=1e-6)
    assert fast.flows[..., engines.DEFAULT].sum() > 0


def test_granular_kernel_matches_its_twin_under_the_t_copula():
    # the t copula's conditional PDs are every cell's own (its lifetime curve), computed per
    # cell and path in granular_block: the numba kernel against its numpy twin on the same
    # seed (same draws, so the flows agree to rounding), and the t flows differ from the
    # Gaussian ones
    shares = np.random.default_rng(2).dirichlet([1, 1], size=len(HYBRID))
    a = assumptions(pd_scale=3.0, smm=0.05)
    prep = prepare_pool(HYBRID, dataclasses.replace(a, copula="t", t_dof=5.0), shares,
                        small_cells=0.0)
    root = np.random.SeedSequence(78)
    fast = simulate_batch(prep, 1, block_seed(root, 1), 24, "granular", backend="numba")
    slow = simulate_batch(prep, 1, block_seed(root, 1), 24, "granular", backend="numpy")
    np.testing.assert_allclose(fast.flows, slow.flows, rtol=1e-10, atol=1e-6)
    np.testing.assert_allclose(fast.party_flows, slow.party_flows, rtol=1e-10, atol=1e-6)
    gauss = simulate_batch(prepare_pool(HYBRID, a, shares, small_cells=0.0), 1,
                           block_seed(root, 1), 24, "granular")
    assert fast.flows[..., engines.DEFAULT].sum() > 0
    assert not np.allclose(fast.flows, gauss.flows)


def test_threshold_ids_name_each_distinct_month_threshold_pair():
    # engines.threshold_ids: the granular kernel computes each distinct (month, threshold)
    # conditional PD once per path; every cell-month t < r maps to its pair, pairs are
    # distinct, months past a cell's term map to -1
    thr = np.array([[0.5, -1.0, 0.5], [0.5, -1.0, 2.0], [0.7, -1.0, 0.5], [0.5, 3.0, 9.0]])
    r = np.array([3, 3, 1, 2])
    uid, u_t, u_thr, n_u = engines.threshold_ids(thr, r)
    assert n_u == len(u_t) == len(u_thr) == 6  # t=0: 0.5, 0.7; t=1: -1, 3; t=2: 0.5, 2
    for c in range(4):
        for t in range(3):
            if t < r[c]:
                assert u_t[uid[c, t]] == t and u_thr[uid[c, t]] == thr[c, t]
            else:
                assert uid[c, t] == -1
    assert len({(int(a), float(b)) for a, b in zip(u_t, u_thr, strict=True)}) == n_u


def test_acklam_normal_quantile():
    u = np.r_[np.linspace(1e-9, 0.02, 200), np.linspace(0.02, 0.98, 500),
              np.linspace(0.98, 1 - 1e-9, 200)]
    ref = special.ndtri(u)
    np.testing.assert_allclose(engines.norm_ppf_np(u), ref, rtol=2e-9, atol=1e-12)
    np.testing.assert_allclose([engines.norm_ppf(float(x)) for x in u[::37]], ref[::37],
                               rtol=2e-9, atol=1e-12)


def test_factor_is_a_unit_variance_ar1():
    loans = homogeneous_pool(10, term=24, mob=0)
    for phi in (0.0, 0.7):
        prep = prepare_pool(loans, flat_assumptions(0.01, phi=phi))
        gens = [np.random.default_rng(s) for s in (1, 2)]
        z, scale = factor_paths(prep, gens[0], gens[1], 20_000)
        assert z.shape == (20_000, 24)
        assert np.all(scale == 1.0)
        np.testing.assert_allclose(z.var(axis=0), 1.0, atol=0.05)
        lag1 = np.mean([np.corrcoef(z[:, t], z[:, t + 1])[0, 1] for t in range(23)])
        assert lag1 == pytest.approx(phi, abs=0.02)


def test_t_copula_keeps_the_hazard_and_fattens_the_tail():
    # Student-t copula: the unconditional default rate stays h (mean within 3 SE) while the
    # 99.9% loss quantile rises above the Gaussian copula's at the same ρ.
    loans, h, rho = homogeneous_pool(2000), 0.02, 0.1
    t = simulate(loans, flat_assumptions(h, rho=rho, copula="t"), 8192, seed=4)
    g = simulate(loans, flat_assumptions(h, rho=rho), 8192, seed=4)
    rate = t.default[:, 0] / t.initial_balance
    assert abs(rate.mean() - h) < 3 * rate.std(ddof=1) / math.sqrt(rate.size)
    lt, lg = loss_distribution(t), loss_distribution(g)
    assert lt.var[-1] > lg.var[-1] + 2 * (lt.var_se[-1] + lg.var_se[-1])


def test_loss_statistics_on_a_known_distribution():
    # Standard normal "losses": VaR_α = Φ⁻¹(α), ES_α = φ(Φ⁻¹(α)) / (1 − α) (closed form).
    x = np.random.default_rng(3).standard_normal(200_000)
    s = loss_distribution(x)
    assert abs(s.el) < 3 * s.el_se
    for a, v, vse, e, ese in zip(s.levels, s.var, s.var_se, s.es, s.es_se, strict=True):
        q = stats.norm.ppf(a)
        assert abs(v - q) < 3 * vse, a
        assert abs(e - stats.norm.pdf(q) / (1 - a)) < 3 * ese, a
        assert vse > 0 and ese > 0
    rows = s.rows()
    assert [r["measure"] for r in rows] == ["EL", "VaR", "ES", "VaR", "ES", "VaR", "ES"]


def test_standard_errors_match_the_spread_of_repeated_estimates():
    # The reported SEs should describe how much the estimate moves between independent runs.
    rng = np.random.default_rng(8)
    ests = [loss_distribution(rng.lognormal(0, 1, 4000)) for _ in range(200)]
    for k in range(3):
        spread = np.std([e.var[k] for e in ests])
        mean_se = np.mean([e.var_se[k] for e in ests])
        assert 0.6 < mean_se / spread < 1.6, k
        spread = np.std([e.es[k] for e in ests])
        mean_se = np.mean([e.es_se[k] for e in ests])
        assert 0.6 < mean_se / spread < 1.6, k


def test_block_layout_is_canonical():
    assert block_layout(600) == [(0, 256), (256, 256), (512, 88)]
    root = np.random.SeedSequence(5)
    assert block_seed(root, 2).generate_state(2).tolist() == \
        np.random.SeedSequence(5).spawn(3)[2].generate_state(2).tolist()
    assert BLOCK_PATHS == 256


@settings(max_examples=12)
@given(m1=st.floats(0.3, 3.0), ratio=st.floats(1.25, 3.0))
def test_losses_rise_with_the_pd_multiplier(m1, ratio):
    base = assumptions()
    lo_a, hi_a = base.stressed(pd_multiplier=m1), base.stressed(pd_multiplier=m1 * ratio)
    # exact: the conditional expectation at any factor value
    for z in (-2.0, 0.0, 1.0):
        lo = simulate(SMALL, lo_a, 1, seed=0, deterministic_z=z)
        hi = simulate(SMALL, hi_a, 1, seed=0, deterministic_z=z)
        assert hi.loss[0] > lo.loss[0]
    # Monte Carlo with common random numbers (same seed)
    lo = simulate(SHORT, lo_a, 512, seed=1)
    hi = simulate(SHORT, hi_a, 512, seed=1)
    assert hi.loss.mean() > lo.loss.mean()


@settings(max_examples=12)
@given(rho1=st.floats(0.01, 0.3), step=st.floats(0.08, 0.3))
def test_loss_spread_rises_with_rho(rho1, step):
    base = assumptions(pd_scale=2.0)
    lo = simulate(SHORT, base.stressed(rho=rho1), 1024, seed=2)
    hi = simulate(SHORT, base.stressed(rho=rho1 + step), 1024, seed=2)
    assert hi.loss.std() > lo.loss.std()
    sl, sh = loss_distribution(lo), loss_distribution(hi)
    assert sh.var[1] >= sl.var[1] - 2 * (sh.var_se[1] + sl.var_se[1])


@pytest.mark.parametrize("engine", ["granular", "loan"])
def test_blocks_run_anywhere_and_assemble_to_the_same_paths(engine):
    # The unit of distribution (issue 7): a pickled PreparedPool, a block index and its
    # child seed. Blocks run in any order and are assembled into the same numbers.
    import pickle

    from portfolio.montecarlo.simulation import assemble_paths

    shares = np.random.default_rng(3).dirichlet([1, 1], size=len(SHORT))
    direct = simulate(SHORT, assumptions(), 600, seed=17, engine=engine, shares=shares)
    prep = pickle.loads(pickle.dumps(prepare_pool(SHORT, assumptions(), shares,
                                                  loan_level=engine == "loan")))
    root = np.random.SeedSequence(17)
    results = [simulate_batch(prep, b, block_seed(root, b), n, engine)
               for b, (_, n) in reversed(list(enumerate(block_layout(600))))]
    assembled = assemble_paths(prep, results, 600, root)
    for name in ("interest", "default", "recovery", "balance_eop"):
        assert np.array_equal(getattr(assembled, name), getattr(direct, name)), name
        assert np.array_equal(assembled.party_flows[name], direct.party_flows[name]), name
    with pytest.raises(ValueError, match="block"):
        assemble_paths(prep, results[1:], 600, root)


def test_schedule_kernel_equals_schedule_matrix():
    # engines.schedule_sums replays schedules.schedule_matrix (all five repayment types,
    # flat-fee loans seasoned with their fee on the original principal, month-end
    # origination days): every loan-month to the last bit, and the same cell sums and party
    # sums.
    loans = mixed_pool(3000, seed=9, flat_fee_share=0.2)
    assert (loans.repayment_type == 4).sum() > 300
    orig = np.asarray(loans.origination_date).copy()
    orig[:300] = orig[:300].astype("datetime64[M]").astype("datetime64[D]") + np.timedelta64(30, "D")
    loans = type(loans)(**{**{f: getattr(loans, f) for f in loans.__dataclass_fields__},
                           "origination_date": orig})
    shares = np.random.default_rng(1).dirichlet([1, 2], size=len(loans))
    a = assumptions()
    fast = prepare_pool(loans, a, shares, loan_level=True, schedules="numba")
    ref = prepare_pool(loans, a, shares, loan_level=True, schedules="numpy")
    assert np.array_equal(fast.sched, ref.sched)
    np.testing.assert_allclose(fast.cell_flows, ref.cell_flows, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(fast.cell_pflows, ref.cell_pflows, rtol=1e-12, atol=1e-9)
    assert fast.initial_balance == pytest.approx(ref.initial_balance, rel=1e-14)


def test_finish_block_kernel_equals_finish_flows_bit_for_bit():
    # engines.finish_block (run_blocks: a block's accumulators finished straight into its
    # rows of the result) against its twin, finish_flows of the accumulators zero-padded to
    # the months with the recovery lag (finish_block_rows(backend="numpy")): the same bytes,
    # end balances cancelling to dust (set to 0), a zero lag share, a lag longer than the
    # months after T, -0.0 defaults; rows outside the block untouched
    from portfolio.montecarlo.paths import FLOW_NAMES
    from portfolio.montecarlo.simulation import finish_block_rows

    rng = np.random.default_rng(31)
    n_b, T = 7, 6
    acc = rng.random((n_b, T, engines.N_ACC)) * 1e4
    acc[..., engines.PREPAY] = acc[..., engines.BOP] - acc[..., engines.PRINCIPAL] \
        - acc[..., engines.DEFAULT]  # end balance 0 up to rounding
    acc[:3, :, engines.PREPAY] -= 1.0  # a non-zero end balance on some paths
    acc[4, 2, engines.DEFAULT] = -0.0
    for lag in (np.array([0.5, 0.0, 0.3, 0.2]), np.array([0.1] * 9), np.zeros(0)):
        prep = dataclasses.replace(prepare_pool(SMALL, assumptions()), T=T,
                                   n_months=T + len(lag), recovery_rate=0.35,
                                   recovery_lag=lag)
        got, want = ({k: np.full((12, prep.n_months), np.nan) for k in FLOW_NAMES}
                     for _ in range(2))
        finish_block_rows(got, 3, acc, prep)
        finish_block_rows(want, 3, acc, prep, backend="numpy")
        for k in FLOW_NAMES:
            assert np.array_equal(got[k], want[k], equal_nan=True), k
            assert np.isnan(got[k][:3]).all() and np.isnan(got[k][10:]).all()
            assert np.array_equal(np.signbit(got[k][3:10]), np.signbit(want[k][3:10])), k
        eop = got["balance_eop"][3:10]
        assert (eop == 0).any() and (eop != 0).any()
        assert (got["recovery"][3:10] > 0).any() == (lag.sum() > 0)


def test_schedule_inputs_kernel_equals_its_numpy_twin():
    # engines.schedule_inputs (one pass: gathers, cents, rates, flat amounts, fees, type flags
    # and the due-date arithmetic from whole-pool tables) against its numpy twin
    # simulation._schedule_inputs_np (the gathers and formulas it replaced, with the month
    # tables of the rows alone): every array to the last bit, on a shuffled subset of rows of
    # a pool with all five repayment types, month-end origination days (31st, and 29th-31st
    # clipped in February) and loans seasoned 0 .. term - 1 months
    from portfolio.loans.schedules import _HALF_UP_NUDGE, _annuity_payment, _round_half_up
    from portfolio.loans.types import RepaymentType
    from portfolio.montecarlo.simulation import _month_table_of, _schedule_inputs_np

    loans = mixed_pool(3000, seed=21, flat_fee_share=0.2)
    orig = np.asarray(loans.origination_date).copy()
    orig[:400] = orig[:400].astype("datetime64[M]").astype("datetime64[D]") \
        + np.timedelta64(30, "D")  # the 31st where the month has one, else the next month's 1st
    orig[400:450] = np.datetime64("2024-01-31")
    loans = dataclasses.replace(loans, origination_date=orig)
    assert set(np.unique(loans.repayment_type)) == {0, 1, 2, 3, 4}
    bal, apr, p0 = (np.asarray(x, dtype=np.float64) for x in (loans.balance, loans.apr,
                                                              loans.principal))
    code = np.asarray(loans.repayment_type)
    rem = np.asarray(loans.remaining_term, dtype=np.int64)
    mob = np.asarray(loans.months_on_book, dtype=np.int64)
    T = int(rem.max())
    rows = np.random.default_rng(2).permutation(len(loans))[:2500]
    days, day_lo, span_month, span_dom0, first, month_start, month_last = _month_table_of(
        orig, mob, T)
    n = len(rows)
    got = {k: np.empty(n) for k in ("b0", "rate_raw", "rate_m", "apr_di", "flat", "fee",
                                     "rem_f")}
    got.update({k: np.empty(n, dtype=np.bool_) for k in ("is_la", "is_di")})
    got.update({k: np.empty(n, dtype=np.int64) for k in ("rem_s", "start0", "dom0", "idx0")})
    codes = (RepaymentType.LEVEL_ANNUITY.code, RepaymentType.FLAT_FEE.code,
             RepaymentType.EQUAL_PRINCIPAL.code, RepaymentType.DAILY_INTEREST.code)
    engines.schedule_inputs(rows, bal, apr, p0, code, rem, mob, days, day_lo, span_month,
                            span_dom0, first, month_start, month_last, *codes,
                            0.5 + _HALF_UP_NUDGE, *(got[k] for k in (
                                "b0", "rate_raw", "rate_m", "apr_di", "is_la", "is_di", "flat",
                                "fee", "rem_s", "rem_f", "start0", "dom0", "idx0")))
    got["level"] = np.where(got["is_la"], _round_half_up(
        _annuity_payment(got["b0"], got["rate_raw"], got["rem_f"])), 0.0)
    got["period_start_day"] = month_start[got["idx0"]]
    # every due date the schedule kernel reads: month idx0 + j + 1's start and length
    ref = _schedule_inputs_np(rows, bal, apr, p0, code, rem, mob, orig, T)
    for key, want in ref.items():
        np.testing.assert_array_equal(got[key], want, err_msg=key)
        assert got[key].dtype == np.asarray(want).dtype or key in ("rem_s",), key
    assert (got["fee"] > 0).any() and (got["flat"] > 0).any() and (got["level"] > 0).any()
    assert got["is_di"].any() and (got["rate_m"] == 0).any()
    # the due dates: the period start's month + j + 1, clipped to the month's last day
    for j in range(T):
        k = got["idx0"] + j + 1
        due = month_start[k] + np.minimum(got["dom0"], month_last[k])
        want = (np.asarray(ref["period_start_day"]).astype("datetime64[D]")
                .astype("datetime64[M]") + (j + 1)).astype("datetime64[D]").astype(np.int64)
        last = (np.asarray(want).astype("datetime64[D]").astype("datetime64[M]") + 1
                ).astype("datetime64[D]").astype(np.int64) - 1
        np.testing.assert_array_equal(due, np.minimum(want + got["dom0"], last))


@pytest.mark.parametrize("loan_level", [False, True])
def test_schedule_sums_by_chunks_of_cells_are_the_same(monkeypatch, loan_level):
    # _schedules_numba prepares and sums a chunk of whole cells at a time (SCHEDULE_CHUNK
    # loans, buffers reused): chunks of 1, 37 and 500 loans (cells larger than a chunk taken
    # whole) give the one-chunk result bit for bit: cell sums, party sums, cut-off balances,
    # per-loan schedules and the shares in cell-major order
    import portfolio.montecarlo.simulation as simulation

    loans = mixed_pool(3001, seed=17, flat_fee_share=0.1)
    shares = np.random.default_rng(4).dirichlet([1, 2, 1], size=len(loans))
    a = assumptions()
    whole = prepare_pool(loans, a, shares, loan_level=loan_level, small_cells=0.0)
    assert whole.cell_n.max() > 37
    for chunk in (1, 37, 500):
        monkeypatch.setattr(simulation, "SCHEDULE_CHUNK", chunk)
        got = prepare_pool(loans, a, shares, loan_level=loan_level, small_cells=0.0)
        for name in ("cell_flows", "cell_pflows", "sched", "shares"):
            want_v, got_v = getattr(whole, name), getattr(got, name)
            assert (want_v is None) == (got_v is None) == (not loan_level and name != "cell_flows"
                                                          and name != "cell_pflows")
            if want_v is not None:
                assert want_v.tobytes() == got_v.tobytes(), (chunk, name)
        assert got.initial_balance == whole.initial_balance


def test_schedule_kernel_sums_loans_in_cell_order():
    # engines.schedule_sums runs SCHEDULE_LANES loans side by side; every cell sum must still
    # receive its loans' terms one loan after the other in cell-major order. Reference: the
    # per-loan schedule (equal to schedule_matrix bit for bit, test above) added loan by loan
    # in that order, written out here; equal to the last bit, parties' weighted sums too.
    # Cells of 1, 2, 3, 5 ... loans (small_cells=0: all by counts) so lane groups straddle
    # cell boundaries and loans of different remaining terms share a group.
    loans = mixed_pool(2001, seed=4, flat_fee_share=0.1)
    shares = np.random.default_rng(3).dirichlet([1, 1, 2], size=len(loans))
    prep = prepare_pool(loans, assumptions(), shares, loan_level=True, small_cells=0.0)
    assert prep.cell_n.min() < engines.SCHEDULE_LANES < prep.cell_n.max()
    flows = np.zeros_like(prep.cell_flows)
    pflows = np.zeros_like(prep.cell_pflows)
    initial = np.zeros(prep.n_cells)
    s_sorted = shares[prep.order]
    for li in range(prep.n_loans):
        c = int(prep.cell_of[li])
        r = int(prep.cell_r[c])
        rows = prep.sched[prep.loan_base[li]: prep.loan_base[li] + 3 * r].reshape(r, 3)
        initial[c] += rows[0, 0]
        flows[c, :r] += rows
        for q in range(shares.shape[1]):
            pflows[c, q, :r] += s_sorted[li, q] * rows
    assert np.array_equal(prep.cell_flows, flows)
    assert np.array_equal(prep.cell_pflows, pflows)
    assert prep.initial_balance == float(initial.sum())
