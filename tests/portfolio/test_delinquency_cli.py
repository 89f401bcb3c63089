"""``riskpool simulate --model delinquency`` end to end on a generated book: the run records
its model and charge-off point, a replay gives the stored paths again, and bad flags exit 2
naming the flag with nothing recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_books import pooled_book
from simulation_pools import assumptions

from portfolio.book.replay import replay_run
from portfolio.store.core import open_store
from portfolio.store.runs import get_run, load_paths, runs_root


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path]:
    return pooled_book(tmp_path, assumptions(pd_scale=3.0))


def test_simulate_with_the_delinquency_model_records_and_replays(cli, book) -> None:
    db, a_path = book
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
            "--seed", "5", "--model", "delinquency", "--charge-off-dpd", "120",
            "--engine", "loan")
    assert r.code == 0, r.err
    assert "model delinquency" in r.out and "run 1 recorded" in r.out
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
            "--seed", "5")
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        rec, haz = get_run(store, 1), get_run(store, 2)
        stored = load_paths(store, 1)
        again = replay_run(store, 1).paths()
        hazard_paths = load_paths(store, 2)
    assert (rec.inputs.model, rec.inputs.charge_off_dpd) == ("delinquency", 120)
    assert (haz.inputs.model, haz.inputs.charge_off_dpd) == ("hazard", None)
    assert again.delinquency is not None and again.delinquency.charge_off_dpd == 120
    assert np.array_equal(again.default, stored.default)  # the replay: the same numbers
    assert np.array_equal(again.balance_eop, stored.balance_eop)
    # 120 DPD: four buckets, the first charge-off in month 5; longer horizon than the hazard's
    assert again.delinquency.state_balance.shape[-1] == 5
    assert np.all(stored.default[:, :4] == 0.0) and stored.default[:, 4].max() > 0
    assert stored.n_months == hazard_paths.n_months + 4


@pytest.mark.parametrize(("flags", "match"), [
    (("--model", "markov"), "--model"),
    (("--charge-off-dpd", "120"), "--charge-off-dpd"),  # without --model delinquency
    (("--model", "delinquency", "--charge-off-dpd", "100"), "--charge-off-dpd"),
    (("--model", "delinquency", "--deterministic", "base"), "--deterministic"),
])
def test_bad_model_flags_exit_2_naming_the_flag(cli, book, flags, match) -> None:
    db, a_path = book
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "100",
            "--seed", "5", *flags)
    assert r.code == 2 and match in r.err and "Traceback" not in r.err
    with open_store(db, read_only=True) as store:
        n = store.con.execute("SELECT count(*) FROM runs").fetchone()[0]
        root = runs_root(store)
    assert n == 0 and (not root.exists() or not any(root.iterdir()))
