"""Every error the portfolio layer raises for bad input or state.

Messages name the field, the allowed values, what was received and where, e.g.
"`apr` must be in [0, 0.24]; got 1.5 at rows 17, 204 (looks like a percent: use 0.015)".
The CLI turns any ``RiskpoolError`` into a one-paragraph message and exit code 2.
"""

from __future__ import annotations


class RiskpoolError(ValueError):
    """Base class for bad user input or state; the CLI reports these and exits 2."""


class ValidationError(RiskpoolError):
    """A value (tape row, TOML field, CLI flag) breaks a documented rule."""


class TapeRejected(ValidationError):
    """A tape had bad rows and was refused whole; ``problems`` lists every one."""

    def __init__(self, source: str, problems: list[str], n_bad_rows: int) -> None:
        self.source = source
        self.problems = problems
        self.n_bad_rows = n_bad_rows
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            f"{source}: refused, {n_bad_rows} bad row(s); nothing was loaded "
            f"(use --allow-rejects to load the good rows):\n  {shown}{more}"
        )


class StoreLocked(RiskpoolError):
    """Another process holds the DuckDB file."""


class NotFound(RiskpoolError):
    """A pool, run, allocation or partner id that does not exist."""


class StoredFileDamaged(RiskpoolError):
    """A file riskpool wrote beside the database (a run's paths) that can no longer be read
    as written: cut short, overwritten, or another file put in its place."""


class SchemaMismatch(RiskpoolError):
    """A database of another schema version that cannot be used as it is (the message says
    how to migrate or rebuild it)."""


def must_be(field: str, allowed: str, got: object, where: str = "") -> str:
    """The one template for a bad value: "`field` must be ALLOWED; got GOT[ at WHERE]"."""
    at = f" at {where}" if where else ""
    return f"`{field}` must be {allowed}; got {got!r}{at}"
