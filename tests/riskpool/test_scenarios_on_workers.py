"""``riskpool scenarios run --workers/--scheduler`` with the loan engine: every member's paths
run on the workers with the set's sampler, only summaries come back, and the figures are a
local run's to the byte.

The oracle is the same set run in this process (``run_scenario_set`` without a cluster, same
seed and paths): the pool's EL, VaR and ES 99.9% and their standard errors are functions of
the per-path losses, which the workers compute block by block from each block's own seed, so
they must be bit-identical (compared as float64 bytes), with the set's recorded sampler the
same as well — for the current sampler and for the legacy one a re-run of an older set uses.

One module-scoped LocalCluster of 2 single-threaded worker processes on 127.0.0.1 (no
dashboard), as tests/riskpool/test_simulate_on_workers.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_books import pooled_book
from simulation_pools import assumptions

from portfolio.montecarlo.distributed import open_client
from portfolio.store.core import open_store
from portfolio.store.scenarios import get_scenario_set
from riskpool.commands.scenarios import run_scenario_set

N_PATHS = 600  # 3 canonical blocks of 256 paths: tasks on both workers
EXACT = ("el", "el_se", "el_pct", "var_999", "var_999_se", "es_999", "es_999_se",
         "es_999_pct")

LOAN_SET = f"""
[set]
name = "loan engine on workers"
seed = 21
paths = {N_PATHS}
engine = "loan"

[[scenario]]
name = "base"

[[grid]]
name = "pd x rho"
pd_mult = [1.0, 2.0]
rho = [0.05, 0.2]
"""


@pytest.fixture(scope="module")
def cluster():
    with open_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("scenario_workers")
    db, a_path = pooled_book(tmp, assumptions(), n_loans=1200)
    set_file = tmp / "set.toml"
    set_file.write_text(LOAN_SET, encoding="utf-8")
    return db, a_path, set_file


def _same_bytes(remote, local) -> None:  # type: ignore[no-untyped-def]
    assert list(remote["scenario"]) == list(local["scenario"])
    for col in EXACT:
        got = np.asarray(remote[col], dtype=np.float64)
        want = np.asarray(local[col], dtype=np.float64)
        assert got.tobytes() == want.tobytes(), col


def test_a_loan_engine_set_on_two_workers_is_the_local_run_to_the_byte(cluster, book,
                                                                       cli) -> None:
    db, a, set_file = book
    local = run_scenario_set(db, 1, a, set_file, record=False)
    r = cli("scenarios", "run", "--db", db, "--set", set_file, "--pool", "1",
            "--assumptions", a, "--scheduler", cluster.scheduler.address)
    assert r.code == 0, r.err
    assert "loan engine (sampler subset-binomial-v1)" in r.out
    set_id = int(r.out.strip().splitlines()[-1].split()[2])
    with open_store(db, read_only=True) as store:
        rec = get_scenario_set(store, set_id)
    assert rec.loan_sampler == local.loan_sampler == "subset-binomial-v1"
    assert len(rec.results) == 5  # the base and the 2 x 2 grid
    _same_bytes(rec.results, local.table)
    # the members differ (the grid's PD x 2 raises the EL): the comparison is not vacuous
    els = rec.results.set_index("scenario")["el"]
    assert els["pd x rho [PD ×2, ρ 0.05]"] > els["pd x rho [PD ×1, ρ 0.05]"]


def test_the_legacy_sampler_reaches_the_workers(cluster, book) -> None:
    db, a, set_file = book
    legacy = "float32-per-loan-v0"
    local = run_scenario_set(db, 1, a, set_file, record=False, loan_sampler=legacy)
    remote = run_scenario_set(db, 1, a, set_file, record=False, loan_sampler=legacy,
                              scheduler=cluster.scheduler.address)
    assert remote.loan_sampler == local.loan_sampler == legacy
    _same_bytes(remote.table, local.table)
    current = run_scenario_set(db, 1, a, set_file, record=False,
                               scheduler=cluster.scheduler.address)
    assert not np.array_equal(current.table["el"], remote.table["el"])
