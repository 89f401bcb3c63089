"""CLI commands of the loan-book area (registered by riskpool.cli).

* ``riskpool generate`` — a synthetic Jiebei-like book (``portfolio.synthetic.generate``).
* ``riskpool book ...`` — performance analytics (sub-app, further below in ``register``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from portfolio.book.summaries import store_book_summaries
from portfolio.errors import ValidationError, must_be
from portfolio.store.core import open_store
from portfolio.synthetic.generate import (
    MAX_LOANS,
    MAX_MONTHS,
    GeneratorParams,
    check_request,
    generate_book,
)
from portfolio.synthetic.params import CREDIT_MODELS
from riskpool.commands.book_analytics import book_app
from riskpool.commands.options import DEFAULT_DB, NewDbOption
from riskpool.commands.progress import QuietOption, working

# ---------------------------------------------------------------------------- riskpool generate



def generate(
    db: NewDbOption = DEFAULT_DB,
    loans: Annotated[int, typer.Option("--loans", help="Number of loans to originate.")] = 200_000,
    months: Annotated[int, typer.Option(
        "--months", help="Monthly vintages (and months of history) ending at --as-of.")] = 24,
    seed: Annotated[int, typer.Option(
        "--seed", help="Random seed: the same seed and arguments give the same book (the "
        "default's macro path stays close to average, so the calibration anchors show).")] = 13,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Last month-end of the history, YYYY-MM-DD "
        "[default: the last month-end before today].")] = None,
    flat_fee_share: Annotated[float, typer.Option(
        "--flat-fee-share", help="Share of the amortising loans sold as flat-fee instalments "
        "(等本等息), priced to the same APR and disclosing it; 0 keeps the default book.")] = 0.0,
    credit_model: Annotated[str, typer.Option(
        "--credit-model", help="hazard (the default book) or markov: delinquency buckets "
        "moving by a known monthly transition model by score band, roll and cure rates driven "
        "by the macro factor; its true parameters and factor path are written next to the "
        "database as <db>.truth.json (portfolio/synthetic/markov.py).")] = "hazard",
    quiet: QuietOption = False,
) -> None:
    """Generate a synthetic Jiebei-like loan book with month-end performance history.

    Originations over --months monthly vintages (credit score, limit, risk-based APR,
    lognormal principal, the repayment types, provinces, channels), then one row per
    loan per month-end up to --as-of: scheduled payments, delinquency M1 → M2 → M3 → default
    (> 90 DPD) with cures, write-off at 180 DPD, recoveries, full and partial prepayment, and a
    macro factor shared by all loans. Written in one transaction into an empty database.
    """
    as_of_date: dt.date | None = None
    if as_of is not None:
        try:
            as_of_date = dt.date.fromisoformat(as_of.strip())
        except ValueError:
            raise ValidationError(must_be("--as-of", "an ISO date YYYY-MM-DD at a month-end",
                                          as_of)) from None
    for flag, value, hi in (("--loans", loans, MAX_LOANS), ("--months", months, MAX_MONTHS)):
        if not 1 <= value <= hi:  # the flags as typed (check_request names the arguments)
            raise ValidationError(must_be(flag, f"an integer in [1, {hi:,}]", value))
    as_of_date = check_request(loans, months, seed, as_of_date)  # before touching the file
    if credit_model not in CREDIT_MODELS:
        raise ValidationError(must_be("--credit-model", " or ".join(CREDIT_MODELS),
                                      credit_model))
    params = None
    if flat_fee_share or credit_model != "hazard":
        params = GeneratorParams(flat_fee_share=flat_fee_share, credit_model=credit_model)
    with open_store(db) as store, working(f"generating {loans:,} loans", quiet=quiet):
        s = generate_book(store, loans, months, seed, as_of_date, params)
        t = time.perf_counter()
        summarised = store_book_summaries(store)  # the dashboard's Book page reads them
    if s.truth is not None:
        truth_path = truth_path_for(db)
        truth_path.write_text(json.dumps(s.truth, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")
        typer.echo(f"  true transition model and factor path written to {truth_path}")
    first = s.first_origination_month
    typer.echo(f"generated {s.n_loans:,} loans ({first:%Y-%m} to {s.as_of:%Y-%m}) and "
               f"{s.n_performance_rows:,} performance rows into {db}")
    typer.echo(f"  as-of {s.as_of.isoformat()}: outstanding balance {s.balance_at_as_of:,.2f} CNY "
               f"of {s.total_principal:,.2f} originated; seed {s.seed}; batch {s.batch_id}; "
               f"{s.seconds:.1f} s")
    if summarised is not None:
        typer.echo(f"  Book page tables at {summarised.isoformat()} stored "
                   f"({time.perf_counter() - t:.1f} s)")


def truth_path_for(db: Path) -> Path:
    """Where ``generate --credit-model markov`` writes the truth: ``<db>.truth.json``."""
    return db.with_name(db.name + ".truth.json")


def register(app: typer.Typer) -> None:
    """Add ``riskpool generate`` and the ``riskpool book ...`` analytics sub-app."""
    app.command("generate")(generate)

    # ------------------------------------------------------------ riskpool book ... (analytics)
    app.add_typer(book_app, name="book", help="Performance analytics of the loan book.")
