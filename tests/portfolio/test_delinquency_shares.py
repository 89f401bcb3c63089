"""``delinquency_shares``: each delinquent bucket's balance over the outstanding balance (the
five active buckets; written-off balance left out), checked against a direct division per row
on random tables, and the 30+ DPD share is their sum, within [0, 1]."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from portfolio.book.analytics import delinquency_shares

BUCKETS = ("current", "M1", "M2", "M3", "default", "written_off")
amount = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(*[amount] * len(BUCKETS)), min_size=1, max_size=12))
def test_shares_are_each_bucket_over_the_outstanding_balance(rows) -> None:
    wide = pd.DataFrame({"as_of": pd.date_range("2026-01-31", periods=len(rows), freq="ME")})
    for i, b in enumerate(BUCKETS):
        wide[f"{b}_balance"] = [r[i] for r in rows]
    out = delinquency_shares(wide)
    for k, r in enumerate(rows):
        outstanding = sum(r[:5])  # current, M1, M2, M3, default
        for i, b in enumerate(("M1", "M2", "M3", "default"), start=1):
            if outstanding > 0:
                assert np.isclose(out.loc[k, b], r[i] / outstanding, rtol=1e-12, atol=0)
            else:
                assert np.isnan(out.loc[k, b])
        if outstanding > 0:
            assert -1e-12 <= out.loc[k, "dpd30"] <= 1 + 1e-12
            assert np.isclose(out.loc[k, "dpd30"], sum(r[1:5]) / outstanding, rtol=1e-9)
