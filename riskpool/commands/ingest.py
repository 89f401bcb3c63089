"""``riskpool ingest``: strict loan / performance tape loading (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portfolio.book.ingest import TapeKind, ingest, load_mapping
from portfolio.book.summaries import store_book_summaries
from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import APR_CAP_DEFAULT
from portfolio.store import open_store
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.progress import QuietOption, progress_bar

INGEST_HELP = """Load loan or performance tapes (CSV or Parquet) into the book, strictly.

Each file is one load in one transaction, in the order given. By default a file with any
bad row is refused whole (every bad row is listed, exit code 2, the database is unchanged);
files before it stay loaded and files after it are not attempted. With --allow-rejects the
good rows are loaded and every bad row is kept with its reasons in ingest_rejects.

Rows are numbered from 1 after the header: row N is file line N+1 (a quoted value may hold a
line break; messages then name the line the row starts on). CSV is UTF-8 (with or without
BOM); GBK/GB18030 or any other text needs --encoding (e.g. --encoding gbk). Loading the same file again is a reported no-op; a row identical
to one already in the book is skipped as a duplicate; a different row under an existing key
is refused.

Loan tape columns: loan_id, borrower_id, origination_date (YYYY-MM-DD), principal (CNY,
(0, 200000]), apr (decimal, 0.18 = 18%), term_months (3, 6, 9, 12, 18, 24), repayment_type
(level_annuity|equal_principal|interest_only|daily_interest or 等额本息|等额本金|先息后本|随借随还),
credit_score (350-950); optional region, channel, product.

Performance tape columns: loan_id, as_of (a month-end), months_on_book, balance, dpd, status
(current|delinquent|default|prepaid|matured); optional paid_principal, paid_interest,
prepaid_principal, charge_off, recovery.
"""


def ingest_command(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH", help="Tape files (.csv or .parquet), loaded in order."),
    ],
    db: DbOption = DEFAULT_DB,
    kind: Annotated[
        TapeKind, typer.Option("--kind", help="What the tapes hold.")
    ] = TapeKind.LOANS,
    allow_rejects: Annotated[
        bool,
        typer.Option(
            "--allow-rejects",
            help="Load the good rows; keep each bad row with its reasons in ingest_rejects.",
        ),
    ] = False,
    apr_cap: Annotated[
        float,
        typer.Option("--apr-cap", help="Highest APR accepted, as a decimal (rule R9)."),
    ] = APR_CAP_DEFAULT,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            help="The CSV's text encoding when it is not UTF-8 (e.g. gbk for Chinese text "
            "from Excel on a Chinese-locale Windows, latin-1). Without it a non-UTF-8 file is "
            "refused, naming each encoding tried and what it reads: it is never guessed.",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="A column-mapping TOML for a tape whose headers, date formats, percent APRs "
            "or status codes differ (e.g. examples/mappings/bank_tape_cn.toml).",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    tape_mapping = load_mapping(mapping) if mapping is not None else None
    if tape_mapping is not None and tape_mapping.kind.value != TapeKind(kind).value:
        raise ValidationError(must_be("--mapping", f"a mapping for {TapeKind(kind).value} tapes "
                                      f"(its `mapping.kind` is {tape_mapping.kind.value!r})",
                                      str(mapping)))
    for path in paths:
        if not path.is_file():
            raise ValidationError(f"tape {path} does not exist or is not a file")
    new_database = not db.exists()
    loaded = 0
    try:
        with open_store(db) as store, progress_bar(
                f"loading {len(paths)} tape{'s' if len(paths) > 1 else ''}", quiet=quiet,
                total=None if len(paths) == 1 else len(paths)) as update:
            for i, path in enumerate(paths):
                result = ingest(
                    store, path, kind=kind, allow_rejects=allow_rejects, apr_cap=apr_cap,
                    encoding=encoding, mapping=tape_mapping,
                )
                loaded += 1
                typer.echo(result.summary())
                if update is not None:
                    update(i + 1)
            summarised = store_book_summaries(store)  # the dashboard's Book page reads them
    except BaseException:
        if new_database and loaded == 0:  # refused before any file loaded: no database made
            for made in (db, db.with_name(db.name + ".wal")):
                made.unlink(missing_ok=True)
        raise
    if summarised is not None:
        typer.echo(f"Book page tables at {summarised.isoformat()} stored")


def register(app: typer.Typer) -> None:
    """Add ``riskpool ingest``."""
    app.command("ingest", help=INGEST_HELP)(ingest_command)
