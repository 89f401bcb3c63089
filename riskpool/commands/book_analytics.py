"""``riskpool book summary|delinquency|rolls|vintages|rates`` — performance analytics.

Each command opens the database read-only, runs its group-bys in DuckDB
(``portfolio.book.analytics``), prints the tables and, with ``--out FILE``, writes them as CSV,
Parquet or XLSX (``riskpool.commands.output``). Registered by ``riskpool.commands.book``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from portfolio.book import analytics
from portfolio.store.core import open_store
from portfolio.store.parquet_book import export_book
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import check_out_path, emit

book_app = typer.Typer(
    help=(
        "Performance analytics of the loan book: summary and calibration anchors, "
        "delinquency buckets, roll rates, vintage curves, MDR/CDR, SMM/CPR and MPR. "
        "Reads the database read-only; --out writes .csv, .parquet or .xlsx."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

AsOfOption = Annotated[
    dt.datetime | None,
    typer.Option(
        "--as-of",
        formats=["%Y-%m-%d"],
        help="Month-end to report (YYYY-MM-DD); default: the latest month-end on file.",
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help=(
            "Also write the tables: .xlsx (one sheet per table), .csv or .parquet "
            "(one file per table, <stem>_<table><ext>, when there are several)."
        ),
    ),
]


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value is not None else None


@book_app.command("summary")
def summary(db: DbOption = DEFAULT_DB, as_of: AsOfOption = None, out: OutOption = None) -> None:
    """Outstanding book: count, balance, WA APR, WA score, WA remaining term, 30+/90+ DPD
    ratios — overall and by product, repayment type, score band, term and region — plus
    the calibration anchors (90+ DPD ratio, seasoned 12-month lifetime default, default
    rate by score band).

    Weighted averages are by balance. 30+ (90+) DPD ratio = balance with dpd > 30 (> 90) /
    balance of the open loans not written off. Seasoned = originated at least 15 months
    before --as-of; lifetime default = balance at default / original principal."""
    check_out_path(out)
    with open_store(db, read_only=True) as store:
        result = analytics.book_summary(store.con, _date(as_of))
        note = _incomplete_month_note(store.con, result.as_of)
    emit(result.tables(), out, title=f"book summary at {result.as_of.isoformat()}")
    if note:
        typer.echo(note)


@book_app.command("delinquency")
def delinquency(
    db: DbOption = DEFAULT_DB,
    as_of: AsOfOption = None,
    out: OutOption = None,
    over_time: Annotated[
        bool, typer.Option("--over-time", help="Also one row per month-end up to --as-of.")
    ] = False,
) -> None:
    """Delinquency buckets (current, M1 1-30, M2 31-60, M3 61-90, default >90 DPD, written
    off) by loan count and balance.

    Open buckets show the month-end balance and its share of the outstanding balance;
    "total outstanding" is their sum (the book summary's balance); "written off" counts the
    loans charged off on or before --as-of, with the amount charged off. --over-time adds one
    row per month-end (blank in a month reported for part of the book). A month-end reported
    for part of the book is named."""
    check_out_path(out)
    with open_store(db, read_only=True) as store:
        result = analytics.delinquency(store.con, _date(as_of), over_time=over_time)
        rates = analytics.monthly_rates(store.con, result.as_of)
    note = analytics.partial_month_note(result.as_of, rates.incomplete,
                                        list(rates.series["as_of"]))
    tables = result.tables()
    tables["delinquency"] = analytics.with_open_total(tables["delinquency"])
    if "delinquency_by_month" in tables:  # a month reported for part of the book: blank
        tables["delinquency_by_month"] = analytics.blank_incomplete_months(
            tables["delinquency_by_month"], rates.incomplete)
    emit(tables, out, title=f"delinquency at {result.as_of.isoformat()}")
    if note:
        typer.echo(note)


def _incomplete_month_note(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> str | None:
    """A line when fewer loans report at ``as_of`` than were performing a month before (a
    month's tape loaded for part of the book): the figures cover the reported loans only
    (``portfolio.book.analytics.partial_month_note``, as the Book page and the report)."""
    rates = analytics.monthly_rates(con, as_of)
    return analytics.partial_month_note(as_of, rates.incomplete, list(rates.series["as_of"]))


@book_app.command("rolls")
def rolls(
    db: DbOption = DEFAULT_DB,
    out: OutOption = None,
    from_date: Annotated[
        dt.datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"],
                     help="Start month-end; default: the month-end before --to."),
    ] = None,
    to_date: Annotated[
        dt.datetime | None,
        typer.Option("--to", "--as-of", formats=["%Y-%m-%d"],
                     help="End month-end; default: the latest month-end on file."),
    ] = None,
) -> None:
    """Roll-rate matrix by balance between two month-ends, with roll-forward and cure
    rates (exit states: written off, prepaid, matured, paid off)."""
    check_out_path(out)
    with open_store(db, read_only=True) as store:
        result = analytics.roll_rates(store.con, _date(from_date), _date(to_date))
    emit(
        result.tables(),
        out,
        title=f"roll rates {result.from_date.isoformat()} -> {result.to_date.isoformat()}",
    )


@book_app.command("vintages")
def vintages(db: DbOption = DEFAULT_DB, as_of: AsOfOption = None, out: OutOption = None) -> None:
    """Vintage curves: cumulative default and net loss as a share of original principal by
    months on book, one row per origination month."""
    check_out_path(out)
    with open_store(db, read_only=True) as store:
        result = analytics.vintage_curves(store.con, _date(as_of))
    emit(result.tables(), out, title=f"vintage curves to {result.as_of.isoformat()}")


@book_app.command("rates")
def rates(db: DbOption = DEFAULT_DB, as_of: AsOfOption = None, out: OutOption = None) -> None:
    """Monthly MDR/CDR, SMM/CPR and (daily-interest loans) MPR, one row per month.

    MDR = balance newly > 90 DPD / performing balance (current to M3) at the previous
    month-end; CDR = 1 - (1 - MDR)^12. SMM = prepaid principal / (performing balance at
    start - scheduled principal, i.e. the regular principal those loans paid);
    CPR = 1 - (1 - SMM)^12. MPR = principal repaid by daily-interest loans / their
    performing balance at start."""
    check_out_path(out)
    with open_store(db, read_only=True) as store:
        result = analytics.monthly_rates(store.con, _date(as_of))
    emit(result.tables(), out, title=f"monthly rates to {result.as_of.isoformat()}")
    for month, start, reported in result.incomplete:
        typer.echo(f"{month.isoformat()}: {reported:,} of the {start:,} loans performing at the "
                   "month's start have a performance row then; its MDR/CDR, SMM/CPR and MPR are "
                   "left blank (an incomplete month's tape would show the others' defaults and "
                   "prepayments as 0)")


@book_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the Parquet "
                                      "dataset.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write the book as Parquet partitioned by origination month (hive style):
    OUT/loans/origination_month=YYYY-MM/*.parquet and OUT/loan_performance/... .
    `riskpool pool create --book OUT` and `riskpool simulate --book OUT` read it."""
    with open_store(db, read_only=True) as store:
        res = export_book(store.con, out)
    typer.echo(f"exported {res.n_loans:,} loans and {res.n_performance_rows:,} performance rows "
               f"in {res.n_partitions} origination months to {res.out}")
