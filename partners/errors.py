"""Errors of the partners layer (registry files, rules, allocation, dispersion).

All subclass ``portfolio.errors.ValidationError`` (a ``ValueError``), so the CLI reports them
as one paragraph and exits 2. Messages follow ``portfolio.errors.must_be``: the field, the
allowed values, what was received and where.
"""

from __future__ import annotations

from portfolio.errors import ValidationError
from portfolio.validation import SchemaError


class PartnerFileError(SchemaError):
    """``partners.toml`` breaks its schema: ``PartnerFileError(field_path, allowed, got, where)``
    ("WHERE: `partner[2].capacity` must be …; got inf")."""


class AllocationError(ValidationError):
    """A request the optimiser cannot serve (bad flags, no eligible loans, no EL source)."""


class InfeasibleAllocation(AllocationError):
    """The constraints cannot all hold; ``binding`` names the ones that must give way."""

    def __init__(self, message: str, binding: list[str]) -> None:
        self.binding = binding
        super().__init__(message)


class AllocationCheckFailed(AllocationError):
    """The independent loan-level re-check found a breach; nothing is written."""

    def __init__(self, message: str, breaches: list[dict[str, object]]) -> None:
        self.breaches = breaches
        super().__init__(message)


class DispersionError(ValidationError):
    """Inputs of the dispersion (run, allocation, structure) that do not fit together."""


class CapitalFileError(SchemaError):
    """A SEC-ERBA ratings and mapping-table file breaks its schema (field path, allowed, got,
    file)."""
