"""Fixtures of the partners tests (helpers live in ``partners_fixtures``)."""

from __future__ import annotations

import pytest
from partners_fixtures import make_loans, registry_doc

from partners.registry import Registry, parse_registry
from portfolio.loans.arrays import LoanArrays


@pytest.fixture
def registry() -> Registry:
    return parse_registry(registry_doc(), "test-partners")


@pytest.fixture
def loans() -> LoanArrays:
    return make_loans()
