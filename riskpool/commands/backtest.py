"""``riskpool backtest``: calibrate on the history up to a date, project the loans current on
the book then with the delinquency-state model, and compare month by month with what they
actually did (``portfolio.book.backtest``; docs/model.md, "Back-test")."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer

from dashboards.charts import backtest_chart, png_bytes
from portfolio.book.backtest import HEADLINE, run_backtest
from portfolio.errors import ValidationError, must_be
from portfolio.store.core import open_store
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import check_out_path, emit

TABLE_COLUMNS = ("series", "month", "actual", "p5", "median", "p95", "inside")


def backtest(
    train_until: Annotated[str, typer.Option(
        "--train-until", help="Calibrate on the history up to this month-end (YYYY-MM-DD) "
        "and project the loans current on the book then.")],
    paths: Annotated[int, typer.Option("--paths", help="Monte Carlo paths of the fan "
                                       "(100 to 100,000).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the paths (recorded in the "
                                      "output).")] = 2026,
    months: Annotated[int, typer.Option("--months", help="Months after --train-until to "
                                        "compare (at most what the book holds).")] = 12,
    charge_off_dpd: Annotated[int, typer.Option(
        "--charge-off-dpd", help="Charge-off point: 90, 120, 150 or 180 DPD.")] = 90,
    engine: Annotated[str, typer.Option(
        "--engine", help="loan (each loan with its own balance; the default) or granular "
        "(loans of a cell carry its average balance: faster, a narrower fan).")] = "loan",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the month-by-month table and the coverage (.csv: two files "
        "<stem>_backtest.csv and <stem>_coverage.csv; .xlsx: two sheets).")] = None,
    chart: Annotated[Path | None, typer.Option(
        "--chart", help="PNG of the fans and the actuals of 30+ DPD, charge-offs and "
        "collections.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Back-test the delinquency model on the book: per month the actual against the 5-95%
    fan of the paths, and each series' coverage (the share of months inside the fan)."""
    try:
        until = dt.date.fromisoformat(train_until.strip())
    except ValueError:
        raise ValidationError(must_be("--train-until", "a date YYYY-MM-DD",
                                      train_until)) from None
    check_out_path(out)
    if chart is not None and chart.suffix.lower() != ".png":
        raise ValidationError(must_be("--chart", "a file name ending in .png", str(chart)))
    if engine not in ("loan", "granular"):
        raise ValidationError(must_be("--engine", "loan or granular", engine))
    if not db.exists():
        raise ValidationError(must_be("--db", "an existing riskpool database", str(db)))
    with open_store(db, read_only=True) as store:
        result = run_backtest(store, until, n_paths=paths, seed=seed, horizon=months,
                              charge_off_dpd=charge_off_dpd, engine=engine)  # type: ignore[arg-type]
    typer.echo(result.summary_text())
    table = result.table[list(TABLE_COLUMNS)]
    cov = result.coverage[["series", "label", "months", "inside", "coverage"]]
    emit({"backtest": table, "coverage": cov}, out)
    typer.echo("coverage = months with p5 <= actual <= p95 / months compared (months whose "
               "fan and actual are both 0 are not compared)")
    if chart is not None:
        fig = backtest_chart(result.table, result.coverage, HEADLINE,
                             f"Back-test from {until.isoformat()}: {result.n_loans:,} loans, "
                             f"{result.n_paths:,} paths, seed {result.seed}")
        chart.parent.mkdir(parents=True, exist_ok=True)
        tmp = chart.with_name(f".{chart.name}.tmp")
        tmp.write_bytes(png_bytes(fig))
        os.replace(tmp, chart)
        typer.echo(f"wrote {chart}")


def register(app: typer.Typer) -> None:
    """Add ``backtest`` to the app."""
    app.command("backtest")(backtest)
