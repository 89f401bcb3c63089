"""A pool as a struct of arrays: one read-only numpy array per field, one row per loan.

The Monte Carlo core, the schedules and the allocation optimiser take ``LoanArrays`` and
never a list of loan objects. Shapes are all ``(n_loans,)``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from portfolio.errors import ValidationError, must_be
from portfolio.loans.schedules import product_apr
from portfolio.loans.types import SCORE_BANDS, RepaymentType


@dataclass(frozen=True, slots=True)
class LoanArrays:
    loan_id: np.ndarray  # object (str)
    balance: np.ndarray  # float64, balance at cut-off (= principal for a new loan)
    apr: np.ndarray  # float64, decimal (0.18 = 18%)
    term_months: np.ndarray  # int16, original term
    remaining_term: np.ndarray  # int16, instalments left at cut-off
    months_on_book: np.ndarray  # int16, at cut-off
    repayment_type: np.ndarray  # int8, RepaymentType.code
    credit_score: np.ndarray  # int16
    region: np.ndarray  # object (str)
    origination_date: np.ndarray  # datetime64[D]
    next_due_date: np.ndarray  # datetime64[D], first instalment after cut-off
    principal: np.ndarray  # float64, original principal
    # float64, the APR the loan was sold with (R8); NaN where not disclosed, when the stated
    # ``apr`` is what the borrower was shown. None builds all-NaN.
    disclosed_apr: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.loan_id)
        if self.disclosed_apr is None:
            object.__setattr__(self, "disclosed_apr", np.full(n, np.nan))
        for f in fields(self):
            arr = getattr(self, f.name)
            if len(arr) != n:
                raise ValueError(f"LoanArrays.{f.name} has {len(arr)} rows, expected {n}")
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)

    def __len__(self) -> int:
        return len(self.loan_id)

    @property
    def score_band(self) -> np.ndarray:
        """int8 index into ``types.SCORE_BANDS``: the bands' searchsorted over the distinct
        scores from the lowest to the highest, then looked up per loan (the same bands as a
        searchsorted of every loan's score)."""
        edges = np.array([lo for lo, _ in SCORE_BANDS[1:]])
        score = np.asarray(self.credit_score)
        if score.size == 0 or score.dtype.kind not in "iu":
            return np.searchsorted(edges, score, side="right").astype(np.int8)
        lo, hi = int(score.min()), int(score.max())
        if hi - lo >= 1 << 16:
            return np.searchsorted(edges, score, side="right").astype(np.int8)
        table = np.searchsorted(edges, np.arange(lo, hi + 1), side="right").astype(np.int8)
        return table[score.astype(np.int64) - lo]

    def require(self, ok: np.ndarray, field: str, allowed: str, values: np.ndarray) -> None:
        """``ValidationError`` naming ``field``, ``allowed`` and the first loan (its value and
        id) where ``ok`` is False; nothing when every loan passes."""
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ValidationError(must_be(field, allowed, np.asarray(values)[i].item(),
                                          f"loan {self.loan_id[i]}"))

    @property
    def cashflow_apr(self) -> np.ndarray:
        """(n_loans,) the nominal APR of each loan's terms (``schedules.product_apr``): R8's
        annualised rate on the outstanding balance; the stated ``apr`` for the four
        interest-bearing types, above it for a flat fee."""
        return product_apr(self.apr, self.term_months, self.repayment_type)

    @property
    def shown_apr(self) -> np.ndarray:
        """(n_loans,) the APR the borrower was shown: ``disclosed_apr``, else the stated
        ``apr``."""
        d = np.asarray(self.disclosed_apr, dtype=np.float64)
        return np.where(np.isfinite(d), d, self.apr)

    def take(self, index: np.ndarray) -> LoanArrays:
        return LoanArrays(**{f.name: np.asarray(getattr(self, f.name))[index] for f in fields(self)})

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> LoanArrays:
        """From a frame with the columns above; ``repayment_type`` may be names or codes."""
        rt = df["repayment_type"]
        if rt.dtype == object or pd.api.types.is_string_dtype(rt):
            codes = np.array([RepaymentType.parse(v).code for v in rt], dtype=np.int8)
        else:
            codes = rt.to_numpy(dtype=np.int8)
        balance = df["balance"].to_numpy(dtype=np.float64)
        return cls(
            loan_id=df["loan_id"].astype(str).to_numpy(dtype=object),
            balance=balance,
            apr=df["apr"].to_numpy(dtype=np.float64),
            term_months=df["term_months"].to_numpy(dtype=np.int16),
            remaining_term=df["remaining_term"].to_numpy(dtype=np.int16),
            months_on_book=df["months_on_book"].to_numpy(dtype=np.int16),
            repayment_type=codes,
            credit_score=df["credit_score"].to_numpy(dtype=np.int16),
            region=(df["region"] if "region" in df else pd.Series([""] * len(df)))
            .fillna("")
            .astype(str)
            .to_numpy(dtype=object),
            origination_date=pd.to_datetime(df["origination_date"]).to_numpy().astype("datetime64[D]"),
            next_due_date=pd.to_datetime(df["next_due_date"]).to_numpy().astype("datetime64[D]"),
            principal=(df["principal"] if "principal" in df else df["balance"]).to_numpy(
                dtype=np.float64
            ),
            disclosed_apr=(df["disclosed_apr"].to_numpy(dtype=np.float64, na_value=np.nan)
                           if "disclosed_apr" in df else None),
        )


# ------------------------------------------------------------------------------------------
# Factorisations known when a column is read


_VALUE_CODES: list[tuple[weakref.ref[np.ndarray], np.ndarray, np.ndarray]] = []


def remember_value_codes(values: np.ndarray, codes: np.ndarray, names: np.ndarray) -> None:
    """Remember that ``codes``, ``names`` is ``pd.factorize`` of the 1-d object array
    ``values`` (codes in [0, len(names)), the names in order of first appearance): a reader
    that dictionary-encoded a few-valued text column (a pool's regions) has them already, and
    :func:`value_codes` gives them back instead of hashing every row again. Kept for the last
    array only, while it lives; ``values`` must not be written to afterwards (``LoanArrays``
    makes its arrays read-only)."""
    _VALUE_CODES[:] = [(weakref.ref(values), np.asarray(codes, dtype=np.int64),
                        np.asarray(names, dtype=object))]


def value_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``pd.factorize`` of ``values`` as :func:`remember_value_codes` was told it, for that
    array or a leading slice of it (``LoanArrays.take(slice(0, n))``) in which every name
    occurs (its first appearances are then the whole array's, so the same codes and names);
    else None."""
    for ref, codes, names in _VALUE_CODES:
        whole = ref()
        if whole is None:
            _VALUE_CODES.clear()  # the array is gone: its codes too
            return None
        if values.ndim != 1:
            continue
        if values is whole:
            return codes, names
        n = values.shape[0]
        if (values.base is whole and n <= whole.shape[0] and values.strides == whole.strides
                and values.__array_interface__["data"][0]
                == whole.__array_interface__["data"][0]):
            part = codes[:n]
            if n and np.bincount(part, minlength=len(names)).all():
                return part, names
    return None
