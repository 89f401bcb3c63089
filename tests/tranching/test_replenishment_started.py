"""``tranching.revolving.replenishment_started``: the revolving purchases' profile begun on a
thread of its own beside the run's projection (as ``riskpool simulate --structure`` and B1 run
it) is the profile :func:`replenishment_for` gives when called after the projection, bit for
bit; its error reaches the caller; a deal that does not revolve starts nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from replenishment_pools import short_tenor_loans, simple_assumptions

from portfolio.errors import ValidationError
from portfolio.montecarlo.delinquency import project
from tranching.deal import deal_from_dict
from tranching.revolving import replenishment_for, replenishment_started

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from b1_fingerprint import digest  # noqa: E402

CN = ROOT / "examples" / "deal_cn_consumer.toml"  # revolves 12 months
US = ROOT / "examples" / "deal_us_consumer.toml"  # does not revolve
CUTOFF = dt.date(2026, 6, 30)
N_PATHS, SEED = 600, 17  # three canonical blocks of 256 paths (the last one short)


def _deal(path: Path = CN):
    return deal_from_dict(tomllib.loads(path.read_text(encoding="utf-8")), str(path))


def _arrays(profile) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Every field of the profile, each by the digest of its bytes (dtype and shape too)."""
    return {f.name: digest(getattr(profile, f.name)) for f in dataclasses.fields(profile)}


@pytest.mark.parametrize("engine", ["granular", "loan"])
def test_profile_begun_beside_the_projection_is_the_one_computed_after_it(engine: str) -> None:
    loans, a = short_tenor_loans(600), simple_assumptions()
    deal = _deal()
    waiting = replenishment_started(deal, loans, a, N_PATHS, SEED, engine, cutoff=CUTOFF)
    paths = project(loans, a, N_PATHS, SEED, engine=engine)  # both at once on the cores
    background = waiting()
    after = replenishment_for(deal, loans, a, N_PATHS, SEED, engine, cutoff=CUTOFF)
    assert background is not None and after is not None
    assert background.n_paths == paths.n_paths == N_PATHS
    assert background.n_vintages == deal.revolving_months
    assert _arrays(background) == _arrays(after)
    # and the check above can fail: another seed gives other bytes
    other = replenishment_for(deal, loans, a, N_PATHS, SEED + 1, engine, cutoff=CUTOFF)
    assert other is not None and _arrays(other) != _arrays(after)
    assert np.any(other.vintage(0).default != after.vintage(0).default)


def test_a_deal_that_does_not_revolve_starts_no_thread() -> None:
    loans, a = short_tenor_loans(200), simple_assumptions()
    before = threading.active_count()
    deal = _deal(US)
    assert deal.revolving_months == 0
    waiting = replenishment_started(deal, loans, a, N_PATHS, SEED, cutoff=CUTOFF)
    assert threading.active_count() == before
    assert waiting() is None


def test_the_profiles_error_is_raised_to_whoever_waits_for_it() -> None:
    loans, a = short_tenor_loans(200), simple_assumptions()
    with pytest.raises(ValidationError) as direct:
        replenishment_for(_deal(), loans, a, N_PATHS, SEED, "analytic", cutoff=CUTOFF)
    waiting = replenishment_started(_deal(), loans, a, N_PATHS, SEED, "analytic",
                                    cutoff=CUTOFF)
    with pytest.raises(ValidationError) as later:
        waiting()
    assert str(later.value) == str(direct.value)
