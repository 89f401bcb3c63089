"""``riskpool pool create|list|show|strats``, ``riskpool calibrate`` and ``riskpool pricing``.

The stress flags (``--pd-mult``, ``--rho``, ``--smm-mult``, ``--recovery-mult``,
``--scenario``) are defined once here as ``Annotated`` option types (``PdMultOption`` …),
checked by ``check_stress_flags`` and applied by ``portfolio.montecarlo.assumptions.apply_stress`` so
that ``simulate`` can reuse all three.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from portfolio.book.calibration import calibrate_from_store, with_provenance
from portfolio.book.factor_fit import check_rho_choice, choose_rho, fit_factor
from portfolio.book.pools import (
    create_pool,
    get_pool,
    list_pools,
    load_criteria,
    load_pool_loans,
    parse_cutoff,
    pool_summary,
    strats,
)
from portfolio.book.pricing import PricingInputs, load_pricing, pricing_check
from portfolio.book.transitions import (
    DelinquencyCalibration,
    calibrate_delinquency,
    default_factor_counts,
    delinquency_assumptions,
)
from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.assumptions import (
    CHARGE_OFF_DPD,
    NAMED_SCENARIOS,
    Assumptions,
    apply_stress,
    load_assumptions,
    save_assumptions,
)
from portfolio.store.core import open_store
from portfolio.store.parquet_book import attach_book, check_book_dir, write_loan_tape
from portfolio.version import code_version
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import check_out_path, emit

ScenarioOption = Annotated[
    str | None,
    typer.Option("--scenario", help="Named stress scenario: base, adverse or severe "
                 "(explicit multipliers below override its values)."),
]
PdMultOption = Annotated[
    float | None, typer.Option("--pd-mult", help="Multiply every default hazard (>= 0).")
]
RhoOption = Annotated[
    float | None, typer.Option("--rho", help="Replace the factor correlation rho (in [0, 1)).")
]
SmmMultOption = Annotated[
    float | None, typer.Option("--smm-mult", help="Multiply every prepayment SMM (>= 0).")
]
RecoveryMultOption = Annotated[
    float | None, typer.Option("--recovery-mult", help="Multiply the recovery rate (>= 0).")
]

pool_app = typer.Typer(help="Pools: cut immutable snapshots from the book, list, show, strats.",
                       no_args_is_help=True)


def _fmt_money(x: float) -> str:
    return f"{x:,.2f}"


def _print_table(title: str, frame: pd.DataFrame) -> None:
    shown = frame.copy()
    for col in shown.columns:
        if col in ("balance",):
            shown[col] = shown[col].map(_fmt_money)
        elif col in ("share_of_balance", "wa_apr"):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v * 100:.2f}%")
        elif col in ("wa_score", "wa_remaining_term"):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    typer.echo(f"\n{title}")
    typer.echo(shown.to_string(index=False))


def _emit(frames: dict[str, pd.DataFrame], out: Path | None) -> None:
    emit(frames, out)


@pool_app.command("create")
def pool_create(
    name: Annotated[str, typer.Option("--name", help="Pool name (unique).")],
    criteria: Annotated[Path, typer.Option("--criteria", help="Eligibility criteria TOML.")],
    cutoff: Annotated[str, typer.Option("--cutoff", help="Cut-off date, a month-end YYYY-MM-DD.")],
    db: DbOption = DEFAULT_DB,
    book: Annotated[Path | None, typer.Option(
        "--book", help="Read the loans and their performance from this Parquet book "
        "(riskpool book export) instead of the database's tables; the pool is stored in "
        "--db.")] = None,
) -> None:
    """Cut a pool from the book at the cut-off and store its immutable snapshot."""
    crit = load_criteria(criteria)
    cutoff_date = parse_cutoff(cutoff)
    if book is not None:
        check_book_dir(book)
    # the book in --db must be there; with --book the pool may go to a new pools-only --db
    with open_store(db, create=book is not None) as store:
        if book is not None:
            attach_book(store.con, book)
        info = create_pool(store, name, crit, cutoff_date)
    typer.echo(f"pool {info.pool_id} '{info.name}': {info.n_loans:,} loans, balance "
               f"{_fmt_money(info.balance)} at cut-off {info.cutoff_date.isoformat()}")
    _print_exclusions(info)


def _print_exclusions(info: object) -> None:
    exclusions = getattr(info, "exclusions", ())
    rows = [(e.reason, e.n_loans, e.balance) for e in exclusions]
    total_n = sum(r[1] for r in rows)
    total_b = sum(r[2] for r in rows)
    typer.echo("excluded (in order of application; each loan under the first rule it fails):")
    for reason, n, bal in rows:
        typer.echo(f"  {reason:<26} {n:>10,} loans  {_fmt_money(bal):>20}")
    typer.echo(f"  {'total excluded':<26} {total_n:>10,} loans  {_fmt_money(total_b):>20}")


@pool_app.command("list")
def pool_list(db: DbOption = DEFAULT_DB) -> None:
    """List the pools in the database."""
    with open_store(db, read_only=True) as store:
        infos = list_pools(store)
    if not infos:
        typer.echo("no pools yet (riskpool pool create --name NAME --criteria FILE --cutoff DATE)")
        return
    frame = pd.DataFrame({
        "pool_id": [i.pool_id for i in infos],
        "name": [i.name for i in infos],
        "cutoff_date": [i.cutoff_date.isoformat() for i in infos],
        "n_loans": [i.n_loans for i in infos],
        "balance": [_fmt_money(i.balance) for i in infos],
        "created_at": [i.created_at.isoformat(timespec="seconds") if i.created_at else ""
                       for i in infos],
    })
    typer.echo(frame.to_string(index=False))


@pool_app.command("show")
def pool_show(
    pool: Annotated[int, typer.Option("--pool", help="Pool id.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Show a pool: header, criteria and exclusions."""
    with open_store(db, read_only=True) as store:
        info = get_pool(store, pool)
        summary = pool_summary(store, pool)
    typer.echo(f"pool {info.pool_id} '{info.name}'")
    typer.echo(f"  cut-off     {info.cutoff_date.isoformat()}")
    typer.echo(f"  loans       {info.n_loans:,}")
    typer.echo(f"  balance     {_fmt_money(info.balance)}")
    if info.created_at:
        typer.echo(f"  created at  {info.created_at.isoformat(timespec='seconds')}")
    typer.echo("  criteria    " + json.dumps(info.criteria.to_dict(), ensure_ascii=False))
    typer.echo("characteristics (balance-weighted averages; shares of the cut-off balance):")
    for measure, value in zip(summary["measure"], summary["value"], strict=True):
        if measure.endswith("share") or measure == "wa_apr":
            shown = f"{value * 100:.3f}%"
        elif measure.startswith("n_"):
            shown = f"{int(value):,}"
        elif "balance" in measure or "principal" in measure:
            shown = _fmt_money(value)
        else:
            shown = f"{value:.2f}"
        typer.echo(f"  {measure:<24} {shown:>20}")
    _print_exclusions(info)


@pool_app.command("export")
def pool_export(
    pool: Annotated[int, typer.Option("--pool", help="Pool id.")],
    out: Annotated[Path, typer.Option("--out", help="A new or empty folder for the loan tape "
                                      "(one Parquet file per origination month).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write the pool's loans at its cut-off as a Parquet loan tape that Dask workers read
    partition by partition (riskpool simulate --tape DIR --workers N)."""
    with open_store(db, read_only=True) as store:
        info = get_pool(store, pool)
        loans = load_pool_loans(store, pool)
    n_parts = write_loan_tape(loans, out)
    typer.echo(f"pool {info.pool_id} '{info.name}': {len(loans):,} loans written to {out} "
               f"({n_parts} partitions by origination month)")


@pool_app.command("strats")
def pool_strats(
    pool: Annotated[int, typer.Option("--pool", help="Pool id.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the tables to .csv or "
                                             ".xlsx (one sheet per table).")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Stratification tables: count, balance, share, WA APR, WA score, WA remaining term."""
    check_out_path(out)
    with open_store(db, read_only=True) as store:
        info = get_pool(store, pool)
        tables = strats(store, pool)
    typer.echo(f"pool {info.pool_id} '{info.name}', cut-off {info.cutoff_date.isoformat()}: "
               f"{info.n_loans:,} loans, balance {_fmt_money(info.balance)}")
    if out is not None:
        _emit(tables, out)  # prints the tables and writes them
        return
    for name, frame in tables.items():
        _print_table(f"by {name.replace('_', ' ')}", frame)


def check_stress_flags(scenario: str | None, pd_mult: float | None, rho: float | None,
                       smm_mult: float | None, recovery_mult: float | None) -> None:
    """Validate the stress flags before any work is done (same rules as ``apply_stress``)."""
    if scenario is not None and scenario not in NAMED_SCENARIOS:
        raise ValidationError(must_be("--scenario", "one of " + ", ".join(NAMED_SCENARIOS),
                                      scenario))
    for flag, value in (("--pd-mult", pd_mult), ("--smm-mult", smm_mult),
                        ("--recovery-mult", recovery_mult)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValidationError(must_be(flag, ">= 0 and finite", value))
    if rho is not None and not 0 <= rho < 1:
        raise ValidationError(must_be("--rho", "in [0, 1)", rho))


def _parse_date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(must_be(field, "a date YYYY-MM-DD", value)) from None


def with_delinquency(a: Assumptions, dq: DelinquencyCalibration, rho_choice: str,
                     rho_ttc: float | None) -> Assumptions:
    """``a`` with the ``[delinquency]`` record of the calibrated transitions (factor loading:
    the ``rho_choice`` of the transitions' own fit), or unchanged when the charge-off point is
    not one the delinquency-state model projects (``CHARGE_OFF_DPD``)."""
    if dq.counts.charge_off_dpd not in CHARGE_OFF_DPD:
        return a
    record = delinquency_assumptions(dq, choose_rho(dq.factor, rho_choice, rho_ttc))
    return dataclasses.replace(a, delinquency=record)


def calibrate(
    out: Annotated[Path, typer.Option("--out", help="Assumptions TOML to write.")],
    pool: Annotated[int | None, typer.Option("--pool", help="Pool whose cut-off is the default "
                                             "as-of date (recorded in the provenance).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Use history up to this "
                                              "month-end (default: the pool's cut-off, else "
                                              "the book's last month-end).")] = None,
    credibility: Annotated[float, typer.Option("--credibility", help="Prior strength in "
                                               "loan-months for shrinking a segment toward its "
                                               "band / the book.")] = 200.0,
    n_age: Annotated[int, typer.Option("--n-age", help="Months-on-book columns.")] = 24,
    default_timing: Annotated[str, typer.Option(
        "--default-timing", help="recorded: a default counts in its first > 90 dpd month "
        "(the analytics' definition); went-bad: in the month its final delinquency began "
        "(what a term-limited projection needs, see portfolio/book/calibration.py).")] = "went-bad",
    charge_off_dpd: Annotated[int, typer.Option(
        "--charge-off-dpd", help="The charge-off point of the delinquency buckets: a loan is "
        "charged off on its first row past this many days (or with a charge-off amount); "
        "recoveries are measured from that month.")] = 90,
    min_exposure: Annotated[int, typer.Option(
        "--min-exposure", help="Loan-months a cell needs from a state before its own "
        "transition counts are used (else pooled: age group, band x term, band, book).")] = 30,
    rho_choice: Annotated[str, typer.Option(
        "--rho-choice", help="The run's rho: point (the estimate), upper (the 95% "
        "profile-likelihood interval's upper end) or ttc (--rho-ttc, a through-the-cycle "
        "value). Recorded in the assumptions' provenance.")] = "point",
    rho_ttc: Annotated[float | None, typer.Option(
        "--rho-ttc", help="The through-the-cycle rho for --rho-choice ttc.")] = None,
    transitions_out: Annotated[Path | None, typer.Option(
        "--transitions-out", help="CSV of every cell's transition probabilities, intervals, "
        "exposures and pooling level [default: <out>.transitions.csv].")] = None,
    scenario: ScenarioOption = None,
    pd_mult: PdMultOption = None,
    rho: RhoOption = None,
    smm_mult: SmmMultOption = None,
    recovery_mult: RecoveryMultOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Calibrate projection assumptions from the book's own history and write them as TOML.

    Hazards and prepayment by score band x term x age; delinquency transition matrices
    (current, 1-30, ..., charged off, prepaid, matured) with Wilson intervals and exposures;
    recoveries from the charge-off month; the factor's rho and persistence with 95%
    profile-likelihood intervals, and the rho chosen for the run (--rho-choice).
    """
    check_stress_flags(scenario, pd_mult, rho, smm_mult, recovery_mult)
    as_of_date = _parse_date(as_of, "as-of")
    if not credibility >= 0:
        raise ValidationError(must_be("credibility", ">= 0 loan-months", credibility))
    if not 1 <= n_age <= 120:
        raise ValidationError(must_be("n-age", "an integer in [1, 120]", n_age))
    timing = default_timing.strip().lower().replace("-", "_")
    if timing not in ("recorded", "went_bad"):
        raise ValidationError(must_be("--default-timing", "recorded or went-bad",
                                      default_timing))
    if out.suffix.lower() != ".toml":
        raise ValidationError(must_be("out", "a .toml file path", str(out)))
    if charge_off_dpd not in (60, 90, 120, 150, 180):
        raise ValidationError(must_be("--charge-off-dpd", "one of 60, 90, 120, 150, 180",
                                      charge_off_dpd))
    if min_exposure < 1:
        raise ValidationError(must_be("--min-exposure", "an integer >= 1", min_exposure))
    check_rho_choice(rho_choice, rho_ttc)
    table_path = transitions_out or out.with_name(out.stem + ".transitions.csv")
    if table_path.suffix.lower() != ".csv":
        raise ValidationError(must_be("--transitions-out", "a .csv file path", str(table_path)))
    with open_store(db, read_only=True) as store:
        result = calibrate_from_store(store, pool_id=pool, as_of=as_of_date,
                                      credibility=credibility, n_age=n_age,
                                      default_timing=timing)  # type: ignore[arg-type]
        window_end = dt.date.fromisoformat(result.assumptions.provenance["as_of"])
        dq = calibrate_delinquency(store, window_end, charge_off_dpd=charge_off_dpd,
                                   n_age=n_age, min_exposure=min_exposure)
    # the hazard model's [factor]: rho and persistence of the defaults (with the chosen
    # default timing); the transitions' own loading is reported beside it
    # point: the maximum-likelihood estimate of the defaults (docs/model.md section 4,
    # unchanged); the interval: REML profile likelihood of the same defaults (section 4.2)
    hazard_fit = dataclasses.replace(fit_factor(default_factor_counts(result.counts)),
                                     rho=result.assumptions.rho,
                                     persistence=result.assumptions.factor_persistence)
    choice = choose_rho(hazard_fit, rho_choice, rho_ttc)
    result = with_provenance(result, code_version=code_version())
    calibrated = dataclasses.replace(
        result.assumptions,
        rho=round(choice.rho_used, 6),
        rho_se=None,
        recovery_rate=round(dq.recovery_rate, 8) if dq.n_charge_offs else
        result.assumptions.recovery_rate,
        recovery_lag=dq.recovery_lag if dq.n_charge_offs else result.assumptions.recovery_lag,
        provenance={
            **result.assumptions.provenance,
            "rho_method": "point: maximum likelihood of the defaults (Gauss-Hermite); "
                          "interval: REML profile likelihood of the defaults by band x term "
                          "x age group (portfolio/book/factor_fit.py)",
            "rho_choice": choice.to_json(),
            "factor_fit": hazard_fit.to_json(),
            "transitions_factor_fit": dq.factor.to_json(),
            "recovery_method": f"chain ladder from the charge-off month (past "
                               f"{charge_off_dpd} DPD)",
            "charge_off_dpd": charge_off_dpd,
            "daily_interest_partial_repayment_rate": round(
                dq.estimate.partial_repayment_rate, 8),
        })
    calibrated = with_delinquency(calibrated, dq, rho_choice, rho_ttc)
    assumptions = apply_stress(calibrated, scenario=scenario, pd_multiplier=pd_mult,
                               rho=rho, smm_multiplier=smm_mult,
                               recovery_multiplier=recovery_mult)
    save_assumptions(assumptions, out, exposure=result.exposure_tables())
    dq.estimate.table().to_csv(table_path, index=False, float_format="%.6g")
    # the hazard summary without the figures the delinquency calibration replaced
    replaced = ("rho standard error", "no recoveries observed") if dq.n_charge_offs else (
        "rho standard error",)
    result = dataclasses.replace(result, assumptions=assumptions, notes=tuple(
        n for n in result.notes if not n.startswith(replaced)))
    typer.echo(result.summary_text())
    typer.echo(dq.summary_text())
    f = hazard_fit
    ttc = f" (through-the-cycle {choice.rho_ttc})" if choice.rho_ttc is not None else ""
    typer.echo(f"factor of the defaults ([factor] of the hazard model): rho {f.rho:.4f} "
               f"(maximum likelihood) in [{f.rho_interval[0]:.4f}, {f.rho_interval[1]:.4f}], "
               f"persistence {f.persistence:.3f} in [{f.persistence_interval[0]:.3f}, "
               f"{f.persistence_interval[1]:.3f}] ({f.confidence:.0%} REML profile-likelihood "
               f"intervals, {f.n_months} months)")
    typer.echo(f"rho for the run: {choice.rho_used:.4f} ({choice.choice}{ttc})")
    if assumptions.delinquency is not None:
        typer.echo(f"[delinquency] written: the calibrated transitions (charge-off past "
                   f"{charge_off_dpd} DPD, cure rule catch_up), factor loading "
                   f"{assumptions.delinquency.loading(assumptions.rho):.4f} ({rho_choice} of "
                   f"the transitions' fit) — ready for simulate --model delinquency")
    else:
        typer.echo(f"no [delinquency] section: the delinquency-state model charges off at "
                   f"{', '.join(map(str, CHARGE_OFF_DPD))} DPD, not {charge_off_dpd}")
    typer.echo(f"assumptions written to {out}; transition cells to {table_path}")


def pricing(
    assumptions: Annotated[Path, typer.Option("--assumptions", help="Assumptions TOML.")],
    pricing_file: Annotated[Path | None, typer.Option("--pricing", help="Pricing inputs TOML "
                                                      "(default: built-in inputs, see "
                                                      "examples/pricing.toml).")] = None,
    pool: Annotated[int | None, typer.Option("--pool", help="Price-check this pool's loans "
                                             "(default: the whole book).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the table to .csv/.xlsx.")]
    = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Risk-based pricing check: break-even APR per segment against the actual WA APR."""
    check_out_path(out)
    a = load_assumptions(assumptions)
    inputs = load_pricing(pricing_file) if pricing_file is not None else PricingInputs()
    with open_store(db, read_only=True) as store:
        report = pricing_check(store, a, inputs, pool_id=pool)
    if out is not None:
        # prints the table and writes it; the book's weight is the loans' original principal
        _emit({"pricing": report.table.rename(columns={"balance": report.weight})}, out)
    else:
        typer.echo(report.to_text())
    typer.echo(report.summary_text())


def register(app: typer.Typer) -> None:
    """Add ``pool``, ``calibrate`` and ``pricing`` to the app."""
    app.add_typer(pool_app, name="pool")
    app.command("calibrate")(calibrate)
    app.command("pricing")(pricing)
