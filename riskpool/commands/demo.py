"""``riskpool demo``: the whole pipeline on a synthetic book, then the dashboard.

Steps (library calls, no subprocesses): generate a book (default 200,000 loans, 24 months,
seed 13, as-of 2026-06-30) → cut a pool (``examples/criteria.toml``) → calibrate assumptions
from the book's history → allocate the pool to the example partners
(``examples/partners.toml``) → simulate 10,000 paths carrying the partners' shares → run the
Chinese example deal (``examples/deal_cn_consumer.toml``) on the paths and store the tranche
table → compute risk dispersion (printed; the dashboard and report recompute it from the
stored paths) → write the treasury report and the demo partner's report → create two demo
users (printed with their passwords) → start the dashboard (unless ``--no-dashboard``).

An existing demo database is reused when ``demo.json`` beside it records the same parameters
(a second ``make demo`` starts the dashboard at once); with other parameters, or a database
that the demo did not build, the command refuses unless ``--rebuild`` (which deletes the
database, its ``runs/`` directory and the demo's files beside it first). Users are
recreated with new passwords on every run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from dashboards import access
from dashboards.auth import Viewer, add_user, new_password
from dashboards.reports import write_report
from partners.allocation import allocate, loan_risk_from_assumptions
from partners.dispersion import disperse_paths
from partners.reconciliation import reconcile
from partners.records import AllocationRequest, load_allocation, pool_loans, save_allocation
from partners.registry import load_registry
from portfolio import settings
from portfolio.book.analytics import book_summary
from portfolio.book.calibration import calibrate_from_store
from portfolio.book.pools import Criteria, create_pool, load_pool_loans, parse_criteria
from portfolio.book.summaries import store_book_summaries, store_party_book_summaries
from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.assumptions import save_assumptions
from portfolio.montecarlo.records import MAX_PATHS, SimulationInputs, loan_sampler_for
from portfolio.montecarlo.simulation import loss_distribution, simulate
from portfolio.store import open_store
from portfolio.store.runs import record_simulation, write_replenishment
from portfolio.store.tranches import record_tranche_results
from portfolio.synthetic.generate import MAX_LOANS, GeneratorParams, generate_book
from portfolio.validation import read_toml
from portfolio.version import code_version
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import fixed
from riskpool.commands.reports import check_port, run_dashboard
from tranching.deal import load_deal
from tranching.revolving import replenishment_for, run_deal

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"
DEMO_PARTNER = "bank_east"
_SHARE = fixed("{:.1f}")  # a share in percent, one decimal, no "-0.0"


@dataclass(frozen=True, slots=True)
class DemoParams:
    n_loans: int = 200_000
    n_months: int = 24
    seed: int = 13  # its macro path puts the book near the calibration anchors (see generate.py)
    as_of: str = "2026-06-30"
    n_paths: int = 10_000
    criteria: str = str(EXAMPLES / "criteria.toml")
    partners: str = str(EXAMPLES / "partners.toml")
    deal: str = str(EXAMPLES / "deal_cn_consumer.toml")
    max_obligor_share: float | None = None  # override of the criteria file (small test books)
    demo_partner: str = DEMO_PARTNER
    flat_fee_share: float = 0.0  # GeneratorParams.flat_fee_share (0: the default book)


@dataclass
class DemoResult:
    db: Path
    pool_id: int = 0
    allocation_id: int = 0
    run_id: int = 0
    report_run_ids: list[int] = field(default_factory=list)
    report_files: list[Path] = field(default_factory=list)
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (role, password)
    timings: dict[str, float] = field(default_factory=dict)
    reused: bool = False


def marker_path(db: Path) -> Path:
    return db.with_name(db.stem + ".demo.json")


def _remove_demo(db: Path) -> None:
    for p in (db, db.with_name(db.name + ".wal"), marker_path(db)):
        p.unlink(missing_ok=True)
    shutil.rmtree(settings.runs_dir(db), ignore_errors=True)
    for p in db.parent.glob("assumptions_pool*.toml"):
        p.unlink()


def build_demo(db: Path, params: DemoParams = DemoParams(), *, rebuild: bool = False,
               users_file: Path | None = None, report_dir: Path | None = None,
               echo: Callable[[str], None] = lambda s: None) -> DemoResult:
    """Run the demo pipeline into ``db`` (see the module doc); returns ids and users."""
    db = Path(db)
    marker = marker_path(db)
    wanted = asdict(params)
    result = DemoResult(db)
    if db.exists():
        recorded = json.loads(marker.read_text()) if marker.exists() else None
        if recorded is not None and recorded.get("params") == wanted and not rebuild:
            result.reused = True
            for key in ("pool_id", "allocation_id", "run_id"):
                setattr(result, key, int(recorded[key]))
            echo(f"reusing the demo database {db} (built with the same parameters)")
        elif rebuild:
            echo(f"rebuilding: removing {db} and its run files")
            _remove_demo(db)
        else:
            raise ValidationError(must_be(
                "--db", "a new file or a demo database built with the same parameters "
                "(use --rebuild to delete and rebuild it)", str(db)))
    if not result.reused:
        demo_criteria(params)  # a bad criteria file is refused before anything is written
        _pipeline(db, params, result, echo)
        t = time.perf_counter()  # each partner's Book page reads its own tables
        parties = store_party_book_summaries(
            db, tuple(p.id for p in load_registry(params.partners).partners))
        echo(f"stored the Book page's tables of {len(parties)} partners "
             f"({time.perf_counter() - t:.1f} s)")
        t = time.perf_counter()  # the Tranches and Dispersion pages' first views, read by them
        stored = access.store_run_views(db, Viewer("demo", "treasury"), result.run_id)
        echo(f"stored run {result.run_id}'s {' and '.join(stored)} views "
             f"({time.perf_counter() - t:.1f} s)")
        marker.write_text(json.dumps({"params": wanted, "pool_id": result.pool_id,
                                      "allocation_id": result.allocation_id,
                                      "run_id": result.run_id}, indent=2))
    t = time.perf_counter()
    out = report_dir or settings.reports_dir(db)
    as_of = dt.date.fromisoformat(params.as_of)
    for partner in (None, params.demo_partner):
        outcome = write_report(db, as_of, out, partner=partner)
        if outcome.run_id is not None:
            result.report_run_ids.append(outcome.run_id)
        result.report_files += [outcome.html_path, outcome.xlsx_path]
        echo(f"report{' for ' + partner if partner else ''}: {outcome.html_path}")
    result.timings["report_s"] = time.perf_counter() - t
    users = users_file or settings.users_path(db)
    for name, role in (("treasury", "treasury"),
                       (f"partner_{params.demo_partner}", f"partner:{params.demo_partner}")):
        pw = new_password()
        add_user(users, name, role, pw)
        result.users[name] = (role, pw)
    return result


def demo_criteria(params: DemoParams) -> Criteria:
    """The pool's criteria: the file ``params.criteria`` (read and validated like ``riskpool
    pool create --criteria``) with ``params.max_obligor_share`` when given."""
    doc = read_toml(params.criteria, "criteria file")
    if params.max_obligor_share is not None:
        doc.setdefault("concentration", {})["max_obligor_share"] = params.max_obligor_share
    return parse_criteria(doc, params.criteria)


def _pipeline(db: Path, params: DemoParams, result: DemoResult,
              echo: Callable[[str], None]) -> None:
    as_of = dt.date.fromisoformat(params.as_of)
    timings = result.timings
    store = open_store(db)
    try:
        t = time.perf_counter()
        g = generate_book(store, params.n_loans, params.n_months, params.seed, as_of=as_of,
                          params=(GeneratorParams(flat_fee_share=params.flat_fee_share)
                                  if params.flat_fee_share else None))
        timings["generate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        store_book_summaries(store)  # the dashboard's Book page reads them
        timings["summaries_s"] = time.perf_counter() - t
        echo(f"book: {g.n_loans:,} loans, {g.n_performance_rows:,} performance rows "
             f"({timings['generate_s']:.1f} s)")
        summary = book_summary(store.con, as_of)
        overall = summary.groups[summary.groups["dimension"] == "all"].iloc[0]
        a = summary.anchors
        echo(f"  outstanding {overall['loans']:,.0f} loans, {overall['balance']:,.2f} CNY; "
             f"WA APR {overall['wa_apr']:.2%}, WA score {overall['wa_score']:.0f}, "
             f"WA remaining term {overall['wa_remaining_term']:.1f} months")
        echo(f"  30+ DPD {a.dpd30_ratio:.2%}, 90+ DPD {a.dpd90_ratio:.2%} of balance; lifetime "
             f"default of seasoned 12-month loans {a.seasoned_default_rate:.2%} "
             "(`riskpool book summary` for the full tables)")

        t = time.perf_counter()
        info = create_pool(store, "demo senior pool", demo_criteria(params), as_of)
        result.pool_id = info.pool_id
        timings["pool_s"] = time.perf_counter() - t
        echo(f"pool {info.pool_id}: {info.n_loans:,} loans, {info.balance:,.2f} CNY")

        t = time.perf_counter()
        calib = calibrate_from_store(store, pool_id=info.pool_id)
        assumptions = calib.assumptions
        a_path = db.with_name(f"assumptions_pool{info.pool_id}.toml")
        save_assumptions(assumptions, a_path, calib.exposure_tables())
        timings["calibrate_s"] = time.perf_counter() - t
        echo(f"assumptions calibrated from the book: {a_path} (rho {assumptions.rho:.3f})")

        t = time.perf_counter()
        registry = load_registry(params.partners)
        batch = pool_loans(store, info.pool_id)
        risk = loan_risk_from_assumptions(batch.loans, assumptions)
        alloc = allocate(batch.loans, registry, risk=risk, as_of=batch.cutoff,
                         borrower_id=batch.borrowers,
                         household_limit=batch.household_limit)
        result.allocation_id = save_allocation(
            store, alloc, registry, risk, pool_id=info.pool_id,
            request=AllocationRequest(
                partners_file=params.partners, pool_id=info.pool_id, mode=alloc.mode.value,
                objective=alloc.objective.value, assumptions=str(a_path),
                code_version=code_version(), source="riskpool demo"))
        stored = load_allocation(store, result.allocation_id)
        timings["allocate_s"] = time.perf_counter() - t
        moved = alloc.summary.get("moved_off_platform", 0.0)
        echo(f"allocation {result.allocation_id}: {moved:,.2f} CNY moved to "
             f"{len(registry.partners)} partners")

        t = time.perf_counter()
        loans = load_pool_loans(store, info.pool_id)
        index = np.searchsorted(stored.loan_id.astype(str), np.asarray(loans.loan_id).astype(str))
        shares = stored.shares[index]
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        paths = simulate(loans, assumptions, params.n_paths, params.seed,
                         shares=shares, party_ids=stored.party_ids)
        sim_s = time.perf_counter() - t
        result.run_id = record_simulation(
            store, paths,
            SimulationInputs(pool_id=info.pool_id, n_paths=params.n_paths, seed=params.seed,
                             engine="granular", assumptions=str(a_path),
                             allocation_id=result.allocation_id, party_ids=stored.party_ids,
                             pool_name=info.name, n_loans=len(loans),
                             cutoff_date=info.cutoff_date, source="riskpool demo",
                             loan_sampler=loan_sampler_for("granular", "hazard", None)),
            code_version(), timings={"simulate_s": sim_s}, assumptions=assumptions,
            started_at=started)
        timings["simulate_s"] = time.perf_counter() - t
        stats = loss_distribution(paths)
        echo(f"simulation run {result.run_id}: {params.n_paths:,} paths in {sim_s:.1f} s; "
             f"EL {stats.el:,.0f} CNY, VaR 99.9% {stats.var[-1]:,.0f}")

        t = time.perf_counter()
        deal = load_deal(params.deal)
        # revolving purchases as new loans of the pool's cell mix (same factor paths and seed)
        profile = replenishment_for(deal, loans, assumptions, params.n_paths, params.seed,
                                    cutoff=as_of)
        deal_run = run_deal(deal, paths, profile)
        table = deal_run.tranches
        record_tranche_results(store, result.run_id, deal, table, triggers=deal_run.triggers,
                               settings=deal_run.settings().to_json())
        if profile is not None:  # the pages and `riskpool tranche` read it, not re-simulate it
            write_replenishment(store, result.run_id, deal.revolving_months, profile)
        timings["tranches_s"] = time.perf_counter() - t
        echo(f"deal {deal.name}: " + ", ".join(
            f"{r.tranche} EL {r.el:.4%}" for r in table.itertuples()))

        t = time.perf_counter()
        disp = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd,
                              stored.risk.lgd, deal, replenishment=profile)
        timings["dispersion_s"] = time.perf_counter() - t
        for h in disp.headlines:
            srt = "" if h.srt is None else (
                "; SRT passes" if h.srt.passed else
                "; SRT fails (" + "; ".join(h.srt.reasons()) + "): no capital relief claimed "
                "for the securitised loans (they stay at IRB)")
            # with joint lending beside a failed securitisation, what is released is the
            # joint lending's (the partners' shares), never the deal's
            by = " (by the joint lending only)" if (
                h.srt is not None and not h.srt.passed and h.scenario == "both") else ""
            echo(f"dispersion ({h.scenario}): {_SHARE(h.el_share_left * 100)}% of EL and "
                 f"{_SHARE(h.tail_share_left * 100)}% of the 99.9% tail left the platform{srt}; "
                 f"capital released {h.capital_released:,.0f} CNY{by}")
        recs = reconcile(disp)
        echo("reconciliation (pool loss to each party): closes to the cent on every path: "
             + ", ".join(f"{r.scenario} {'yes' if r.closes else 'NO'}" for r in recs))
    finally:
        store.close()


def demo(
    db: DbOption = DEFAULT_DB,
    no_dashboard: Annotated[bool, typer.Option(
        "--no-dashboard", help="Build everything, do not start the dashboard (tests, CI).")] = False,
    loans: Annotated[int, typer.Option("--loans", help="Loans in the demo book.")] = 200_000,
    paths: Annotated[int, typer.Option("--paths", help="Monte Carlo paths.")] = 10_000,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Delete an existing database at --db and build it again.")] = False,
    port: Annotated[int, typer.Option("--port", help="Dashboard port.")] = 8501,
    criteria: Annotated[Path, typer.Option(
        "--criteria", help="Pool eligibility criteria.")] = EXAMPLES / "criteria.toml",
    flat_fee_share: Annotated[float, typer.Option(
        "--flat-fee-share", help="Share of the amortising loans sold as flat-fee instalments "
        "(等本等息); 0 keeps the default book.")] = 0.0,
) -> None:
    """Build the demo book, pool, simulation, deal, allocation and report; open the dashboard."""
    check_port(port)  # before the book is built, not when the dashboard binds
    for flag, value, hi in (("--loans", loans, MAX_LOANS), ("--paths", paths, MAX_PATHS)):
        if not 1 <= value <= hi:  # the flags as typed (the library names its arguments)
            raise ValidationError(must_be(flag, f"an integer in [1, {hi:,}]", value))
    t0 = time.perf_counter()
    params = DemoParams(n_loans=loans, n_paths=paths, criteria=str(criteria),
                        flat_fee_share=flat_fee_share)
    result = build_demo(db, params, rebuild=rebuild, echo=typer.echo)
    typer.echo(f"demo ready in {time.perf_counter() - t0:.0f} s "
               f"(pool {result.pool_id}, allocation {result.allocation_id}, run {result.run_id})")
    typer.echo("dashboard users (passwords are new on every `riskpool demo`):")
    for name, (role, pw) in result.users.items():
        typer.echo(f"  {name:<20} {role:<20} password: {pw}")
    if no_dashboard:
        typer.echo(f"start the dashboard with: riskpool dashboard --db {db} --port {port}")
        return
    typer.echo(f"dashboard: http://127.0.0.1:{port}  (Ctrl-C to stop)")
    run_dashboard(Path(db), port)


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command("demo")(demo)


__all__ = ["DemoParams", "DemoResult", "build_demo", "register"]
