"""``run_waterfall_part``: the month loop recording only the arrays the caller keeps (the
dispersion's retained securitisation reads a few per-path totals of its run). Every kept array
has the full run's bytes: on every case of ``benchmarks/waterfall_fingerprint.py`` (the
example deals with and without a profile and 160 random structures, a random half of the
arrays kept per case) at the default, 1 and 3 threads, and here on the CN deal with
hand-picked keeps; an array not kept is not there (reading it raises)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import waterfall_fingerprint  # noqa: E402

from tranching import waterfall  # noqa: E402
from tranching.deal import load_deal  # noqa: E402
from tranching.errors import DealError  # noqa: E402
from tranching.waterfall import run_waterfall, run_waterfall_part  # noqa: E402


def _bytes(a: np.ndarray) -> tuple[str, tuple[int, ...], bytes]:
    return a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()


@pytest.fixture(scope="module")
def cn():
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    paths = waterfall_fingerprint.pool(600, 30, 2027, pd=0.02, rho=0.3)
    profile = waterfall_fingerprint.pool(600, 18, 99, term=12, initial=1e6)
    return deal, paths, profile, run_waterfall(deal, paths, profile)


@pytest.mark.parametrize("threads", [1, 2])
def test_kept_arrays_have_the_full_runs_bytes(cn, threads):
    deal, paths, profile, full = cn
    keep = {"principal_paid", "reimbursed", "residual", "fees_paid", "metrics.cnl",
            "pool_cash.balance_eop", "revolving"}
    part = run_waterfall_part(deal, paths, profile, keep=keep, threads=threads)
    for name in ("principal_paid", "reimbursed", "residual", "revolving"):
        assert _bytes(getattr(part, name)) == _bytes(getattr(full, name)), name
    assert list(part.fees_paid) == list(full.fees_paid) and len(full.fees_paid) >= 1
    for name, v in full.fees_paid.items():  # a group's name keeps all of its arrays
        assert _bytes(part.fees_paid[name]) == _bytes(v)
    assert list(part.metrics) == ["cnl"]  # group.name keeps that one
    assert _bytes(part.metrics["cnl"]) == _bytes(full.metrics["cnl"])
    assert _bytes(part.pool_cash["balance_eop"]) == _bytes(full.pool_cash["balance_eop"])
    assert _bytes(part.tranche_loss) == _bytes(full.tranche_loss)
    assert _bytes(part.principal_received) == _bytes(full.principal_received)
    assert part.n_paths == full.n_paths == paths.n_paths
    assert part.tranche_names == full.tranche_names and part.dates == full.dates
    assert _bytes(part.original_balance) == _bytes(full.original_balance)


def test_arrays_not_kept_are_not_made(cn):
    deal, paths, profile, _ = cn
    part = run_waterfall_part(deal, paths, profile, keep={"residual", "metrics.cnl"})
    assert set(part.arrays) == {("pool", "residual"), ("metrics", "cnl")}
    with pytest.raises(AttributeError, match="balance: not kept.*pool.residual"):
        _ = part.balance
    with pytest.raises(AttributeError, match="principal_paid: not kept"):
        _ = part.tranche_loss  # made of principal_paid and reimbursed
    assert part.fees_paid == {} and list(part.metrics) == ["cnl"]
    # nothing kept: the run still runs (the month loop is the same), and records nothing
    empty = run_waterfall_part(deal, paths, profile, keep=())
    assert dict(empty.arrays) == {} and empty.n_paths == paths.n_paths


@pytest.mark.parametrize("name", ["balances", "metric.cnl", "tranche_loss", ""])
def test_a_keep_that_is_no_array_of_the_result_is_refused(cn, name):
    deal, paths, profile, _ = cn
    with pytest.raises(DealError, match="keep") as err:
        run_waterfall_part(deal, paths, profile, keep={"residual", name})
    assert repr(name) in str(err.value) and "interest_paid" in str(err.value)


def test_the_fingerprint_check_of_parts_finds_a_changed_array(monkeypatch):
    """``part_mismatches`` fails a case whose kept array differs from the full run's (one
    element of the first kept per-path array negated: +0.0 becomes -0.0 at the least)."""
    monkeypatch.setattr(waterfall_fingerprint, "N_RANDOM", 2)
    tape_part = waterfall.Tape.part

    def changed(self, *args):
        for (group, _), v in self.out.items():
            if group != "tranche":
                v[0, 1] = -v[0, 1]
                break
        return tape_part(self, *args)

    monkeypatch.setattr(waterfall.Tape, "part", changed)
    assert waterfall_fingerprint.part_mismatches() == [
        "cn/base", "cn/stressed", "cn/base+profile", "cn/stressed+profile", "us/base",
        "us/stressed", "us/base+profile", "us/stressed+profile", "random/000", "random/001"]


@pytest.mark.slow
@pytest.mark.parametrize("threads", [None, 1, 3])
def test_every_fingerprint_case_keeps_the_full_runs_bytes(threads):
    assert waterfall_fingerprint.part_mismatches(threads) == []
