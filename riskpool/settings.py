"""Settings shared by the CLI and the dashboard: database path and code version."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from riskpool import __version__


@functools.cache
def code_version() -> str:
    """Package version plus the git commit when run from a checkout (recorded with runs)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__
