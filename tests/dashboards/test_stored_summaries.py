"""What the demo writes for the pages to read, instead of recomputing it at first render, is
what recomputing gives: the revolving deal's replenishment profile stored with the run."""

from __future__ import annotations

import numpy as np

from portfolio.book.replay import replay_run
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.store.core import open_store
from portfolio.store.runs import load_replenishment
from tranching.revolving import recorded_deal


def test_demo_stores_the_replenishment_profile_a_replay_rebuilds(demo_book) -> None:
    with open_store(demo_book.db, read_only=True) as store:
        deal = recorded_deal(store, demo_book.run_id)
        assert deal.revolving_months > 0  # the CN example deal revolves
        stored = load_replenishment(store, demo_book.run_id, deal.revolving_months)
        rebuilt = replay_run(store, demo_book.run_id).replenishment(deal.revolving_months)
    assert stored is not None
    assert stored.n_vintages == rebuilt.n_vintages == deal.revolving_months
    for s in range(stored.n_vintages):
        a, b = stored.vintage(s), rebuilt.vintage(s)
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(a, name), getattr(b, name)), (s, name)
        assert np.array_equal(a.dates, b.dates) and a.initial_balance == b.initial_balance
