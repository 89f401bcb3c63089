"""The options every command shares: ``--db`` and ``--users``. Their defaults and environment
variables come from ``portfolio.settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portfolio import settings

DEFAULT_DB = settings.DEFAULT_DB

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar=settings.DB_ENV, show_default=True,
                 help=f"DuckDB database file (env {settings.DB_ENV})."),
]

NewDbOption = Annotated[
    Path,
    typer.Option("--db", envvar=settings.DB_ENV, show_default=True,
                 help=f"DuckDB database file (env {settings.DB_ENV}); must not hold loans yet."),
]
"""``--db`` of ``riskpool generate``, which builds a book into an empty database."""

UsersOption = Annotated[
    Path | None,
    typer.Option("--users", envvar=settings.USERS_ENV,
                 help=f"Users file (default: {settings.USERS_FILE} beside the database; "
                      f"env {settings.USERS_ENV})."),
]

__all__ = ["DEFAULT_DB", "DbOption", "NewDbOption", "UsersOption"]
