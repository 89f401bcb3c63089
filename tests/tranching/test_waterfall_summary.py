"""What a Dask run of the waterfall brings back (tranching.distributed.WaterfallSummary) gives
the scenario table's deal columns with the same numbers as the full WaterfallResult: each
class's loss shares (oracle: tranching.analytics.loss_shares), each trigger's breach share
(oracle: trigger_table's p_breach) and the representative line from the monthly means
(oracle: base_scenario on the paths; the means summed per block of 256 paths agree to float
rounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from simulation_pools import assumptions, mixed_pool

from portfolio.montecarlo.distributed import slice_paths
from portfolio.montecarlo.simulation import simulate
from portfolio.montecarlo.summaries import summarise
from tranching.analytics import loss_shares, trigger_table
from tranching.deal import load_deal
from tranching.distributed import WaterfallSummary
from tranching.grid import MEAN_FLOWS, base_scenario, base_scenario_from_means
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"


@pytest.fixture(scope="module")
def run():
    paths = simulate(mixed_pool(500, seed=3), assumptions(pd_scale=3.0, rho=0.15), 600, 9)
    deal = load_deal(DEAL)
    return deal, paths, run_waterfall(deal, paths)


def test_loss_shares_and_breaches_equal_the_full_result(run):
    deal, paths, result = run
    whole = WaterfallSummary.from_result(result)
    assert np.array_equal(whole.loss_shares(), loss_shares(result))
    table = trigger_table(deal, result).set_index("trigger")
    assert set(whole.breached_ever) == set(table.index) and len(table) > 0
    for name, ever in whole.breached_ever.items():
        assert ever.dtype == bool and ever.shape == (paths.n_paths,)
        assert float(ever.mean()) == table.loc[name, "p_breach"]
    # joined from two path ranges (as the workers send them): the same arrays
    parts = [WaterfallSummary.from_result(run_waterfall(deal, slice_paths(paths, lo, hi)))
             for lo, hi in ((0, 256), (256, paths.n_paths))]
    joined = WaterfallSummary.concat(parts)
    for name, ever in whole.breached_ever.items():
        assert np.array_equal(joined.breached_ever[name], ever), name
    assert np.array_equal(joined.loss_shares(), whole.loss_shares())


def test_representative_line_from_the_summaries_means(run):
    _, paths, _ = run
    mean = summarise(paths).flow_mean()
    got = base_scenario_from_means({k: mean[k] for k in MEAN_FLOWS}, paths.initial_balance, 7)
    want = base_scenario(paths, 7)
    assert (got.balance, got.wam, got.lag) == (want.balance, want.wam, want.lag)
    for field in ("wac", "cdr", "severity", "cpr"):
        assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-12), field
