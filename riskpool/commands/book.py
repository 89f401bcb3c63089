"""CLI commands of the loan-book area (registered by riskpool.cli).

* ``riskpool generate`` — a synthetic Jiebei-like book (``portfolio.synthetic.generate``).
* ``riskpool book ...`` — performance analytics (sub-app, further below in ``register``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from portfolio.errors import ValidationError, must_be
from portfolio.store.core import open_store
from portfolio.synthetic.generate import GeneratorParams, check_request, generate_book
from riskpool.commands.book_analytics import book_app
from riskpool.commands.options import DEFAULT_DB, NewDbOption

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
    as_of_date = check_request(loans, months, seed, as_of_date)  # before touching the file
    params = GeneratorParams(flat_fee_share=flat_fee_share) if flat_fee_share else None
    with open_store(db) as store:
        s = generate_book(store, loans, months, seed, as_of_date, params)
    first = s.first_origination_month
    typer.echo(f"generated {s.n_loans:,} loans ({first:%Y-%m} to {s.as_of:%Y-%m}) and "
               f"{s.n_performance_rows:,} performance rows into {db}")
    typer.echo(f"  as-of {s.as_of.isoformat()}: outstanding balance {s.balance_at_as_of:,.2f} CNY "
               f"of {s.total_principal:,.2f} originated; seed {s.seed}; batch {s.batch_id}; "
               f"{s.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Add ``riskpool generate`` and the ``riskpool book ...`` analytics sub-app."""
    app.command("generate")(generate)

    # ------------------------------------------------------------ riskpool book ... (analytics)
    app.add_typer(book_app, name="book", help="Performance analytics of the loan book.")
