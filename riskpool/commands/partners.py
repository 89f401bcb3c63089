"""``riskpool allocate``, ``riskpool allocate export``, ``riskpool allocate show`` and
``riskpool dispersion``.

Bad partner files, infeasible requests and re-check failures raise ``RiskpoolError``
subclasses: the CLI prints one paragraph and exits 2, and nothing is written (the allocation
is recorded in one transaction only after it has passed its re-check).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from dashboards.xlsx import tape_xlsx
from partners.allocation import (
    Allocation,
    LoanRisk,
    loan_risk_from_assumptions,
    loan_risk_from_table,
    parse_mode,
    parse_objective,
)
from partners.allocation import allocate as run_allocation
from partners.capital import (
    Framework,
    OriginatorApproach,
    RetailClass,
    RetailIrb,
    SecApproach,
    SecuritisationCapital,
    load_erba_file,
)
from partners.dispersion import disperse_paths
from partners.distributed import check_run_for_workers, disperse_on_cluster
from partners.reconciliation import economic_views, reconcile
from partners.records import (
    AllocationRequest,
    LoansToAllocate,
    load_allocation,
    load_assumptions_file,
    originated_loans,
    partner_tape_table,
    pool_loans_then,
    run_party_paths,
    run_party_split,
    save_allocation,
    tape_csv,
    tape_format,
)
from partners.registry import load_registry
from partners.srt import SrtPolicy
from portfolio import settings
from portfolio.book.summaries import store_party_book_summaries
from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.distributed import check_cluster_flags, open_client
from portfolio.store import open_store
from portfolio.version import code_version
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import fixed
from tranching.deal import load_deal
from tranching.revolving import run_replenishment

allocate_app = typer.Typer(
    help="Allocate loans between the platform and its funding partners (joint lending or "
    "forward flow) under the regulatory rules; export a partner's tape.",
    invoke_without_command=True,
)


def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(must_be(flag, "a date YYYY-MM-DD", value)) from None


_PCT = fixed("{:.2f}")
_MONEY = fixed("{:,.2f}")


def _pct(x: float) -> str:
    return _PCT(x * 100) + "%"


def _money(x: float) -> str:
    return _MONEY(x)


@allocate_app.callback()
def allocate(
    ctx: typer.Context,
    db: DbOption = DEFAULT_DB,
    partners: Annotated[Path | None, typer.Option("--partners", help="partners.toml")] = None,
    pool: Annotated[int | None, typer.Option("--pool", help="Allocate a stored pool.")] = None,
    originated: Annotated[tuple[str, str] | None, typer.Option(
        "--originated", help="FROM TO: allocate the loans originated in this window (new loans).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="joint | forward-flow")] = "joint",
    objective: Annotated[str, typer.Option("--objective", help="max-transfer | min-retained-el")] = "max-transfer",
    assumptions: Annotated[Path | None, typer.Option(
        "--assumptions", help="Assumptions TOML for the expected loss (else the partners file's "
        "[expected_loss] table).")] = None,
    min_transfer: Annotated[float, typer.Option(
        "--min-transfer", help="Require at least this share of the pool to leave the platform.")] = 0.0,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Date deciding which rules are in force (default: the pool cut-off or "
        "the end of the window).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Solve and check; write nothing.")] = False,
) -> None:
    """Allocate a pool (or a month's originations) between the platform and the partners."""
    if ctx.invoked_subcommand is not None:
        return
    if partners is None:
        raise ValidationError(must_be("--partners", "a partners.toml file", "nothing"))
    if (pool is None) == (originated is None):
        raise ValidationError(must_be("--pool / --originated", "exactly one of them",
                                      "both" if pool is not None else "neither"))
    for flag, value, allowed in (("--mode", mode, ("joint", "forward-flow")),
                                 ("--objective", objective, ("max-transfer", "min-retained-el"))):
        if value not in allowed:
            raise ValidationError(must_be(flag, " or ".join(allowed), value))
    if not 0.0 <= min_transfer <= 1.0:
        raise ValidationError(must_be("--min-transfer", "a share of the pool in [0, 1]",
                                      min_transfer))
    registry = load_registry(partners)
    mode_v, objective_v = parse_mode(mode), parse_objective(objective)
    window = None
    if originated is not None:
        window = (_date(originated[0], "--originated FROM"), _date(originated[1], "--originated TO"))
    assumptions_v = load_assumptions_file(assumptions) if assumptions is not None else None
    store = open_store(db, read_only=dry_run, create=False)
    try:
        def allocate_batch(batch: LoansToAllocate) -> tuple[dt.date, LoanRisk, Allocation]:
            day = _date(as_of, "--as-of") if as_of else batch.cutoff
            if assumptions_v is not None:
                risk = loan_risk_from_assumptions(batch.loans, assumptions_v)
            elif registry.expected_loss is not None:
                risk = loan_risk_from_table(batch.loans, registry.expected_loss)
            else:
                raise ValidationError(must_be("expected loss source", "--assumptions FILE or an "
                                              "[expected_loss] table in the partners file",
                                              "neither", str(partners)))
            return day, risk, run_allocation(
                batch.loans, registry, mode=mode_v, objective=objective_v, risk=risk, as_of=day,
                borrower_id=batch.borrowers, min_transfer_share=min_transfer,
                household_limit=batch.household_limit)

        if pool is not None:  # allocated while the pool's stored households are checked
            batch, (day, risk, result) = pool_loans_then(store, pool, allocate_batch)
        else:
            batch = originated_loans(store, *window)  # type: ignore[misc]
            day, risk, result = allocate_batch(batch)
        allocation_id = None
        if not dry_run:
            request = AllocationRequest(
                partners_file=str(partners), pool_id=pool, originated=window,
                mode=mode_v.value, objective=objective_v.value,
                assumptions=str(assumptions) if assumptions else None,
                min_transfer=float(min_transfer), code_version=code_version(),
                source="riskpool allocate")
            allocation_id = save_allocation(store, result, registry, risk, pool_id=pool,
                                            request=request)
    finally:
        store.close()
    if not dry_run:  # the dashboard's Book page for each partner reads them
        store_party_book_summaries(db, tuple(p.id for p in registry.partners))
    s = result.summary
    head = "dry run (nothing written)" if dry_run else f"allocation {allocation_id}"
    typer.echo(f"{head}: {mode_v.value}, {objective_v.value}, {s['n_loans']:,} loans, "
               f"{_money(s['pool_balance'])} CNY, {s['n_segments']} segments; rules as of {day}")
    proj = all("projected_el" in d for d in s["parties"].values())
    typer.echo(f"{'party':<16}{'balance':>20}{'share':>10}{'loans':>10}{'lifetime EL':>16}"
               + (f"{'projected EL':>16}" if proj else ""))
    for pid, d in s["parties"].items():
        typer.echo(f"{pid:<16}{_money(d['balance']):>20}{_pct(d['share_of_pool']):>10}"
                   f"{d['n_loans']:>10,}{_money(d['lifetime_el']):>16}"
                   + (f"{_money(d['projected_el']):>16}" if proj else ""))
    _echo_party_total(s["parties"], s["pool_balance"], s["n_loans"], proj=proj)
    typer.echo("lifetime EL: PD over the remaining term x LGD x cut-off balance (no prepayment, "
               "no amortisation: the allocation's conservative measure)"
               + ("; projected EL: the simulation's assumptions month by month (prepayment, "
                  "amortising balance, factor correlation aside) - what `riskpool simulate` "
                  "estimates" if proj else ""))
    typer.echo(f"moved off the platform: {_money(s['moved_off_platform'])} CNY "
               f"({_pct(s['moved_off_platform'] / s['pool_balance'])}); platform retained EL "
               f"{_money(s['platform_retained_el'])}")
    excluded = {k: v for k, v in result.checks.excluded.items() if v}
    typer.echo(f"re-check: {len(result.checks.items)} checks, all passed"
               + (f"; loans no partner may fund (kept by the platform): {excluded}" if excluded else ""))
    for finding in result.checks.loan_rule_findings:
        typer.echo(f"  kept by the platform: {finding.message}")


def party_total_row(parties: dict[str, dict[str, float]]) -> dict[str, float]:
    """The parties' column sums (balance, share, lifetime and projected EL where every party
    has one): the total a split of the pool must close to."""
    keys = ("balance", "share_of_pool", "lifetime_el", "projected_el")
    return {k: float(sum(d[k] for d in parties.values())) for k in keys
            if parties and all(k in d for d in parties.values())}


def _echo_party_total(parties: dict[str, dict[str, float]], pool_balance: float, n_loans: int,
                      *, proj: bool | None) -> None:
    """The total row under a party table (the sums of the rows; loans: the pool's, since a
    joint loan is held by several parties) and, if the balances do not add up to the pool's
    to the cent, a line saying so."""
    t = party_total_row(parties)
    line = f"{'total':<16}{_money(t.get('balance', 0.0)):>20}{_pct(t.get('share_of_pool', 0.0)):>10}"
    line += f"{n_loans:>10,}"
    if proj is not None:
        line += f"{_money(t.get('lifetime_el', 0.0)):>16}"
        line += f"{_money(t.get('projected_el', 0.0)):>16}" if proj else ""
    typer.echo(line)
    gap = t.get("balance", 0.0) - pool_balance
    if abs(gap) >= 0.005:
        typer.echo(f"the parties' balances do NOT add up to the pool's {_money(pool_balance)} "
                   f"CNY: {_money(gap)} apart")


@allocate_app.command("export")
def export(
    allocation: Annotated[int, typer.Option("--allocation", help="Allocation id.")],
    partner: Annotated[str, typer.Option("--partner", help="Partner id (or 'platform').")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .csv, .xlsx or .parquet")],
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv (UTF-8 with a BOM), xlsx (a workbook: real dates, balances to "
        "the cent, a glossary) or parquet; default: the --out file's suffix")] = None,
    borrower_ids: Annotated[str, typer.Option(
        "--borrower-ids", help="masked (default): each borrower id as HMAC-SHA256 with the "
        "partner's own key from the keys file (RISKPOOL_PARTNER_KEYS, else partner_keys.toml "
        "beside the database; made on first use); raw: the book's pseudonymous ids; none: "
        "no borrower id column")] = "masked",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write one partner's loan tape (its loans, its share, its balance; nothing else)."""
    kind = tape_format(out, fmt)
    if borrower_ids not in ("masked", "raw", "none"):
        raise ValidationError(must_be("--borrower-ids", "'masked', 'raw' or 'none'",
                                      borrower_ids))
    keys = settings.partner_keys_path(db) if borrower_ids == "masked" else None
    with open_store(db, read_only=True) as store:
        tape = partner_tape_table(store, allocation, partner, keys,
                                  borrower_ids=borrower_ids != "none")
        stored = load_allocation(store, allocation)
    held = float(stored.balance @ stored.shares[:, stored.party_ids.index(partner)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if kind == "parquet":
        tape.to_parquet(tmp, index=False)
    else:
        tmp.write_bytes(tape_csv(tape) if kind == "csv" else tape_xlsx(tape))
    os.replace(tmp, out)
    typer.echo(f"wrote {len(tape):,} loans of {partner} (allocation {allocation}) to {out} "
               f"({kind}; borrower ids {borrower_ids})")
    on_tape = float(tape["balance"].sum())
    typer.echo(f"balance on the tape {_money(on_tape)} CNY (each loan's share of its balance "
               f"rounded half up to the cent); the allocation's {_money(held)} CNY unrounded"
               + (f", {_money(on_tape - held)} apart" if abs(on_tape - held) >= 0.005 else ""))


@allocate_app.command("show")
def show(
    allocation: Annotated[int, typer.Option("--allocation", help="Allocation id.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print a recorded allocation's summary and its re-check: every rule and limit checked on
    the loan-level shares (value, limit, passed), the breaches and the loans no partner may
    fund."""
    with open_store(db, read_only=True) as store:
        a = load_allocation(store, allocation)
    checks = a.checks or {}
    typer.echo(f"allocation {a.allocation_id}: {a.mode}, {a.objective}, "
               + (f"pool {a.pool_id}, " if a.pool_id is not None else "")
               + f"{len(a.loan_id):,} loans; re-check "
               + ("passed" if checks.get("ok") else "FAILED"))
    supersedes = a.inputs.request.supersedes
    if supersedes:
        typer.echo(f"supersedes allocation {', '.join(map(str, supersedes))} for the loans they "
                   "held")
    typer.echo(f"{'party':<16}{'balance':>20}{'share':>10}{'loans':>10}")
    parties = a.summary.get("parties", {})
    for pid, d in parties.items():
        typer.echo(f"{pid:<16}{_money(d['balance']):>20}{_pct(d['share_of_pool']):>10}"
                   f"{int(d.get('n_loans', 0)):>10,}")
    _echo_party_total(parties, float(a.balance.sum()), len(a.loan_id), proj=None)
    items = checks.get("checks", [])
    typer.echo(f"\nre-check ({len(items)} checks on the loan-level shares; value and limit as "
               "the rule states them: loans, CNY, or a share as a decimal):")
    if items:
        frame = pd.DataFrame(items)
        shown = pd.DataFrame({
            "check": frame["check"],
            "party": frame["party"].map(lambda p: "" if p is None or pd.isna(p) else str(p)),
            "value": frame["value"].map(_check_value),
            "limit": frame["limit"].map(_check_value),
            "result": frame["ok"].map(lambda ok: "ok" if ok else "BREACH"),
        })
        typer.echo(shown.to_string(index=False))
    for b in checks.get("breaches", []):
        typer.echo(f"  breach: {b.get('message', b)}")
    excluded = {k: v for k, v in (checks.get("excluded_by_loan_rules") or {}).items() if v}
    if excluded:
        typer.echo(f"loans no partner may fund (kept by the platform): {excluded}")
    for f in checks.get("loan_rule_findings", []):
        typer.echo(f"  kept by the platform: {f.get('message', f)}")


def _check_value(v: object) -> str:
    """A check's value or limit as the rule states it: a count or an amount with separators,
    a share as a decimal, no limit (inf) as 'none'."""
    if not isinstance(v, int | float) or isinstance(v, bool):
        return str(v)
    x = float(v)
    if math.isinf(x):
        return "none"
    if x.is_integer():
        return f"{x:,.0f}"
    return f"{x:.4f}" if abs(x) < 1 else f"{x:,.2f}"


def dispersion(
    run: Annotated[int, typer.Option("--run", help="Simulation run id.")],
    allocation: Annotated[int, typer.Option("--allocation", help="Allocation id (same pool).")],
    db: DbOption = DEFAULT_DB,
    structure: Annotated[Path | None, typer.Option("--structure", help="Deal TOML: securitise the "
                                                   "platform's part.")] = None,
    k_sa: Annotated[float, typer.Option("--k-sa", help="SEC-SA K_SA of the pool.")] = 0.06,
    w: Annotated[float, typer.Option("--w", help="SEC-SA W: delinquent share of the pool.")] = 0.0,
    framework: Annotated[Framework, typer.Option(
        "--framework", help="Retail IRB floors: basel3 (CRE32) or basel2 (Annex 5).")
    ] = Framework.BASEL3,
    retail_class: Annotated[RetailClass, typer.Option(
        "--retail-class", help="Retail IRB sub-class of the loans (QRRE for revolving lines).")
    ] = RetailClass.OTHER,
    originator: Annotated[OriginatorApproach, typer.Option(
        "--originator", help="The originator's approach for the pool: irb → SEC-IRBA.")
    ] = OriginatorApproach.IRB,
    approach: Annotated[SecApproach | None, typer.Option(
        "--approach", help="Override the securitisation approach.")] = None,
    sts: Annotated[bool, typer.Option("--sts", help="The positions qualify as STC/STS.")] = False,
    maturity: Annotated[float, typer.Option(
        "--maturity", help="Tranche maturity M_T in years (SEC-IRBA p, SEC-ERBA).")] = 1.0,
    eu_tests: Annotated[bool, typer.Option(
        "--eu-srt-tests", help="Decide SRT by the EU CRR Art. 244(2) mechanical tests.")] = False,
    erba: Annotated[Path | None, typer.Option(
        "--erba", help="SEC-ERBA ratings and mapping table (TOML: [ratings] tranche = rating; "
        "[mapping.<rating>] senior_1y, senior_5y, non_senior_1y, non_senior_5y).")] = None,
    min_tail: Annotated[float, typer.Option(
        "--min-tail-transferred", help="Share of the 99.9% VaR that must leave the originator "
        "for SRT (CRE40 (1)).")] = 0.5,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Simulate the run's paths again on a local Dask cluster of N worker "
        "processes (127.0.0.1 only) from the run's recorded inputs with the allocation's "
        "shares, and compute the dispersion there (with --structure the waterfall too); only "
        "per-path results come back. The same figures as without it; works for a run "
        "recorded from summaries (riskpool simulate --workers). Hazard-model Monte Carlo runs; "
        "needs riskpool[distributed].")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="As --workers, on an existing Dask cluster at this scheduler "
        "address (e.g. tcp://10.0.0.5:8786).")] = None,
) -> None:
    """Per party: exposure, EL, VaR/ES 99% and 99.9%, capital; HHI; what left the platform.

    Also: each party's credit and economic views, the reconciliation from the pool's loss to
    each party, and for each securitisation scenario the SRT tests and every position's capital.
    With --workers/--scheduler the run's paths are simulated again on Dask workers and the
    dispersion computed there (the same figures; also for a run recorded from summaries).
    """
    on_cluster = workers is not None or scheduler is not None
    if on_cluster:
        check_cluster_flags(workers, scheduler)
    if not 0.0 <= min_tail <= 1.0:
        raise typer.BadParameter(f"must be in [0, 1]; got {min_tail}",
                                 param_hint="--min-tail-transferred")
    if not 0.0 < maturity <= 100.0:
        raise typer.BadParameter(f"must be in (0, 100] years; got {maturity}",
                                 param_hint="--maturity")
    for flag, value in (("--k-sa", k_sa), ("--w", w)):  # SEC-SA's pool inputs (CRE41)
        if not 0.0 <= value <= 1.0:
            raise typer.BadParameter(f"must be a share in [0, 1]; got {value}",
                                     param_hint=flag)
    ratings = erba_table = None
    if erba is not None:
        ratings, erba_table = load_erba_file(str(erba))
    elif approach is SecApproach.ERBA:
        raise typer.BadParameter("SEC-ERBA needs ratings and a mapping table: --erba FILE",
                                 param_hint="--approach")
    deal = None
    if structure is not None:
        deal = load_deal(structure)
    profile = None
    split = None
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, allocation)
        if on_cluster:
            split = run_party_split(store, run, stored)
            check_run_for_workers(split)
        else:
            paths, how = run_party_paths(store, run, stored)
        if deal is not None:
            # a revolving deal buys new loans: the run's replenishment profile, rebuilt from
            # its inputs as `riskpool simulate --structure` built it (same seed)
            profile = run_replenishment(store, run, deal)
    sec = SecuritisationCapital(originator=originator, override=approach, sts=sts, k_sa=k_sa, w=w,
                                maturity=maturity, ratings=ratings, erba_table=erba_table)
    irb = RetailIrb(framework, retail_class)
    srt_policy = SrtPolicy(eu_tests=eu_tests, min_tail_transferred=min_tail)
    if split is not None:
        with open_client(workers=workers, scheduler=scheduler) as client:
            cd = disperse_on_cluster(client, split, stored.balance, stored.shares,
                                     stored.risk.annual_pd, stored.risk.lgd, deal,
                                     replenishment=profile, irb=irb, sec=sec, srt=srt_policy)
        d, n_paths = cd.dispersion, cd.n_paths
        how = (f"re-simulated on {cd.n_workers} Dask worker{'s' if cd.n_workers != 1 else ''} "
               "with the run's seed and inputs plus the allocation's shares (only per-path "
               f"results came back: {cd.bytes_back:,} bytes)")
    else:
        d = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd,
                           stored.risk.lgd, deal, replenishment=profile, irb=irb, sec=sec,
                           srt=srt_policy)
        n_paths = paths.n_paths
    typer.echo(f"run {run}, allocation {allocation}{', deal ' + structure.name if structure else ''}: "
               f"{n_paths:,} paths; party losses: {how}")
    typer.echo(f"{'party':<14}{'exposure':>18}{'EL':>14}{'VaR99':>14}{'ES99':>14}{'VaR99.9':>14}"
               f"{'ES99.9':>14}{'capital':>14}")
    rows = d.table()
    for r in rows:
        typer.echo(f"{r['party']:<14}{_money(r['exposure']):>18}{_money(r['el']):>14}"
                   f"{_money(r['var_99']):>14}{_money(r['es_99']):>14}{_money(r['var_999']):>14}"
                   f"{_money(r['es_999']):>14}{_money(r['capital']):>14}")
    total_el = float(sum(r["el"] for r in rows))
    typer.echo(f"{'total':<14}{_money(sum(r['exposure'] for r in rows)):>18}"
               f"{_money(total_el):>14}{'':>14}{'':>14}{'':>14}{'':>14}"
               f"{_money(sum(r['capital'] for r in rows)):>14}")
    retained = d.securitisations.get("both")
    bought = float(np.mean(retained.purchased_loss)) if retained is not None else 0.0
    typer.echo("total: the parties' sums (VaR and ES do not add); EL "
               + (f"= pool EL {_money(d.pool_measures.el)} + loss on loans bought while the "
                  f"retained deal revolved {_money(bought)}" if bought else
                  f"= pool EL {_money(d.pool_measures.el)}")
               + ("" if abs(total_el - d.pool_measures.el - bought) < 0.005 else
                  f" — does NOT close: {_money(total_el - d.pool_measures.el - bought)} apart"))
    typer.echo(f"pool EL {_money(d.pool_measures.el)}, VaR99.9 {_money(d.pool_measures.var_999)}; "
               f"baseline capital (platform holds all, IRB {framework.value}, {retail_class.value}) "
               f"{_money(d.baseline_capital)}; HHI of partner exposures {d.hhi_partners:.4f}")
    for h in d.headlines:
        srt = "" if h.srt is None else (" SRT passes;" if h.srt.passed else
                                        " SRT FAILS (no relief: the securitised loans stay at "
                                        "IRB);")
        by = " (by the joint lending only)" if (
            h.srt is not None and not h.srt.passed and h.scenario == "both") else ""
        typer.echo(f"{h.scenario:<16} EL left the platform {_pct(h.el_share_left)}, 99.9% tail "
                   f"{_pct(h.tail_share_left)};{srt} platform capital "
                   f"{_money(h.platform_capital)}, capital released "
                   f"{_money(h.capital_released)}{by}")
    typer.echo("\nTwo views per party (CNY; + = loss): credit loss, and economic = cash out − "
               "cash in (loan shares and notes at par, collections, coupons, residual, fees)")
    typer.echo(f"{'party':<14}{'credit EL':>16}{'credit VaR99.9':>16}{'credit ES99.9':>16}"
               f"{'econ. EL':>16}{'econ. VaR99.9':>16}{'econ. ES99.9':>16}")
    views = economic_views(d)
    for v in views:
        r = v.row()
        typer.echo(f"{v.party:<14}{_money(r['credit_el']):>16}{_money(r['credit_var_999']):>16}"
                   f"{_money(r['credit_es_999']):>16}{_money(r['economic_el']):>16}"
                   f"{_money(r['economic_var_999']):>16}{_money(r['economic_es_999']):>16}")
    typer.echo(f"{'total':<14}{_money(sum(v.credit.el for v in views)):>16}{'':>16}{'':>16}"
               f"{_money(sum(v.economic.el for v in views)):>16}")
    typer.echo("\nEconomic result, line by line (means over paths, CNY; + = cash out)")
    for v in views:
        for r in v.line_rows():
            typer.echo(f"  {r['party']:<14}{r['economic_line']:<58}{_money(r['el']):>16}")
    for rec in reconcile(d):
        typer.echo(f"\nFrom the pool's loss to each party ({rec.scenario}; EL = mean over paths; "
                   f"closes to the cent on every path: {'yes' if rec.closes else 'NO'})")
        for r in rec.rows():
            typer.echo(f"  {r['line']:<66}{r['party']:<14}{_money(r['el']):>16}")
    for h in d.headlines:
        if h.srt is None:
            continue
        typer.echo(f"\nSRT, {h.scenario}:")
        for t in h.srt.tests:
            typer.echo(f"  {t.status.value:<9}{t.test_id:<22}{t.detail}  [{t.source}]")
        typer.echo(f"  positions ({h.scenario}):")
        typer.echo(f"  {'tranche':<8}{'holder':<12}{'approach':<10}{'A':>8}{'D':>8}{'p':>7}"
                   f"{'K':>8}{'RW':>10}{'amount':>16}{'capital':>14}")
        for c in h.positions:
            typer.echo(f"  {c.tranche:<8}{c.holder:<12}{c.approach.value:<10}{c.attachment:>8.4f}"
                       f"{c.detachment:>8.4f}{'' if c.p is None else f'{c.p:.3f}':>7}"
                       f"{'' if c.k is None else f'{c.k:.4f}':>8}{_pct(c.risk_weight):>10}"
                       f"{_money(c.amount):>16}{_money(c.capital):>14}")


def register(app: typer.Typer) -> None:
    """Add ``allocate`` (with ``export``, ``show``) and ``dispersion``."""
    app.add_typer(allocate_app, name="allocate")
    app.command("dispersion")(dispersion)
