"""CLI commands of this area (registered by riskpool.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the app (filled in by the area's change)."""
