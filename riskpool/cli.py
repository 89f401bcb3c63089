"""The ``riskpool`` command line.

Each area defines its commands in ``riskpool/commands/<area>.py`` and adds them with a
``register(app)`` function. :data:`COMMANDS` names the module and the one-line help of every
top-level command: ``riskpool --help`` lists them from there, and a command's module (with
numpy, numba, DuckDB, QuantLib and matplotlib behind it) is imported only when that command
runs, so ``riskpool --help`` and ``riskpool version`` start in a fraction of a second. This is
click's documented pattern for lazily loaded subcommands (a group whose ``get_command``
imports on demand); the modules themselves import everything at module level.

Any ``RiskpoolError`` becomes a one-paragraph message on stderr and exit code 2; a usage
error (bad flag) is click's message and exit code 2; so does a file DuckDB finds it cannot
read or write mid-query (a truncated database). Never a traceback.

:func:`main` first calls ``portfolio.settings.before_numpy_import()``: numpy reads its
huge-page switch once, when it is imported, and no command module is imported before that.

Lazy imports. Every module imports at its top, except for these heavy or optional
dependencies (``tests/test_layers.py`` holds the list, ``ALLOWED_LAZY``):

- here: the command modules, by name from :data:`COMMANDS` through ``importlib`` (above).
- ``riskpool.commands.reports.run_dashboard``: ``streamlit.web.cli``. Streamlit is large
  and only ``riskpool dashboard`` and ``riskpool demo`` start its server; the dashboard
  modules that import ``streamlit`` at their top (``dashboards.ui``, ``dashboards.app``, the
  pages) run inside that server.
- ``portfolio.montecarlo.distributed.require_dask``: ``distributed`` (Dask), an optional
  dependency (``riskpool[distributed]``); only ``--workers`` / ``--scheduler`` need it, and
  its absence is reported with the install hint.
- ``benchmarks/bench_b1.py``: ``psutil`` (not a dependency), only where
  ``/proc/self/status`` cannot be read.
- ``tests/dashboards/test_browser.py``: ``playwright``, the browser tests only.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import typer
import typer.main
from typer.core import TyperGroup

from portfolio import settings
from portfolio.errors import RiskpoolError
from portfolio.version import code_version

if TYPE_CHECKING:  # the click that typer runs on (recent typer ships its own copy)
    from typer._click import Command, Context, HelpFormatter

# name: (module whose ``register(app)`` adds it, the one-line help `riskpool --help` shows;
# the same as the command's own, see tests/riskpool/test_cli_start.py)
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("riskpool.commands.ingest",
               "Load loan or performance tapes (CSV or Parquet) into the book, strictly."),
    "generate": ("riskpool.commands.book",
                 "Generate a synthetic Jiebei-like loan book with month-end performance "
                 "history."),
    "book": ("riskpool.commands.book", "Performance analytics of the loan book."),
    "pool": ("riskpool.commands.pools",
             "Pools: cut immutable snapshots from the book, list, show, strats."),
    "calibrate": ("riskpool.commands.pools",
                  "Calibrate projection assumptions from the book's own history and write "
                  "them as TOML."),
    "backtest": ("riskpool.commands.backtest",
                 "Back-test the delinquency model on the book: per month the actual against "
                 "the 5-95% fan of the paths, and each series' coverage (the share of months "
                 "inside the fan)."),
    "pricing": ("riskpool.commands.pools",
                "Risk-based pricing check: break-even APR per segment against the actual "
                "WA APR."),
    "simulate": ("riskpool.commands.simulation",
                 "Project a pool's cash flows and credit losses by Monte Carlo; record the "
                 "run."),
    "runs": ("riskpool.commands.simulation",
             "Recorded runs (simulation, allocation, report): list, show, label, diff."),
    "migrate": ("riskpool.commands.simulation",
                "Bring a database written by an older riskpool to this version's schema "
                "(every run kept, its inputs rewritten as typed records), or refuse and say "
                "how to rebuild it."),
    "scenarios": ("riskpool.commands.scenarios",
                  "Scenario sets on common random numbers: run, list, show."),
    "tranche": ("riskpool.commands.tranches",
                "Tranches: check deal files, report stored results, size tranches."),
    "allocate": ("riskpool.commands.partners",
                 "Allocate loans between the platform and its funding partners (joint "
                 "lending or forward flow) under the regulatory rules; export a partner's "
                 "tape."),
    "dispersion": ("riskpool.commands.partners",
                   "Per party: exposure, EL, VaR/ES 99% and 99.9%, capital; HHI; what left "
                   "the platform."),
    "report": ("riskpool.commands.reports",
               "Write the HTML and XLSX portfolio report for an as-of date (cron-ready)."),
    "dashboard": ("riskpool.commands.reports",
                  "Start the dashboard (log in with a user from `riskpool users add`)."),
    "users": ("riskpool.commands.reports",
              "Dashboard users (scrypt-hashed passwords in a TOML file)."),
    "demo": ("riskpool.commands.demo",
             "Build the demo book, pool, simulation, deal, allocation and report; open the "
             "dashboard."),
}

_STYLE = {"add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None}


def load_command(name: str) -> Command:
    """Import the module of command ``name`` (from :data:`COMMANDS`) and return the command."""
    area = typer.Typer(**_STYLE)  # type: ignore[arg-type]
    importlib.import_module(COMMANDS[name][0]).register(area)
    built = typer.main.get_command(area)
    if isinstance(built, TyperGroup):  # the module added several commands
        return built.commands[name]
    assert built.name == name, (built.name, name)
    return built


class Commands(TyperGroup):
    """The top-level group: commands of :data:`COMMANDS` are loaded when first looked up;
    the command list in ``--help`` comes from :data:`COMMANDS` without loading them."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*self.commands, *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=200)) for name, cmd in self.commands.items()
                if name not in COMMANDS and not cmd.hidden]
        rows += [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _riskpool() -> None:
    """The group's own callback (no options of its own)."""


app = typer.Typer(
    name="riskpool",
    help=(
        "riskpool — treasury platform for a consumer-microloan book: the loan book in DuckDB, "
        "pools, correlated-default Monte Carlo, ABS waterfalls, partner allocation and risk "
        "dispersion."
    ),
    cls=Commands,
    callback=_riskpool,
    no_args_is_help=True,
    **_STYLE,  # type: ignore[arg-type]
)


@app.command("version")
def version() -> None:
    """Print the code version recorded with every run."""
    typer.echo(code_version())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits 0, 1 (aborted) or 2 (bad input or usage)."""
    settings.before_numpy_import()  # before any command module imports numpy
    try:
        app(args=argv, prog_name="riskpool", standalone_mode=True)
    except RiskpoolError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        typer.echo(f"error: {exc.strerror}: {exc.filename}", err=True)
        sys.exit(2)
    except Exception as exc:
        if not _is_unreadable_file(exc):
            raise
        typer.echo(f"error: {exc} (the file is damaged or cut short, or its disk is full or "
                   "read-only; restore it from a copy)", err=True)
        sys.exit(2)


def _is_unreadable_file(exc: Exception) -> bool:
    """Whether ``exc`` is DuckDB's IOException: a database or data file it cannot read or
    write (a truncated copy, a full disk), which it finds only when a query reaches the
    missing block. Looked up in ``sys.modules``: a command that raised it imported duckdb,
    and ``riskpool --help`` must not import it."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.IOException)
