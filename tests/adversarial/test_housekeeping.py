"""Housekeeping (issue 14, item 6): stale locks are detected by hostname, process start time
and age, not PID liveness alone; the temporary folders of killed runs are removed at the next
run's start. Each case checks what happened to the lock or folder, the message, and — where a
database is involved — that every table's row count is as expected."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from adversarial_helpers import row_counts
from simulation_pools import assumptions, mixed_pool

from dashboards.reports import LOCK_NAME, REPORT_LOCK_MAX_AGE, ReportLocked, report_lock
from portfolio.montecarlo.records import SimulationInputs
from portfolio.montecarlo.simulation import simulate
from portfolio.store import liveness, open_store
from portfolio.store.runs import TMP_PREFIX, record_simulation, remove_stale_tmp, runs_root

pytestmark = pytest.mark.adversarial("paths")
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def unrelated() -> subprocess.Popen:
    """A live process that has nothing to do with any lock."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> tuple[int, int | None]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = liveness.start_time(proc.pid)
    proc.wait()
    return proc.pid, start


def test_start_time_reads_proc_stat_field_22() -> None:
    """/proc/self/stat field 22 by hand: the text after the last ')' split on spaces, index
    19 (fields 3.. start there)."""
    raw = Path("/proc/self/stat").read_text()
    by_hand = int(raw[raw.rfind(")") + 2:].split()[19])
    assert liveness.start_time(os.getpid()) == by_hand
    assert liveness.start_time(2**22 + 12345) is None


def _lock_cases(unrelated: subprocess.Popen) -> dict[str, tuple[str, bool]]:
    """name -> (lock file text, taken over?)"""
    now = time.time()
    mine = liveness.me()
    up = liveness.start_time(unrelated.pid)
    dead_pid, dead_start = _dead_pid()

    def rec(host: str, pid: int, start: int | None, created: float) -> str:
        return liveness.Holder(host, pid, start, created).to_json()

    return {
        # the case of issue 14: a live, unrelated pid; its start time is not the recorded one
        "live unrelated pid, other start time": (rec(HOST, unrelated.pid, (up or 0) + 17, now),
                                                 True),
        "live unrelated pid, old plain-pid format": (str(unrelated.pid), True),
        "this process, plain pid (old format)": (str(os.getpid()), True),
        "dead pid": (rec(HOST, dead_pid, dead_start, now), True),
        "pid 0": (rec(HOST, 0, None, now), True),
        "negative pid": (rec(HOST, -5, None, now), True),
        "older than the max age": (rec(HOST, mine.pid, mine.start, now - REPORT_LOCK_MAX_AGE - 5),
                                   True),
        "another host, older than the max age": (rec("elsewhere.example", 1, 1,
                                                     now - REPORT_LOCK_MAX_AGE - 5), True),
        "empty file": ("", True),
        "torn json": ('{"hostname": "h", "pid": 1', True),
        "json of the wrong shape": (json.dumps({"pid": "x"}), True),
        "binary garbage": ("\x00\xff\x00", True),
        # live holders: refused, the lock untouched
        "this process, live": (mine.to_json(), False),
        "live process with its start time": (rec(HOST, unrelated.pid, up, now), False),
        "another host, fresh": (rec("elsewhere.example", 1, 1, now), False),
        "another host, fresh, no start time": (rec("elsewhere.example", 99999, None, now), False),
    }


CASE_NAMES = ["live unrelated pid, other start time", "live unrelated pid, old plain-pid format",
              "this process, plain pid (old format)", "dead pid", "pid 0", "negative pid",
              "older than the max age", "another host, older than the max age", "empty file",
              "torn json", "json of the wrong shape", "binary garbage", "this process, live",
              "live process with its start time", "another host, fresh",
              "another host, fresh, no start time"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_report_lock_staleness(tmp_path: Path, unrelated: subprocess.Popen, case: str) -> None:
    text, taken = _lock_cases(unrelated)[case]
    lock = tmp_path / LOCK_NAME
    lock.write_text(text, encoding="utf-8", errors="surrogateescape")
    if taken:
        with report_lock(tmp_path):
            held = liveness.read_holder(lock)
            assert held is not None and held.pid == os.getpid() and held.hostname == HOST
            assert held.start == liveness.start_time(os.getpid())
        assert not lock.exists()
    else:
        with pytest.raises(ReportLocked, match="another report run") as err, \
                report_lock(tmp_path):
            pass
        holder = liveness.read_holder(lock)
        assert holder is not None and f"pid {holder.pid} on {holder.hostname}" in str(err.value)
        assert lock.read_text(encoding="utf-8") == text  # not taken, not removed


def test_cli_report_exits_3_on_a_live_lock_and_runs_over_a_stale_one(
        cli, unrelated: subprocess.Popen, tmp_path: Path, seeded_db: Path) -> None:
    """The CLI: a live holder gives exit 3 and writes nothing (row counts unchanged); the same
    pid recorded with another start time (the pid reused) is not a holder."""
    out = tmp_path / "out"
    out.mkdir()
    lock = out / LOCK_NAME
    up = liveness.start_time(unrelated.pid)
    lock.write_text(liveness.Holder(HOST, unrelated.pid, up, time.time()).to_json())
    before = row_counts(seeded_db)
    r = cli("report", "--db", seeded_db, "--as-of", "2026-06-30", "--out", out)
    assert r.code == 3 and "another report run" in r.err and f"pid {unrelated.pid}" in r.err
    assert row_counts(seeded_db) == before
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    lock.write_text(liveness.Holder(HOST, unrelated.pid, (up or 0) + 1, time.time()).to_json())
    r = cli("report", "--db", seeded_db, "--as-of", "2026-06-30", "--out", out)
    assert r.code != 3 and "another report run" not in r.err and "Traceback" not in r.err
    assert not lock.exists()


# --------------------------------------------------------------------- temporary run folders


def _tmp_folder(root: Path, holder: liveness.Holder | None, legacy: str = "") -> Path:
    name = legacy or liveness.folder_tag(holder, "ab12")  # type: ignore[arg-type]
    folder = root / f"{TMP_PREFIX}{name}"
    folder.mkdir(parents=True)
    (folder / "paths.parquet").write_bytes(b"partial")
    return folder


def _folder_cases(unrelated: subprocess.Popen) -> dict[str, tuple[liveness.Holder | None, str,
                                                                  bool]]:
    now = time.time()
    dead_pid, dead_start = _dead_pid()
    up = liveness.start_time(unrelated.pid)
    return {
        "killed run (dead pid)": (liveness.Holder(HOST, dead_pid, dead_start, now), "", True),
        "pid reused by an unrelated process": (
            liveness.Holder(HOST, unrelated.pid, (up or 0) + 3, now), "", True),
        "older than a day": (liveness.Holder(HOST, unrelated.pid, up, now - 2 * 86400), "", True),
        "old name without a writer": (None, "0123456789abcdef0123456789abcdef", True),
        "another host, a week old": (liveness.Holder("elsewhere", 7, 7, now - 7 * 86400), "",
                                     True),
        "a live run of this process": (liveness.me(), "", False),
        "a live run of another process": (liveness.Holder(HOST, unrelated.pid, up, now), "",
                                          False),
        "another host, fresh": (liveness.Holder("elsewhere", 7, 7, now), "", False),
    }


FOLDER_CASES = ["killed run (dead pid)", "pid reused by an unrelated process", "older than a day",
                "old name without a writer", "another host, a week old",
                "a live run of this process", "a live run of another process",
                "another host, fresh"]


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_stale_tmp_run_folders_removed(tmp_path: Path, unrelated: subprocess.Popen,
                                       case: str) -> None:
    holder, legacy, removed = _folder_cases(unrelated)[case]
    folder = _tmp_folder(tmp_path / "runs", holder, legacy)
    keep = tmp_path / "runs" / "7"  # a finished run's folder is never touched
    keep.mkdir()
    gone = remove_stale_tmp(tmp_path / "runs")
    assert (folder in gone) is removed and folder.exists() is not removed
    assert keep.exists()


def test_next_run_removes_a_killed_runs_folder(tmp_path: Path) -> None:
    """A run killed (kill -9) while writing leaves runs/.tmp-…; the next record_simulation
    removes it, records its own run and leaves no temporary folder; row counts grow by the
    new run only."""
    db = tmp_path / "book.duckdb"
    loans = mixed_pool(200, seed=3)
    paths = simulate(loans, assumptions(pd_scale=2.0), 50, seed=11)
    inputs = SimulationInputs(pool_id=1, n_paths=50, seed=11, engine="granular",
                              assumptions="a.toml")
    with open_store(db) as store:
        root = runs_root(store)
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    holder = liveness.Holder(HOST, victim.pid, liveness.start_time(victim.pid), time.time())
    folder = _tmp_folder(root, holder)
    assert remove_stale_tmp(root) == [] and folder.exists()  # its writer is alive
    victim.kill()  # kill -9 mid-write
    victim.wait()
    before = row_counts(db)
    with open_store(db) as store:
        run_id = record_simulation(store, paths, inputs, "v")
    after = row_counts(db)
    assert not folder.exists()
    assert sorted(p.name for p in root.iterdir()) == [str(run_id)]
    assert after["runs"] == before["runs"] + 1
    assert {k for k in after if after[k] != before[k]} <= {"runs", "run_monthly",
                                                          "run_loss_stats"}
    assert np.isfinite(paths.loss).all()


@pytest.mark.adversarial("paths")
def test_report_out_naming_an_existing_file_is_refused(seeded_db, cli, tmp_path) -> None:
    # was a FileExistsError traceback from the lock's mkdir
    target = tmp_path / "report.txt"
    target.write_text("keep me", encoding="utf-8")
    before = row_counts(seeded_db)
    r = cli("report", "--db", seeded_db, "--as-of", "2026-06-30", "--out", target)
    assert r.code == 2 and "--out" in r.err and "an existing file" in r.err
    assert "Traceback" not in r.err
    assert target.read_text(encoding="utf-8") == "keep me"
    assert row_counts(seeded_db) == before
