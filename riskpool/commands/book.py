"""CLI commands of this area (registered by riskpool.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the app (filled in by the area's change)."""
    from riskpool.commands.book_analytics import book_app

    app.add_typer(book_app, name="book", help="Performance analytics of the loan book.")
