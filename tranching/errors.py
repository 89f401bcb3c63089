"""Every error the tranching layer raises for bad input.

Messages follow the one template of ``portfolio.errors.must_be``: the field, the allowed
values, what was received and where ("`tranches[2].coupon` must be in [0, 1]; got 3.5 in
deal.toml"). The CLI turns a ``DealError`` into a one-paragraph message and exit code 2.
"""

from __future__ import annotations

from portfolio.errors import ValidationError, must_be
from portfolio.validation import SchemaError

__all__ = ["DealError", "DealFileError", "RatingTableError", "SizingError", "must_be"]


class DealError(ValidationError):
    """A deal structure (TOML file or ``Deal`` object) breaks a documented rule."""


class DealFileError(DealError, SchemaError):
    """A deal's field breaks its schema or a rule tying fields together:
    ``DealFileError(field_path, allowed, got, where)`` ("WHERE: `tranches[1].coupon` must be …;
    got 7"). A ``DealError``, so every ``except DealError`` still catches it."""


class RatingTableError(SchemaError):
    """A rating table file is malformed: ``field_path``, ``allowed``, ``got``, ``where``."""


class SizingError(ValidationError):
    """A sizing request cannot be met (e.g. no size meets the target)."""
