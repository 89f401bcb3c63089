"""Scenario sets (``riskpool scenarios run|list|show``): common random numbers, monotonicity,
the stored object, bad set files, the schema step 4 → 5.

Common random numbers are checked against an independent run: ``riskpool simulate`` with the
set's seed and path count writes its paths to Parquet; the set's member "PD ×1.0" must hold
the same arrays to the byte. Figures are checked against the paths themselves: EL = the mean
of the per-path losses (numpy), CDR = 1 − (1 − Σ default / Σ balance_bop)¹² (the SIFMA
annualisation of the mean flows' monthly default rate, written out here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from cli_books import pooled_book
from simulation_pools import assumptions

from portfolio.book.scenarios import Member, load_scenario_set, stressed
from portfolio.errors import SchemaMismatch, ValidationError
from portfolio.montecarlo.assumptions import (
    DELINQUENCY_BUCKETS,
    DelinquencyAssumptions,
    save_assumptions,
)
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.store.core import SCHEMA_VERSION, open_store
from portfolio.store.runs import load_paths, run_loss_stats
from portfolio.store.scenarios import get_scenario_set, insert_scenario_set
from portfolio.store.tranches import load_tranche_results
from riskpool.commands.scenarios import run_scenario_set

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"

SET = """
[set]
name = "test set"
seed = 11
paths = 300

[[scenario]]
name = "base"

[[scenario]]
name = "pd1"
pd_mult = 1.0

[[grid]]
name = "pd"
pd_mult = [1.5, 2.0, 3.0]
"""


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return pooled_book(tmp_path_factory.mktemp("scenarios"), assumptions())


def _write(tmp_path: Path, text: str, name: str = "set.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _count(db: Path) -> int:
    with open_store(db, read_only=True) as store:
        return int(store.con.execute("SELECT count(*) FROM scenario_sets").fetchall()[0][0])


def test_common_random_numbers_the_unchanged_member_is_the_base_run(cli, book, tmp_path) -> None:
    db, a = book
    res = run_scenario_set(db, 1, a, _write(tmp_path, SET), keep_paths=True, record=False)
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "300",
            "--seed", "11")
    assert r.code == 0, r.err
    run_id = int(r.out.strip().splitlines()[-1].split()[1])
    with open_store(db, read_only=True) as store:
        ref = load_paths(store, run_id)
        stored = run_loss_stats(store, run_id)
    for name in ("base", "pd1"):
        mine = res.paths[name]
        for flow in FLOW_NAMES:  # the same bytes as the independent simulate run
            assert getattr(mine, flow).tobytes() == np.asarray(getattr(ref, flow)).tobytes(), flow
    row = res.table.set_index("scenario").loc["pd1"]
    el_stored = float(stored.loc[stored["measure"] == "EL", "loss"].iloc[0])
    assert row["el"] == el_stored
    # EL is the mean per-path loss (numpy, not the library's loss statistics)
    assert row["el"] == pytest.approx(float(np.mean(res.paths["pd1"].loss)), rel=1e-12)
    assert res.changes["pd1"] == "nothing (the base)" and res.seed == 11 and res.n_paths == 300


def test_a_higher_pd_multiplier_gives_a_higher_pool_el_on_the_same_numbers(book, tmp_path) -> None:
    db, a = book
    res = run_scenario_set(db, 1, a, _write(tmp_path, SET), keep_paths=True, record=False)
    t = res.table.set_index("scenario")
    els = [t.loc[n, "el"] for n in ("pd1", "pd [PD ×1.5]", "pd [PD ×2]", "pd [PD ×3]")]
    assert all(x < y for x, y in zip(els, els[1:], strict=False)), els
    # on the same numbers the path-wise defaults move together: more defaults on most paths
    d1 = res.paths["pd1"].default.sum(axis=1)
    d3 = res.paths["pd [PD ×3]"].default.sum(axis=1)
    assert np.mean(d3 >= d1) > 0.95
    assert t.loc["pd [PD ×2]", "pd_mult"] == 2.0 and t.loc["pd [PD ×2]", "changes"] == "PD ×2"


def test_run_prints_the_changes_stores_one_object_and_lists_it(cli, book, tmp_path) -> None:
    db, a = book
    before = _count(db)
    set_file = _write(tmp_path, SET)
    r = cli("scenarios", "run", "--db", db, "--set", set_file, "--pool", "1",
            "--assumptions", a, "--paths", "200")
    assert r.code == 0, r.err
    assert "every member drawn from seed 11 with 200 paths" in r.out
    assert "pd [PD ×1.5]" in r.out and "PD ×1.5" in r.out and "nothing (the base)" in r.out
    assert "too few paths" in r.out  # 200 paths: the 99.9% tail holds no path
    assert _count(db) == before + 1
    set_id = int(r.out.strip().splitlines()[-1].split()[2])
    with open_store(db, read_only=True) as store:
        rec = get_scenario_set(store, set_id)
    assert rec.name == "test set" and rec.seed == 11 and rec.n_paths == 200
    assert [m["name"] for m in rec.members] == ["base", "pd1", "pd [PD ×1.5]", "pd [PD ×2]",
                                                 "pd [PD ×3]"]
    assert rec.set_toml == set_file.read_text(encoding="utf-8")
    assert list(rec.results["scenario"]) == [m["name"] for m in rec.members]
    assert (rec.results["el"].diff().iloc[2:] > 0).all()
    listed = cli("scenarios", "list", "--db", db)
    assert listed.code == 0 and "test set" in listed.out
    shown = cli("scenarios", "show", str(set_id), "--db", db)
    assert shown.code == 0 and "pd [PD ×3]" in shown.out and "PD ×3" in shown.out
    missing = cli("scenarios", "show", "999", "--db", db)
    assert missing.code == 2 and "scenario set 999 does not exist" in missing.err


def test_a_deal_gives_class_el_breakeven_and_triggers_matching_simulate(cli, book, tmp_path) -> None:
    db, a = book
    text = SET.replace('paths = 300', f'paths = 300\nstructure = "{DEAL}"')
    res = run_scenario_set(db, 1, a, _write(tmp_path, text), keep_paths=True, record=False)
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "300",
            "--seed", "11", "--structure", DEAL)
    assert r.code == 0, r.err
    run_id = int(r.out.strip().splitlines()[-1].split()[1])
    with open_store(db, read_only=True) as store:
        tranches = load_tranche_results(store, run_id)
    base = res.table.set_index("scenario").loc["base"]
    for _, t in tranches.iterrows():
        assert base[f"el_{t['tranche']}"] == pytest.approx(t["el"], abs=1e-12)
        assert 0.0 <= base[f"breakeven_cdr_{t['tranche']}"] <= 1.0
    # the member's CDR from its mean flows, by hand: MDR = Σ default / Σ bop, CDR = 1 − (1 − MDR)^12
    p = res.paths["base"]
    mdr = p.default.mean(axis=0).sum() / p.balance_bop.mean(axis=0).sum()
    assert base["cdr"] == pytest.approx(1 - (1 - mdr) ** 12, rel=1e-9)
    assert any(str(c).startswith("p_breach_") for c in res.table.columns)
    # the senior class breaks even at a higher CDR than the junior ones
    assert base["breakeven_cdr_A"] >= base["breakeven_cdr_B"] >= base["breakeven_cdr_Sub"]


@pytest.mark.parametrize("text, field", [
    ("[set]\nname = 'x'\n[[scenario]]\nname = 'a'\n", "set.seed"),
    ("[set]\nname = 'x'\nseed = 1\n[[scenario]]\nname = 'a'\npd_mul = 2\n", "scenario[0].pd_mul"),
    ("[set]\nname = 'x'\nseed = 1\n[[scenario]]\nname = 'a'\npd_mult = -1\n",
     "scenario[0].pd_mult"),
    ("[set]\nname = 'x'\nseed = 1\n[[scenario]]\nname = 'a'\nrho = 1.0\n", "scenario[0].rho"),
    ("[set]\nname = 'x'\nseed = 1\n[[scenario]]\nname = 'a'\nroll_mult = 1.2\n",
     "scenario[0].roll_mult"),
    ("[set]\nname = 'x'\nseed = 1\n[[grid]]\nname = 'g'\nrho = []\n", "grid[0].rho"),
    ("[set]\nname = 'x'\nseed = 1\n[[grid]]\nname = 'g'\n", "grid[0]"),
    ("[set]\nname = 'x'\nseed = 1\n[[scenario]]\nname = 'a'\n[[scenario]]\nname = 'a'\n",
     "scenario[1].name"),
    ("[set]\nname = 'x'\nseed = 1\n", "scenario"),
    ("[set]\nname = 'x'\nseed = 1\npaths = 0\n[[scenario]]\nname = 'a'\n", "set.paths"),
    ("[set]\nname = 'x'\nseed = 1\nmodel = 'markov'\n[[scenario]]\nname = 'a'\n", "set.model"),
    ("[set\nname = 'x'\n", "not valid TOML"),
])
def test_a_bad_set_file_exits_2_naming_the_field_and_writes_nothing(cli, book, tmp_path, text,
                                                                     field) -> None:
    db, a = book
    before = _count(db)
    r = cli("scenarios", "run", "--db", db, "--set", _write(tmp_path, text), "--pool", "1",
            "--assumptions", a)
    assert r.code == 2 and "Traceback" not in r.err
    assert field in r.err, r.err
    assert "set.toml" in r.err
    assert _count(db) == before


def test_bad_flags_exit_2(cli, book, tmp_path) -> None:
    db, a = book
    set_file = _write(tmp_path, SET)
    for flags, field in ((["--paths", "0"], "--paths"), (["--seed", "-1"], "--seed"),
                         (["--out", "x.txt"], "--out"), (["--pool", "9"], "pool")):
        args = ["scenarios", "run", "--db", db, "--set", set_file, "--assumptions", a,
                *(["--pool", "1"] if "--pool" not in flags else []), *flags]
        r = cli(*args)
        assert r.code == 2 and field in r.err, (flags, r.err)


def _with_delinquency(roll: float = 0.6, cure: float = 0.3):  # type: ignore[no-untyped-def]
    base = assumptions()
    shape = (*base.default_hazard.shape, DELINQUENCY_BUCKETS)
    dq = DelinquencyAssumptions(roll_current=base.default_hazard.copy(),
                                roll=np.full(shape, roll), cure=np.full(shape, cure))
    return dataclasses.replace(base, delinquency=dq)


@pytest.mark.parametrize("mult, roll, cure", [
    (1.5, 0.9, 0.1),   # 0.6 x 1.5 = 0.9: the stay (0.1) is gone, then the cure gives 0.2
    (2.0, 1.0, 0.0),   # capped at 1: the bucket always rolls
    (0.5, 0.3, 0.3),   # a milder stress: the stay grows, the cure is kept
])
def test_roll_multiplier_scales_the_rolls_taking_from_stay_then_cure(mult, roll, cure) -> None:
    base = _with_delinquency()
    out = stressed(base, Member("r", "", {"roll_mult": mult}), "delinquency")
    assert out.delinquency is not None
    np.testing.assert_allclose(out.delinquency.roll, roll, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out.delinquency.cure, cure, rtol=0, atol=1e-15)
    assert (out.delinquency.roll + out.delinquency.cure <= 1.0).all()
    np.testing.assert_array_equal(out.default_hazard, base.default_hazard)
    np.testing.assert_array_equal(out.delinquency.roll_current, base.delinquency.roll_current)


def test_roll_multiplier_needs_a_delinquency_section(tmp_path) -> None:
    base = assumptions()  # no [delinquency]: every roll would be 1
    with pytest.raises(ValidationError, match="roll_mult of 'r'.*\\[delinquency\\] section"):
        stressed(base, Member("r", "", {"roll_mult": 1.5}), "delinquency")
    assert stressed(base, Member("r", "", {"roll_mult": 1.5}), "hazard").delinquency is None
    p = _write(tmp_path, "[set]\nname = 'x'\nseed = 1\nmodel = 'delinquency'\n[[grid]]\n"
               "name = 'roll'\nroll_mult = [1.0, 1.5]\n")
    sset = load_scenario_set(p)
    assert [m.changes for m in sset.members] == [{"roll_mult": 1.0}, {"roll_mult": 1.5}]


def test_a_roll_rate_grid_raises_the_pool_el_under_the_delinquency_model(book, tmp_path) -> None:
    db, _ = book
    a = save_assumptions(_with_delinquency(0.4, 0.4), tmp_path / "dq.toml")
    set_file = _write(tmp_path, "[set]\nname = 'roll'\nseed = 2\npaths = 200\n"
                      "model = 'delinquency'\n[[grid]]\nname = 'roll'\n"
                      "roll_mult = [1.0, 1.5, 2.0]\n")
    res = run_scenario_set(db, 1, a, set_file, record=False)
    els = list(res.table["el"])
    assert els[0] < els[1] < els[2], els


def test_a_refused_write_changes_nothing(book) -> None:
    db, _ = book
    before = _count(db)
    with open_store(db) as store, pytest.raises(duckdb.ConstraintException):
        insert_scenario_set(store, name="bad", source="", set_toml="", pool_id=1,
                            assumptions="a.toml", assumptions_sha256=None, n_paths=0, seed=1,
                            model="hazard", engine="granular", deal_name=None,
                            deal_source=None, code_version="x", members=[],
                            results=pd.DataFrame({"el": [1.0]}), loan_sampler=None)
    assert _count(db) == before


def test_schema_step_4_to_5_adds_the_table_and_a_reader_refuses_version_4(tmp_path) -> None:
    db = tmp_path / "v4.duckdb"
    with open_store(db):
        pass
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE scenario_sets")
    con.execute("DROP SEQUENCE scenario_set_seq")
    con.execute("UPDATE schema_info SET value = '4' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaMismatch, match="schema version 4"):
        open_store(db, read_only=True)
    with open_store(db) as store:
        assert store.schema_version() == SCHEMA_VERSION == 6
        assert store.con.execute("SELECT count(*) FROM scenario_sets").fetchall() == [(0,)]
        assert store.next_id("scenario_set_seq") == 1


def test_roll_mult_without_a_delinquency_section_exits_2_before_any_run(cli, book,
                                                                         tmp_path) -> None:
    db, a = book  # the fixture's assumptions have no [delinquency] section
    before = _count(db)
    set_file = _write(tmp_path, "[set]\nname = 'x'\nseed = 1\nmodel = 'delinquency'\n"
                      "[[scenario]]\nname = 'base'\n[[scenario]]\nname = 'r'\nroll_mult = 2\n")
    r = cli("scenarios", "run", "--db", db, "--set", set_file, "--pool", "1",
            "--assumptions", a)
    assert r.code == 2 and "roll_mult of 'r'" in r.err and "[delinquency]" in r.err
    assert _count(db) == before
