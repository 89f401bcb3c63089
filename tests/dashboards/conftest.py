"""One small demo book for every dashboard test, built once per test session through the
real pipeline (``riskpool.commands.demo.build_demo``: 3,000 loans, 24 months, a pool, a
calibration, an allocation to the example partners, a 500-path run carrying the partners'
shares, the CN example deal, reports and two users).

With pytest-xdist the workers share one build: the first takes a file lock and builds, the
others wait and reuse it. Tests that write (save a pool, record a report) work on a copy.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_helpers import streamlit_app

from dashboards.auth import add_user

N_LOANS = 3000
N_PATHS = 500
PARTNER = "bank_east"


@dataclass(frozen=True)
class DemoBook:
    db: Path
    pool_id: int
    allocation_id: int
    run_id: int
    users_file: Path
    passwords: dict[str, str]  # username -> password
    as_of: str
    report_dir: Path  # the demo's treasury and partner reports for as_of


def _build(root: Path) -> dict:
    from riskpool.commands.demo import DemoParams, build_demo

    params = DemoParams(n_loans=N_LOANS, n_paths=N_PATHS, max_obligor_share=0.05,
                        demo_partner=PARTNER)
    result = build_demo(root / "demo.duckdb", params, users_file=root / "users.toml",
                        report_dir=root / "reports")
    return {"db": str(result.db), "pool_id": result.pool_id,
            "allocation_id": result.allocation_id, "run_id": result.run_id,
            "users_file": str(root / "users.toml"),
            "passwords": {k: v[1] for k, v in result.users.items()}, "as_of": params.as_of,
            "report_dir": str(root / "reports")}


@pytest.fixture(scope="session")
def demo_book(tmp_path_factory: pytest.TempPathFactory) -> DemoBook:
    # xdist workers of one run share the run's base directory; a plain run uses its own
    run_uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if run_uid else base) / f"riskpool_dashboard_book_{run_uid or 'local'}"
    shared.mkdir(exist_ok=True)
    info_file = shared / "book.json"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not info_file.exists():
                info_file.write_text(json.dumps(_build(shared)))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    info = json.loads(info_file.read_text())
    return DemoBook(Path(info["db"]), info["pool_id"], info["allocation_id"], info["run_id"],
                    Path(info["users_file"]), info["passwords"], info["as_of"],
                    Path(info["report_dir"]))


@pytest.fixture
def writable_book(demo_book: DemoBook, tmp_path: Path) -> DemoBook:
    """A private copy of the demo database; its run files (named relative to the database)
    are the shared build's, through a link."""
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_book.db, db)
    (tmp_path / "runs").symlink_to(Path(demo_book.db).parent / "runs", target_is_directory=True)
    return DemoBook(db, demo_book.pool_id, demo_book.allocation_id, demo_book.run_id,
                    demo_book.users_file, demo_book.passwords, demo_book.as_of,
                    demo_book.report_dir)


@pytest.fixture
def dashboard_env(demo_book: DemoBook, monkeypatch: pytest.MonkeyPatch) -> DemoBook:
    monkeypatch.setenv("RISKPOOL_DB", str(demo_book.db))
    monkeypatch.setenv("RISKPOOL_USERS", str(demo_book.users_file))
    return demo_book


@pytest.fixture
def server(demo_book: DemoBook, tmp_path: Path) -> Iterator[str]:
    """The browser tests' dashboard (``browser_helpers.streamlit_app``) on the demo book, or
    on ``RISKPOOL_BROWSER_DB`` (e.g. the demo book for the README's screenshots), with two
    users of known passwords: ``treasury_t`` / ``treasury-pass`` and ``partner_t`` /
    ``partner-pass`` (the demo partner); yields its URL."""
    db = Path(os.environ.get("RISKPOOL_BROWSER_DB", demo_book.db)).resolve()
    users = tmp_path / "users.toml"
    add_user(users, "treasury_t", "treasury", "treasury-pass")
    add_user(users, "partner_t", f"partner:{PARTNER}", "partner-pass")
    with streamlit_app(db, users, tmp_path / "streamlit.log") as url:
        yield url
