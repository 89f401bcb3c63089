"""``riskpool ingest`` end to end: summaries, exit codes, unchanged database, SIGKILL mid-load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from portfolio.store import open_store
from portfolio.store.ingest import book_fingerprint

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "tapes"
HEADER = (
    "loan_id,borrower_id,origination_date,principal,apr,term_months,repayment_type,"
    "credit_score,region,channel,product"
)


def fingerprint(db: Path) -> dict[str, tuple[int, int]]:
    with open_store(db) as store:
        return book_fingerprint(store.con)


def tape(tmp_path: Path, *rows: str, name: str = "tape.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


GOOD = "N-1,u1,2024-05-01,5000.00,0.2,6,等额本金,700,江苏,app,jiebei"
BAD_APR = "N-2,u2,2024-05-01,5000.00,20,6,equal_principal,700,江苏,app,jiebei"


def test_help_explains_the_command(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", "--help")
    assert r.code == 0
    for text in ("--allow-rejects", "--kind", "--apr-cap", "--db", "line N+1", "GBK"):
        assert text in r.out


def test_loads_and_prints_a_summary(cli, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path)
    assert r.code == 0, r.err
    assert "loans_small.csv: loaded 5 loans of 5 rows (batch 1); rejected 0" in r.out
    assert fingerprint(db_path)["loans"][0] == 5


def test_bad_tape_exits_2_lists_rows_and_changes_nothing(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, db_path: Path
) -> None:
    assert cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path).code == 0
    before = fingerprint(db_path)
    r = cli("ingest", tape(tmp_path, GOOD, BAD_APR), "--db", db_path)
    assert r.code == 2
    assert r.err.startswith("error: tape.csv: refused, 1 bad row(s); nothing was loaded")
    assert "got '20' at row 2 (line 3) [rule R9_apr_cap]; looks like a percent: use 0.2" in r.err
    assert "Traceback" not in r.err + r.out
    assert fingerprint(db_path) == before


def test_allow_rejects_loads_good_rows(cli, tmp_path: Path, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", tape(tmp_path, GOOD, BAD_APR), "--db", db_path, "--allow-rejects")
    assert r.code == 0, r.err
    assert "loaded 1 loans of 2 rows (batch 1); rejected 1" in r.out
    assert "1 problem(s) kept in ingest_rejects (batch 1) by rule: R9_apr_cap 1" in r.out
    with open_store(db_path, read_only=True) as store:
        rows = store.con.execute("SELECT row_number, column_name, rule FROM ingest_rejects").fetchall()
    assert rows == [(2, "apr", "R9_apr_cap")]


def test_reload_is_a_reported_no_op(cli, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path).code == 0
    before = fingerprint(db_path)
    r = cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path)
    assert r.code == 0
    assert "already loaded as batch 1 (same sha256 and kind); nothing to do" in r.out
    assert fingerprint(db_path) == before


def test_several_files_load_in_order_and_stop_at_a_refused_one(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, db_path: Path
) -> None:
    bad = tape(tmp_path, BAD_APR, name="bad.csv")
    never = tape(tmp_path, GOOD, name="never.csv")
    r = cli("ingest", GOLDEN / "loans_small.csv", bad, never, "--db", db_path)
    assert r.code == 2
    assert "loans_small.csv: loaded 5" in r.out
    assert "bad.csv: refused" in r.err
    assert "never.csv" not in r.out + r.err
    assert fingerprint(db_path)["loans"][0] == 5


def test_performance_kind_and_unknown_columns_note(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, db_path: Path
) -> None:
    assert cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path).code == 0
    r = cli("ingest", GOLDEN / "performance_small.csv", "--db", db_path, "--kind", "performance")
    assert r.code == 0, r.err
    assert "loaded 5 performance rows of 5 rows" in r.out
    extra = tmp_path / "extra.csv"
    extra.write_text(HEADER + ",mobile\n" + GOOD + ",13800000000\n", encoding="utf-8")
    r = cli("ingest", extra, "--db", db_path)
    assert r.code == 0, r.err
    assert "note: ignored unknown column(s): 'mobile'" in r.out


def test_apr_cap_option(cli, tmp_path: Path, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tape(tmp_path, GOOD.replace("0.2,", "0.3,"))
    assert cli("ingest", path, "--db", db_path).code == 2
    assert cli("ingest", path, "--db", db_path, "--apr-cap", "0.36").code == 0
    r = cli("ingest", path, "--db", db_path, "--apr-cap", "36")
    assert r.code == 2 and "`apr_cap` must be a decimal in (0, 1]" in r.err


def test_bad_input_errors_exit_2(cli, tmp_path: Path, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", tmp_path / "missing.csv", "--db", db_path)
    assert r.code == 2 and "missing.csv does not exist" in r.err
    r = cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path, "--kind", "bonds")
    assert r.code == 2
    no_id = tmp_path / "no_id.csv"
    no_id.write_text(HEADER.replace("loan_id,", "") + "\n", encoding="utf-8")
    r = cli("ingest", no_id, "--db", db_path)
    assert r.code == 2 and "missing required column(s) `loan_id`" in r.err
    assert "Traceback" not in r.err


def _write_big_tape(path: Path, rows: int) -> None:
    ids = np.arange(rows)
    table = pa.table(
        {
            "loan_id": pa.array(np.char.add("K", ids.astype(str))),
            "borrower_id": pa.array(np.char.add("u", ids.astype(str))),
            "origination_date": pa.array(np.full(rows, "2024-06-30")),
            "principal": pa.array(np.full(rows, 1234.56)),
            "apr": pa.array(np.full(rows, 0.15)),
            "term_months": pa.array(np.full(rows, 12)),
            "repayment_type": pa.array(np.full(rows, "level_annuity")),
            "credit_score": pa.array(600 + ids % 300),
            "region": pa.array(np.full(rows, "浙江")),
        }
    )
    pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="none"))


def test_sigkill_mid_load_leaves_the_database_as_before_and_a_rerun_completes(
    tmp_path: Path, db_path: Path
) -> None:
    riskpool = [sys.executable, "-m", "riskpool", "ingest"]
    seed = subprocess.run(
        [*riskpool, str(GOLDEN / "loans_small.csv"), "--db", str(db_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert seed.returncode == 0, seed.stderr
    before = fingerprint(db_path)

    big = tmp_path / "big.csv"
    _write_big_tape(big, 20_000)
    marker = tmp_path / "paused"
    # Test hook (portfolio/book/ingest/load.py): sleep inside the load transaction, after every
    # INSERT and before COMMIT, and create the marker file when the pause begins.
    env = {**os.environ, "RISKPOOL_TEST_PAUSE_AFTER_INSERT": "120",
           "RISKPOOL_TEST_PAUSE_MARKER": str(marker)}
    proc = subprocess.Popen(
        [*riskpool, str(big), "--db", str(db_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the load never reached its pause"
            time.sleep(0.05)
        assert int(marker.read_text()) == proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert fingerprint(db_path) == before  # loans, performance, batches, rejects untouched

    rerun = subprocess.run(
        [*riskpool, str(big), "--db", str(db_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "loaded 20000 loans of 20000 rows (batch" in rerun.stdout
    after = fingerprint(db_path)
    assert after["loans"][0] == 5 + 20_000
    assert after["ingest_batches"][0] == 2
