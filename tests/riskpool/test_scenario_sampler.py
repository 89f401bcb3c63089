"""The loan engine's sampler recorded with every scenario set (``scenario_sets.loan_sampler``).

A set projected with the hazard model's loan engine stores which draw made its numbers, as a
run stores ``inputs.loan_sampler``: the set's members are checked against independent
projections (``delinquency.project`` on the pool's loans with the same seed, path count and
sampler: the same bytes), the record round-trips, the CLI prints it (text and ``--json``),
and a set run with the legacy draw records the legacy draw.

The schema step 5 → 6 is checked on a database holding the version-5 table, built here from
its DDL as shipped with version 5 (commit 8d79b55, written out below) with one row per case
of the rule: a loan-engine hazard set made before ``subset-binomial-v1`` was first committed
(2026-12-06 22:37:31 UTC, commit c96faff) drew one float32 uniform per loan and path
(``float32-per-loan-v0``), one made at or after that time drew ``subset-binomial-v1``, and a
granular-engine or delinquency-model set has no loan-level draw of that kind (null).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from cli_books import pooled_book
from simulation_pools import assumptions

from portfolio.book.pools import load_pool_loans
from portfolio.errors import SchemaMismatch, ValidationError
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.delinquency import project
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.store.core import open_store
from portfolio.store.scenarios import get_scenario_set, insert_scenario_set
from riskpool.commands.scenarios import run_scenario_set

LEGACY = "float32-per-loan-v0"
SUBSET = "subset-binomial-v1"
GRANULAR = "granular-lanes-v1"
GRANULAR_LEGACY = "granular-binomial-v0"

LOAN_SET = """
[set]
name = "loan engine set"
seed = 13
paths = 300
engine = "loan"

[[scenario]]
name = "base"

[[scenario]]
name = "severe"
pd_mult = 2.5
"""

# scenario_sets as created by schema version 5 (commit 8d79b55): no loan_sampler column
V5_DDL = """CREATE TABLE scenario_sets (
        set_id BIGINT PRIMARY KEY,
        name VARCHAR NOT NULL,
        source VARCHAR,
        set_toml VARCHAR,
        pool_id BIGINT NOT NULL,
        assumptions VARCHAR NOT NULL,
        assumptions_sha256 VARCHAR,
        n_paths BIGINT NOT NULL CHECK (n_paths >= 1),
        seed BIGINT NOT NULL CHECK (seed >= 0),
        model VARCHAR NOT NULL,
        engine VARCHAR NOT NULL,
        deal_name VARCHAR,
        deal_source VARCHAR,
        code_version VARCHAR,
        created_at TIMESTAMP NOT NULL,
        members JSON NOT NULL,
        results JSON NOT NULL
    )"""

SINCE = dt.datetime(2026, 12, 6, 22, 37, 31)  # commit c96faff, UTC
# set id → (engine, model, created_at, the sampler the rule must give)
V5_ROWS: dict[int, tuple[str, str, dt.datetime, str | None]] = {
    1: ("loan", "hazard", dt.datetime(2026, 12, 6, 15, 2, 0), LEGACY),
    2: ("loan", "hazard", SINCE - dt.timedelta(seconds=1), LEGACY),
    3: ("loan", "hazard", SINCE, SUBSET),
    4: ("loan", "hazard", dt.datetime(2026, 12, 7, 0, 10, 0), SUBSET),
    5: ("granular", "hazard", dt.datetime(2026, 12, 6, 15, 3, 0), None),
    6: ("loan", "delinquency", dt.datetime(2026, 12, 6, 15, 4, 0), None),
    7: ("granular", "hazard", dt.datetime(2026, 12, 7, 0, 11, 0), None),
}


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return pooled_book(tmp_path_factory.mktemp("sampler"), assumptions(), n_loans=1200)


def _write(tmp_path: Path, text: str, name: str = "set.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _count(db: Path) -> int:
    with open_store(db, read_only=True) as store:
        return int(store.con.execute("SELECT count(*) FROM scenario_sets").fetchall()[0][0])


def _version_5_db(path: Path) -> Path:
    """A database whose scenario_sets is the version-5 table, holding :data:`V5_ROWS`."""
    with open_store(path):
        pass
    con = duckdb.connect(str(path))
    try:
        con.execute("DROP TABLE scenario_sets")
        con.execute(V5_DDL)
        row = {"scenario": "base", "grid": "", "changes": "nothing (the base)",
               "pd_mult": 1.0, "rho": 0.1, "roll_mult": 1.0, "recovery_mult": 1.0,
               "prepay_mult": 1.0, "el": 1234.5, "el_se": 10.0, "el_pct": 0.01,
               "var_999": 5000.0, "var_999_se": 100.0, "es_999": 6000.0, "es_999_se": 150.0,
               "es_999_pct": 0.05}
        results = json.dumps({"columns": list(row), "rows": [row]})
        members = json.dumps([{"name": "base", "group": "", "changes": {},
                               "text": "nothing (the base)"}])
        for set_id, (engine, model, created, _) in V5_ROWS.items():
            con.execute("INSERT INTO scenario_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?, ?, ?, ?)",
                        [set_id, f"set {set_id}", "s.toml", "[set]", 1, "a.toml", None, 100, 7,
                         model, engine, None, None, "0.1.0+abc1234", created, members,
                         results])
        con.execute("UPDATE schema_info SET value = '5' WHERE key = 'schema_version'")
    finally:
        con.close()
    return path


def test_schema_step_5_to_6_labels_each_stored_set_by_its_engine_model_and_date(
        tmp_path: Path, cli) -> None:
    db = _version_5_db(tmp_path / "v5.duckdb")
    with pytest.raises(SchemaMismatch, match="schema version 5"):
        open_store(db, read_only=True)  # a reader never migrates
    r = cli("migrate", "--db", db)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        assert store.schema_version() == 6
        records = {i: get_scenario_set(store, i) for i in V5_ROWS}
    for set_id, (engine, model, created, sampler) in V5_ROWS.items():
        rec = records[set_id]
        assert rec.loan_sampler == sampler, set_id
        # everything else as stored
        assert (rec.engine, rec.model, rec.created_at) == (engine, model, created)
        assert rec.results["el"].tolist() == [1234.5] and rec.n_paths == 100 and rec.seed == 7
    listed = cli("scenarios", "list", "--db", db, "--json")
    assert listed.code == 0, listed.err
    by_id = {row["set_id"]: row for row in json.loads(listed.out)}
    assert {i: by_id[i]["loan_sampler"] for i in V5_ROWS} == {i: r[3] for i, r in V5_ROWS.items()}
    shown = cli("scenarios", "show", "1", "--db", db, "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["loan_sampler"] == LEGACY
    text = cli("scenarios", "show", "1", "--db", db)
    assert text.code == 0 and f"loan engine (sampler {LEGACY})" in text.out


def test_a_loan_engine_set_records_the_sampler_that_made_its_numbers(cli, book,
                                                                     tmp_path) -> None:
    db, a = book
    set_file = _write(tmp_path, LOAN_SET)
    r = cli("scenarios", "run", "--db", db, "--set", set_file, "--pool", "1",
            "--assumptions", a)
    assert r.code == 0, r.err
    assert f"loan engine (sampler {SUBSET})" in r.out
    set_id = int(r.out.strip().splitlines()[-1].split()[2])
    with open_store(db, read_only=True) as store:
        rec = get_scenario_set(store, set_id)
        loans = load_pool_loans(store, 1)
    assert rec.engine == "loan" and rec.loan_sampler == SUBSET
    # the oracle: the pool projected on its own with that sampler, the set's seed and paths
    ref = project(loans, load_assumptions(a), 300, 13, engine="loan", loan_sampler=SUBSET)
    el = float(np.mean(ref.loss))
    assert rec.results.set_index("scenario").loc["base", "el"] == el
    shown = json.loads(cli("scenarios", "show", str(set_id), "--db", db, "--json").out)
    assert shown["loan_sampler"] == SUBSET and shown["engine"] == "loan"
    assert shown["seed"] == 13 and shown["n_paths"] == 300 and shown["model"] == "hazard"
    assert [m["name"] for m in shown["members"]] == ["base", "severe"]
    assert [row["scenario"] for row in shown["results"]] == ["base", "severe"]
    listed = cli("scenarios", "list", "--db", db)
    assert listed.code == 0 and SUBSET in listed.out and "sampler" in listed.out


def test_a_granular_set_records_its_draw_and_runs_the_earlier_one_on_request(book,
                                                                              tmp_path) -> None:
    # the hazard model's granular engine draws with granular-lanes-v1 since it runs paths
    # side by side; a set stored before has null (granular-binomial-v0's numbers), which
    # --loan-sampler granular-binomial-v0 gives again
    db, a = book
    set_file = _write(tmp_path, LOAN_SET.replace('engine = "loan"', ""))
    res = run_scenario_set(db, 1, a, set_file, keep_paths=True)
    old = run_scenario_set(db, 1, a, set_file, keep_paths=True, record=False,
                           loan_sampler=GRANULAR_LEGACY)
    assert res.loan_sampler == GRANULAR and old.loan_sampler == GRANULAR_LEGACY
    with open_store(db, read_only=True) as store:
        rec = get_scenario_set(store, int(res.set_id or 0))
        loans = load_pool_loans(store, 1)
    assert rec.engine == "granular" and rec.loan_sampler == GRANULAR
    for sampler, got in ((GRANULAR, res), (GRANULAR_LEGACY, old)):
        ref = project(loans, load_assumptions(a), 300, 13, loan_sampler=sampler)
        for flow in FLOW_NAMES:  # the base member is that projection to the byte
            assert getattr(got.paths["base"], flow).tobytes() == \
                getattr(ref, flow).tobytes(), (sampler, flow)
    assert not np.array_equal(res.paths["base"].loss, old.paths["base"].loss)


def test_a_set_run_with_the_legacy_draw_has_its_numbers_and_records_it(book, tmp_path) -> None:
    db, a = book
    set_file = _write(tmp_path, LOAN_SET)
    old = run_scenario_set(db, 1, a, set_file, keep_paths=True, loan_sampler=LEGACY)
    new = run_scenario_set(db, 1, a, set_file, keep_paths=True, record=False)
    with open_store(db, read_only=True) as store:
        loans = load_pool_loans(store, 1)
        rec = get_scenario_set(store, int(old.set_id or 0))
    assert old.loan_sampler == rec.loan_sampler == LEGACY and new.loan_sampler == SUBSET
    ref = project(loans, load_assumptions(a), 300, 13, engine="loan", loan_sampler=LEGACY)
    for flow in FLOW_NAMES:  # the base member is the legacy projection to the byte
        assert getattr(old.paths["base"], flow).tobytes() == getattr(ref, flow).tobytes(), flow
    # the two draws are different numbers (the same law): a set must say which it used
    assert not np.array_equal(old.paths["base"].loss, new.paths["base"].loss)


@pytest.mark.parametrize("engine, sampler, got", [
    ("loan", "mersenne-v9", "mersenne-v9"),
    ("granular", LEGACY, LEGACY),
])
def test_a_sampler_that_does_not_fit_the_set_is_refused_before_any_work(
        book, tmp_path, engine, sampler, got) -> None:
    db, a = book
    before = _count(db)
    text = LOAN_SET if engine == "loan" else LOAN_SET.replace('engine = "loan"', "")
    with pytest.raises(ValidationError, match=f"--loan-sampler.*{got}"):
        run_scenario_set(db, 1, a, _write(tmp_path, text), loan_sampler=sampler)
    assert _count(db) == before


def test_the_cli_runs_a_set_with_the_legacy_draw_and_refuses_one_that_does_not_fit(
        cli, book, tmp_path) -> None:
    db, a = book
    loan_set = _write(tmp_path, LOAN_SET)
    common = ("scenarios", "run", "--db", db, "--pool", "1", "--assumptions", a)
    r = cli(*common, "--set", loan_set, "--loan-sampler", LEGACY)
    assert r.code == 0, r.err
    assert f"loan engine (sampler {LEGACY})" in r.out
    set_id = int(r.out.strip().splitlines()[-1].split()[2])
    with open_store(db, read_only=True) as store:
        assert get_scenario_set(store, set_id).loan_sampler == LEGACY
    before = _count(db)
    granular = _write(tmp_path, LOAN_SET.replace('engine = "loan"', ""), "granular.toml")
    for set_file, sampler in ((loan_set, "mersenne-v9"), (granular, SUBSET)):
        r = cli(*common, "--set", set_file, "--loan-sampler", sampler)
        assert r.code == 2 and "Traceback" not in r.err, r.err
        assert "`--loan-sampler` must be" in r.err and sampler in r.err
    assert _count(db) == before


def test_the_store_refuses_a_sampler_that_does_not_fit_and_writes_nothing(book) -> None:
    db, _ = book
    before = _count(db)
    common = dict(name="x", source="", set_toml="", pool_id=1, assumptions="a.toml",
                  assumptions_sha256=None, n_paths=10, seed=1, deal_name=None,
                  deal_source=None, code_version="x", members=[],
                  results=pd.DataFrame({"el": [1.0]}))
    with open_store(db) as store:
        for model, engine, sampler in (("hazard", "loan", None), ("hazard", "granular", SUBSET),
                                       ("delinquency", "loan", SUBSET)):
            with pytest.raises(ValidationError, match="loan_sampler"):
                insert_scenario_set(store, model=model, engine=engine, loan_sampler=sampler,
                                    **common)  # type: ignore[arg-type]
    assert _count(db) == before
