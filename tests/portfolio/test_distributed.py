"""Dask-distributed Monte Carlo (portfolio.montecarlo.distributed) and the Parquet book (issue 7).

The oracle for every distributed figure is the local engine itself
(``portfolio.montecarlo.simulation.simulate`` with the same seed): the distributed run must be
bit-identical to it (``np.array_equal``), for 1, 2 and 4 worker processes, after a worker is
killed mid-run, with the party split and with the waterfall run on the workers (the oracle
there is ``tranching.waterfall.run_waterfall`` on the local paths).

One module-scoped ``LocalCluster`` of 4 single-threaded worker processes on 127.0.0.1 keeps
start-up cost to one cluster; the 4 → 2 → 1 test retires workers and runs last.
"""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time
import urllib.parse
import warnings
from pathlib import Path

import cloudpickle
import duckdb
import numpy as np
import pytest
from cli_books import CRITERIA, calibrated_pool
from simulation_pools import assumptions, mixed_pool

from partners.dispersion import disperse_paths
from partners.distributed import DispersionOnWorkers, disperse_joined
from portfolio.errors import ValidationError
from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.distributed import (
    DistributedUnavailable,
    check_cluster_flags,
    open_client,
    prepare_on_workers,
    require_dask,
    run_summary,
    simulate_distributed,
    slice_paths,
    task_groups,
)
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.montecarlo.simulation import simulate
from portfolio.montecarlo.summaries import prepare_from_parts, summarise
from portfolio.store.core import open_store
from portfolio.store.parquet_book import loan_parts, write_loan_parts
from portfolio.store.runs import (
    get_run,
    list_runs,
    load_path_losses,
    load_quantile_paths,
)
from portfolio.store.scenarios import get_scenario_set
from riskpool.commands.scenarios import run_scenario_set
from tranching.deal import load_deal
from tranching.distributed import WaterfallOnWorkers, WaterfallSummary
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"
N_PATHS = 600  # 3 canonical blocks (256 + 256 + 88): tasks split across workers
SEED = 20260

# the hooks below run on the workers; this module is imported by path (importlib mode), so
# ship its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _criteria(tmp_path: Path) -> Path:
    """Current loans scoring 600+ (no concentration limit: the test books are tiny)."""
    path = tmp_path / "criteria.toml"
    path.write_text(CRITERIA, encoding="utf-8")
    return path


def _assert_same_paths(a: PoolPaths, b: PoolPaths) -> None:
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.initial_balance == b.initial_balance
    assert a.seed_entropy == b.seed_entropy
    assert np.array_equal(a.dates, b.dates)
    assert a.party_ids == b.party_ids
    assert set(a.party_flows) == set(b.party_flows)
    for name, arr in a.party_flows.items():
        assert np.array_equal(arr, b.party_flows[name]), f"party {name}"


@pytest.fixture(scope="module")
def cluster():
    require_dask()
    import dask.config  # optional dependency: imported only where a cluster runs

    # A killed worker is restarted by its nanny; a LocalCluster closes that nanny for good when
    # no worker of its name is back within distributed.deploy.lost-worker-timeout (15 s by
    # default). On a busy box the restart can take longer, and the tests that wait for all four
    # workers again then time out (seen in a full-suite run): give the restart time.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "600s"}), \
            open_client(workers=4) as client:
        yield client


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    """A loan tape of 3 Parquet partitions (900 loans) for the workers to read."""
    loans = mixed_pool(900, seed=8)
    out = tmp_path_factory.mktemp("tape")
    for i, lo in enumerate((0, 300, 600)):
        write_loan_parts(loans.take(np.arange(lo, lo + 300)), out, i)
    return loan_parts(out), assumptions(rho=0.12)


def _four_workers(client) -> None:
    """The shared cluster back at its four workers: a killed worker's nanny restarts it, and
    should the cluster have closed that nanny meanwhile, ``scale(4)`` starts a new one."""
    client.cluster.scale(4)
    client.wait_for_workers(4, timeout=300)


def _assert_same_summary(a, b) -> None:
    for name in ("loss", "party_loss", "block_sum", "block_m2", "party_block_sum"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.initial_balance == b.initial_balance


@pytest.fixture(scope="module")
def pool():
    loans = mixed_pool(400, seed=5)
    rng = np.random.default_rng(1)
    w = rng.dirichlet([2.0, 1.0, 1.0], len(loans))
    return loans, assumptions(rho=0.12), w


def test_cluster_is_loopback_only(cluster):
    info = cluster.scheduler_info()
    assert info["address"].startswith("tcp://127.0.0.1:")
    assert info["workers"]
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])


def test_a_local_cluster_serves_nothing_on_the_dashboard_port():
    """``dashboard_address=None`` turns Dask's dashboard off, yet the scheduler still starts
    its HTTP server (health, info and metrics routes) on the dashboard's default port 8787
    (dask/distributed issue 7207): a second cluster on the host, or anybody's dashboard, then
    collides with it. :func:`open_client`'s scheduler serves those routes on a free loopback
    port: it never tries 8787 (Dask warns when a port it asked for is taken), and there is no
    dashboard page behind the link."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_client(workers=1) as client:
            link = urllib.parse.urlsplit(client.dashboard_link)
            conn = http.client.HTTPConnection("127.0.0.1", link.port, timeout=30)
            conn.request("GET", link.path)
            status = conn.getresponse().status
            conn.close()
    assert link.hostname == "127.0.0.1"
    assert link.port != 8787
    assert not [w for w in caught if "8787" in str(w.message)]  # nor asked for it
    assert status == 404  # an HTTP server on loopback, but no dashboard page


def test_granular_with_party_split_and_waterfall_on_workers_matches_local(cluster, pool):
    loans, a, shares = pool
    parties = ("platform", "bank_a", "trust_b")
    deal = load_deal(DEAL)
    assert deal.revolving_months > 0  # purchases use the replenishment profile
    local = simulate(loans, a, N_PATHS, SEED, shares=shares, party_ids=parties)
    profile = simulate_replenishment(loans, a, N_PATHS, SEED)
    run = simulate_distributed(loans, a, N_PATHS, SEED, shares=shares, party_ids=parties,
                               per_paths=WaterfallOnWorkers(deal, profile), client=cluster,
                               blocks_per_task=1)
    assert run.n_tasks == 3
    _assert_same_paths(run.paths, local)
    # party split done on the workers: parties sum to the pool on every path
    np.testing.assert_allclose(run.paths.party_flows["default"].sum(axis=0), run.paths.default,
                               rtol=1e-12, atol=1e-6)
    wf = run_waterfall(deal, local, replenishment=profile)
    expect = WaterfallSummary.from_result(wf)
    got = run.reduced
    assert got is not None and got.n_paths == N_PATHS
    assert got.tranche_names == expect.tranche_names
    for name in ("tranche_loss", "interest_paid", "principal_received", "tranche_cashflows",
                 "residual"):
        assert np.array_equal(getattr(got, name), getattr(expect, name)), name
    for name, months in expect.trigger_months.items():
        assert np.array_equal(got.trigger_months[name], months), name


def _die_on_first_attempt(marker_dir: str):
    def hook(first_block: int) -> None:
        if first_block != 1:
            return
        try:
            fd = os.open(os.path.join(marker_dir, "killed"), os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return  # the recomputation: run normally
        os.close(fd)
        os._exit(1)  # the worker process dies mid-run, without cleaning up
    return hook


def test_lost_worker_is_recomputed_with_unchanged_result(cluster, pool, tmp_path):
    loans, a, _ = pool
    local = simulate(loans, a, N_PATHS, SEED + 1, engine="loan")
    run = simulate_distributed(loans, a, N_PATHS, SEED + 1, engine="loan", client=cluster,
                               blocks_per_task=1, on_task_start=_die_on_first_attempt(
                                   str(tmp_path)))
    assert (tmp_path / "killed").exists()  # a worker really died
    _assert_same_paths(run.paths, local)


def test_failing_task_is_retried(cluster, pool, tmp_path):
    loans, a, _ = pool

    def flaky(first_block: int) -> None:
        marker = os.path.join(str(tmp_path), f"raised_{first_block}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise OSError("transient failure")

    local = simulate(loans, a, 300, SEED + 2)
    run = simulate_distributed(loans, a, 300, SEED + 2, client=cluster, blocks_per_task=1,
                               on_task_start=flaky, retries=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raised_0", "raised_1"]
    _assert_same_paths(run.paths, local)
    with pytest.raises(OSError, match="transient"):
        simulate_distributed(loans, a, 300, SEED + 2, client=cluster,
                             on_task_start=lambda b: flaky(b + 100), retries=0)


def test_simulate_cli_with_scheduler_address(cluster, tmp_path, cli):
    db, a_path = calibrated_pool(tmp_path, 1500, seed=3)
    address = cluster.scheduler.address
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
            "--seed", "9", "--scheduler", address)
    assert r.code == 0, r.err
    assert "Dask workers" in r.out
    r2 = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
             "--seed", "9")
    assert r2.code == 0, r2.err
    # --workers: a LocalCluster of its own (one process here, to keep the test short)
    r3 = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
             "--seed", "9", "--workers", "1")
    assert r3.code == 0, r3.err
    assert "on 1 Dask workers" in r3.out
    from portfolio.montecarlo.records import DaskPlacement
    from portfolio.store.core import open_store
    from portfolio.store.runs import get_run, load_path_losses, load_paths, run_loss_stats

    with open_store(db, read_only=True) as store:
        p_local = load_paths(store, 2)
        # the runs on workers kept summaries only: every path's loss, the same bits
        assert np.array_equal(load_path_losses(store, 1), p_local.loss)
        assert np.array_equal(load_path_losses(store, 3), p_local.loss)
        assert run_loss_stats(store, 1).equals(run_loss_stats(store, 2))
        assert run_loss_stats(store, 3).equals(run_loss_stats(store, 2))
        assert get_run(store, 3).simulation_inputs().dask == DaskPlacement(1, "local")
        dask_run = get_run(store, 1).simulation_inputs().dask
        assert dask_run is not None and dask_run.scheduler == address


SCENARIO_SET = """
[set]
name = "on workers"
seed = 5
paths = 300

[[scenario]]
name = "base"

[[grid]]
name = "pd"
pd_mult = [2.0]
"""


def test_scenario_set_on_workers_equals_the_local_run(cluster, tmp_path, cli):
    db, a_path = calibrated_pool(tmp_path, 1200, seed=4)
    set_path = tmp_path / "set.toml"
    set_path.write_text(SCENARIO_SET, encoding="utf-8")
    local = run_scenario_set(db, 1, a_path, set_path, structure=DEAL, record=False)
    r = cli("scenarios", "run", "--db", db, "--set", set_path, "--pool", "1", "--assumptions",
            a_path, "--structure", DEAL, "--scheduler", cluster.scheduler.address)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        stored = get_scenario_set(store, 1).results
    remote = stored.set_index("scenario")
    mine = local.table.set_index("scenario")
    assert list(remote.index) == list(mine.index) == ["base", "pd [PD ×2]"]
    # pool loss figures, each class's EL and each trigger's breach share: the same numbers
    exact = [c for c in mine.columns if c.startswith(("el", "var_", "es_", "p_breach_"))]
    assert any(c.startswith("el_") for c in exact) and any(c.startswith("p_breach_")
                                                          for c in exact)
    for col in exact:
        assert list(remote[col]) == list(mine[col]), col
    # the representative line from the summed monthly means: to float rounding
    for col in [c for c in mine.columns if c == "cdr" or c.startswith("breakeven_cdr_")]:
        np.testing.assert_allclose(remote[col], mine[col], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValidationError, match="keep_paths"):
        run_scenario_set(db, 1, a_path, set_path, scheduler=cluster.scheduler.address,
                         keep_paths=True, record=False)


def test_simulate_a_pool_from_its_loan_tape_read_by_the_workers(cluster, tmp_path, cli):
    db, a_path = calibrated_pool(tmp_path, 1200, seed=6)
    tape_dir = tmp_path / "tape"
    r = cli("pool", "export", "--db", db, "--pool", "1", "--out", tape_dir)
    assert r.code == 0, r.err
    parts = loan_parts(tape_dir)
    assert len(parts) > 1 and "partitions by origination month" in r.out
    address = cluster.scheduler.address
    base = ("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "300",
            "--seed", "9", "--tape", tape_dir)
    r = cli(*base, "--scheduler", address)
    assert r.code == 0, r.err
    # the oracle: the same partitions prepared in this process, every block run locally;
    # the run kept summaries only (each path's loss, the paths at the VaR levels)
    prep = prepare_from_parts(parts, load_assumptions(a_path))
    local = sim.run_blocks(prep, sim.root_seed(9), 300, "granular")
    with open_store(db, read_only=True) as store:
        assert np.array_equal(load_path_losses(store, 1), local.loss)
        _, index, qpaths = load_quantile_paths(store, 1)
        inputs = get_run(store, 1).simulation_inputs()
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(qpaths, name), getattr(local, name)[index]), name
    assert inputs.book == str(tape_dir.resolve()) and inputs.n_loans == prep.n_loans
    # refused before any work, naming the flag; nothing recorded
    for extra, field in ((("--engine", "loan", "--scheduler", address), "--engine"),
                         (("--structure", DEAL, "--engine", "loan", "--scheduler", address),
                          "--engine"),
                         (("--structure", DEAL), "--tape"),
                         ((), "--tape")):
        r = cli(*base, *extra)
        assert r.code == 2 and field in r.err, (extra, r.err)
    Path(parts[0].path).unlink()  # a tape that is not the pool's
    r = cli(*base, "--scheduler", address)
    assert r.code == 2 and "--tape" in r.err and "loan tape of pool 1" in r.err
    assert cli("pool", "export", "--db", db, "--pool", "1", "--out", tape_dir).code == 2
    with open_store(db, read_only=True) as store:
        assert len(list_runs(store, "simulation")) == 1


def test_book_read_by_workers_summaries_only_equal_one_process(cluster, tape):
    parts, a = tape
    local = prepare_from_parts(parts, a)  # one process, one partition at a time
    prep = prepare_on_workers(cluster, parts, a)
    for f in ("n_loans", "T", "n_months", "initial_balance", "n_binomial_cells"):
        assert getattr(prep, f) == getattr(local, f), f
    for f in ("cell_n", "cell_r", "cell_thr", "cell_smm", "cell_flows", "cell_first", "dates"):
        assert np.array_equal(getattr(prep, f), getattr(local, f)), f
    paths = sim.run_blocks(local, sim.root_seed(SEED), N_PATHS, "granular")
    run = run_summary(cluster, prep, SEED, N_PATHS, quantiles=(0.5, 0.99), blocks_per_task=1)
    assert run.n_tasks == 3 and run.reduced is None
    _assert_same_summary(run.summary, summarise(paths))
    assert run.summary.loss.shape == (N_PATHS,)
    # the quantile paths: every flow, the same as those rows of the full run
    assert run.quantile_paths is not None and run.quantile_paths.n_paths == 2
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(run.quantile_paths, name),
                              getattr(paths, name)[run.quantile_index]), name
    # what came back: far less than the flow arrays the client no longer holds
    flows = sum(getattr(paths, k).nbytes for k in FLOW_NAMES)
    assert run.bytes_back < flows / 5


def test_dispersion_and_summary_on_workers_equal_local(cluster, pool):
    loans, a, shares = pool
    parties = ("platform", "bank_a", "trust_b")
    deal = load_deal(DEAL)
    profile = simulate_replenishment(loans, a, N_PATHS, SEED)
    local = simulate(loans, a, N_PATHS, SEED, shares=shares, party_ids=parties)
    prep = sim.prepare_pool(loans, a, shares, parties)
    run = run_summary(cluster, prep, SEED, N_PATHS, inner=DispersionOnWorkers(deal, profile))
    _assert_same_summary(run.summary, summarise(local))
    pd_, lgd = np.full(len(loans), 0.05), np.full(len(loans), 0.6)
    got = disperse_joined(run.reduced, loans.balance, shares, pd_, lgd)
    expect = disperse_paths(local, loans.balance, shares, pd_, lgd, deal, replenishment=profile)
    assert got.table() == expect.table()
    assert [h.row() for h in got.headlines] == [h.row() for h in expect.headlines]


def _hold_block_1(marker_dir: str):
    """On a worker: the first attempt at block 1 writes its pid and waits (the test kills
    that process meanwhile); the rerun after the kill goes straight through."""
    def hook(first_block: int) -> None:
        if first_block != 1:
            return
        try:
            fd = os.open(os.path.join(marker_dir, "pid"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(300)  # killed long before
    return hook


def test_summary_run_unchanged_after_a_worker_is_killed_mid_run(cluster, tape, tmp_path):
    parts, a = tape
    prep = prepare_from_parts(parts, a)
    expect = summarise(sim.run_blocks(prep, sim.root_seed(SEED + 3), N_PATHS, "granular"))
    killed: list[int] = []

    def on_progress(_fraction: float) -> None:  # on the client, as a task completes
        if killed:
            return
        pid_file = tmp_path / "pid"
        for _ in range(2400):  # block 1's task is running (or about to): wait for its pid
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        assert pid in cluster.run(os.getpid).values()  # a worker process of this cluster
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    run = run_summary(cluster, prep, SEED + 3, N_PATHS, blocks_per_task=1,
                      on_task_start=_hold_block_1(str(tmp_path)), progress=on_progress)
    assert len(killed) == 1
    _assert_same_summary(run.summary, expect)
    _four_workers(cluster)  # the nanny restarts it (slowly on a busy box)


def test_same_seed_same_numbers_on_4_2_1_workers_and_locally(cluster, pool, tape):
    """Runs last: it retires workers from the shared cluster."""
    loans, a, _ = pool
    expect = {eng: simulate(loans, a, N_PATHS, SEED, engine=eng) for eng in ("granular", "loan")}
    parts, a_tape = tape
    book_local = prepare_from_parts(parts, a_tape)
    book_expect = summarise(sim.run_blocks(book_local, sim.root_seed(SEED), N_PATHS, "granular"))
    seen = []
    _four_workers(cluster)  # workers killed by earlier tests are back
    for n in (4, 2, 1):
        have = list(cluster.scheduler_info()["workers"])
        if len(have) > n:
            cluster.retire_workers(workers=have[n:], close_workers=True)
        else:
            cluster.wait_for_workers(n, timeout=60)
        for _ in range(600):  # the scheduler has taken the retired workers off
            if len(cluster.scheduler_info()["workers"]) == n:
                break
            time.sleep(0.1)
        for eng, local in expect.items():
            run = simulate_distributed(loans, a, N_PATHS, SEED, engine=eng, client=cluster,
                                       blocks_per_task=1)
            seen.append(run.n_workers)
            _assert_same_paths(run.paths, local)
        # a book read by the workers, summaries only (default grouping: tasks per thread)
        srun = run_summary(cluster, prepare_on_workers(cluster, parts, a_tape), SEED, N_PATHS)
        _assert_same_summary(srun.summary, book_expect)
        seen.append(srun.n_workers)
    assert seen == [4, 4, 4, 2, 2, 2, 1, 1, 1]


# ------------------------------------------------------------------------------------------
# No cluster needed


def test_task_groups_cover_every_block_once():
    for n_blocks in (1, 3, 40):
        for per in (1, 2, 7, 100):
            groups = task_groups(n_blocks, per)
            covered = [b for b0, b1 in groups for b in range(b0, b1)]
            assert covered == list(range(n_blocks))
            assert all(1 <= b1 - b0 <= per for b0, b1 in groups)


@pytest.mark.parametrize(("workers", "scheduler", "det", "field"), [
    (0, None, None, "--workers"),
    (1000, None, None, "--workers"),
    (2, "tcp://127.0.0.1:1", None, "--workers/--scheduler"),
    (None, "  ", None, "--scheduler"),
    (2, None, "adverse", "--deterministic"),
])
def test_cluster_flags_are_checked(workers, scheduler, det, field):
    with pytest.raises(ValidationError, match=field):
        check_cluster_flags(workers, scheduler, det)


def test_slice_paths_keeps_every_flow_and_party(pool):
    loans, a, shares = pool
    paths = simulate(loans, a, 20, 3, shares=shares, party_ids=("platform", "b", "c"))
    part = slice_paths(paths, 5, 12)
    assert part.n_paths == 7 and part.party_ids == paths.party_ids
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(part, name), getattr(paths, name)[5:12])
        assert np.array_equal(part.party_flows[name], paths.party_flows[name][:, 5:12])


def test_bad_arguments_name_the_field(pool, cluster):
    loans, a, _ = pool
    profile = simulate_replenishment(loans, a, 30, 1)
    with pytest.raises(ValidationError, match="replenishment"):
        simulate_distributed(loans, a, 40, 1, per_paths=WaterfallOnWorkers(load_deal(DEAL), profile),
                             client=cluster)
    with pytest.raises(ValidationError, match="n_paths"):
        simulate_distributed(loans, a, 0, 1, workers=1)
    with pytest.raises(ValidationError, match="engine"):
        simulate_distributed(loans, a, 10, 1, engine="fast", workers=1)
    with pytest.raises(ValidationError, match="--workers"):
        with open_client(workers=-1):
            pass


def test_without_dask_a_clear_message_and_exit_2(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(DistributedUnavailable, match=r"riskpool\[distributed\]"):
        require_dask()
    r = cli("simulate", "--db", tmp_path / "none.duckdb", "--pool", "1", "--assumptions",
            tmp_path / "a.toml", "--seed", "1", "--workers", "2")
    assert r.code == 2
    assert "install riskpool[distributed]" in r.err
    assert not (tmp_path / "none.duckdb").exists()  # nothing read or written


# ------------------------------------------------------------------------------------------
# Parquet book


def test_export_then_pool_from_book_equals_pool_from_db(cli, tmp_path):
    db = tmp_path / "book.duckdb"
    assert cli("generate", "--db", db, "--loans", "2000", "--months", "7", "--seed", "11",
               "--as-of", "2025-06-30").code == 0
    out = tmp_path / "lake"
    r = cli("book", "export", "--db", db, "--out", out)
    assert r.code == 0, r.err
    assert "2,000 loans" in r.out
    months = sorted(p.name for p in (out / "loans").iterdir())
    assert months == [f"origination_month=2024-{m:02d}" for m in (12,)] + \
        [f"origination_month=2025-{m:02d}" for m in range(1, 7)]
    assert sorted(p.name for p in (out / "loan_performance").iterdir()) == months
    # the dataset holds the same rows as the database tables (vintage = its folder)
    con = duckdb.connect()
    for table, key in (("loans", "loan_id"), ("loan_performance", "loan_id, as_of")):
        lake = con.execute(
            f"SELECT * EXCLUDE (origination_month) FROM read_parquet('{out}/{table}/**/*.parquet',"
            f" hive_partitioning = true) ORDER BY {key}").df()
        with duckdb.connect(str(db), read_only=True) as dbc:
            base = dbc.execute(f"SELECT * FROM {table} ORDER BY {key}").df()
        assert lake.equals(base), table
    wrong = con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/loans/**/*.parquet', hive_partitioning = true)"
        " WHERE strftime(origination_date, '%Y-%m') <> origination_month").fetchone()[0]
    assert wrong == 0
    con.close()

    crit = _criteria(tmp_path)
    assert cli("pool", "create", "--db", db, "--name", "from_db", "--criteria", crit,
               "--cutoff", "2025-06-30").code == 0
    other = tmp_path / "pools_only.duckdb"  # no loans in this database at all
    r = cli("pool", "create", "--db", other, "--book", out, "--name", "from_lake",
            "--criteria", crit, "--cutoff", "2025-06-30")
    assert r.code == 0, r.err
    cols = ("loan_id, cutoff_balance, remaining_term, months_on_book, apr, credit_score, "
            "term_months, repayment_type, region, origination_date, principal")
    with duckdb.connect(str(db), read_only=True) as c1, \
            duckdb.connect(str(other), read_only=True) as c2:
        a = c1.execute(f"SELECT {cols} FROM pool_loans ORDER BY loan_id").df()
        b = c2.execute(f"SELECT {cols} FROM pool_loans ORDER BY loan_id").df()
        assert c2.execute("SELECT count(*) FROM loans").fetchone()[0] == 0
        pa_ = c1.execute("SELECT n_loans, balance, exclusions FROM pools").fetchall()
        pb_ = c2.execute("SELECT n_loans, balance, exclusions FROM pools").fetchall()
    assert len(a) > 100
    assert a.equals(b)
    assert pa_ == pb_

    # simulate --book: the pool's loans are checked against the dataset
    a_path = tmp_path / "a.toml"
    assert cli("calibrate", "--db", db, "--pool", "1", "--out", a_path).code == 0
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "50",
            "--seed", "1", "--book", out)
    assert r.code == 0, r.err
    # a book without the pool's loans is refused, nothing recorded
    small = tmp_path / "small.duckdb"
    assert cli("generate", "--db", small, "--loans", "50", "--months", "2", "--seed", "1",
               "--as-of", "2025-06-30").code == 0
    lake2 = tmp_path / "lake2"
    assert cli("book", "export", "--db", small, "--out", lake2).code == 0
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "50",
            "--seed", "1", "--book", lake2)
    assert r.code == 2 and "--book" in r.err and "missing" in r.err
    with duckdb.connect(str(db), read_only=True) as c1:
        assert c1.execute("SELECT count(*) FROM runs WHERE kind = 'simulation'").fetchone()[0] == 1


def test_export_refuses_a_non_empty_folder_and_book_must_be_a_dataset(cli, tmp_path):
    db = tmp_path / "b.duckdb"
    assert cli("generate", "--db", db, "--loans", "30", "--months", "2", "--seed", "2",
               "--as-of", "2025-03-31").code == 0
    out = tmp_path / "lake"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = cli("book", "export", "--db", db, "--out", out)
    assert r.code == 2 and "--out" in r.err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    r = cli("pool", "create", "--db", db, "--book", out, "--name", "x", "--criteria",
            _criteria(tmp_path), "--cutoff", "2025-03-31")
    assert r.code == 2 and "--book" in r.err
