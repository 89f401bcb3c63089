"""Runs as named objects: ``--label``/``--tag`` on ``simulate``, ``runs label``, ``runs list``
shows them, and ``runs diff A B`` (inputs that differ, loss measures with B − A, its SE and a
"too few paths" flag). Figures are read from the comparison's tables and checked against the
runs' own stored loss statistics, not from the printed text."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cli_books import pooled_book
from simulation_pools import assumptions

from portfolio.book.compare import MIN_TAIL_PATHS, compare_runs, tail_paths
from portfolio.store.core import open_store
from portfolio.store.runs import get_run, list_runs, run_loss_stats


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path]:
    return pooled_book(tmp_path, assumptions())


def _row_counts(db: Path) -> dict[str, int]:
    with open_store(db, read_only=True) as store:
        return {t: store.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("runs", "run_monthly", "run_loss_stats")}


def test_label_and_tags_are_stored_listed_and_changed(cli, book) -> None:
    db, a = book
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "400",
            "--seed", "5", "--label", "  jun base ", "--tag", "q3", "--tag", "base", "--tag", "q3")
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        rec = get_run(store, 1)
        listed = list_runs(store)
    assert rec.label == "jun base" and rec.tags == ("q3", "base")  # trimmed; tag once
    assert listed.loc[0, "label"] == "jun base" and listed.loc[0, "tags"] == "q3,base"
    r = cli("runs", "label", "1", "--label", "jun base v2", "--tag", "final", "--db", db)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        rec = get_run(store, 1)
    assert rec.label == "jun base v2" and rec.tags == ("final",)
    r = cli("runs", "show", "1", "--db", db)
    assert "label: jun base v2; tags: final" in r.out


@pytest.mark.parametrize("flags, field", [
    (["--tag", "two words"], "--tag"),
    (["--tag", "a,b"], "--tag"),
    (["--label", "x" * 201], "--label"),
])
def test_a_bad_label_or_tag_is_refused_before_anything_is_written(cli, book, flags, field) -> None:
    db, a = book
    before = _row_counts(db)
    r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "200",
            "--seed", "5", *flags)
    assert r.code == 2 and field in r.err and "Traceback" not in r.err
    assert _row_counts(db) == before


def test_runs_diff_deltas_and_the_few_paths_flag(cli, book) -> None:
    db, a = book
    assert cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "4000",
               "--seed", "5", "--label", "base").code == 0
    assert cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "500",
               "--seed", "6", "--pd-mult", "1.5", "--label", "pd x1.5").code == 0
    with open_store(db, read_only=True) as store:
        cmp = compare_runs(store, 1, 2)
        sa, sb = run_loss_stats(store, 1, None), run_loss_stats(store, 2, None)
    differing = set(cmp.inputs.loc[cmp.inputs["differs"], "input"])
    assert {"n_paths", "seed", "stress.pd_mult", "label"} <= differing
    assert "pool_id" not in differing and "engine" not in differing
    assert len(cmp.results) == len(sa) == len(sb)  # every measure of the pool, none lost
    def pick(s, measure, level):
        return s[(s["measure"] == measure) & ((s["measure"] == "EL") | (s["level"] == level))].iloc[0]

    for r in cmp.results.itertuples(index=False):
        ra, rb = pick(sa, r.measure, r.level), pick(sb, r.measure, r.level)
        assert r.a == ra["loss"] and r.b == rb["loss"]
        assert r.delta == pytest.approx(rb["loss"] - ra["loss"], abs=1e-6)
        assert r.delta_pct == pytest.approx((rb["loss"] - ra["loss"]) / ra["loss"], rel=1e-12)
        assert r.delta_se == pytest.approx(math.hypot(ra["se"], rb["se"]), rel=1e-12)
        # tail paths: 500 × 5% = 25, 500 × 1% = 5, 500 × 0.1% = 0 — all below 50; EL never
        few = r.measure != "EL"
        assert bool(r.note) == few, (r.measure, r.level, r.note)
    assert cmp.results.loc[cmp.results["measure"] == "EL", "delta"].iloc[0] > 0  # PD × 1.5
    r = cli("runs", "diff", "1", "2", "--db", db)
    assert r.code == 0, r.err
    assert "too few paths" in r.out and "stress.pd_mult" in r.out and "pd x1.5" in r.out


def test_tail_paths_counts_the_paths_beyond_the_quantile() -> None:
    assert tail_paths(10_000, 0.999) == 10 and tail_paths(10_000, 0.99) == 100
    assert tail_paths(500, 0.95) == 25 and tail_paths(500, 0.999) == 0
    assert tail_paths(100_000, 0.9995) == 50 >= MIN_TAIL_PATHS
    assert tail_paths(7, math.nan) == 7


def test_runs_diff_refuses_a_report_run_and_an_unknown_id(cli, book) -> None:
    db, a = book
    assert cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "200",
               "--seed", "5").code == 0
    r = cli("runs", "diff", "1", "9", "--db", db)
    assert r.code == 2 and "run" in r.err and "9" in r.err


def test_runs_show_flags_the_quantiles_with_too_few_tail_paths(cli, book) -> None:
    # As simulate's table and runs diff do: at 2,000 paths the tails beyond 95%, 99% and 99.9%
    # hold 2,000 × 5% = 100, 2,000 × 1% = 20 and 2,000 × 0.1% = 2 paths (by hand): the 99%
    # and 99.9% VaR and ES are flagged, the 95% ones and EL are not.
    from riskpool.commands.simulation import loss_rows_shown

    db, a = book
    assert cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "2000",
               "--seed", "5").code == 0
    with open_store(db, read_only=True) as store:
        stats = run_loss_stats(store, 1, None)
    shown = loss_rows_shown(stats, 2000)
    assert len(shown) == len(stats)  # every stored row, none lost
    by_hand = {0.95: 100, 0.99: 20, 0.999: 2}
    for row, note in zip(stats.itertuples(index=False), shown["note"], strict=True):
        if row.measure == "EL":
            assert note == ""
            continue
        k = by_hand[round(float(row.level), 6)]
        assert note == ("" if k >= MIN_TAIL_PATHS else f"too few paths: {k} in the tail"), row
    assert (shown["note"] != "").sum() == 2 * 2 * stats["party_id"].nunique()  # VaR, ES × 2
    r = cli("runs", "show", "1", "--db", db)
    assert r.code == 0, r.err
    assert "too few paths: 2 in the tail" in r.out and "too few paths: 20 in the tail" in r.out
