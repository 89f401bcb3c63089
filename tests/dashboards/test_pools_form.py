"""The Pools page's eligibility form offers every key a criteria file may hold, starts on the
shipped example file (the demo's pool) and selects the same loans as the file does through
``create_pool`` (what ``riskpool pool create --criteria`` runs)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pages_helpers import metric, no_errors, page

from dashboards import criteria_form
from portfolio.book.pools import (
    CRITERIA_SCHEMA,
    Criteria,
    create_pool,
    get_pool,
    load_criteria,
    parse_criteria,
    select_pool,
)
from portfolio.store import open_store
from portfolio.store.pools import snapshot_candidates

# each key of the criteria file -> the page's control
CONTROLS = {
    "description": "elig_description", "score_min": "elig_score_min",
    "dpd_max": "elig_dpd_max", "terms": "elig_terms", "repayment_types": "elig_rtypes",
    "regions_include": "elig_regions_include", "regions_exclude": "elig_regions_exclude",
    "principal_min": "elig_principal_min", "principal_max": "elig_principal_max",
    "balance_min": "elig_balance_min", "balance_max": "elig_balance_max",
    "originated_from": "elig_originated_from", "originated_to": "elig_originated_to",
    "apr_min": "elig_apr_min", "apr_max": "elig_apr_max",
    "max_obligor_share": "elig_obligor", "max_region_share": "elig_region",
}


def _schema_keys() -> set[str]:
    keys = set()
    for name, f in CRITERIA_SCHEMA.fields.items():
        inner = getattr(f.spec, "fields", None)
        keys |= set(inner) if inner is not None else {name}
    return keys


def _file_pool(db, criteria: Criteria, cutoff: str) -> int:
    store = open_store(db)
    try:
        return create_pool(store, "from the file", criteria, dt.date.fromisoformat(cutoff)).n_loans
    finally:
        store.close()


def _selected(db, criteria: Criteria, cutoff: str) -> int:
    """Loans the criteria select (``select_pool``, what ``create_pool`` stores; 0 allowed)."""
    day = dt.date.fromisoformat(cutoff)
    store = open_store(db, read_only=True)
    try:
        return select_pool(snapshot_candidates(store.con, day), criteria, day).n_loans
    finally:
        store.close()


def _form(at) -> Criteria:
    return parse_criteria(at.session_state["elig_criteria"], "the form")


def test_every_schema_key_has_a_control() -> None:
    assert set(criteria_form.FORM_KEYS) == _schema_keys() == set(CONTROLS)
    # every field of the criteria object is a key of the file
    assert {f.name for f in dataclasses.fields(Criteria)} == _schema_keys()


def test_form_defaults_are_the_example_file_and_select_its_pool(writable_book,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("RISKPOOL_DB", str(writable_book.db))
    at = page("pools", "treasury")
    no_errors(at)
    file_criteria = load_criteria(criteria_form.EXAMPLE_CRITERIA)
    assert _form(at) == file_criteria  # the same criteria object as the TOML file
    # the same loans: the form's count equals the file's selection; the file's obligor limit
    # (0.1% of the pool) is for the demo's 200,000-loan book and leaves no loan of the small
    # fixture book, so also with the fixture's looser limit, through create_pool (what
    # `riskpool pool create --criteria` stores)
    n_file = _selected(writable_book.db, file_criteria, writable_book.as_of)
    # no saved pool has the file's criteria: the selection runs on Preview, then live
    assert not [m for m in at.metric if m.label == "Eligible loans"]
    at.button(key="elig_preview").click().run()
    assert metric(at, "Eligible loans") == f"{n_file:,}"
    at.number_input(key="elig_obligor").set_value(0.05).run()
    loose = dataclasses.replace(file_criteria, max_obligor_share=0.05)
    assert _form(at) == loose
    store = open_store(writable_book.db, read_only=True)
    try:  # the fixture's demo pool: the same file with the same override
        demo_pool = get_pool(store, writable_book.pool_id)
    finally:
        store.close()
    n = _file_pool(writable_book.db, loose, writable_book.as_of)
    assert n == demo_pool.n_loans and demo_pool.criteria == loose
    assert n > 500  # the check compares a real selection, not two empty ones
    assert metric(at, "Eligible loans") == f"{n:,}"
    # the demo pool's criteria: its figures as saved are shown (the selection is not rerun)
    assert any(f"selected pool {writable_book.pool_id}" in c.value for c in at.caption)


def test_every_control_reaches_the_criteria(writable_book, monkeypatch) -> None:
    monkeypatch.setenv("RISKPOOL_DB", str(writable_book.db))
    at = page("pools", "treasury")
    at.button(key="elig_preview").click().run()  # live from here on
    regions = list(at.multiselect(key="elig_regions_include").options)
    assert len(regions) >= 5 and "浙江" in regions
    chosen = {
        "description": "form test", "score_min": 550, "dpd_max": 30, "terms": [6, 9, 12],
        "repayment_types": ["level_annuity", "equal_principal", "interest_only"],
        "regions_include": regions[:8], "regions_exclude": [regions[0]],
        "principal_min": 1000.0, "principal_max": 40000.0, "balance_min": 50.0,
        "balance_max": 30000.0, "originated_from": dt.date(2025, 1, 1),
        "originated_to": dt.date(2026, 3, 31), "apr_min": 0.05, "apr_max": 0.2,
        "max_obligor_share": 0.2, "max_region_share": 0.9,
    }
    for key, value in chosen.items():
        control = CONTROLS[key]
        for getter in (at.text_input, at.number_input, at.multiselect, at.date_input):
            found = [w for w in getter if w.key == control]
            if found:
                found[0].set_value(value)
                break
        else:
            raise AssertionError(f"no control {control} for {key}")
    at.run()
    no_errors(at)
    got = _form(at)
    want = parse_criteria({"description": chosen["description"], "eligibility": {
        k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in chosen.items()
        if k not in ("description", "max_obligor_share", "max_region_share")},
        "concentration": {"max_obligor_share": 0.2, "max_region_share": 0.9}})
    assert got == want
    assert got.regions_exclude == (regions[0],) and got.originated_to == dt.date(2026, 3, 31)
    n = _selected(writable_book.db, want, writable_book.as_of)
    assert n > 50
    assert metric(at, "Eligible loans") == f"{n:,}"


def test_an_emptied_limit_is_no_limit(writable_book, monkeypatch) -> None:
    monkeypatch.setenv("RISKPOOL_DB", str(writable_book.db))
    at = page("pools", "treasury")
    at.number_input(key="elig_apr_max").set_value(None)
    at.multiselect(key="elig_terms").set_value([])
    at.run()
    no_errors(at)
    got = _form(at)
    assert got.apr_max is None and got.terms is None  # left out: every APR, every term
    assert "apr_max" not in at.session_state["elig_criteria"]["eligibility"]
    assert got.score_min == 600  # the rest unchanged


@pytest.mark.parametrize("key", ["terms", "repayment_types", "regions_include"])
def test_form_defaults_round_trip(key) -> None:
    crit = load_criteria(criteria_form.EXAMPLE_CRITERIA)
    values = criteria_form.form_defaults(crit)
    assert parse_criteria(criteria_form.criteria_dict(values)) == crit
    values[key] = []
    assert getattr(parse_criteria(criteria_form.criteria_dict(values)), key) is None
