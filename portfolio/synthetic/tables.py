"""The generated arrays as Arrow tables with the store's ``loans`` and ``loan_performance``
columns (dictionary-encoded text, ``batch_id`` NULL for a book kept in memory)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from portfolio.loans.types import RepaymentType
from portfolio.synthetic.originations import PRODUCTS, Originations
from portfolio.synthetic.params import GeneratorParams
from portfolio.synthetic.performance import STATUS_NAMES

_TYPE_NAMES: tuple[str, ...] = tuple(t.value for t in RepaymentType)  # in code order


def _batch_column(n: int, batch_id: int | None) -> pa.Array:
    if batch_id is None:
        return pa.nulls(n, pa.int64())
    return pa.array(np.full(n, batch_id, dtype=np.int64))


def _borrower_ids(index: np.ndarray, key: int) -> list[str]:
    """Pseudonymous borrower ids 'B' + 16 hex digits: a keyed splitmix64 of the index."""
    x = index.astype(np.uint64) ^ np.uint64(key)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return [f"B{v:016x}" for v in x.tolist()]


def loans_table(book: Originations, params: GeneratorParams, loan_ids: pa.Array,
                borrower_key: int, batch_id: int | None) -> pa.Table:
    n = len(book.principal)
    uniq, inverse = np.unique(book.borrower, return_inverse=True)
    borrower_ids = pa.array(_borrower_ids(uniq, borrower_key))
    # a book without flat-fee loans has no disclosed_apr column (NULL in the store)
    disclosed = ({} if book.disclosed_apr is None else
                 {"disclosed_apr": pa.array(book.disclosed_apr, pa.float64(), from_pandas=True)})
    return pa.table({
        "loan_id": loan_ids,
        "borrower_id": pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)),
                                                      borrower_ids),
        "origination_date": pa.array(book.origination_date.astype("datetime64[D]")
                                     .astype(np.int32)).view(pa.date32()),
        "principal": book.principal,
        "apr": book.apr,
        "term_months": book.term,
        "repayment_type": pa.DictionaryArray.from_arrays(pa.array(book.rtype),
                                                         pa.array(_TYPE_NAMES)),
        "credit_score": book.score,
        "region": pa.DictionaryArray.from_arrays(pa.array(book.region),
                                                 pa.array([r for r, _ in params.regions])),
        "channel": pa.DictionaryArray.from_arrays(pa.array(book.channel),
                                                  pa.array([c for c, _ in params.channels])),
        "product": pa.DictionaryArray.from_arrays(pa.array(book.product), pa.array(PRODUCTS)),
        "credit_limit": book.limit,
        "batch_id": _batch_column(n, batch_id),
        **disclosed,
    })


def performance_table(rows: dict[str, np.ndarray], loan_ids: pa.Array,
                      batch_id: int | None) -> pa.Table:
    n = len(rows["loan"])
    return pa.table({
        "loan_id": pa.DictionaryArray.from_arrays(pa.array(rows["loan"], pa.int32()), loan_ids),
        "as_of": pa.array(rows["as_of"], pa.int32()).view(pa.date32()),
        "months_on_book": rows["mob"],
        "balance": rows["balance"],
        "paid_principal": rows["paid_principal"],
        "paid_interest": rows["paid_interest"],
        "prepaid_principal": rows["prepaid"],
        "dpd": rows["dpd"],
        "status": pa.DictionaryArray.from_arrays(pa.array(rows["status"], pa.int8()),
                                                 pa.array(STATUS_NAMES)),
        "charge_off": rows["charge_off"],
        "recovery": rows["recovery"],
        "batch_id": _batch_column(n, batch_id),
    })
