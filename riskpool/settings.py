"""Settings shared by the CLI and the dashboard: database path and code version."""

from __future__ import annotations

from portfolio.store.core import default_db_path
from portfolio.version import code_version

__all__ = ["code_version", "default_db_path"]
