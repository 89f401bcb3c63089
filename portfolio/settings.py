"""Settings: every default path and every environment variable riskpool reads, in one place.

The CLI (``riskpool/``), the dashboard and the report (``dashboards/``), the store and the
benchmarks read them from here; no other module reads ``os.environ``
(``tests/test_layers.py`` holds that). This module imports nothing heavy (not numpy), so a
program can call :func:`before_numpy_import` first.

Files, all beside the database by default:

- the database: ``data/riskpool.duckdb`` (:data:`DEFAULT_DB`), or ``RISKPOOL_DB``, or
  ``--db PATH`` on every command;
- ``users.toml``: the dashboard's users (:func:`users_path`), or ``RISKPOOL_USERS``, or
  ``--users PATH``;
- ``partner_keys.toml``: the per-partner keys that mask borrower ids in partner exports
  (:func:`partner_keys_path`), or ``RISKPOOL_PARTNER_KEYS``;
- ``runs/``: the files of recorded runs (:func:`runs_dir`);
- ``reports/``: the reports ``riskpool demo`` writes (:func:`reports_dir`; ``riskpool report``
  takes ``--out``).

Environment variables:

=================================== =========================================================
``RISKPOOL_DB``                     the database file (default ``data/riskpool.duckdb``)
``RISKPOOL_USERS``                  the dashboard users file (default ``users.toml`` beside
                                    the database)
``RISKPOOL_PARTNER_KEYS``           the partner export keys file (default
                                    ``partner_keys.toml`` beside the database)
``RISKPOOL_THREADS``                worker threads of the local Monte Carlo (default: the
                                    CPU count); the numbers never depend on it
``RISKPOOL_SCHEDULER``              the dashboard's Dask scheduler (``tcp://host:port``):
                                    the Dispersion page and the report compute a run
                                    recorded from summaries there (default: none)
``RISKPOOL_BENCH_QUICK``            ``1``: the benchmarks run at their smaller sizes
``RISKPOOL_TEST_PAUSE_AFTER_INSERT`` test hook: seconds a load sleeps before its COMMIT
``RISKPOOL_TEST_PAUSE_MARKER``      test hook: a file created when that pause begins
``NUMPY_MADVISE_HUGEPAGE``          set to ``0`` by :func:`before_numpy_import` at program
                                    start (numpy's own setting, read once at its import)
=================================== =========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from portfolio.errors import ValidationError, must_be

DB_ENV = "RISKPOOL_DB"
USERS_ENV = "RISKPOOL_USERS"
PARTNER_KEYS_ENV = "RISKPOOL_PARTNER_KEYS"
THREADS_ENV = "RISKPOOL_THREADS"
SCHEDULER_ENV = "RISKPOOL_SCHEDULER"
BENCH_QUICK_ENV = "RISKPOOL_BENCH_QUICK"
PAUSE_ENV = "RISKPOOL_TEST_PAUSE_AFTER_INSERT"
PAUSE_MARKER_ENV = "RISKPOOL_TEST_PAUSE_MARKER"
NUMPY_HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"

DEFAULT_DB = Path("data/riskpool.duckdb")
"""The database when neither ``--db`` nor ``RISKPOOL_DB`` is given (relative to the
working directory)."""
DATA_DIR = DEFAULT_DB.parent
"""The default database's directory (``data/``)."""
USERS_FILE = "users.toml"
PARTNER_KEYS_FILE = "partner_keys.toml"
RUNS_DIR = "runs"
REPORTS_DIR = "reports"


def before_numpy_import() -> None:
    """Set the environment numpy reads once, at its import; call it where a program starts,
    before anything imports numpy (the CLI's ``main``, the benchmark scripts).

    ``NUMPY_MADVISE_HUGEPAGE=0`` (numpy's documented switch, "Global state" in its reference)
    stops numpy from advising transparent huge pages for every new array of 4 MiB or more.
    With ``/sys/kernel/mm/transparent_hugepage/enabled`` on ``madvise``, the Monte Carlo, the
    allocation and the waterfall, which touch many fresh million-element temporaries once
    each, otherwise pay a 2 MiB zeroing per page fault. A value already in the environment
    is kept. Child processes (Dask workers, the dashboard's server) inherit it. No number
    depends on it."""
    os.environ.setdefault(NUMPY_HUGEPAGE_ENV, "0")


def db_path() -> Path:
    """The database: ``RISKPOOL_DB``, else :data:`DEFAULT_DB`."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def users_path(db: str | Path) -> Path:
    """The dashboard users file: ``RISKPOOL_USERS``, else ``users.toml`` beside ``db``."""
    env = os.environ.get(USERS_ENV)
    return Path(env) if env else Path(db).with_name(USERS_FILE)


def partner_keys_path(db: str | Path) -> Path:
    """The per-partner export keys (``partners.masking``): ``RISKPOOL_PARTNER_KEYS``, else
    ``partner_keys.toml`` beside ``db``."""
    env = os.environ.get(PARTNER_KEYS_ENV)
    return Path(env) if env else Path(db).with_name(PARTNER_KEYS_FILE)


def runs_dir(db: str | Path) -> Path:
    """The directory of the recorded runs' files: ``runs/`` beside the database (absolute)."""
    return Path(db).resolve().parent / RUNS_DIR


def reports_dir(db: str | Path) -> Path:
    """Where ``riskpool demo`` writes its reports: ``reports/`` beside the database."""
    return Path(db).parent / REPORTS_DIR


def threads() -> int:
    """Worker threads of the local Monte Carlo: ``RISKPOOL_THREADS`` (a whole number >= 1),
    else the CPU count. Each block of paths has its own seed, so the numbers never depend
    on it."""
    value = os.environ.get(THREADS_ENV)
    if not value:
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValidationError(must_be(THREADS_ENV, "a whole number >= 1 (an environment "
                                      "variable)", value))
    return n


def dask_scheduler() -> str | None:
    """The Dask scheduler the dashboard computes on (``RISKPOOL_SCHEDULER``, an address such
    as ``tcp://10.0.0.5:8786``), or None when unset or blank: the dashboard then computes
    everything in its own process and points to the command that uses a cluster."""
    value = (os.environ.get(SCHEDULER_ENV) or "").strip()
    return value or None


def use_dashboard_scheduler(scheduler: str) -> None:
    """Point the dashboard of this process (and its children) at the Dask scheduler
    ``scheduler``: :func:`dask_scheduler` reads it back."""
    os.environ[SCHEDULER_ENV] = scheduler


def use_dashboard_files(db: Path, users: Path | None) -> None:
    """Point the dashboard of this process (and its children) at ``db`` and ``users``: the
    Streamlit script reads them back with :func:`db_path` and :func:`users_path`."""
    os.environ[DB_ENV] = str(db.resolve())
    if users is not None:
        os.environ[USERS_ENV] = str(users.resolve())


def bench_quick() -> bool:
    """``RISKPOOL_BENCH_QUICK=1``: the benchmarks run at their smaller sizes."""
    return os.environ.get(BENCH_QUICK_ENV) == "1"


def ingest_pause() -> tuple[float, Path | None] | None:
    """The load test hook: ``(seconds, marker file)`` from ``RISKPOOL_TEST_PAUSE_AFTER_INSERT``
    and ``RISKPOOL_TEST_PAUSE_MARKER``, or None when the first is unset."""
    seconds = os.environ.get(PAUSE_ENV)
    if not seconds:
        return None
    marker = os.environ.get(PAUSE_MARKER_ENV)
    return float(seconds), Path(marker) if marker else None


__all__ = [
    "BENCH_QUICK_ENV", "DATA_DIR", "DB_ENV", "DEFAULT_DB", "NUMPY_HUGEPAGE_ENV", "PAUSE_ENV",
    "PAUSE_MARKER_ENV", "REPORTS_DIR", "RUNS_DIR", "THREADS_ENV", "USERS_ENV", "USERS_FILE",
    "bench_quick", "before_numpy_import", "db_path", "ingest_pause", "reports_dir", "runs_dir",
    "threads", "use_dashboard_files", "users_path",
]
