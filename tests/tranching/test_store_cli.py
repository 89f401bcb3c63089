"""Tranche results stored with a run (real DuckDB file) and the ``riskpool tranche`` commands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from tranching_pathgen import synthetic_paths

from dashboards.xlsx import read_tables
from portfolio.errors import NotFound
from portfolio.montecarlo.records import SimulationInputs
from portfolio.store.core import open_store
from portfolio.store.runs import record_run, record_simulation
from portfolio.store.tranches import load_run_deal, load_tranche_results, record_tranche_results
from tranching.analytics import tranche_table, trigger_table
from tranching.deal import load_deal
from tranching.revolving import DealSettings
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples/deal_cn_consumer.toml"


def _add_run(store, run_id: int) -> None:
    # a bare run row through the runs store (no paths: the report needs only the stored table)
    with store.transaction():
        record_run(store, SimulationInputs(pool_id=1, n_paths=200, seed=2, engine="granular",
                                           assumptions="a.toml"),
                   None, "test", status="done", run_id=run_id, started_at=dt.datetime(2026, 1, 1))


@pytest.fixture
def stored(db_path: Path):
    deal = load_deal(DEAL)
    paths = synthetic_paths(n_paths=200, n_months=30, seed=2, monthly_pd=0.006)
    result = run_waterfall(deal, paths)
    table = tranche_table(deal, result, paths, discount=0.03)
    with open_store(db_path) as store:
        _add_run(store, 7)
        n = record_tranche_results(store, 7, deal, table, triggers=trigger_table(deal, result),
                                   settings=DealSettings("none", 0, 30).to_json())
    assert n == 3
    return db_path, table


def test_round_trip(stored) -> None:
    db_path, table = stored
    with open_store(db_path, read_only=True) as store:
        back = load_tranche_results(store, 7)
        info = load_run_deal(store, 7)
    assert back["tranche"].tolist() == ["A", "B", "Sub"]
    pd.testing.assert_series_equal(back["el"], table["el"], check_names=False)
    assert back["yield"].tolist() == pytest.approx(table["yield"].tolist())
    assert info["deal_name"] == "CN Consumer Example 2026-1"
    assert "[[waterfall]]" in info["deal_toml"]
    assert info["triggers"][0]["trigger"] == "cnl_early_amortisation"


def test_recording_again_replaces(stored) -> None:
    db_path, table = stored
    with open_store(db_path) as store:
        record_tranche_results(store, 7, load_deal(DEAL), table.iloc[:2])
        assert len(load_tranche_results(store, 7)) == 2


def test_unknown_run_is_refused_and_nothing_written(db_path: Path) -> None:
    deal = load_deal(DEAL)
    paths = synthetic_paths(n_paths=20, n_months=30)
    table = tranche_table(deal, run_waterfall(deal, paths), paths)
    with open_store(db_path) as store:
        with pytest.raises(NotFound, match="run 99"):
            record_tranche_results(store, 99, deal, table)
        # a run that does not exist is named as such (not "has no tranche results")
        with pytest.raises(NotFound, match=r"existing run id .*got 99"):
            load_tranche_results(store, 99)


def test_cli_tranche_commands_name_a_run_that_does_not_exist(stored, cli, tmp_path: Path
                                                             ) -> None:
    db_path, _ = stored
    for argv in (["report", "--out", tmp_path / "t.xlsx"], ["cashflows", "--out", tmp_path / "t.csv"]):
        r = cli("tranche", argv[0], "--run", "99", "--db", db_path, *argv[1:])
        assert r.code == 2, r.err
        assert "`run` must be an existing run id" in r.err and "got 99" in r.err
        assert "has no tranche results" not in r.err and "Traceback" not in r.err


def test_cli_report_prints_and_writes(stored, cli, tmp_path: Path) -> None:
    db_path, _ = stored
    out = tmp_path / "tranches.xlsx"
    r = cli("tranche", "report", "--run", "7", "--db", db_path, "--out", out)
    assert r.code == 0, r.err
    assert "CN Consumer Example 2026-1" in r.out and "Sub" in r.out
    sheets = read_tables(out, sheet_name=None)
    assert set(sheets) == {"tranches", "triggers"}
    csv = tmp_path / "t.csv"
    r = cli("tranche", "report", "--run", "7", "--db", db_path, "--out", csv)
    assert r.code == 0 and pd.read_csv(tmp_path / "t_tranches.csv")["tranche"].tolist() == ["A", "B", "Sub",
                                                                          "total"]


def test_cli_report_errors_exit_2(stored, cli, tmp_path: Path) -> None:
    db_path, _ = stored
    r = cli("tranche", "report", "--run", "8", "--db", db_path)
    assert r.code == 2 and "existing run id" in r.err and "got 8" in r.err
    r = cli("tranche", "report", "--run", "7", "--db", db_path, "--out", tmp_path / "x.txt")
    assert r.code == 2 and "--out" in r.err


def test_cli_check_prints_the_priority_of_payments(cli) -> None:
    r = cli("tranche", "check", "--structure", DEAL)
    assert r.code == 0, r.err
    assert "1. fee servicer" in r.out and "11. residual to platform" in r.out


@pytest.mark.parametrize(("edit", "field"), [
    (lambda t: t.replace("size = 0.04", "size = 0.05"), "tranches"),
    (lambda t: t.replace('metric = "cnl"', 'metric = "sentiment"'), "metric"),
    (lambda t: t.replace('step = "reimburse"', 'step = "bonus"'), "step"),
    (lambda t: t.replace('tranches = ["Sub"]', 'tranches = ["Junior"]'), "tranches"),
])
def test_cli_bad_deal_files_exit_2_naming_the_field(cli, tmp_path: Path, edit, field: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(DEAL.read_text()))
    r = cli("tranche", "check", "--structure", bad)
    assert r.code == 2
    assert field in r.err and "error:" in r.err


def test_cli_missing_tranche_exits_2(cli, tmp_path: Path) -> None:
    text = DEAL.read_text()
    start = text.index('[[tranches]]\nname = "B"')
    end = text.index("[[tranches]]", start + 5)
    bad = tmp_path / "missing.toml"
    bad.write_text(text[:start] + text[end:])
    r = cli("tranche", "check", "--structure", bad)
    assert r.code == 2 and "tranches" in r.err


def test_cli_size_flag_errors_exit_2(stored, cli) -> None:
    db_path, _ = stored
    r = cli("tranche", "size", "--run", "7", "--db", db_path, "--structure", DEAL, "--tranche", "A")
    assert r.code == 2 and "--target-el" in r.err
    r = cli("tranche", "size", "--run", "7", "--db", db_path, "--structure", DEAL, "--tranche", "A",
            "--target-rating", "AAA")
    assert r.code == 2 and "--rating-table" in r.err
    r = cli("tranche", "size", "--run", "7", "--db", db_path, "--structure", DEAL, "--tranche", "Q",
            "--target-el", "0.001")
    assert r.code == 2 and "tranche" in r.err


@pytest.fixture
def recorded_run(db_path: Path) -> int:
    """A simulation run recorded through the runs store (paths in Parquet beside the DB)."""
    paths = synthetic_paths(n_paths=300, n_months=30, seed=11, monthly_pd=0.02, rho=0.25)
    with open_store(db_path) as store:
        return record_simulation(store, paths,
                                 inputs=SimulationInputs(pool_id=1, n_paths=300, seed=11,
                                                         engine="granular", assumptions="a.toml"),
                                 code_version="test")


def test_cli_size_to_target_el_on_the_runs_paths(db_path: Path, recorded_run: int, cli) -> None:
    us = ROOT / "examples/deal_us_consumer.toml"
    r = cli("tranche", "size", "--run", str(recorded_run), "--db", db_path, "--structure", us,
            "--tranche", "B", "--target-el", "0.002")
    assert r.code == 0, r.err
    assert "largest B meeting EL <= 0.2000%" in r.out
    # the same sizing through the API on the same stored paths gives the same size
    from portfolio.store.runs import load_paths
    from tranching.sizing import size_tranche

    with open_store(db_path, read_only=True) as store:
        paths = load_paths(store, recorded_run)
    res = size_tranche(load_deal(us), paths, "B", target_el=0.002)
    assert f"size {res.size:.4%}" in r.out
    assert res.el <= 0.002
    # the binding constraint and every constraint's slack are printed
    assert f"binding constraint: {res.binding}" in r.out and "== constraints" in r.out
    assert "minimum sub" in r.out and "retention" in r.out
    r = cli("tranche", "size", "--run", str(recorded_run), "--db", db_path, "--structure", us,
            "--tranche", "B", "--target-el", "0.002", "--min-sub", "1.5")
    assert r.code == 2 and "--min-sub" in r.err


def test_cli_size_to_rating_and_bad_run(db_path: Path, recorded_run: int, cli) -> None:
    us = ROOT / "examples/deal_us_consumer.toml"
    table = ROOT / "examples/rating_table_illustrative.toml"
    r = cli("tranche", "size", "--run", str(recorded_run), "--db", db_path, "--structure", us,
            "--tranche", "A", "--target-rating", "R2", "--rating-table", table)
    assert r.code == 0, r.err
    assert "implied rating R1" in r.out or "implied rating R2" in r.out
    r = cli("tranche", "size", "--run", "999", "--db", db_path, "--structure", us,
            "--tranche", "A", "--target-el", "0.001")
    assert r.code == 2 and "999" in r.err
