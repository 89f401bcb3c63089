"""``riskpool dispersion --workers/--scheduler``: the run's paths simulated again on Dask workers
from its recorded inputs with the allocation's shares, the dispersion computed there
(``partners.distributed.DispersionOnWorkers``), only per-path vectors back.

The oracle is the local command on the run that kept its paths (``disperse_paths`` on the
paths re-simulated in this process with the allocation's shares): every figure must be the
same bits — for that run and for the same run recorded from summaries
(``riskpool simulate --workers``), which the local command cannot disperse at all.

One module-scoped LocalCluster of 2 single-threaded workers on 127.0.0.1 (no dashboard).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_books import calibrated_pool, run_cli

from dashboards import access
from dashboards.auth import Viewer
from dashboards.reports import collect_sections, report_target
from partners.dispersion import disperse_paths
from partners.distributed import disperse_on_cluster, from_loan_tape
from partners.errors import AllocationError
from partners.reconciliation import economic_views
from partners.records import load_allocation, run_party_paths, run_party_split
from portfolio import settings
from portfolio.errors import NotFound
from portfolio.montecarlo.distributed import open_client
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.store.core import open_store
from portfolio.store.runs import load_path_losses
from tranching.deal import load_deal
from tranching.revolving import run_replenishment

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"  # revolving 12 months
N_PATHS = 600  # 3 canonical blocks: tasks on both workers
SEED = 11


@pytest.fixture(scope="module")
def cluster():
    with open_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def book(tmp_path_factory, cluster):
    """A small pool allocated between the platform and the partners; run 1 local (paths
    kept, no party split), run 2 the same inputs on the cluster (summaries only), run 3 of
    the delinquency model (local), run 4 the same inputs from the pool's loan tape on the
    cluster (every cell drawn by binomial counts)."""
    tmp = tmp_path_factory.mktemp("disp_workers")
    db, a_path = calibrated_pool(tmp, 1200, seed=4)
    run_cli("allocate", "--db", db, "--partners", ROOT / "examples" / "partners.toml",
            "--pool", "1")
    run = ("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths",
           str(N_PATHS), "--seed", str(SEED), "--pd-mult", "3", "--quiet")
    run_cli(*run)
    run_cli(*run, "--scheduler", cluster.scheduler.address)
    run_cli("simulate", "--db", db, "--pool", "1", "--assumptions", a_path, "--paths", "50",
            "--seed", "1", "--model", "delinquency", "--quiet")
    run_cli("pool", "export", "--db", db, "--pool", "1", "--out", tmp / "tape")
    run_cli(*run, "--scheduler", cluster.scheduler.address, "--tape", tmp / "tape")  # run 4
    return db


def _same(got, expect) -> None:
    """Every figure of two dispersions: the same bits."""
    assert got.table() == expect.table()
    assert [h.row() for h in got.headlines] == [h.row() for h in expect.headlines]
    assert [(h.srt.rows() if h.srt else None) for h in got.headlines] == \
        [(h.srt.rows() if h.srt else None) for h in expect.headlines]
    assert np.array_equal(got.pool_loss, expect.pool_loss)
    assert set(got.party_losses) == set(expect.party_losses)
    for pid, loss in expect.party_losses.items():
        assert np.array_equal(got.party_losses[pid], loss), pid
    assert [v.row() for v in economic_views(got)] == [v.row() for v in economic_views(expect)]
    assert [v.line_rows() for v in economic_views(got)] == \
        [v.line_rows() for v in economic_views(expect)]
    assert got.baseline_capital == expect.baseline_capital
    assert got.hhi_partners == expect.hhi_partners


@pytest.mark.parametrize("with_deal", [False, True])
def test_on_workers_gives_the_local_dispersion_bit_for_bit(book, cluster, with_deal):
    db = book
    deal = load_deal(DEAL) if with_deal else None
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        paths, how = run_party_paths(store, 1, stored)  # the local command's paths
        profile = run_replenishment(store, 1, deal) if deal is not None else None
        splits = {r: run_party_split(store, r, stored) for r in (1, 2)}
    assert how.startswith("re-simulated")  # run 1 carries no party split of its own
    args = (stored.balance, stored.shares, stored.risk.annual_pd, stored.risk.lgd, deal)
    expect = disperse_paths(paths, *args, replenishment=profile)
    assert expect.table()[0]["el"] > 0 and len(expect.party_losses) > 1
    for run_id, split in splits.items():  # a run with its paths, the same run from summaries
        got = disperse_on_cluster(cluster, split, *args, replenishment=profile)
        _same(got.dispersion, expect)
        assert got.n_workers == 2 and got.n_tasks >= 2 and got.n_paths == N_PATHS
        # per-path vectors come back, not the (paths x months) flows the local command holds
        flows = sum(getattr(paths, k).nbytes for k in FLOW_NAMES) + sum(
            a.nbytes for a in paths.party_flows.values())
        assert 0 < got.bytes_back < flows / 5
        if with_deal:
            names = set(expect.securitisations)
            assert names and set(got.dispersion.securitisations) == names
            for name, s in expect.securitisations.items():
                g = got.dispersion.securitisations[name]
                assert np.array_equal(g.pool_loss, s.pool_loss), (run_id, name)
                for a, b in zip(g.positions, s.positions, strict=True):
                    assert np.array_equal(a.loss, b.loss), (run_id, name, a.tranche)


def test_cli_on_workers_prints_the_local_figures_for_a_run_recorded_from_summaries(
        book, cluster, cli):
    db = book
    common = ("dispersion", "--db", db, "--allocation", "1", "--structure", DEAL)
    local = cli(*common, "--run", "1")
    assert local.code == 0, local.err
    remote = cli(*common, "--run", "2", "--scheduler", cluster.scheduler.address)
    assert remote.code == 0, remote.err
    head, *rest = remote.out.splitlines()
    assert "re-simulated on 2 Dask workers" in head and "bytes" in head
    assert rest == local.out.splitlines()[1:]  # every printed figure
    assert len(rest) > 20
    # the local command cannot disperse the summary run: it points to --workers
    r = cli(*common, "--run", "2")
    assert r.code == 2 and "Traceback" not in r.err
    assert "recorded from summaries on Dask workers" in r.err
    assert "riskpool dispersion --run 2 --allocation 1 --workers" in r.err


def test_a_delinquency_model_run_on_workers_prints_the_local_figures(book, cluster, cli):
    """Run 3 (the delinquency-state model, local): simulated again on the workers
    (``prepare_delinquency`` with the allocation's shares), the deal's DPD trigger reading the
    balances by state there; every printed figure is the local command's."""
    db = book
    common = ("dispersion", "--db", db, "--allocation", "1", "--structure", DEAL, "--run", "3")
    local = cli(*common)
    assert local.code == 0, local.err
    remote = cli(*common, "--scheduler", cluster.scheduler.address)
    assert remote.code == 0, remote.err
    head, *rest = remote.out.splitlines()
    assert "re-simulated on 2 Dask workers" in head
    assert rest == local.out.splitlines()[1:]  # every printed figure
    assert len(rest) > 20


def test_bad_cluster_flags_and_runs_exit_2_with_a_message(book, cli):
    db = book
    common = ("dispersion", "--db", db, "--allocation", "1")
    r = cli(*common, "--run", "2", "--workers", "0")
    assert r.code == 2 and "--workers" in r.err and "[1, 256]" in r.err and "0" in r.err
    r = cli(*common, "--run", "2", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1")
    assert r.code == 2 and "one of them, not both" in r.err
    r = cli(*common, "--run", "2", "--workers", "two")
    assert r.code == 2 and "--workers" in r.err and "Traceback" not in r.err
    r = cli(*common, "--run", "9", "--workers", "1")
    assert r.code == 2 and "9" in r.err and "Traceback" not in r.err
    help_ = cli("dispersion", "--help")
    assert help_.code == 0 and "--workers" in help_.out and "--scheduler" in help_.out


def test_a_replay_that_misses_the_recorded_losses_is_refused(book, cluster):
    db = book
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        split = run_party_split(store, 2, stored)
    bad = type(split)(split.replay, split.shares, split.party_ids, split.loss + 1.0)
    with pytest.raises(AllocationError, match="did not reproduce its stored pool losses"):
        disperse_on_cluster(cluster, bad, stored.balance, stored.shares,
                            stored.risk.annual_pd, stored.risk.lgd)


def test_a_run_from_a_loan_tape_is_dispersed_on_its_own_paths(book, cluster):
    """A tape run drew every cell by binomial counts from cells summed partition by
    partition: prepared so from the pool's loans, each path's pool loss is the recorded one
    to float rounding (the refusal's 1e-9 is far), and the party losses add up to it."""
    db = book
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        splits = {r: run_party_split(store, r, stored) for r in (1, 2, 4)}
        recorded = load_path_losses(store, 4)
    assert [from_loan_tape(s.replay.inputs) for s in splits.values()] == [False, False, True]
    got = disperse_on_cluster(cluster, splits[4], stored.balance, stored.shares,
                              stored.risk.annual_pd, stored.risk.lgd).dispersion
    np.testing.assert_allclose(got.pool_loss, recorded, rtol=1e-12, atol=1e-6)
    parties = np.sum(list(got.party_losses.values()), axis=0)
    np.testing.assert_allclose(parties, got.pool_loss, rtol=1e-12, atol=1e-6)
    # the small cells drawn loan by loan (a run without a tape) would be other paths
    assert not np.allclose(splits[1].loss, recorded, rtol=1e-9, atol=1e-6)


def test_the_dashboard_points_a_summary_run_to_the_command(book, monkeypatch):
    db = book
    monkeypatch.delenv("RISKPOOL_SCHEDULER", raising=False)  # no cluster for the dashboard
    treasury = Viewer("tester", "treasury")
    with pytest.raises(NotFound, match="recorded from summaries on Dask workers") as exc:
        access.dispersion(db, treasury, 2, 1)
    assert "`riskpool dispersion --run 2 --allocation 1 --workers 2`" in str(exc.value)
    assert "RISKPOOL_SCHEDULER" in str(exc.value)
    target = report_target(db, treasury, dt.date(2025, 8, 31), None, run_id=2)
    sections = {x.key: x for x in collect_sections(db, treasury, dt.date(2025, 8, 31), target)}
    note = sections["dispersion"].note
    assert note.startswith("Not available: run 2 was recorded from summaries")
    assert "riskpool dispersion --run 2 --allocation 1 --workers" in note
    assert access.dispersion(db, treasury, 1, 1).pool_el > 0  # a run with its paths: shown


@pytest.mark.parametrize("with_deal", [False, True])
def test_with_a_scheduler_the_dashboard_disperses_a_summary_run_on_the_cluster(
        book, cluster, monkeypatch, with_deal):
    """``RISKPOOL_SCHEDULER`` set: the Dispersion page's data (``access.dispersion``) for the
    run recorded from summaries (run 2), and for the same inputs recorded with paths that
    lack the allocation's party split (run 1: re-simulated with the shares), is computed on
    that cluster — the local re-simulation is not called — and every table equals the one
    the page computes in its own process without a cluster, to the bit."""
    db = book
    deal_toml = DEAL.read_text(encoding="utf-8") if with_deal else None
    treasury = Viewer("tester", "treasury")
    monkeypatch.delenv("RISKPOOL_SCHEDULER", raising=False)
    local = access.dispersion(db, treasury, 1, 1, deal_toml)  # run 1 re-simulated here
    local_dq = access.dispersion(db, treasury, 3, 1, deal_toml)  # the delinquency run, here
    monkeypatch.setenv("RISKPOOL_SCHEDULER", cluster.scheduler.address)

    def no_local_simulation(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("re-simulated in the dashboard's process")

    monkeypatch.setattr(access, "run_party_paths", no_local_simulation)
    for run_id in (2, 1):
        remote = access.dispersion(db, treasury, run_id, 1, deal_toml)
        for name in ("parties", "headlines", "srt", "positions", "reconciliation", "views",
                     "economic_lines"):
            pd.testing.assert_frame_equal(getattr(remote, name), getattr(local, name),
                                          check_exact=True, obj=f"run {run_id}: {name}")
        assert (remote.pool_el, remote.pool_var_999, remote.hhi_partners) == \
            (local.pool_el, local.pool_var_999, local.hhi_partners)
        assert remote.pool_el is not None and remote.pool_el > 0
        assert len(remote.parties) > 1 and (len(remote.srt) > 0) == with_deal
    # the delinquency model's run (3): on the cluster too, the same tables to the bit
    remote = access.dispersion(db, treasury, 3, 1, deal_toml)
    for name in ("parties", "headlines", "srt", "positions", "reconciliation", "views",
                 "economic_lines"):
        pd.testing.assert_frame_equal(getattr(remote, name), getattr(local_dq, name),
                                      check_exact=True, obj=f"run 3: {name}")
    assert remote.pool_el is not None and remote.pool_el > 0


def test_riskpool_dashboard_scheduler_sets_the_dashboards_cluster(book, cli, monkeypatch):
    import streamlit.web.cli

    db = book
    for env in ("RISKPOOL_SCHEDULER", "RISKPOOL_DB", "RISKPOOL_USERS"):
        monkeypatch.setenv(env, "")  # restored after the test: the command sets them
    started: list[list[str]] = []
    monkeypatch.setattr(streamlit.web.cli, "main",
                        lambda args, **_: started.append(list(args)))
    r = cli("dashboard", "--db", db, "--scheduler", " ")
    assert r.code == 2 and "--scheduler" in r.err and "Traceback" not in r.err
    assert started == [] and settings.dask_scheduler() is None
    r = cli("dashboard", "--db", db, "--scheduler", "tcp://127.0.0.1:8786")
    assert r.code == 0, r.err
    assert len(started) == 1 and started[0][0] == "run"
    assert settings.dask_scheduler() == "tcp://127.0.0.1:8786"
