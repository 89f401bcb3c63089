"""The ``riskpool`` command line.

Each area registers its commands from ``riskpool/commands/<area>.py`` (a ``register(app)``
function). Any ``RiskpoolError`` becomes a one-paragraph message on stderr and exit code 2;
a usage error (bad flag) is click's message and exit code 2. Never a traceback.
"""

from __future__ import annotations

import sys

import typer

from portfolio import settings
from portfolio.errors import RiskpoolError

app = typer.Typer(
    name="riskpool",
    help=(
        "riskpool — treasury platform for a consumer-microloan book: the loan book in DuckDB, "
        "pools, correlated-default Monte Carlo, ABS waterfalls, partner allocation and risk "
        "dispersion."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

COMMAND_MODULES = (
    "riskpool.commands.ingest",
    "riskpool.commands.book",
    "riskpool.commands.pools",
    "riskpool.commands.simulation",
    "riskpool.commands.tranches",
    "riskpool.commands.partners",
    "riskpool.commands.reports",
    "riskpool.commands.demo",
)


@app.command("version")
def version() -> None:
    """Print the code version recorded with every run."""
    from portfolio.version import code_version

    typer.echo(code_version())


def _register_all() -> None:
    import importlib

    settings.before_numpy_import()  # the command modules import numpy
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits 0, 1 (aborted) or 2 (bad input or usage)."""
    try:
        app(args=argv, prog_name="riskpool", standalone_mode=True)
    except RiskpoolError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        typer.echo(f"error: {exc.strerror}: {exc.filename}", err=True)
        sys.exit(2)
