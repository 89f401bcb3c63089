"""The delinquency-state model on Dask workers (portfolio.montecarlo.distributed with a
``delinquency.prepare_delinquency`` pool) and ``riskpool simulate --model delinquency
--workers/--scheduler``.

The oracle for every figure is the local engine itself: ``delinquency.simulate_delinquency``
with the same seed (on 1 and on 2 threads), whose paths the distributed run must reproduce
bit for bit (``np.array_equal``: every flow, the balances by state, the cured balances, the
party split) on 1, 2 and 4 worker processes, with either engine, after a worker is killed
mid-run; the deal's waterfall on the workers must equal ``tranching.waterfall.run_waterfall``
on the local paths (its delinquency triggers read the balances by state), and a run recorded
from the workers' summaries must store the local run's loss figures and replay to them.

One module-scoped ``LocalCluster`` of 4 single-threaded worker processes on 127.0.0.1
(processes: a worker is killed); the 4 → 2 → 1 test retires workers and runs last.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from cli_books import calibrated_pool, run_cli
from simulation_pools import assumptions, mixed_pool

from dashboards import access
from dashboards.auth import Viewer
from portfolio.book.replay import replay_run
from portfolio.montecarlo.delinquency import (
    prepare_delinquency,
    prepare_delinquency_from_parts,
    run_dq_blocks,
    simulate_delinquency,
)
from portfolio.montecarlo.distributed import (
    open_client,
    prepare_delinquency_on_workers,
    require_dask,
    run_summary,
    simulate_distributed,
)
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.montecarlo.simulation import root_seed
from portfolio.montecarlo.summaries import part_cells, summarise
from portfolio.store.core import open_store
from portfolio.store.parquet_book import loan_parts, write_loan_parts
from portfolio.store.runs import (
    get_run,
    list_runs,
    load_path_losses,
    load_paths,
    load_quantile_paths,
    paths_stored,
    run_loss_stats,
    run_monthly,
)
from portfolio.store.tranches import load_tranche_results
from riskpool.commands.scenarios import run_scenario_set
from tranching.deal import load_deal
from tranching.distributed import WaterfallOnWorkers, WaterfallSummary
from tranching.revolving import load_deal_record
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"  # revolving; a 30+ DPD trigger
N_PATHS = 600  # 3 canonical blocks (256 + 256 + 88): tasks on several workers
SEED = 4242
ROUNDING = 1e-12  # a mean over the paths taken block by block: float rounding only

# the hooks below run on the workers; this module is imported by path (importlib mode), so
# ship its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    require_dask()
    import dask.config  # optional dependency: imported only where a cluster runs

    # a killed worker's nanny restarts it; give that time on a busy box (test_distributed.py)
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "600s"}), \
            open_client(workers=4) as client:
        # every worker up before anything is scattered: a scattered pool held by the one
        # worker that is later killed could not be recovered (a task can be, data cannot)
        client.wait_for_workers(4, timeout=300)
        yield client


@pytest.fixture(scope="module")
def pool():
    loans = mixed_pool(250, seed=11)
    rng = np.random.default_rng(3)
    shares = rng.dirichlet([2.0, 1.0], len(loans))
    return loans, assumptions(pd_scale=3.0, rho=0.12), shares


@pytest.fixture(scope="module")
def local(pool):
    """The local runs, each on 1 and on 2 threads (the same bytes: checked here)."""
    loans, a, shares = pool
    out = {}
    for eng in ("granular", "loan"):
        runs = [simulate_delinquency(loans, a, N_PATHS, SEED, engine=eng, shares=shares,
                                     party_ids=("platform", "bank"), threads=t,
                                     charge_off_dpd=120)
                for t in (1, 2)]
        _assert_same_paths(runs[1], runs[0])
        out[eng] = runs[0]
    return out


def _assert_same_paths(a: PoolPaths, b: PoolPaths) -> None:
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.initial_balance == b.initial_balance and a.seed_entropy == b.seed_entropy
    assert np.array_equal(a.dates, b.dates) and a.party_ids == b.party_ids
    assert set(a.party_flows) == set(b.party_flows)
    for name, arr in a.party_flows.items():
        assert np.array_equal(arr, b.party_flows[name]), f"party {name}"
    da, db = a.delinquency, b.delinquency
    assert da is not None and db is not None
    assert (da.charge_off_dpd, da.cure_rule) == (db.charge_off_dpd, db.cure_rule)
    for name in ("state_balance", "cures", "party_state_balance", "party_cures"):
        assert np.array_equal(getattr(da, name), getattr(db, name)), name


def _assert_same_summary(a, b) -> None:
    for name in ("loss", "party_loss", "block_sum", "block_m2", "party_block_sum"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.initial_balance == b.initial_balance


def test_waterfall_on_workers_reads_the_delinquency_states_as_locally(cluster, pool):
    loans, a, _ = pool
    deal = load_deal(DEAL)
    assert deal.revolving_months > 0
    assert any(t.metric.value.startswith("dpd") for t in deal.triggers)
    local = simulate_delinquency(loans, a, N_PATHS, SEED)
    profile = simulate_replenishment(loans, a, N_PATHS, SEED, model="delinquency",
                                     purchase_months=deal.revolving_months)
    run = simulate_distributed(loans, a, N_PATHS, SEED, model="delinquency", client=cluster,
                               per_paths=WaterfallOnWorkers(deal, profile), blocks_per_task=1)
    assert run.n_tasks == 3
    _assert_same_paths(run.paths, local)
    expect = WaterfallSummary.from_result(run_waterfall(deal, local, replenishment=profile))
    got = run.reduced
    for name in ("tranche_loss", "interest_paid", "principal_received", "tranche_cashflows",
                 "residual"):
        assert np.array_equal(getattr(got, name), getattr(expect, name)), name
    assert set(got.trigger_months) == {t.name for t in deal.triggers}
    for name, months in expect.trigger_months.items():
        assert np.array_equal(got.trigger_months[name], months), name
        assert np.array_equal(got.breached_ever[name], expect.breached_ever[name]), name
    # the DPD trigger is in force in some months: the balances by state reached it
    dpd = next(t.name for t in deal.triggers if t.metric.value.startswith("dpd"))
    assert expect.trigger_months[dpd].sum() > 0


def test_summaries_and_quantile_paths_with_the_states(cluster, pool, local):
    loans, a, shares = pool
    expect = local["loan"]
    prep = prepare_delinquency(loans, a, engine="loan", charge_off_dpd=120)
    run = run_summary(cluster, prep, SEED, N_PATHS, engine="loan", quantiles=(0.5, 0.99),
                      blocks_per_task=2)
    assert run.n_tasks == 2
    pool_only = simulate_delinquency(loans, a, N_PATHS, SEED, engine="loan",
                                     charge_off_dpd=120)
    assert np.array_equal(pool_only.loss, expect.loss)  # the split leaves the pool as it is
    _assert_same_summary(run.summary, summarise(pool_only))
    q = run.quantile_paths
    assert q is not None and q.n_paths == 2
    order = np.sort(expect.loss)
    assert list(expect.loss[run.quantile_index]) == [order[299], order[593]]
    for name in FLOW_NAMES:
        assert np.array_equal(getattr(q, name), getattr(expect, name)[run.quantile_index])
    assert q.delinquency is not None and q.delinquency.charge_off_dpd == 120
    assert np.array_equal(q.delinquency.state_balance,
                          expect.delinquency.state_balance[run.quantile_index])
    assert np.array_equal(q.delinquency.cures, expect.delinquency.cures[run.quantile_index])


def test_a_tape_read_by_the_workers_gives_the_one_process_pool_and_paths(cluster, pool,
                                                                         tmp_path):
    """The workers read a loan tape's partitions and send back their cells; the client adds
    the transition tables: the same bytes as in one process (``prepare_delinquency_from_parts``),
    whose tables are those of ``prepare_delinquency`` on the loans (the same cells, the same
    keys) and whose scheduled flows are the loans' summed partition by partition."""
    loans, a, _ = pool
    for i, lo in enumerate((0, 100, 200)):
        write_loan_parts(loans.take(np.arange(lo, min(lo + 100, len(loans)))), tmp_path, i)
    parts = loan_parts(tmp_path)
    got = prepare_delinquency_on_workers(cluster, parts, a, charge_off_dpd=120)
    one = prepare_delinquency_from_parts([part_cells(load(), a) for load in parts], a,
                                         charge_off_dpd=120)
    whole = prepare_delinquency(loans, a, charge_off_dpd=120)
    for f in ("H", "n_months", "n_buckets", "charge_off_dpd", "cure_rule", "loading"):
        assert getattr(got, f) == getattr(one, f) == getattr(whole, f), f
    for f in ("dates", "cell_h", "thr_rc", "thr_roll", "thr_cure", "smm"):
        assert np.array_equal(getattr(got, f), getattr(one, f)), f
        assert np.array_equal(getattr(got, f), getattr(whole, f)), f
    assert np.array_equal(got.cell_cum, one.cell_cum)
    assert np.array_equal(got.base.cell_n, whole.base.cell_n)
    np.testing.assert_allclose(got.cell_cum, whole.cell_cum, rtol=1e-12, atol=1e-6)
    expect = run_dq_blocks(one, root_seed(SEED), N_PATHS, "granular")
    run = run_summary(cluster, got, SEED, N_PATHS, quantiles=(0.99,))
    _assert_same_summary(run.summary, summarise(expect))
    assert run.quantile_paths is not None and run.quantile_paths.delinquency is not None
    assert np.array_equal(run.quantile_paths.delinquency.state_balance,
                          expect.delinquency.state_balance[run.quantile_index])
    # and the loans' own run to float rounding (the same draws on the same cells)
    local = simulate_delinquency(loans, a, N_PATHS, SEED, charge_off_dpd=120)
    np.testing.assert_allclose(run.summary.loss, local.loss, rtol=1e-9)


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


def test_a_worker_killed_mid_run_leaves_the_paths_unchanged(cluster, pool, local, tmp_path):
    loans, a, shares = pool
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

    run = simulate_distributed(loans, a, N_PATHS, SEED, engine="granular", shares=shares,
                               party_ids=("platform", "bank"), model="delinquency",
                               charge_off_dpd=120, client=cluster, blocks_per_task=1,
                               on_task_start=_hold_block_1(str(tmp_path)),
                               progress=on_progress)
    assert len(killed) == 1
    _assert_same_paths(run.paths, local["granular"])
    cluster.cluster.scale(4)  # the nanny restarts it (slowly on a busy box)
    cluster.wait_for_workers(4, timeout=300)


@pytest.fixture(scope="module")
def book(tmp_path_factory, cluster):
    """A small book and pool; runs of the delinquency model under a PD stress with the
    revolving deal: 1 local, 2 on the cluster (--scheduler). Also the flags of a run without
    the deal, with the loan engine at 120 DPD."""
    db, a_path = calibrated_pool(tmp_path_factory.mktemp("dq_workers"), 1500, seed=3)
    run = ("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths",
           str(N_PATHS), "--seed", "9", "--model", "delinquency", "--pd-mult", "4", "--quiet")
    run_cli(*run, "--structure", DEAL)
    run_cli(*run, "--structure", DEAL, "--scheduler", cluster.scheduler.address)
    return db, a_path, (*run, "--engine", "loan", "--charge-off-dpd", "120")


def test_simulate_cli_on_workers_prints_and_records_the_local_figures(book, cli):
    db, _, plain = book
    here = cli(*plain)  # run 3
    there = cli(*plain, "--workers", "2")  # run 4: a cluster of its own
    assert here.code == 0 and there.code == 0, there.err
    assert "on 2 Dask workers" in there.out and "model delinquency" in there.out
    table = [ln for ln in here.out.splitlines() if ln.lstrip().startswith(("EL", "VaR", "ES"))]
    assert len(table) == 7
    assert table == [ln for ln in there.out.splitlines()
                     if ln.lstrip().startswith(("EL", "VaR", "ES"))]
    with open_store(db, read_only=True) as store:
        runs = {r: get_run(store, r) for r in (3, 4)}
        assert paths_stored(store, 3) and not paths_stored(store, 4)
        full = load_paths(store, 3)
        # the same inputs as the local run, but where it ran (and the stored assumptions' files)
        local_in, remote_in = (runs[r].simulation_inputs().to_json() for r in (3, 4))
        assert remote_in.pop("dask") == {"workers": 2, "scheduler": "local"}
        assert local_in.pop("dask") is None
        for key in ("assumptions", "assumptions_exact"):
            local_in.pop(key), remote_in.pop(key)
        assert remote_in == local_in
        assert (remote_in["model"], remote_in["charge_off_dpd"], remote_in["engine"]) == \
            ("delinquency", 120, "loan")
        # every path's loss, hence every loss measure: the same bits
        assert np.array_equal(load_path_losses(store, 4), full.loss)
        assert run_loss_stats(store, 4).equals(run_loss_stats(store, 3))
        for key in ("el", "el_se", "var_0.999", "es_0.99", "initial_balance", "n_months"):
            assert runs[4].summary[key] == runs[3].summary[key], key
        m_here, m_there = run_monthly(store, 3), run_monthly(store, 4)
        assert list(m_here["period_end"]) == list(m_there["period_end"])
        for name in FLOW_NAMES:
            # to float rounding of the flow's own scale (a flow that is the same on every
            # path, month 1's opening balance, has an SE of rounding noise on either side)
            scale = max(float(np.max(np.abs(m_here[name].to_numpy(float)))), 1e-300)
            for col in (name, f"{name}_se"):
                a, b = m_here[col].to_numpy(float), m_there[col].to_numpy(float)
                assert np.max(np.abs(a - b)) <= ROUNDING * scale, col
        # the paths at the VaR levels: those rows of the local run, with their balances by state
        _, index, qpaths = load_quantile_paths(store, 4)
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(qpaths, name), getattr(full, name)[index]), name
        assert qpaths.delinquency is not None
        assert np.array_equal(qpaths.delinquency.state_balance,
                              full.delinquency.state_balance[index])
        # a replay of the run recorded from the workers gives its stored losses again
        again = replay_run(store, 4).paths()
    assert again.delinquency is not None and again.delinquency.charge_off_dpd == 120
    assert np.array_equal(again.loss, full.loss)


def test_simulate_from_a_tape_on_workers_and_a_revolving_deal_refused(book, cluster, cli,
                                                                      tmp_path):
    db, _, plain = book
    tape = tmp_path / "tape"
    assert cli("pool", "export", "--db", db, "--pool", "1", "--out", tape).code == 0
    run = [x for x in plain if x not in ("--engine", "loan", "--charge-off-dpd", "120")]
    assert run[-1] == "--quiet" and "--structure" not in run
    with open_store(db, read_only=True) as store:
        before = len(list_runs(store, "simulation"))
    # a revolving deal's purchases would need the hazard model's profile from the cells
    r = cli(*run, "--tape", tape, "--scheduler", cluster.scheduler.address,
            "--structure", DEAL)
    assert r.code == 2 and "--structure" in r.err and "does not revolve" in r.err
    assert "Traceback" not in r.err
    r = cli(*run, "--tape", tape, "--scheduler", cluster.scheduler.address)
    assert r.code == 0, r.err
    assert "model delinquency" in r.out
    with open_store(db, read_only=True) as store:
        runs = list_runs(store, "simulation")
        new = int(runs["run_id"].iloc[0])
        assert len(runs) == before + 1
        inputs = get_run(store, new).simulation_inputs()
        losses = load_path_losses(store, new)
        local = load_path_losses(store, 1)  # the same flags (and the deal), locally
        # the tape run records the draw it made (a run recorded without one replays with the
        # earlier draw, dq-binomial-v0: other numbers), so its replay gives its losses again
        again = replay_run(store, new).paths()
    assert (inputs.model, inputs.engine, inputs.book) == ("delinquency", "granular",
                                                          str(tape.resolve()))
    assert inputs.loan_sampler == "dq-lanes-v1"
    np.testing.assert_allclose(again.loss, losses, rtol=1e-9)
    # the tape's cells summed partition by partition: each path's loss to float rounding
    np.testing.assert_allclose(losses, local, rtol=1e-9)
    assert not np.array_equal(losses, np.zeros_like(losses))


def test_structure_on_workers_gives_the_local_tranche_and_trigger_tables(book):
    db, _, _ = book
    with open_store(db, read_only=True) as store:
        local, remote = load_tranche_results(store, 1), load_tranche_results(store, 2)
        trig_local = load_deal_record(store, 1).triggers
        trig_remote = load_deal_record(store, 2).triggers
        assert run_loss_stats(store, 2).equals(run_loss_stats(store, 1))
        inputs = get_run(store, 2).simulation_inputs()
    assert inputs.model == "delinquency" and inputs.dask is not None
    assert list(remote.columns) == list(local.columns)
    rounded = ("price", "mod_duration", "yield")  # QuantLib on the mean cash flow by month
    for col in local.columns:
        a, b = local[col].to_numpy(), remote[col].to_numpy()
        if col in rounded:
            np.testing.assert_allclose(b.astype(float), a.astype(float), rtol=ROUNDING)
        elif a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), col
        else:
            assert list(a) == list(b), col
    # the triggers, the 30+ DPD one read from the delinquency states: the same table
    assert trig_remote.equals(trig_local)
    assert 0 < trig_local["p_breach"].max()


def test_the_dashboard_reads_a_delinquency_run_recorded_from_summaries(book):
    db, _, _ = book
    treasury = Viewer("tester", "treasury")
    local, remote = access.run_view(db, treasury, 1), access.run_view(db, treasury, 2)
    assert np.array_equal(remote.loss, local.loss) and remote.stats.equals(local.stats)
    assert remote.note.startswith("Run 2 was recorded from summaries") and not local.note
    a, b = local.balance_fan["mean"].to_numpy(), remote.balance_fan["mean"].to_numpy()
    assert np.max(np.abs(a - b)) <= ROUNDING * np.max(np.abs(a))  # the monthly means
    deal_toml = access.stored_deal_toml(db, treasury, 2)
    assert deal_toml is not None
    with open_store(db, read_only=True) as store:
        assert access.tranches(db, treasury, 2, deal_toml).table.equals(
            load_tranche_results(store, 2))


SCENARIO_SET = """
[set]
name = "delinquency on workers"
seed = 5
paths = 300
model = "delinquency"

[[scenario]]
name = "base"

[[grid]]
name = "rolls"
roll_mult = [1.5]
"""


def test_delinquency_scenario_set_on_workers_equals_the_local_run(book, cluster, tmp_path):
    db, a_path, _ = book
    set_path = tmp_path / "set.toml"
    set_path.write_text(SCENARIO_SET, encoding="utf-8")
    mine = run_scenario_set(db, 1, a_path, set_path, structure=DEAL, record=False)
    remote = run_scenario_set(db, 1, a_path, set_path, structure=DEAL, record=False,
                              scheduler=cluster.scheduler.address)
    here, there = mine.table.set_index("scenario"), remote.table.set_index("scenario")
    assert list(here.index) == list(there.index) and len(here) == 2
    assert here.index[0] == "base" and here.index[1].startswith("rolls")
    assert here["el"].iloc[1] > here["el"].iloc[0]  # the rolls ×1.5 raise the loss
    # pool loss figures, each class's EL and each trigger's breach share: the same numbers
    exact = [c for c in here.columns if c.startswith(("el", "var_", "es_", "p_breach_"))]
    assert any(c.startswith("el_") for c in exact)
    assert any(c.startswith("p_breach_") for c in exact)
    for col in exact:
        assert list(there[col]) == list(here[col]), col
    # the representative line from the summed monthly means: to float rounding
    for col in [c for c in here.columns if c == "cdr" or c.startswith("breakeven_cdr_")]:
        np.testing.assert_allclose(there[col], here[col], rtol=1e-9, atol=1e-12)


def test_same_seed_same_numbers_on_4_2_1_workers(cluster, pool, local):
    """Runs last: it retires workers from the shared cluster."""
    loans, a, shares = pool
    seen = []
    cluster.cluster.scale(4)
    cluster.wait_for_workers(4, timeout=300)
    for n in (4, 2, 1):
        have = list(cluster.scheduler_info()["workers"])
        if len(have) > n:
            cluster.retire_workers(workers=have[n:], close_workers=True)
        for _ in range(600):  # the scheduler has taken the retired workers off
            if len(cluster.scheduler_info()["workers"]) == n:
                break
            time.sleep(0.1)
        for eng, expect in local.items():
            run = simulate_distributed(loans, a, N_PATHS, SEED, engine=eng, shares=shares,
                                       party_ids=("platform", "bank"), model="delinquency",
                                       charge_off_dpd=120, client=cluster, blocks_per_task=1)
            seen.append(run.n_workers)
            _assert_same_paths(run.paths, expect)
    assert seen == [4, 4, 2, 2, 1, 1]
