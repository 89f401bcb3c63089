"""``riskpool simulate ... --structure deal.toml``: the waterfall on the run's paths (revolving
purchases as new loans), tranche tables stored with the run, ``riskpool tranche report``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboards.xlsx import read_tables
from portfolio.montecarlo.records import SimulationInputs
from portfolio.store.core import open_store
from portfolio.store.runs import list_runs, load_paths, record_simulation
from portfolio.store.tranches import load_tranche_results
from tranching.deal import load_deal
from tranching.revolving import DealSettings, load_deal_record, run_deal, run_replenishment

ROOT = Path(__file__).resolve().parents[2]
CN = ROOT / "examples" / "deal_cn_consumer.toml"
US = ROOT / "examples" / "deal_us_consumer.toml"


def _main(*args: str | Path) -> None:
    from riskpool.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert not exc.code, f"riskpool {args[0]} failed with {exc.code}"


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 generated loans, the example criteria (obligor limit relaxed for a tiny book, as
    in tests/dashboards/conftest.py), calibrated assumptions."""
    d = tmp_path_factory.mktemp("structure_book")
    db = d / "book.duckdb"
    criteria = (ROOT / "examples" / "criteria.toml").read_text(encoding="utf-8")
    (d / "criteria.toml").write_text(criteria.replace("max_obligor_share = 0.001",
                                                      "max_obligor_share = 0.05"))
    _main("generate", "--loans", "3000", "--months", "18", "--seed", "13", "--as-of",
          "2026-06-30", "--db", db)
    _main("pool", "create", "--name", "p", "--criteria", d / "criteria.toml", "--cutoff",
          "2026-06-30", "--db", db)
    _main("calibrate", "--pool", "1", "--out", d / "a.toml", "--db", db)
    return db


@pytest.fixture
def db(book: Path, tmp_path: Path) -> Path:
    out = tmp_path / "book.duckdb"
    shutil.copy(book, out)
    shutil.copy(book.parent / "a.toml", tmp_path / "a.toml")
    return out


def _simulate(cli, db: Path, *extra: str | Path):  # type: ignore[no-untyped-def]
    return cli("simulate", "--pool", "1", "--assumptions", db.parent / "a.toml", "--seed", "7",
               "--paths", "300", "--db", db, *extra)


def test_structure_stores_the_tranche_table_with_the_run(cli, db: Path) -> None:
    r = _simulate(cli, db, "--structure", CN)
    assert r.code == 0, r.err
    assert "deal CN Consumer Example 2026-1 (revolving 12 months, purchases as new loans" in r.out
    assert "cnl_early_amortisation" in r.out
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        stored = load_tranche_results(store, run_id)
        info = load_deal_record(store, run_id)
        paths = load_paths(store, run_id)
        deal = load_deal(CN)
        profile = run_replenishment(store, run_id, deal)
    assert stored["tranche"].tolist() == ["A", "B", "Sub"]
    assert info.settings.replenishment == "new-loan profile"
    assert info.deal_toml is not None and "[[waterfall]]" in info.deal_toml
    assert info.triggers["trigger"].tolist() == ["cnl_early_amortisation", "dpd30_3m_average",
                                                 "event_of_default"]
    # the profile rebuilt from the run's typed inputs gives the stored numbers again, exactly
    assert profile is not None and profile.n_paths == 300
    again = run_deal(deal, paths, profile)
    for col in ("el", "el_se", "pd", "wal_mean", "wal_p95", "loss_q99"):
        assert np.array_equal(stored[col].to_numpy(float), again.tranches[col].to_numpy(float),
                              equal_nan=True), col
    assert info.settings == again.settings()
    # the revolving period keeps A outstanding well past the 12 revolving months (WAL > 1.03 y)
    assert stored["wal_mean"].iloc[0] > 1.1
    rep = cli("tranche", "report", "--run", str(run_id), "--db", db)
    assert rep.code == 0, rep.err
    assert "CN Consumer Example 2026-1" in rep.out and "Sub" in rep.out
    assert "cnl_early_amortisation" in rep.out


def test_a_deal_without_revolving_needs_no_profile(cli, db: Path) -> None:
    r = _simulate(cli, db, "--structure", US)
    assert r.code == 0, r.err
    assert "no revolving period" in r.out
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        assert load_deal_record(store, run_id).settings == DealSettings("none", 0,
                                                                        len(load_paths(
                                                                            store, run_id).dates))


BAD_DEALS = {
    # (what is wrong, replace this, with that, the field the message names)
    "misspelt key": ('name = "B"', 'nome = "B"', "tranches[1].nome"),
    "unknown step": ('step = "reimburse"', 'step = "refund"', "waterfall[3].step"),
    "unknown metric": ('metric = "cnl"', 'metric = "cdr"', "triggers[0].metric"),
    "sizes do not add up": ("size = 0.89", "size = 0.95", "tranches[].size"),
}


@pytest.mark.parametrize("case", sorted(BAD_DEALS))
def test_a_bad_deal_file_exits_2_and_writes_nothing(cli, db: Path, tmp_path: Path,
                                                    case: str) -> None:
    old, new, field = BAD_DEALS[case]
    text = CN.read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    r = _simulate(cli, db, "--structure", bad)
    assert r.code == 2
    assert "error:" in r.err and field in r.err
    _assert_nothing_written(db)


def test_amounts_that_do_not_match_the_pool_fail_after_simulating_and_write_nothing(
        cli, db: Path, tmp_path: Path) -> None:
    # CNY amounts can only be checked against the pool balance once it is known
    text = CN.read_text(encoding="utf-8")
    text = (text.replace("size = 0.89", "amount = 1000000.0").replace("size = 0.04", "amount = 50000.0")
            .replace("size = 0.07", "amount = 10000.0"))
    bad = tmp_path / "amounts.toml"
    bad.write_text(text, encoding="utf-8")
    r = _simulate(cli, db, "--structure", bad)
    assert r.code == 2
    assert "tranches[].size" in r.err
    _assert_nothing_written(db)


def test_a_failing_on_record_step_records_no_run(db: Path) -> None:
    from tranching_pathgen import synthetic_paths

    paths = synthetic_paths(n_paths=4, n_months=6)

    def fail(store, run_id: int) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("tranche insert failed")

    with open_store(db) as store:
        with pytest.raises(RuntimeError, match="tranche insert failed"):
            record_simulation(store, paths, SimulationInputs(pool_id=1, n_paths=4, seed=1,
                                                             engine="granular",
                                                             assumptions="a.toml"),
                              "test", on_record=fail)
    _assert_nothing_written(db)


def _assert_nothing_written(db: Path) -> None:
    with open_store(db, read_only=True) as store:
        assert list_runs(store).empty
        n = store.con.execute("SELECT count(*) FROM run_tranches").fetchone()
        assert n is not None and n[0] == 0
    runs = db.parent / "runs"
    assert not runs.exists() or not any(p for p in runs.iterdir() if not p.name.startswith("."))


def test_tranche_size_of_a_revolving_deal_uses_the_runs_profile(cli, db: Path) -> None:
    from tranching.sizing import size_tranche

    assert _simulate(cli, db).code == 0
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        paths = load_paths(store, run_id)
        profile = run_replenishment(store, run_id, load_deal(CN))
    r = cli("tranche", "size", "--run", str(run_id), "--db", db, "--structure", CN, "--tranche",
            "B", "--target-el", "0.001")
    assert r.code == 0, r.err
    res = size_tranche(load_deal(CN), paths, "B", target_el=0.001, replenishment=profile)
    assert f"size {res.size:.4%}" in r.out
    # without the profile (the scaling fallback) the sizing is a different calculation: either
    # it finds no size at all for B, or its size or the tranche's EL at that size differs
    from tranching.errors import SizingError

    try:
        fallback = size_tranche(load_deal(CN), paths, "B", target_el=0.001)
    except SizingError as exc:
        assert "no size of tranche 'B'" in str(exc)
    else:
        assert (fallback.size, fallback.el, fallback.wal) != (res.size, res.el, res.wal)


def test_report_shows_the_residual_holder_and_a_closing_reconciliation(cli, db: Path,
                                                                        tmp_path: Path) -> None:
    # simulate --structure prints the residual holder and the reconciliation; tranche report
    # reruns the stored deal on the stored paths and gives the same numbers; --rating-table
    # fills the implied ratings on both.
    ratings = ROOT / "examples" / "rating_table_illustrative.toml"
    r = _simulate(cli, db, "--structure", CN, "--rating-table", ratings)
    assert r.code == 0, r.err
    assert "== residual_holder" in r.out and "== reconciliation" in r.out
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        stored = load_tranche_results(store, run_id)
        paths = load_paths(store, run_id)
        deal = load_deal(CN)
        profile = run_replenishment(store, run_id, deal)
    assert stored["rating"].notna().all()
    out = tmp_path / "rep.xlsx"
    r = cli("tranche", "report", "--run", str(run_id), "--db", db, "--out", out,
            "--rating-table", ratings)
    assert r.code == 0, r.err
    sheets = read_tables(out, sheet_name=None)
    assert {"tranches", "residual_holder", "reconciliation", "excess_spread"} <= set(sheets)
    classes = sheets["tranches"][sheets["tranches"]["tranche"] != "total"]  # + the notes' total
    assert classes["rating"].tolist() == stored["rating"].tolist()
    direct = run_deal(deal, paths, profile)
    res = sheets["residual_holder"].iloc[0]
    assert res["holder"] == "platform"
    assert res["irr"] == pytest.approx(direct.residual["irr"].iloc[0], rel=1e-12)
    assert res["irr"] > 0 and res["of_which_residual"] > 0
    rec = sheets["reconciliation"]
    assert rec.loc[rec["item"].str.startswith("difference"), "max"].abs().max() <= 1e-6
    # without a structure a rating table is refused, exit 2, naming the flag
    r = _simulate(cli, db, "--rating-table", ratings)
    assert r.code == 2 and "--rating-table" in r.err


def test_cashflow_tape_cli_and_its_residual_irr(cli, db: Path, tmp_path: Path) -> None:
    # The tape of the expected path: the residual holder's IRR computed by numpy-financial on
    # the tape's own cash equals the residual table's tape IRR, and is positive.
    import numpy_financial as npf

    r = _simulate(cli, db, "--structure", CN)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
    out = tmp_path / "tape.csv"
    r = cli("tranche", "cashflows", "--run", str(run_id), "--db", db, "--out", out)
    assert r.code == 0, r.err
    tape = pd.read_csv(out)
    assert set(tape["item"]) >= {"A", "B", "Sub", "servicer", "trustee", "reserve", "residual",
                                 "residual holder", "pool"}
    rep = tmp_path / "rep.xlsx"
    assert cli("tranche", "report", "--run", str(run_id), "--db", db, "--out", rep).code == 0
    res = read_tables(rep, sheet_name="residual_holder").iloc[0]
    cash = tape.loc[tape["item"] == "residual holder", "cash"].to_numpy()
    irr = (1 + npf.irr(np.concatenate([[-res["investment"]], cash]))) ** 12 - 1
    assert irr > 0
    assert irr == pytest.approx(res["irr_tape"], abs=1e-9)
    # a percentile path and Parquet; a bad --path exits 2 naming the flag
    pq = tmp_path / "p95.parquet"
    assert cli("tranche", "cashflows", "--run", str(run_id), "--db", db, "--out", pq,
               "--path", "p95").code == 0
    assert len(pd.read_parquet(pq)) == len(tape)
    r = cli("tranche", "cashflows", "--run", str(run_id), "--db", db, "--out", out,
            "--path", "worst")
    assert r.code == 2 and "--path" in r.err


def test_tranche_grid_around_a_stored_run(cli, db: Path, tmp_path: Path) -> None:
    # grid --run: the base row is the run's paths read back by tranching.grid.base_scenario
    # (checked against it here, with WAM = the pool's balance-weighted remaining term by plain
    # arithmetic on the pool's loans); the CDRs are the base CDR times the multipliers; the
    # run's stored deal is used; breakeven CDR non-decreasing in seniority.
    from portfolio.book.pools import load_pool_loans
    from tranching.grid import base_scenario

    assert _simulate(cli, db, "--structure", CN).code == 0
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        paths = load_paths(store, run_id)
        loans = load_pool_loans(store, 1)
    wam = round(float((loans.balance * loans.remaining_term).sum() / loans.balance.sum()))
    want = base_scenario(paths, wam)
    out = tmp_path / "grid.xlsx"
    r = cli("tranche", "grid", "--run", str(run_id), "--db", db, "--cdr-multipliers", "0,1,2",
            "--tol", "1e-4", "--out", out)
    assert r.code == 0, r.err
    sheets = read_tables(out, sheet_name=None)
    base = sheets["base"].iloc[0]
    assert base["wam"] == wam and base["recovery_lag"] == want.lag
    for k in ("balance", "wac", "cdr", "severity", "cpr"):
        assert base[k] == pytest.approx(getattr(want, k), rel=1e-12)
    assert 0 < want.cdr < 1 and 0 < want.severity < 1
    g = sheets["grid"]
    np.testing.assert_allclose(sorted(set(g["cdr"])), [0.0, want.cdr, 2 * want.cdr], rtol=1e-12)
    assert set(g["tranche"]) == {"A", "B", "Sub"}
    be = sheets["breakeven_cdr"].set_index("tranche")["breakeven_cdr"]
    assert be["Sub"] <= be["B"] <= be["A"]
    # the roll-rate grid with the run's own delinquency transitions (no --roll flags): each
    # rate the balance-weighted mean over the pool's loans at their next month on book, here by
    # a plain loop over the loans
    from portfolio.book.replay import replay_run

    out = tmp_path / "roll.xlsx"
    r = cli("tranche", "grid", "--run", str(run_id), "--db", db, "--cdr-multipliers", "1",
            "--tol", "1e-3", "--roll-multipliers", "1,3", "--out", out)
    assert r.code == 0, r.err
    sheets = read_tables(out, sheet_name=None)
    chain = sheets["roll_chain"].iloc[0]
    with open_store(db, read_only=True) as store:
        a = replay_run(store, run_id).assumptions
    dq, terms = a.delinquency_model(), list(a.terms)
    k_n, n_age = dq.charge_off_dpd // 30, dq.roll_current.shape[2]
    num, tot = [0.0] * (1 + 2 * k_n), 0.0
    for b, t, m, w in zip(loans.score_band, loans.term_months, loans.months_on_book,
                          loans.balance, strict=True):
        i, age = terms.index(int(t)), min(int(m) + 1, n_age) - 1
        vals = [dq.roll_current[b, i, age]] + [dq.roll[b, i, age, k] for k in range(k_n)] + [
            dq.cure[b, i, age, k] for k in range(k_n)]
        num = [x + float(w) * v for x, v in zip(num, vals, strict=True)]
        tot += float(w)
    want_chain = [x / tot for x in num]
    got_chain = [chain["roll_current"]] + [chain[f"roll_{k + 1}"] for k in range(k_n)] + [
        chain[f"cure_{k + 1}"] for k in range(k_n)]
    np.testing.assert_allclose(got_chain, want_chain, rtol=1e-9, atol=1e-15)
    assert "run" in chain["source"]
    rg = sheets["roll_grid"]
    cdl = rg.groupby("roll_multiplier")["pool_cdl"].first()
    assert 0 < cdl[1.0] < cdl[3.0]
    r = cli("tranche", "grid", "--db", db, "--balance", "1e6")
    assert r.code == 2 and "--structure" in r.err
    r = cli("tranche", "grid", "--run", str(run_id), "--db", db, "--cdr-multipliers", "1,-2")
    assert r.code == 2 and "--cdr-multipliers" in r.err


def test_structure_stores_the_replenishment_profile_with_the_run(cli, db: Path) -> None:
    """The revolving deal's profile is written with the run's paths; it is the profile a
    replay of the run's inputs builds, array for array (so reading it changes no number)."""
    from portfolio.book.replay import replay_run
    from portfolio.montecarlo.paths import FLOW_NAMES
    from portfolio.store.runs import load_replenishment, run_dir

    r = _simulate(cli, db, "--structure", CN)
    assert r.code == 0, r.err
    deal = load_deal(CN)
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        stored = load_replenishment(store, run_id, deal.revolving_months)
        assert load_replenishment(store, run_id, deal.revolving_months + 1) is None
        rebuilt = replay_run(store, run_id).replenishment(deal.revolving_months)
        used = run_replenishment(store, run_id, deal)
        folder = run_dir(store, run_id)
    assert (folder / f"replenishment_{deal.revolving_months}m" / "v0" / "paths.parquet").is_file()
    assert stored is not None and used is not None
    assert stored.n_vintages == rebuilt.n_vintages == deal.revolving_months
    for s in range(deal.revolving_months):
        a, b, c = stored.vintage(s), rebuilt.vintage(s), used.vintage(s)
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(a, name), getattr(b, name)), (s, name)
            assert np.array_equal(getattr(c, name), getattr(a, name)), (s, name)
        assert np.array_equal(a.dates, b.dates)
        assert a.initial_balance == b.initial_balance


def test_structure_stores_the_tranches_pages_view_with_the_run(cli, db: Path) -> None:
    """`simulate --structure` stores the Tranches page's first view of the run (the deal at
    the page's default discount rate); read back it equals the view computed live."""
    import pandas as pd

    from dashboards import access
    from dashboards.auth import Viewer

    r = _simulate(cli, db, "--structure", CN)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        run_id = int(list_runs(store)["run_id"].iloc[0])
        views = {row[0] for row in store.con.execute(
            "SELECT DISTINCT view FROM run_view_summaries WHERE run_id = ?", [run_id]).fetchall()}
    assert access.TRANCHES_VIEW in views
    treasury = Viewer("t", "treasury")
    deal = access.stored_deal_toml(db, treasury, run_id)
    assert deal is not None
    read = access.tranches(db, treasury, run_id, deal, access.DEFAULT_DISCOUNT)
    with open_store(db) as store:
        store.con.execute("DROP TABLE run_view_summaries")
    live = access.tranches(db, treasury, run_id, deal, access.DEFAULT_DISCOUNT)
    pd.testing.assert_frame_equal(read.table, live.table, check_exact=True)
    pd.testing.assert_frame_equal(read.tape, live.tape, check_exact=True)
    for name, shares in live.loss_shares.items():
        assert np.array_equal(read.loss_shares[name], shares), name


@pytest.mark.parametrize("deal_file", [US, CN], ids=["US", "CN"])
def test_tranche_table_from_its_own_cash_flow_tape_by_hand(cli, db: Path, tmp_path: Path,
                                                           deal_file: Path) -> None:
    """On a single-path run (``--deterministic adverse``) every figure of the tranche table is
    a function of the one path the cash-flow tape writes out, so each is recomputed here from
    the exported tape with the textbook formulas (F. J. Fabozzi, *Bond Markets, Analysis and
    Strategies*: price = Σ CF·(1 + y)^−τ; Macaulay duration = Σ τ·CF·(1 + y)^−τ / price,
    modified = Macaulay / (1 + y) for annual compounding; WAL = Σ τ·principal / Σ principal),
    τ in years Act/365F from closing, y = the flat 5%, and the IRR by SciPy's ``brentq`` on
    Σ CF·(1 + r)^−τ = face — neither QuantLib's pricer nor the module's bisection.

    The first coupon accrues from the closing date: QuantLib's 30/360 (Bond Basis) days from
    closing to the first payment date / 360 × the coupon × the balance (the CN example closes
    2026-07-15 and pays on 2026-08-26: 41 days, not one month's 30), and a class bought at par
    that is paid in full earns at least its coupon."""
    import QuantLib as ql
    from scipy.optimize import brentq

    r = cli("simulate", "--pool", "1", "--assumptions", db.parent / "a.toml", "--seed", "7",
            "--deterministic", "adverse", "--db", db, "--structure", deal_file)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        run_id = str(int(list_runs(store)["run_id"].iloc[0]))
    tape_csv, rep = tmp_path / "tape.csv", tmp_path / "rep.xlsx"
    assert cli("tranche", "cashflows", "--run", run_id, "--db", db, "--out", tape_csv).code == 0
    assert cli("tranche", "report", "--run", run_id, "--db", db, "--out", rep).code == 0
    tape = pd.read_csv(tape_csv, parse_dates=["date"])
    table = read_tables(rep, sheet_name="tranches")
    assert table["tranche"].iloc[-1] == "total"  # the notes' total row (with_class_total)
    assert table["size"].iloc[-1] == pytest.approx(table["size"].iloc[:-1].sum(), rel=1e-12)
    table = table.iloc[:-1]
    deal = load_deal(deal_file)
    closing = pd.Timestamp(deal.closing_date)
    first = deal.first_payment_date
    days = ql.Thirty360(ql.Thirty360.BondBasis).dayCount(
        ql.Date(deal.closing_date.day, deal.closing_date.month, deal.closing_date.year),
        ql.Date(first.day, first.month, first.year))
    assert len(table) == 3
    for _, row in table.iterrows():
        t = tape[tape["item"] == row["tranche"]].sort_values("date")
        tau = (t["date"] - closing).dt.days.to_numpy() / 365.0
        cash, face = t["cash"].to_numpy(), row["size"]
        received = cash - t["paid"].to_numpy()  # principal and reimbursements
        v = 1.05 ** -tau
        price = float((cash * v).sum())
        assert row["price"] == pytest.approx(price / face, rel=1e-10)
        assert row["mod_duration"] == pytest.approx(
            float((tau * cash * v).sum()) / price / 1.05, rel=1e-10)
        assert row["wal_mean"] == pytest.approx(
            float((tau * received).sum() / received.sum()), rel=1e-12)
        assert t["due"].iloc[0] == pytest.approx(
            row["coupon"] * days / 360.0 * t["balance_bop"].iloc[0], rel=1e-12)
        if row["coupon"] > 0:  # a subordinated class without coupon has IRR 0 at par
            irr = brentq(lambda y, c=cash, tt=tau, f=face: float((c * (1 + y) ** -tt).sum()) - f,
                         -0.99, 10.0, xtol=1e-14)
            assert row["irr"] == pytest.approx(irr, abs=1e-9)
            if received.sum() >= face * (1 - 1e-12) and t["shortfall"].max() <= 0:
                assert irr >= row["coupon"]  # bought at par, paid in full
