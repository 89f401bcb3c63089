"""Monte Carlo engines: exactness against closed forms and SciPy integration, agreement of
the two engines, conservation, reproducibility, party split (issue 3 §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from simulation_pools import assumptions, flat_assumptions, homogeneous_pool, mixed_pool

from portfolio.errors import ValidationError
from portfolio.loans.schedules import schedule_matrix
from portfolio.montecarlo.simulation import (
    BLOCK_PATHS,
    DETERMINISTIC_Z,
    check_count,
    loss_distribution,
    prepare_pool,
    root_seed,
    run_block_tasks,
    run_blocks,
    simulate,
)

MIXED = mixed_pool(20_000, seed=11)
# "binomial": the granular engine with every cell drawn by binomial counts (small_cells=0);
# by default it draws cells with few loans loan by loan, so small test pools would not
# exercise the binomial path otherwise.
ENGINES = ["loan", "granular", "binomial"]


def run(loans, a, n_paths, seed, engine, shares=None, party_ids=(), batch_size=1000,
        threads=None):
    if engine == "binomial":
        prep = prepare_pool(loans, a, shares, party_ids, small_cells=0.0)
        assert prep.n_binomial_cells == prep.n_cells
        return run_blocks(prep, root_seed(seed), n_paths, "granular", batch_size,
                          threads=threads)
    return simulate(loans, a, n_paths, seed, engine=engine, shares=shares,
                    party_ids=party_ids, batch_size=batch_size, threads=threads)


def conditional_pd(h: float, rho: float):
    c = stats.norm.ppf(h)
    return lambda z: float(stats.norm.cdf((c - math.sqrt(rho) * z) / math.sqrt(1 - rho)))


def exact_finite_pool_cdf(k: int, n: int, h: float, rho: float) -> float:
    """P(K ≤ k) of a homogeneous one-period pool: the binomial CDF integrated over the
    Gaussian factor with scipy.integrate.quad."""
    if k < 0:
        return 0.0
    p_of = conditional_pd(h, rho)
    return integrate.quad(lambda z: stats.binom.cdf(k, n, p_of(z)) * stats.norm.pdf(z),
                          -9, 9, limit=200, points=[-3.0, 0.0, 3.0])[0]


def check_quantiles_against_exact(counts: np.ndarray, cdf, levels=(0.5, 0.9, 0.99)) -> None:
    """The MC α-quantile k̂ must satisfy F(k̂) ≥ α − tol and F(k̂ − 1) ≤ α + tol, tol four
    binomial standard errors of an empirical CDF at α."""
    n = counts.shape[0]
    for a in levels:
        k = int(np.quantile(counts, a, method="inverted_cdf"))
        tol = 4 * math.sqrt(a * (1 - a) / n)
        assert cdf(k) >= a - tol, (a, k, cdf(k))
        assert cdf(k - 1) <= a + tol, (a, k, cdf(k - 1))


@pytest.mark.parametrize(("engine", "n_loans", "h"), [("loan", 300, 0.02), ("granular", 300, 0.02),
                                                       ("granular", 1500, 0.02)])
def test_single_period_matches_exact_finite_pool_distribution(engine, n_loans, h):
    # One remaining month (3-month bullet at month 2), no prepayment, no recovery: the loss
    # is (number of defaults) × 10,000. Reference: binomial integrated over Z (SciPy quad).
    # The 1,500-loan granular case has binomial variance ≈ 29, so it runs through the
    # normal-approximation branch: this is the pool-level check of that approximation.
    rho = 0.15
    loans = homogeneous_pool(n_loans)
    a = flat_assumptions(h, rho=rho)
    paths = simulate(loans, a, 4000, seed=3, engine=engine)
    assert paths.n_months == 2  # one period + one month of recovery lag
    counts = np.rint(paths.default[:, 0] / 10_000.0).astype(int)
    assert np.allclose(counts * 10_000.0, paths.default[:, 0])
    p_of = conditional_pd(h, rho)
    exact_mean = n_loans * integrate.quad(lambda z: p_of(z) * stats.norm.pdf(z), -9, 9)[0]
    assert exact_mean == pytest.approx(n_loans * h, rel=1e-6)  # E p(Z) = h
    se = counts.std(ddof=1) / math.sqrt(counts.size)
    assert abs(counts.mean() - exact_mean) < 3 * se
    check_quantiles_against_exact(counts, lambda k: exact_finite_pool_cdf(k, n_loans, h, rho))


@pytest.mark.parametrize("engine", ["loan", "granular"])
def test_large_pool_approaches_vasicek_closed_form(engine):
    # Large homogeneous pool: P(L ≤ x) = Φ((√(1−ρ)Φ⁻¹(x/LGD) − Φ⁻¹(PD))/√ρ), LGD = 1 here
    # (Vasicek). Tolerance: MC error of an empirical CDF plus the finite-pool granularity.
    n_loans, h, rho = 20_000, 0.02, 0.12
    paths = simulate(homogeneous_pool(n_loans), flat_assumptions(h, rho=rho), 2000, seed=5,
                     engine=engine)
    frac = paths.default[:, 0] / paths.initial_balance
    for x in (0.01, 0.02, 0.04, 0.07):
        vasicek = stats.norm.cdf((math.sqrt(1 - rho) * stats.norm.ppf(x) - stats.norm.ppf(h))
                                 / math.sqrt(rho))
        empirical = float((frac <= x).mean())
        tol = 4 * math.sqrt(vasicek * (1 - vasicek) / frac.size) + 0.01
        assert abs(empirical - vasicek) < tol, (x, empirical, vasicek)


def combined_ok(m1, se1, m2, se2, k=3.0, atol=1e-6):
    return np.abs(m1 - m2) <= k * np.sqrt(se1**2 + se2**2) + atol


@pytest.mark.parametrize("engine", ["granular", "binomial"])
def test_engines_agree_on_a_realistic_pool(engine):
    # The granular engine (as run by default, and with every cell by binomial counts)
    # against the loan engine on a 20,000-loan mixed pool.
    a = assumptions()
    g = run(MIXED, a, 2048, 21, engine)
    lo = simulate(MIXED, a, 2048, seed=21, engine="loan")
    sg, sl = loss_distribution(g), loss_distribution(lo)
    assert combined_ok(sg.el, sg.el_se, sl.el, sl.el_se)
    i99 = sg.levels.index(0.99)
    assert combined_ok(sg.var[i99], sg.var_se[i99], sl.var[i99], sl.var_se[i99])
    # Every month's mean of every flow (7 flows × 28 months = 196 comparisons): within 3
    # combined SE, allowing the handful of 3-SE exceedances that 196 honest comparisons
    # produce by chance (expected 0.5; P(more than 3) < 0.2%), and none beyond 4.5 SE.
    z_scores = []
    for name in ("balance_bop", "interest", "scheduled_principal", "prepayment", "default",
                 "recovery", "balance_eop"):
        x, y = getattr(g, name), getattr(lo, name)
        n = x.shape[0]
        se = np.sqrt(x.var(0, ddof=1) / n + y.var(0, ddof=1) / n)
        diff = np.abs(x.mean(0) - y.mean(0))
        z_scores.append(np.where(se > 0, diff / np.where(se > 0, se, 1.0), diff * 1e6))
    z_all = np.concatenate(z_scores)
    assert int((z_all > 3).sum()) <= 3, np.sort(z_all)[-5:]
    assert z_all.max() < 4.5
    assert np.array_equal(g.dates, lo.dates)
    assert g.initial_balance == pytest.approx(lo.initial_balance, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_no_defaults_no_prepayments_equal_the_schedule(engine):
    loans = MIXED.take(np.arange(3000))
    a = flat_assumptions(0.0, smm=0.0, rho=0.2, recovery_rate=0.5, lag=(0.5, 0.5))
    paths = run(loans, a, 300, 1, engine)
    sm = schedule_matrix(loans.balance, loans.apr, loans.remaining_term, loans.repayment_type,
                         loans.origination_date, months_on_book=loans.months_on_book)
    T = sm.interest.shape[1]
    assert paths.n_months == T + 2
    for name, expected in (("interest", sm.interest.sum(0)),
                           ("scheduled_principal", sm.principal.sum(0)),
                           ("balance_eop", sm.balance.sum(0)),
                           ("balance_bop", (sm.balance + sm.principal).sum(0))):
        got = getattr(paths, name)
        np.testing.assert_allclose(got[:, :T], np.broadcast_to(expected, got[:, :T].shape),
                                   rtol=1e-12, atol=1e-6)
        assert np.all(got[:, T:] == 0)
    for name in ("prepayment", "default", "recovery"):
        assert np.all(getattr(paths, name) == 0)
    assert paths.initial_balance == pytest.approx(float(np.round(loans.balance, 2).sum()))


@pytest.mark.parametrize("engine", ["loan", "granular"])
def test_rho_zero_gives_the_independent_binomial_variance(engine):
    n_loans, h, n_paths = 500, 0.05, 4000
    paths = simulate(homogeneous_pool(n_loans), flat_assumptions(h, rho=0.0), n_paths, seed=9,
                     engine=engine)
    counts = paths.default[:, 0] / 10_000.0
    expected = n_loans * h * (1 - h)
    # SE of a sample variance: σ²·√(2/(n−1) + excess kurtosis/n); binomial excess kurtosis
    kurt = (1 - 6 * h * (1 - h)) / (n_loans * h * (1 - h))
    se = expected * math.sqrt(2 / (n_paths - 1) + kurt / n_paths)
    assert abs(counts.var(ddof=1) - expected) < 4 * se
    assert abs(counts.mean() - n_loans * h) < 4 * math.sqrt(expected / n_paths)


@pytest.mark.parametrize("engine", ENGINES)
def test_conservation_on_every_path_and_month(engine):
    a = assumptions(pd_scale=3.0, smm=0.05, recovery_rate=0.4)
    p = run(MIXED.take(np.arange(4000)), a, 300, 2, engine)
    scale = p.initial_balance
    np.testing.assert_allclose(p.balance_bop - p.scheduled_principal - p.prepayment - p.default,
                               p.balance_eop, atol=1e-6 * scale)
    np.testing.assert_allclose(p.balance_bop[:, 1:], p.balance_eop[:, :-1], atol=1e-9 * scale)
    np.testing.assert_allclose(p.balance_bop[:, 0], p.initial_balance, rtol=1e-12)
    for name in ("balance_bop", "interest", "scheduled_principal", "prepayment", "default",
                 "recovery", "balance_eop"):
        assert getattr(p, name).min() >= -1e-9 * scale, name
    cum_rec = np.cumsum(p.recovery, axis=1)
    cum_def = np.cumsum(p.default, axis=1)
    assert np.all(cum_rec <= a.recovery_rate * cum_def + 1e-6)
    # every defaulted balance is recovered in full within the lag
    np.testing.assert_allclose(p.recovery.sum(1), a.recovery_rate * p.default.sum(1), rtol=1e-9)
    assert np.all(p.balance_eop[:, -1] == 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_is_identical_whatever_the_batch_size(engine):
    loans, a = MIXED.take(np.arange(2000)), assumptions()
    runs = [run(loans, a, 700, 42, engine, batch_size=b, threads=t)
            for b, t in ((256, 1), (1000, 2), (10_000, 2), (300, 2))]
    for other in runs[1:]:
        for name in ("interest", "prepayment", "default", "recovery", "balance_eop"):
            assert np.array_equal(getattr(runs[0], name), getattr(other, name)), name
    assert runs[0].seed_entropy == 42
    different = run(loans, a, 700, 43, engine)
    assert not np.array_equal(runs[0].default, different.default)
    # a root SeedSequence gives the same numbers as its integer seed
    seq = run(loans, a, 700, np.random.SeedSequence(42), engine)
    assert np.array_equal(seq.default, runs[0].default)


@pytest.mark.parametrize(("n_paths", "batch_size", "threads"),
                         [(700, 256, 1), (700, 1000, 1), (700, 300, 2), (256, 10, 2), (1, 5, 1)])
def test_run_block_tasks_runs_every_block_once_and_reports_progress(n_paths, batch_size,
                                                                     threads):
    """The block scheduler shared by ``run_blocks`` and the delinquency model's
    ``run_dq_blocks``: each canonical block exactly once with its first path and size (the
    blocks tile 0..n_paths), progress rising to 1 (one thread: once per batch of
    ceil(batch_size / BLOCK_PATHS) blocks)."""
    calls: list[tuple[int, int, int]] = []
    seen: list[float] = []
    run_block_tasks(n_paths, lambda b, start, n_b: calls.append((b, start, n_b)), batch_size,
                    threads, seen.append)
    n_blocks = -(-n_paths // BLOCK_PATHS)
    assert sorted(calls) == [(b, b * BLOCK_PATHS, min(BLOCK_PATHS, n_paths - b * BLOCK_PATHS))
                             for b in range(n_blocks)]
    assert seen == sorted(seen) and seen[-1] == 1.0
    if threads == 1:
        per_batch = -(-batch_size // BLOCK_PATHS)
        assert len(seen) == -(-n_blocks // per_batch)


def test_a_failing_block_fails_the_run():
    def run_block(b: int, start: int, n_b: int) -> None:
        if b == 1:
            raise ValueError("block 1")

    for threads in (1, 2):
        with pytest.raises(ValueError, match="block 1"):
            run_block_tasks(700, run_block, threads=threads)


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "3", None])
def test_check_count_refuses_anything_but_an_integer_of_at_least_one(bad):
    with pytest.raises(ValidationError, match="n_paths.*an integer >= 1"):
        check_count("n_paths", bad)
    check_count("n_paths", np.int64(3))  # a numpy integer is one


@pytest.mark.parametrize("engine", ENGINES)
def test_party_losses_sum_to_the_pool_loss_on_every_path(engine):
    loans = MIXED.take(np.arange(3000))
    rng = np.random.default_rng(4)
    shares = rng.dirichlet([1.0, 2.0, 0.5], size=len(loans))
    shares[:500] = [1.0, 0.0, 0.0]  # some loans held by one party only
    p = run(loans, assumptions(pd_scale=2.0), 300, 8, engine, shares=shares,
            party_ids=("bank", "trust", "originator"))
    assert p.party_ids == ("bank", "trust", "originator")
    party_loss = (p.party_flows["default"] - p.party_flows["recovery"]).sum(axis=2)
    assert party_loss.shape == (3, 300)
    np.testing.assert_allclose(party_loss.sum(axis=0), p.loss, rtol=1e-9,
                               atol=1e-6 * p.initial_balance)
    for name, arr in p.party_flows.items():
        np.testing.assert_allclose(arr.sum(axis=0), getattr(p, name), rtol=1e-9,
                                   atol=1e-6 * p.initial_balance)
    # the expected split follows the balance-weighted shares at cut-off
    w = (shares * np.round(loans.balance, 2)[:, None]).sum(0)
    np.testing.assert_allclose(p.party_flows["balance_bop"][:, 0, 0], w, rtol=1e-9)


def test_share_and_party_validation():
    loans = MIXED.take(np.arange(50))
    a = assumptions()
    bad = np.full((50, 2), 0.6)
    with pytest.raises(ValidationError, match="shares"):
        simulate(loans, a, 10, seed=1, shares=bad)
    with pytest.raises(ValidationError, match="shares"):
        simulate(loans, a, 10, seed=1, shares=np.ones((49, 1)))
    neg = np.zeros((50, 2))
    neg[:, 0], neg[:, 1] = 1.5, -0.5
    with pytest.raises(ValidationError, match="shares"):
        simulate(loans, a, 10, seed=1, shares=neg)
    for v in (math.nan, math.inf, -math.inf):  # not finite: refused, naming the loan row
        odd = np.full((50, 2), 0.5)
        odd[7] = [v, 0.5]
        with pytest.raises(ValidationError, match=r"shares.*\[0, 1\].*loan row 7"):
            simulate(loans, a, 10, seed=1, shares=odd)
    with pytest.raises(ValidationError, match="party_ids"):
        simulate(loans, a, 10, seed=1, shares=np.ones((50, 1)), party_ids=("a", "b"))
    with pytest.raises(ValidationError, match="party_ids"):
        simulate(loans, a, 10, seed=1, party_ids=("a",))


def test_input_validation_names_the_field():
    loans, a = MIXED.take(np.arange(20)), assumptions()
    with pytest.raises(ValidationError, match="engine"):
        simulate(loans, a, 10, seed=1, engine="fast")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="n_paths"):
        simulate(loans, a, 0, seed=1)
    with pytest.raises(ValidationError, match="batch_size"):
        simulate(loans, a, 10, seed=1, batch_size=0)
    with pytest.raises(ValidationError, match="seed"):
        simulate(loans, a, 10, seed=-3)
    with pytest.raises(ValidationError, match="deterministic_z"):
        simulate(loans, a, 1, seed=1, deterministic_z=np.zeros(1))
    odd = homogeneous_pool(3, term=5, mob=0)
    with pytest.raises(ValidationError, match="term_months"):
        simulate(odd, a, 10, seed=1)
    with pytest.raises(ValidationError, match="remaining_term"):
        simulate(homogeneous_pool(3, term=3, mob=3), a, 10, seed=1)
    with pytest.raises(ValidationError, match="balance"):
        simulate(homogeneous_pool(3, balance=0.0), a, 10, seed=1)
    young = homogeneous_pool(3)
    young = type(young)(**{**{f: getattr(young, f) for f in young.__dataclass_fields__},
                           "months_on_book": np.full(3, -1, dtype=np.int16)})
    with pytest.raises(ValidationError, match="months_on_book"):
        simulate(young, a, 10, seed=1)
    with pytest.raises(ValidationError, match="levels"):
        loss_distribution(np.arange(10.0), levels=(0.5, 1.0))
    with pytest.raises(ValidationError, match="paths"):
        loss_distribution(np.zeros(0))


def test_deterministic_scenarios():
    loans, a = MIXED.take(np.arange(5000)), assumptions()
    proj = {name: simulate(loans, a, 1, seed=0, deterministic_z=z, engine=eng)
            for name, z in DETERMINISTIC_Z.items() for eng in ("granular",)}
    assert DETERMINISTIC_Z["adverse"] == pytest.approx(stats.norm.ppf(0.05))
    assert DETERMINISTIC_Z["severe"] == pytest.approx(stats.norm.ppf(0.01))
    assert proj["base"].n_paths == 1
    assert proj["base"].loss[0] < proj["adverse"].loss[0] < proj["severe"].loss[0]
    same = simulate(loans, a, 1, seed=0, deterministic_z=DETERMINISTIC_Z["adverse"],
                    engine="loan")
    assert np.array_equal(same.default, proj["adverse"].default)
    # a per-month factor path equal to the constant gives the same projection
    per_month = simulate(loans, a, 1, seed=0,
                         deterministic_z=np.full(40, DETERMINISTIC_Z["adverse"]))
    np.testing.assert_allclose(per_month.default, proj["adverse"].default)


@pytest.mark.parametrize("engine", ENGINES)
def test_with_rho_zero_the_deterministic_projection_is_the_mc_mean(engine):
    # With ρ = 0 the factor is irrelevant: the conditional expectation at any Z is the
    # unconditional mean, so the MC mean of every month must be within 3 SE of it.
    loans = MIXED.take(np.arange(4000))
    a = assumptions(rho=0.0, pd_scale=2.0)
    det = simulate(loans, a, 1, seed=0, deterministic_z=1.7,
                   engine="loan" if engine == "loan" else "granular")
    mc = run(loans, a, 1024, 12, engine)
    for name in ("interest", "prepayment", "default", "recovery", "balance_eop"):
        x = getattr(mc, name)
        se = x.std(0, ddof=1) / math.sqrt(x.shape[0])
        assert np.all(np.abs(x.mean(0) - getattr(det, name)[0]) <= 3.5 * se + 1e-6), name


def test_every_mean_has_its_standard_error():
    p = simulate(MIXED.take(np.arange(1000)), assumptions(), 300, seed=6)
    mean, se = p.mean_se("interest")
    np.testing.assert_allclose(mean, p.interest.mean(axis=0))
    np.testing.assert_allclose(se, p.interest.std(axis=0, ddof=1) / math.sqrt(300))
    mean, _ = p.mean_se("collections")
    np.testing.assert_allclose(mean, p.collections.mean(axis=0))
    with pytest.raises(ValueError, match="name"):
        p.mean_se("losses")
