"""Theory cross-check (issue 4 §4): Monte Carlo engine + waterfall vs the exact finite-pool reference.

A single-period homogeneous pool — n identical zero-APR bullet loans with one month left, monthly
default probability PD, asset correlation ρ, no prepayment, recovery R collected over the two
following months — is run through the Monte Carlo engine (``portfolio.montecarlo.simulation.simulate``,
both engines: ``loan`` draws every loan, ``granular`` per cell) and then through a fee-free,
zero-coupon, three-tranche sequential waterfall. With no interest and no fees the waterfall hands the total
cash (surviving principal, then recoveries reimbursing written-down principal senior first) down
the tranches, so each tranche's principal loss is min(max(L − a, 0), d − a) with
L = (1 − R)·K/n: its expected loss must equal ``finite_pool_tranche_el`` (the binomial integrated
over the factor, tested against SciPy quadrature in test_reference.py) within 3 standard errors.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from portfolio.montecarlo.assumptions import Assumptions
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import add_months
from portfolio.montecarlo.simulation import simulate
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
from tranching.analytics import loss_shares
from tranching.deal import deal_from_dict
from tranching.reference import finite_pool_tranche_el
from tranching.waterfall import run_waterfall

N_LOANS, PD, RHO, RECOVERY = 100, 0.05, 0.15, 0.4
TRANCHES = (("A", 0.08, 1.0), ("B", 0.03, 0.08), ("Sub", 0.0, 0.03))  # (name, attach, detach)


def _single_period_pool(n: int) -> LoanArrays:
    origination = np.full(n, np.datetime64("2024-04-15"))
    return LoanArrays(
        loan_id=np.array([f"T{i:05d}" for i in range(n)], dtype=object),
        balance=np.full(n, 10_000.0),
        apr=np.zeros(n),
        term_months=np.full(n, 3, dtype=np.int16),
        remaining_term=np.full(n, 1, dtype=np.int16),  # one period left
        months_on_book=np.full(n, 2, dtype=np.int16),
        repayment_type=np.full(n, 2, dtype=np.int8),  # interest only: the balance is due at once
        credit_score=np.full(n, 700, dtype=np.int16),
        region=np.array(["east"] * n, dtype=object),
        origination_date=origination,
        next_due_date=add_months(origination, np.full(n, 3)),
        principal=np.full(n, 10_000.0),
    )


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["loan", "granular"])
def test_tranche_el_matches_finite_pool_reference_within_3_se(engine: str) -> None:
    shape = (len(SCORE_BANDS), len(ALLOWED_TERMS), 24)
    assumptions = Assumptions(default_hazard=np.full(shape, PD), prepay_smm=np.zeros(shape),
                              recovery_rate=RECOVERY, recovery_lag=(0.5, 0.5), rho=RHO,
                              factor_persistence=0.0)
    paths = simulate(_single_period_pool(N_LOANS), assumptions, n_paths=4000, seed=2026,
                     engine=engine)  # type: ignore[arg-type]
    assert paths.interest.sum() == 0.0 and paths.prepayment.sum() == 0.0
    deal = deal_from_dict({
        "deal": {"name": "theory", "closing_date": dt.date(2024, 6, 30),
                 "first_payment_date": dt.date(2024, 7, 31)},
        "tranches": [{"name": name, "size": d - a, "coupon": 0.0} for name, a, d in TRANCHES],
    })
    result = run_waterfall(deal, paths)
    # every path: the tranche losses add up to the pool's net credit loss
    np.testing.assert_allclose(result.tranche_loss.sum(axis=0), paths.loss, atol=1e-6)
    losses = loss_shares(result)
    for j, (name, a, d) in enumerate(TRANCHES):
        mc = losses[j].mean()
        se = losses[j].std(ddof=1) / np.sqrt(paths.n_paths)
        ref = finite_pool_tranche_el(a, d, N_LOANS, PD, RHO, lgd=1 - RECOVERY)
        assert se > 0, name
        assert abs(mc - ref) <= 3 * se, f"{name}: MC {mc:.5f} ± {se:.5f} vs reference {ref:.5f}"
