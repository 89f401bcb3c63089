"""Progress bars of the long commands (``generate``, ``ingest``, ``simulate``, ``report``).

A bar is drawn with ``rich`` on **stderr** (stdout stays the command's result, fit for a pipe or
a file), and only when stderr is a terminal: under cron, in a pipe or in a test nothing is
drawn. ``--quiet`` turns it off on a terminal too. The bar goes away when the work ends
(``transient``), so the terminal keeps only the command's own output.

:func:`progress_bar` yields an ``update(fraction)`` function (``None`` when no bar is drawn)
that library code calls as work completes; it may be called from worker threads (the
simulation's blocks report from a thread pool). Work without a measurable fraction (a load in
one transaction) shows a pulsing bar with the elapsed time (:func:`working`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

__all__ = ["QuietOption", "progress_bar", "working"]

QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar (none is drawn anyway when stderr is not a "
    "terminal).")]


def _enabled(quiet: bool, stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return not quiet and callable(isatty) and bool(isatty())


@contextlib.contextmanager
def progress_bar(label: str, *, quiet: bool = False, stream: TextIO | None = None,
                 total: float | None = 1.0) -> Iterator[Callable[[float], None] | None]:
    """A bar labelled ``label`` on ``stream`` (default stderr) while the block runs; yields
    ``update(fraction)`` (fraction of ``total`` done, clipped to [0, total]) or ``None``
    when no bar is drawn. ``total=None``: a pulsing bar with the elapsed time."""
    out = sys.stderr if stream is None else stream
    if not _enabled(quiet, out):
        yield None
        return
    console = Console(file=out, force_terminal=True)
    columns = [TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns.append(TaskProgressColumn())
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)

        def update(fraction: float) -> None:
            if total is not None:
                bar.update(task, completed=min(max(float(fraction), 0.0), total))

        yield update
        if total is not None:
            bar.update(task, completed=total)


@contextlib.contextmanager
def working(label: str, *, quiet: bool = False, stream: TextIO | None = None) -> Iterator[None]:
    """A pulsing bar with the elapsed time while the block runs (work with no fraction)."""
    with progress_bar(label, quiet=quiet, stream=stream, total=None):
        yield
