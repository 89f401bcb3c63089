"""The Pools page's eligibility form: one control per key of the criteria file.

``CRITERIA_SCHEMA`` (``portfolio.book.pools``) is the list of what a pool's criteria can say;
:data:`FORM_KEYS` names the same keys, so the form offers every one of them
(``tests/dashboards/test_pools_form.py`` checks the two lists agree). The form starts from
the shipped example file (``examples/criteria.toml``, the demo's pool), so with its defaults
it selects exactly the demo's pool.

A limit left empty means "no limit" (the key is left out, as in the file); an empty list of
terms, repayment types or included regions means "every one".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from portfolio.book.pools import CONCENTRATION_KEYS, ELIGIBILITY_KEYS, Criteria, load_criteria

EXAMPLE_CRITERIA = Path(__file__).resolve().parent.parent / "examples" / "criteria.toml"

FORM_KEYS: tuple[str, ...] = ("description", *ELIGIBILITY_KEYS, *CONCENTRATION_KEYS)
_LISTS = ("terms", "repayment_types", "regions_include", "regions_exclude")


def example_criteria(path: str | Path = EXAMPLE_CRITERIA) -> Criteria:
    """The criteria the form starts from (the demo's pool)."""
    return load_criteria(path)


def form_defaults(criteria: Criteria) -> dict[str, Any]:
    """One default per form control (``FORM_KEYS``): ``None`` for an unset limit, a list for
    the lists (empty = every one), repayment types by their English names."""
    out: dict[str, Any] = {}
    for key in FORM_KEYS:
        value = getattr(criteria, key)
        if key == "repayment_types":
            value = None if value is None else [t.value for t in value]
        elif key in _LISTS:
            value = None if value is None else list(value)
        out[key] = [] if key in _LISTS and value is None else value
    return out


def criteria_dict(values: dict[str, Any]) -> dict[str, Any]:
    """The form's values (``FORM_KEYS``) in the criteria file's layout: empty limits and
    empty lists left out, dates as ISO text (what ``parse_criteria`` reads)."""
    elig: dict[str, Any] = {}
    for key in ELIGIBILITY_KEYS:
        value = values.get(key)
        if value is None or (key in _LISTS and len(value) == 0):
            continue
        if isinstance(value, dt.date):
            value = value.isoformat()
        elif key in _LISTS:
            value = list(value)
        elig[key] = value
    conc = {k: values[k] for k in CONCENTRATION_KEYS if values.get(k) is not None}
    out: dict[str, Any] = {"eligibility": elig, "concentration": conc}
    if values.get("description"):
        out["description"] = str(values["description"])
    return out
