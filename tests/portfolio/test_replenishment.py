"""The replenishment profile: new loans from the pool's cell mix, projected on the run's paths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from replenishment_pools import short_tenor_loans, simple_assumptions

from portfolio.errors import ValidationError
from portfolio.loans.schedules import schedule_matrix
from portfolio.montecarlo import engines
from portfolio.montecarlo.replenishment import (
    default_cutoff,
    replenishment_loans,
    simulate_replenishment,
)
from portfolio.montecarlo.simulation import finish_flows, simulate

CUTOFF = dt.date(2026, 6, 30)


def test_replenishment_loans_are_the_pool_loans_as_new() -> None:
    loans = short_tenor_loans(n=50)
    new = replenishment_loans(loans, CUTOFF)
    assert len(new) == len(loans)
    np.testing.assert_array_equal(new.balance, loans.principal)
    np.testing.assert_array_equal(new.principal, loans.principal)
    np.testing.assert_array_equal(new.remaining_term, loans.term_months)
    np.testing.assert_array_equal(new.term_months, loans.term_months)
    assert np.all(new.months_on_book == 0)
    for name in ("apr", "repayment_type", "credit_score", "region"):
        np.testing.assert_array_equal(getattr(new, name), getattr(loans, name))
    assert np.all(new.origination_date == np.datetime64("2026-06-30"))
    assert np.all(new.next_due_date == np.datetime64("2026-07-30"))
    assert new.loan_id[0] == "new:" + loans.loan_id[0]
    # a month-end cut-off clamps the first due date to the next month's end
    feb = replenishment_loans(loans, dt.date(2026, 1, 31))
    assert np.all(feb.next_due_date == np.datetime64("2026-02-28"))


def test_default_cutoff_is_the_month_end_before_the_first_due_date() -> None:
    loans = short_tenor_loans(n=50)  # next due dates in July 2026
    assert default_cutoff(loans) == CUTOFF


def test_bad_inputs_name_the_field() -> None:
    loans = short_tenor_loans(n=20)
    a = simple_assumptions()
    with pytest.raises(ValidationError, match="cutoff"):
        replenishment_loans(loans, "not a date")
    with pytest.raises(ValidationError, match="loans"):
        replenishment_loans(loans.take(np.array([], dtype=np.int64)), CUTOFF)
    zero = loans.take(np.arange(20))
    object.__setattr__(zero, "principal", np.zeros(20))
    with pytest.raises(ValidationError, match="principal"):
        replenishment_loans(zero, CUTOFF)
    with pytest.raises(ValidationError, match="n_paths"):
        simulate_replenishment(loans, a, 0, 1)
    with pytest.raises(ValidationError, match="engine"):
        simulate_replenishment(loans, a, 10, 1, engine="exact")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="horizon"):
        simulate_replenishment(loans, a, 10, 1, horizon=-1)
    with pytest.raises(ValidationError, match="seed"):
        simulate_replenishment(loans, a, 10, -3)


def test_without_defaults_or_prepayments_the_profile_is_the_new_loans_schedule() -> None:
    # independent source: portfolio.loans.schedules.schedule_matrix on the new loans directly
    loans = short_tenor_loans(n=80)
    a = simple_assumptions(pd_scale=0.0, smm=0.0)
    prof = simulate_replenishment(loans, a, 3, seed=4)
    new = replenishment_loans(loans, CUTOFF)
    sm = schedule_matrix(new.balance, new.apr, new.remaining_term, new.repayment_type,
                         new.origination_date, months_on_book=new.months_on_book, n_months=12)
    assert prof.initial_balance == pytest.approx(float(np.round(loans.principal, 2).sum()), abs=1e-6)
    for p in range(3):
        np.testing.assert_allclose(prof.interest[p, :12], sm.interest.sum(axis=0), atol=1e-6)
        np.testing.assert_allclose(prof.scheduled_principal[p, :12], sm.principal.sum(axis=0),
                                   atol=1e-6)
    assert prof.default.sum() == 0.0 and prof.prepayment.sum() == 0.0
    assert prof.dates[0] == np.datetime64("2026-07-31")


def test_profile_flows_are_consistent_and_depend_on_the_seed_alone() -> None:
    loans = short_tenor_loans(n=300)
    a = simple_assumptions()
    p1 = simulate_replenishment(loans, a, 300, seed=21)
    p2 = simulate_replenishment(loans, a, 300, seed=21)
    p3 = simulate_replenishment(loans, a, 300, seed=22)
    np.testing.assert_array_equal(p1.default, p2.default)
    np.testing.assert_array_equal(p1.balance_eop, p2.balance_eop)
    assert not np.array_equal(p1.default, p3.default)
    assert p1.n_paths == 300 and p1.n_months == 12 + 4  # longest term + recovery lag
    np.testing.assert_allclose(p1.balance_bop - p1.scheduled_principal - p1.prepayment - p1.default,
                               p1.balance_eop, atol=1e-6)
    np.testing.assert_allclose(p1.balance_bop[:, 0], p1.initial_balance, rtol=1e-12)
    assert np.abs(p1.balance_eop[:, -1]).max() < 1e-6
    assert np.all(p1.recovery.cumsum(axis=1) <= p1.default.cumsum(axis=1) * 0.25 + 1e-6)


def test_profile_shares_the_runs_factor_paths() -> None:
    # With a strong, persistent factor the new loans' early default rate moves with the
    # pool's on the same path (same Z); a profile of another seed's factor does not.
    loans = short_tenor_loans(n=1500)
    a = simple_assumptions(pd_scale=3.0, rho=0.4)
    main = simulate(loans, a, 512, seed=8)
    same = simulate_replenishment(loans, a, 512, seed=8)
    other = simulate_replenishment(loans, a, 512, seed=9)
    x = main.default[:, :3].sum(axis=1) / main.balance_bop[:, :3].sum(axis=1)
    corr_same = np.corrcoef(x, same.default[:, :3].sum(axis=1))[0, 1]
    corr_other = np.corrcoef(x, other.default[:, :3].sum(axis=1))[0, 1]
    assert corr_same > 0.6
    assert abs(corr_other) < 0.2  # 512 independent pairs: |r| < 0.2 is 4.5 standard errors


def test_longer_new_loans_than_the_pool_continue_the_factor_and_pad_to_a_horizon() -> None:
    # a pool with at most 2 months left: the 3..12-month new loans need 10 more factor months
    loans = short_tenor_loans(n=200)
    keep = np.flatnonzero(loans.remaining_term <= 2)
    short = loans.take(keep)
    a = simple_assumptions()
    p1 = simulate_replenishment(short, a, 40, seed=3, horizon=30)
    p2 = simulate_replenishment(short, a, 40, seed=3, horizon=30)
    np.testing.assert_array_equal(p1.default, p2.default)
    assert p1.n_months == 30
    assert np.all(p1.interest[:, 16:] == 0) and np.all(p1.balance_eop[:, 15:] == 0)
    assert p1.dates[16] == np.datetime64("2027-11-30") and p1.dates[-1] == np.datetime64("2028-12-31")
    assert p1.default[:, 2:12].sum() > 0  # defaults beyond the pool's own 2 factor months


def test_loan_engine_and_deterministic_profiles() -> None:
    loans = short_tenor_loans(n=200)
    a = simple_assumptions()
    loan = simulate_replenishment(loans, a, 256, seed=5, engine="loan")
    gran = simulate_replenishment(loans, a, 256, seed=5)
    # same factor paths, same model: mean losses agree within Monte Carlo error
    dl, dg = loan.default.sum(axis=1), gran.default.sum(axis=1)
    se = np.sqrt(dl.var(ddof=1) / 256 + dg.var(ddof=1) / 256)
    assert abs(dl.mean() - dg.mean()) < 4 * se
    det = simulate_replenishment(loans, a, 1, seed=5, deterministic_z=0.0)
    direct = simulate(replenishment_loans(loans, CUTOFF), a, 1, 5, deterministic_z=0.0)
    np.testing.assert_array_equal(det.default, direct.default)
    np.testing.assert_array_equal(det.interest, direct.interest)


def _age_varying(copula: str = "gaussian"):
    # hazards that rise with age (so a vintage's age and calendar month are told apart)
    import dataclasses

    a = simple_assumptions(pd_scale=3.0, rho=0.3)
    age = np.arange(a.default_hazard.shape[2])
    return dataclasses.replace(a, default_hazard=a.default_hazard * (0.5 + 0.1 * age),
                               copula=copula, t_dof=5.0)


@pytest.mark.parametrize("copula", ["gaussian", "t"])
def test_vintages_are_the_conditional_expectation_of_the_exact_draws(copula: str) -> None:
    # engines.expected_vintages: vintage s on a path is the expectation, given that path's
    # factor (and t mixing value), of what the granular engine's exact binomial draws give
    # the same loans on the factor months s + 1 … . Reference: the mean of 4,096 granular
    # paths that all share one factor path, within 4 standard errors per month; the numpy
    # twin to 1e-12; and (Gaussian) simulation.expected_projection, the deterministic
    # scenarios' conditional expectation, on the same shifted factor path.
    import math

    from portfolio.montecarlo import engines
    from portfolio.montecarlo.simulation import (
        expected_projection,
        prepare_pool,
        root_seed,
        simulate_batch,
    )

    a = _age_varying(copula)
    prep = prepare_pool(replenishment_loans(short_tenor_loans(n=600), CUTOFF), a,
                        small_cells=0)
    n_v, T = 3, prep.T
    rng = np.random.default_rng(3)
    z_cal = rng.standard_normal((2, n_v + T)) * 1.2
    scale = np.array([0.6, 1.3]) if copula == "t" else np.ones(2)
    thr_s, zb = engines.scaled_inputs(prep.cell_thr, z_cal, prep.rho)
    t_q = prep.cell_thr if copula == "t" else engines.NO_T
    kf = 1.0 / (math.sqrt(1.0 - prep.rho) * math.sqrt(2.0))
    out = np.zeros((n_v, engines.N_ACC, 2, T))  # flow-major
    twin = np.zeros_like(out)
    args = (zb, scale, prep.cell_r, thr_s, prep.cell_smm, prep.cell_flows)
    engines.expected_vintages(*args, out, t_q, kf)
    engines.expected_vintages_np(*args, twin, t_q, kf)
    np.testing.assert_allclose(out, twin, rtol=1e-12, atol=1e-9)
    n = 4_096
    for s in range(n_v):
        for p in range(2):
            zs = np.repeat(z_cal[p:p + 1, s + 1: s + 1 + T], n, axis=0)
            draws = simulate_batch(prep, 0, root_seed(100 * s + p), n, "granular",
                                   factor=(zs, np.full(n, scale[p]))).flows[:, :T]
            mean = draws.mean(axis=0)
            se = draws.std(axis=0, ddof=1) / math.sqrt(n)
            for k in (engines.DEFAULT, engines.PREPAY, engines.INTEREST):
                dev = np.abs(mean[:, k] - out[s, k, p])
                assert np.all(dev <= 4 * se[:, k] + 1e-6 * prep.initial_balance), (s, p, k)
            assert out[s, engines.DEFAULT, p].sum() > 0
            if copula == "gaussian":
                acc, _ = expected_projection(prep, z_cal[p, s + 1: s + 1 + T])
                np.testing.assert_allclose(out[s, :, p].T, acc[0, :T], rtol=1e-10, atol=1e-6)


def test_the_profile_is_the_kernel_on_the_runs_calendar_factor_either_backend() -> None:
    # simulate_replenishment's vintages = the numpy twin's on the same seed, for either
    # engine; vintage s is not vintage 0 (it sees other months of the same factor path)
    loans = short_tenor_loans(n=300)
    a = _age_varying()
    numba_ = simulate_replenishment(loans, a, 300, seed=4, purchase_months=3)
    numpy_ = simulate_replenishment(loans, a, 300, seed=4, purchase_months=3, backend="numpy")
    loan = simulate_replenishment(loans, a, 300, seed=4, purchase_months=3, engine="loan")
    for s in range(3):
        np.testing.assert_allclose(numba_.vintage(s).default, numpy_.vintage(s).default,
                                   rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(numba_.vintage(s).default, loan.vintage(s).default)
    assert not np.allclose(numba_.vintage(1).default, numba_.vintage(0).default)
    with pytest.raises(ValidationError, match="backend"):
        simulate_replenishment(loans, a, 10, 1, backend="cuda")  # type: ignore[arg-type]


def test_vintage_finish_kernel_is_finish_flows_bit_for_bit() -> None:
    # engines.finish_vintages (the numba backend's recoveries and end balances) against its
    # twin simulation.finish_flows on a strided block of flow-major accumulators: the same
    # bytes, including end balances cancelling to dust (set to 0) and a zero lag share
    rng = np.random.default_rng(12)
    acc = rng.random((3, engines.N_ACC, 20, 9)) * 1e4
    acc[:, engines.PREPAY] = acc[:, engines.BOP] - acc[:, engines.PRINCIPAL] \
        - acc[:, engines.DEFAULT]  # end balance 0 up to rounding
    acc[0, engines.PREPAY, :5] -= 1.0  # a non-zero end balance on some paths
    acc[1, engines.DEFAULT, 3] = 0.0
    lag = np.array([0.5, 0.0, 0.3, 0.2])
    rows = acc[:, :, 4:17]  # a block's rows, as the profile passes them
    rec = np.full((3, 13, 9), np.nan)
    eop = np.full((3, 13, 9), np.nan)
    engines.finish_vintages(rows, 0.35, lag, rec, eop)
    fin = finish_flows(*(rows[:, k] for k in range(engines.N_ACC)), recovery_rate=0.35, lag=lag)
    np.testing.assert_array_equal(rec, fin["recovery"])
    np.testing.assert_array_equal(eop, fin["balance_eop"])
    assert (eop == 0).any() and (eop != 0).any() and (rec > 0).any()


def test_vintage_kernel_numbers_do_not_depend_on_the_path_tile() -> None:
    # engines.expected_vintages runs the paths in tiles of VINTAGE_TILE (the innermost loop
    # over a tile's paths): every output element must get the same operations in the same
    # order as path by path. A block of 2·tile + 5 paths (a partial last tile) against each
    # path alone (a tile of one), added into non-zero accumulators (also -0.0 and NaN-free
    # negatives) of a strided view; a cell shorter than the others (ragged months) and
    # thresholds repeated across cells and months (shared PD table entries)
    import math

    from portfolio.montecarlo.simulation import prepare_pool

    a = _age_varying()
    prep = prepare_pool(replenishment_loans(short_tenor_loans(n=600), CUTOFF), a,
                        small_cells=0)
    assert len(set(prep.cell_r.tolist())) > 1
    n_v, T = 4, prep.T
    n_b = 2 * engines.VINTAGE_TILE + 5
    rng = np.random.default_rng(8)
    z = rng.standard_normal((n_b, n_v + T)) * 1.1
    thr_s, zb = engines.scaled_inputs(prep.cell_thr, z, prep.rho)
    kf = 1.0 / (math.sqrt(1.0 - prep.rho) * math.sqrt(2.0))
    start = rng.standard_normal((n_v, engines.N_ACC, n_b, T + 2)) * 100.0
    start[:, :, ::7] = -0.0
    whole = np.zeros((n_v, engines.N_ACC, n_b + 3, T + 2))[:, :, 1:n_b + 1]
    whole[...] = start
    alone = start.copy()
    args = (prep.cell_r, thr_s, prep.cell_smm, prep.cell_flows)
    engines.expected_vintages(zb, np.ones(n_b), *args, whole, engines.NO_T, kf)
    for p in range(n_b):
        engines.expected_vintages(zb[p:p + 1], np.ones(1), *args, alone[:, :, p:p + 1],
                                  engines.NO_T, kf)
    np.testing.assert_array_equal(whole, alone)
    assert np.array_equal(np.signbit(whole), np.signbit(alone))
    assert not np.array_equal(whole, start)
    np.testing.assert_array_equal(whole[..., T:], start[..., T:])  # months past T untouched



@pytest.mark.parametrize("copula", ["gaussian", "t"])
def test_finished_vintage_block_is_the_two_kernels_bit_for_bit(copula: str) -> None:
    # engines.vintage_block (what the profile runs on each block) against its definition:
    # engines.expected_vintages into zeroed accumulators, then engines.finish_vintages (each
    # tested against its numpy twin above). Outputs poisoned with NaN (as np.empty may hold),
    # strided rows of larger arrays, months past the cells' longest term (recovery lag), a
    # partial last tile, a cell shorter than the others; the same bytes, -0.0 included, and
    # every element written (none NaN)
    import math

    from portfolio.montecarlo.simulation import prepare_pool

    a = _age_varying(copula)
    prep = prepare_pool(replenishment_loans(short_tenor_loans(n=600), CUTOFF), a,
                        small_cells=0)
    assert len(set(prep.cell_r.tolist())) > 1
    n_v, T, n_m = 3, prep.T, prep.T + 4
    n_b = engines.VINTAGE_TILE + 7
    rng = np.random.default_rng(21)
    z = rng.standard_normal((n_b, n_v + T)) * 1.3
    thr_s, zb = engines.scaled_inputs(prep.cell_thr, z, prep.rho)
    scale = rng.uniform(0.5, 1.5, n_b) if copula == "t" else np.ones(n_b)
    t_q = prep.cell_thr if copula == "t" else engines.NO_T
    kf = 1.0 / (math.sqrt(1.0 - prep.rho) * math.sqrt(2.0))
    lag = np.array([0.5, 0.0, 0.3, 0.2])
    args = (zb, scale, prep.cell_r, thr_s, prep.cell_smm, prep.cell_flows)
    ref = np.zeros((n_v, engines.N_ACC, n_b, n_m))
    engines.expected_vintages(*args, ref, t_q, kf)
    ref_rec = np.empty((n_v, n_b, n_m))
    ref_eop = np.empty((n_v, n_b, n_m))
    engines.finish_vintages(ref, 0.35, lag, ref_rec, ref_eop)
    acc = np.full((n_v, engines.N_ACC, n_b + 5, n_m), np.nan)[:, :, 2:n_b + 2]
    rec = np.full((n_v, n_b + 5, n_m), np.nan)[:, 3:n_b + 3]
    eop = np.full((n_v, n_b + 5, n_m), np.nan)[:, 3:n_b + 3]
    pairs = engines.vintage_pairs(thr_s, prep.cell_r, n_v, zb.shape[1])
    engines.vintage_block(*args, t_q, kf, *pairs, 0.35, lag, acc, rec, eop)
    for got, want in ((acc, ref), (rec, ref_rec), (eop, ref_eop)):
        assert not np.isnan(got).any()
        assert np.array_equal(got.view(np.int64), want.view(np.int64))
    assert (acc[:, engines.DEFAULT] > 0).any() and (rec > 0).any() and (eop > 0).any()
    assert (acc[..., T:] == 0).all()  # months past the longest term: zeros, written


def test_profile_buffers_are_zeros_and_touched_until_told_to_stop() -> None:
    # replenishment.zeroed_pages: a writable float64 array of zeros (private anonymous
    # memory), kept alive by its views; _touch_until writes 0.0 to one element per 4 KiB
    # page (engines.touch_pages), chunk by chunk from the start, and stops once told
    import pickle
    import threading

    from portfolio.montecarlo.replenishment import TOUCH_CHUNK, _touch_until, zeroed_pages

    buf = zeroed_pages((3, 7, 5, 11))
    assert buf.shape == (3, 7, 5, 11) and buf.dtype == np.float64 and buf.flags.writeable
    assert not buf.any()
    view = buf[1, 6]
    del buf
    view[2, 3] = 4.5
    assert pickle.loads(pickle.dumps(view))[2, 3] == 4.5 and view.sum() == 4.5

    flat = np.full(2 * TOUCH_CHUNK + 100, np.nan)
    _touch_until(flat, threading.Event())
    page = engines.PAGE_FLOATS
    assert (flat[::page] == 0.0).all()
    assert np.isnan(np.delete(flat, np.arange(0, flat.size, page))).all()
    done = threading.Event()
    done.set()
    untouched = np.full(TOUCH_CHUNK, np.nan)
    _touch_until(untouched, done)
    assert np.isnan(untouched).all()

def _pool_of_repeated_rows(n: int, seed: int):
    # every repayment type (daily interest and flat fee included), principals and APRs from
    # short lists so that many loans share a schedule, scores across the bands
    from portfolio.loans.arrays import LoanArrays

    rng = np.random.default_rng(seed)
    term = rng.choice(np.array([3, 6, 12], dtype=np.int16), n)
    mob = np.floor(rng.random(n) * term).astype(np.int16)
    principal = rng.choice(np.array([500.0, 1200.0, 3000.0, 6000.5, 20_000.0]), n)
    orig = np.datetime64("2026-06-15") - (mob.astype(np.int64) * 30).astype("timedelta64[D]")
    return LoanArrays(
        loan_id=np.array([f"L{i}" for i in range(n)], dtype=object),
        balance=np.round(principal * (1 - mob / term), 2), apr=rng.choice(
            np.array([0.12, 0.18, 0.2399]), n), term_months=term,
        remaining_term=(term - mob).astype(np.int16), months_on_book=mob,
        repayment_type=rng.choice(np.array([0, 1, 2, 3], dtype=np.int8), n),
        credit_score=rng.integers(450, 900, n).astype(np.int16),
        region=np.array(["east"] * n, dtype=object), origination_date=orig,
        next_due_date=np.full(n, np.datetime64("2026-07-15")), principal=principal)


@pytest.mark.parametrize(("copula", "small_cells"), [("gaussian", 6.0), ("t", 0.0),
                                                     ("gaussian", 0.0)])
def test_new_loan_preparation_is_prepare_pool_field_for_field(copula: str,
                                                              small_cells: float) -> None:
    # replenishment.prepare_new_loans (each distinct schedule once, scattered into the cells
    # in row order) against simulation.prepare_pool, the reference, on the same new loans:
    # every field of the PreparedPool equal, bit for bit. 6,000 loans in cells of over 6 x
    # their term (the fast path), whose 4 repayment types x 5 principals x 3 APRs x 3 terms
    # repeat across loans and cells
    import dataclasses

    from portfolio.montecarlo import replenishment as repl
    from portfolio.montecarlo.simulation import prepare_pool

    a = dataclasses.replace(_age_varying(), copula=copula)
    new = replenishment_loans(_pool_of_repeated_rows(6_000, 3), CUTOFF)
    fast = repl.prepare_new_loans(new, a, small_cells=small_cells)
    ref = prepare_pool(new, a, small_cells=small_cells)
    assert fast.cell_flows.shape[0] >= 12 and fast.n_binomial_cells == fast.n_cells
    for f in dataclasses.fields(ref):
        x, y = getattr(ref, f.name), getattr(fast, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name
        else:
            assert x == y, f.name
    uid, first = engines.distinct_rows(
        np.ascontiguousarray(new.balance).view(np.int64), np.ascontiguousarray(new.apr).view(
            np.int64), np.asarray(new.term_months, dtype=np.int64),
        np.asarray(new.repayment_type, dtype=np.int64),
        np.ascontiguousarray(new.principal).view(np.int64))
    rows = np.stack([np.asarray(new.balance), np.asarray(new.apr),
                     np.asarray(new.term_months, dtype=np.float64),
                     np.asarray(new.repayment_type, dtype=np.float64)], axis=1)
    distinct, first_np, inverse = np.unique(rows, axis=0, return_index=True,
                                            return_inverse=True)
    assert len(first) == len(distinct) < 200  # numpy's distinct rows, each once
    np.testing.assert_array_equal(np.sort(first), first)  # numbered by first appearance
    np.testing.assert_array_equal(np.sort(first), np.sort(first_np))
    np.testing.assert_array_equal(rows[first[uid]], rows)  # each loan's row is its own
    assert len(np.unique(np.c_[uid, inverse.ravel()], axis=0)) == len(first)  # 1:1 with numpy


def test_new_loan_preparation_leaves_small_cells_and_seasoned_loans_to_prepare_pool() -> None:
    # cells under 6 x their term (drawn loan by loan) and loans that are not new: the
    # general preparation itself (its loan-level fields present, the same bytes)
    import dataclasses

    from portfolio.montecarlo import replenishment as repl
    from portfolio.montecarlo.simulation import prepare_pool

    a = _age_varying()
    for loans in (replenishment_loans(_pool_of_repeated_rows(300, 4), CUTOFF),
                  _pool_of_repeated_rows(3_000, 5)):
        fast = repl.prepare_new_loans(loans, a)
        ref = prepare_pool(loans, a)
        assert ref.sched is not None and fast.sched is not None
        for f in dataclasses.fields(ref):
            x, y = getattr(ref, f.name), getattr(fast, f.name)
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name
