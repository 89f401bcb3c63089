r"""``riskpool report``, ``riskpool dashboard`` and ``riskpool users``.

Exit codes of ``riskpool report`` (for a scheduler):
  0  report written and recorded
  2  bad input (unknown partner, an as-of that is not a month-end of the book, …)
  3  another report run holds the output directory's lock — nothing was done
  4  the database is being written by another process — nothing was recorded; retry later

Crontab (the 2nd of each month at 06:00, for the previous month-end; the default database,
see ``portfolio.settings``)::

    0 6 2 * * cd /srv/riskpool && .venv/bin/riskpool report \
        --as-of "$(date -d "$(date +\%Y-\%m-01) -1 day" +\%F)" --out reports/ >> reports/cron.log 2>&1
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from dashboards.access import DataUpdating
from dashboards.auth import add_user, load_users, new_password, remove_user
from dashboards.reports import ReportLocked, write_report
from portfolio import settings
from portfolio.errors import StoreLocked, ValidationError, must_be
from portfolio.montecarlo.distributed import check_cluster_flags
from portfolio.store import open_store
from portfolio.store.allocations import partner_ids
from riskpool.commands.options import DEFAULT_DB, DbOption, UsersOption
from riskpool.commands.progress import QuietOption, working

EXIT_LOCKED = 3
EXIT_DB_BUSY = 4

users_app = typer.Typer(help="Dashboard users (scrypt-hashed passwords in a TOML file).",
                        no_args_is_help=True)



def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(must_be(flag, "a date YYYY-MM-DD", value)) from None


def report(
    as_of: Annotated[str, typer.Option("--as-of", help="Month-end date of the report.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    db: DbOption = DEFAULT_DB,
    partner: Annotated[str | None, typer.Option(
        "--partner", help="Write this partner's own report only.")] = None,
    run: Annotated[int | None, typer.Option(
        "--run", help="Report on this simulation run (default: the one pinned by the first "
        "report for this as-of date, else the latest).")] = None,
    allocation: Annotated[int | None, typer.Option(
        "--allocation", help="Report on this allocation (default: pinned, else the "
        "latest).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Write the HTML and XLSX portfolio report for an as-of date (cron-ready). The first
    report for a date pins the simulation run and allocation it used; later reports for that
    date use the same ones (byte for byte the same content) unless --run/--allocation say
    otherwise."""
    day = _date(as_of, "--as-of")
    if out.exists() and not out.is_dir():
        raise ValidationError(must_be("--out", "a directory for the report's files (or a new "
                                      "path)", f"{out} (an existing file)"))
    try:
        with working(f"writing the report for {day}", quiet=quiet):
            outcome = write_report(db, day, out, partner=partner, run_id=run,
                                   allocation_id=allocation)
    except ReportLocked as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_LOCKED) from None
    except (StoreLocked, DataUpdating) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_DB_BUSY) from None
    t = outcome.target
    if t is not None:
        typer.echo(f"on simulation run {t.run_id if t.run_id is not None else '—'} and "
                   f"allocation {t.allocation_id if t.allocation_id is not None else '—'} "
                   f"({t.how})")
    typer.echo(f"report run {outcome.run_id}: {outcome.html_path} and {outcome.xlsx_path} "
               f"({outcome.seconds:.1f} s; content sha256 {outcome.content_sha256[:12]})")


def app_path() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "dashboards" / "app.py"


def check_port(port: int) -> None:
    """``--port``: a TCP port a server can listen on."""
    if not 1 <= port <= 65535:
        raise ValidationError(must_be("--port", "a TCP port in [1, 65535]", port))


def run_dashboard(db: Path, port: int = 8501, address: str = "127.0.0.1",
                  users: Path | None = None, scheduler: str | None = None) -> None:
    """Start the Streamlit server in this process (blocks until stopped). ``scheduler``: the
    Dask scheduler the Dispersion page and the report compute runs recorded from summaries
    on (``settings.dask_scheduler``)."""
    from streamlit.web import cli as stcli

    check_port(port)
    if not db.exists():
        raise ValidationError(must_be("--db", "an existing database (run `riskpool demo`)",
                                      str(db)))
    if scheduler is not None:
        check_cluster_flags(None, scheduler)
        settings.use_dashboard_scheduler(scheduler.strip())
    settings.use_dashboard_files(db, users)
    args = ["run", str(app_path()), "--server.port", str(port), "--server.address", address,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer"]
    stcli.main(args=args, prog_name="streamlit", standalone_mode=False)


def dashboard(
    db: DbOption = DEFAULT_DB,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to bind.")] = "127.0.0.1",
    users: UsersOption = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="A Dask scheduler address (e.g. tcp://10.0.0.5:8786; default: "
        "RISKPOOL_SCHEDULER): the Dispersion page and the report compute a run recorded from "
        "summaries (riskpool simulate --workers) there.")] = None,
) -> None:
    """Start the dashboard (log in with a user from `riskpool users add`)."""
    check_port(port)
    typer.echo(f"dashboard: http://{address}:{port}  (database {db}; Ctrl-C to stop)")
    run_dashboard(db, port, address, users, scheduler)


def _recorded_partners(db: str | Path) -> list[str]:
    """The partner ids recorded in ``db`` (none if the database does not exist yet)."""
    if not Path(db).exists():
        return []
    with open_store(db, read_only=True) as store:
        return partner_ids(store.con)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="treasury | partner:<partner id>")],
    db: DbOption = DEFAULT_DB,
    users: UsersOption = None,
    password: Annotated[str | None, typer.Option(
        "--password", help="Password (default: generate one and print it).")] = None,
) -> None:
    """Add (or reset) a dashboard user."""
    path = users or settings.users_path(db)
    if password is not None and not password:  # e.g. --password "$PW" with PW unset
        raise ValidationError(must_be("--password", "a password of at least 8 characters, or "
                                      "no --password to have one generated", password))
    pw = password or new_password()
    add_user(path, username, role, pw, partners=_recorded_partners(db))
    typer.echo(f"user {username} ({role}) saved in {path}"
               + ("" if password else f"; password: {pw}"))


@users_app.command("remove")
def users_remove(
    username: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = DEFAULT_DB,
    users: UsersOption = None,
) -> None:
    """Remove a dashboard user."""
    path = users or settings.users_path(db)
    if not remove_user(path, username):
        raise ValidationError(must_be("username", f"a user in {path}", username))
    typer.echo(f"user {username} removed from {path}")


@users_app.command("list")
def users_list(db: DbOption = DEFAULT_DB, users: UsersOption = None) -> None:
    """List dashboard users and roles (never passwords)."""
    path = users or settings.users_path(db)
    for u in load_users(path).values():
        typer.echo(f"{u.username}\t{u.role}")


def register(app: typer.Typer) -> None:
    """Add ``report``, ``dashboard`` and the ``users`` sub-app."""
    app.command("report")(report)
    app.command("dashboard")(dashboard)
    app.add_typer(users_app, name="users")


__all__ = ["check_port", "register", "run_dashboard"]
