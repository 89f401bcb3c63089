"""A database written by the previous code (schema version 1: untyped run inputs, absolute
file paths; ``tests/golden/db_previous_schema.tar.gz``, built by
``tests/golden/make_db_previous_schema.py`` with riskpool at commit fa342f8) is migrated to
the typed run records, and its runs replay from the migrated records to the stored paths.
A database the migration cannot type is refused whole, with how to rebuild it, and is left
as it was; so is a newer one. A reader never migrates: it says which command does."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import pytest

from partners.records import load_allocation
from portfolio.book.replay import replay_run
from portfolio.errors import SchemaMismatch
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.montecarlo.records import SimulationInputs, Stress
from portfolio.store.core import SCHEMA_VERSION, open_store
from portfolio.store.records import ReportInputs
from portfolio.store.runs import get_run, list_runs, load_paths
from tranching.revolving import DealSettings, load_deal_record

FIXTURE = Path(__file__).resolve().parents[1] / "golden" / "db_previous_schema.tar.gz"


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    """The version-1 database with its runs/ directory, moved to a new place (the paths it
    recorded point to where it was built)."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "riskpool.duckdb"


def _raw(db: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_the_fixture_is_a_version_1_database(old_db: Path) -> None:
    assert SCHEMA_VERSION == 6
    assert _raw(old_db, "SELECT value FROM schema_info") == [("1",)]
    inputs = json.loads(_raw(old_db, "SELECT inputs FROM runs WHERE run_id = 4")[0][0])
    assert inputs["assumptions"].endswith("/runs/4/assumptions.toml")
    assert inputs["assumptions"].startswith("/") and "engine" in inputs


def test_a_reader_refuses_it_and_names_the_commands(old_db: Path, cli) -> None:
    with pytest.raises(SchemaMismatch) as info:
        open_store(old_db, read_only=True)
    message = str(info.value)
    assert "schema version 1" in message and f"riskpool migrate --db {old_db}" in message
    assert "riskpool demo --rebuild" in message
    r = cli("runs", "list", "--db", old_db)
    assert r.code == 2 and "riskpool migrate" in r.err and "Traceback" not in r.err
    assert _raw(old_db, "SELECT value FROM schema_info") == [("1",)]


def test_migrate_types_every_run_and_the_runs_replay(old_db: Path, cli) -> None:
    r = cli("migrate", "--db", old_db)
    assert r.code == 0, r.err
    assert f"schema version {SCHEMA_VERSION}" in r.out
    with open_store(old_db, read_only=True) as store:
        assert store.schema_version() == SCHEMA_VERSION
        listed = list_runs(store)
        records = {rid: get_run(store, rid) for rid in listed["run_id"]}
        paths = {rid: load_paths(store, rid) for rid in (1, 4, 5, 6)}
        replays = {rid: replay_run(store, rid) for rid in (1, 4, 5, 6)}
        deal_1, deal_4 = load_deal_record(store, 1), load_deal_record(store, 4)
        allocations = [load_allocation(store, a) for a in (1, 2)]
    assert sorted(listed["kind"]) == ["report", "report", "simulation", "simulation",
                                      "simulation", "simulation"]
    # the demo run: typed, its files named relative to the database's new place
    demo = records[1].inputs
    assert isinstance(demo, SimulationInputs)
    assert (demo.pool_id, demo.n_paths, demo.seed, demo.engine, demo.allocation_id) == \
        (1, 150, 13, "granular", 1)
    assert demo.assumptions == "runs/1/assumptions.toml" and demo.assumptions_exact is None
    assert demo.assumptions_sha256 is not None and demo.source == "riskpool demo"
    assert demo.party_ids == ("platform", "bank_east", "bank_north", "hangzhou_city",
                              "west_trust")
    assert records[1].artifact_path == str(old_db.parent.resolve() / "runs" / "1")
    loan_run = records[4].inputs
    assert isinstance(loan_run, SimulationInputs)
    assert loan_run.engine == "loan" and loan_run.stress == Stress(scenario="adverse", rho=0.2)
    assert loan_run.batch_size == 256 and loan_run.structure is not None
    severe = records[5].inputs
    assert isinstance(severe, SimulationInputs)
    assert severe.deterministic == "severe" and severe.n_paths == 1
    assert records[2].inputs == ReportInputs(records[2].inputs.as_of, None,  # type: ignore[union-attr]
                                             records[2].inputs.out)  # type: ignore[union-attr]
    assert isinstance(records[3].inputs, ReportInputs) and records[3].inputs.partner == "bank_east"
    # the replay gives the stored paths again: bit for bit where the version-1 copy of the
    # assumptions held the values the run used (run 5, loaded from a 12-digit TOML)
    for rid in (5,):
        again = replays[rid].paths()
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(again, name), getattr(paths[rid], name)), (rid, name)
    # run 4 (adverse stress applied in memory) used values with more than the 12 significant
    # digits version 1 stored: every draw is the same, so every flow is equal except the
    # recovery (rate × lag), which differs in its last bits
    for rid in (4,):
        again = replays[rid].paths()
        for name in FLOW_NAMES:
            want, got = getattr(paths[rid], name), getattr(again, name)
            if name == "recovery":
                np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-9)
            else:
                assert np.array_equal(got, want), (rid, name)
        assert again.party_ids == paths[rid].party_ids
        for name, arr in paths[rid].party_flows.items():
            np.testing.assert_allclose(again.party_flows[name], arr, rtol=1e-13, atol=1e-9)
    # runs 1 and 6 are granular-engine runs: their paths were drawn by the version-1 engine,
    # whose binomial counts used a normal approximation that issue 11 replaced by exact draws,
    # so a replay draws other counts from the same inputs. What does not depend on the draws
    # is equal (dates, parties, the month-0 balance), and the mean loss agrees within 4 SE.
    for rid in (1, 6):
        again = replays[rid].paths()
        assert again.n_paths == paths[rid].n_paths and again.party_ids == paths[rid].party_ids
        assert np.array_equal(again.dates, paths[rid].dates)
        np.testing.assert_allclose(again.balance_bop[:, 0], paths[rid].balance_bop[:, 0],
                                   rtol=1e-12)
        a, b = again.loss, paths[rid].loss
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) < 4 * se, (rid, a.mean(), b.mean(), se)
    # the deals stored with runs 1 and 4 and both allocations read through their typed records
    assert deal_1.settings == DealSettings("new-loan profile", 21, 33) == deal_4.settings
    assert deal_4.triggers["trigger"].tolist() == ["cnl_early_amortisation"]
    assert [a.inputs.request.source for a in allocations] == ["riskpool demo", None]
    assert allocations[0].party_ids == demo.party_ids
    # a second open is a no-op
    with open_store(old_db) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert get_run(store, 1).inputs == demo


def test_migration_to_version_3_keeps_every_loan_and_allows_flat_fee(old_db: Path, cli) -> None:
    # Step 2 -> 3 rebuilds `loans` (DuckDB cannot alter a CHECK): same rows, disclosed_apr
    # NULL, flat_fee now allowed; pool_loans gains disclosed_apr (NULL).
    before = _raw(old_db, "SELECT * FROM loans ORDER BY loan_id")
    n_pool = _raw(old_db, "SELECT count(*) FROM pool_loans")[0][0]
    assert cli("migrate", "--db", old_db).code == 0
    after = _raw(old_db, "SELECT * EXCLUDE (disclosed_apr) FROM loans ORDER BY loan_id")
    assert after == before and len(after) > 0
    assert _raw(old_db, "SELECT count(*) FROM loans WHERE disclosed_apr IS NOT NULL") == [(0,)]
    assert _raw(old_db, "SELECT count(*), count(disclosed_apr) FROM pool_loans") == [(n_pool, 0)]
    with open_store(old_db) as store:
        store.con.execute("UPDATE loans SET repayment_type = 'flat_fee', disclosed_apr = 0.16 "
                          "WHERE loan_id = (SELECT min(loan_id) FROM loans)")
        with pytest.raises(duckdb.ConstraintException):
            store.con.execute("UPDATE loans SET repayment_type = 'balloon' "
                              "WHERE loan_id = (SELECT min(loan_id) FROM loans)")


@pytest.mark.parametrize(("inputs_sql", "field"), [
    ("json_merge_patch(inputs, '{\"engine\": \"fast\"}')", "`inputs.engine`"),
    ("json_merge_patch(inputs, '{\"note\": \"x\"}')", "`inputs.note`"),
    ("json_merge_patch(inputs, '{\"seed\": null}')", "`inputs.seed`"),
])
def test_a_run_the_records_do_not_know_refuses_the_migration(old_db: Path, inputs_sql: str,
                                                             field: str) -> None:
    con = duckdb.connect(str(old_db))
    con.execute(f"UPDATE runs SET inputs = {inputs_sql} WHERE run_id = 6")
    before = con.execute("SELECT run_id, inputs, artifact_path FROM runs ORDER BY 1").fetchall()
    con.close()
    with pytest.raises(SchemaMismatch) as info:
        open_store(old_db)
    message = str(info.value)
    assert field in message and "run 6" in message and "Nothing was changed" in message
    assert f"riskpool demo --rebuild --db {old_db}" in message
    # nothing changed: still version 1, every row as it was
    assert _raw(old_db, "SELECT value FROM schema_info") == [("1",)]
    assert _raw(old_db, "SELECT run_id, inputs, artifact_path FROM runs ORDER BY 1") == before


def test_a_newer_or_unversioned_database_is_refused(old_db: Path) -> None:
    con = duckdb.connect(str(old_db))
    con.execute("UPDATE schema_info SET value = '9'")
    con.close()
    for read_only in (True, False):
        with pytest.raises(SchemaMismatch, match="newer riskpool .*schema version 9"):
            open_store(old_db, read_only=read_only)
    con = duckdb.connect(str(old_db))
    con.execute("DELETE FROM schema_info")
    con.close()
    with pytest.raises(SchemaMismatch, match="schema version 0.*cannot be migrated.*--rebuild"):
        open_store(old_db)
