"""A synthetic Jiebei-like loan book: originations and month-end performance history.

``generate_book(store, n_loans, n_months, seed, as_of, params)`` writes ``loans`` and
``loan_performance`` into an empty book in one transaction (plus one ``ingest_batches`` row,
kind ``generate``, source ``generate(seed=…, loans=…, months=…)``, sha256 of the parameters);
``simulate_book(...)`` returns the same tables in memory; ``riskpool generate`` is the CLI.
The same arguments give the same database content, bit for bit: every random draw comes from
``numpy.random.SeedSequence(seed)`` children (originations, the macro factor, and one child per
fixed-size chunk of loans for the performance history), so the result never depends on memory
or timing.

The book is built in four modules, from the ground up: ``params`` (``GeneratorParams`` and
the truth they imply, for calibration), ``originations`` (the loans), ``performance`` (the
monthly performance simulator) and ``tables`` (the store's columns); this module plans a
request, draws its seeds and writes through the store.

Calibration anchors (docs/model.md, "Book analytics") with the default parameters: lifetime default of 12-month
loans ≈ 2.5 % of original balance, 90+ DPD ≈ 1 % of balance in a seasoned book, default rate
falling as the score band rises, mean principal ≈ 8,000 CNY, APRs in [0.073, 0.24].
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import ndtr, ndtri

from portfolio.errors import RiskpoolError, ValidationError, must_be
from portfolio.store import book as store_book
from portfolio.store import ingest as store_ingest
from portfolio.store.core import Store
from portfolio.synthetic import tables
from portfolio.synthetic.markov import simulate_chunk_markov, truth_record
from portfolio.synthetic.originations import originate
from portfolio.synthetic.params import GeneratorParams, params_hash, true_assumptions
from portfolio.synthetic.performance import draw_factor, simulate_chunk

__all__ = [
    "CHUNK_LOANS",
    "GenerateSummary",
    "GeneratorParams",
    "SyntheticBook",
    "check_request",
    "generate_book",
    "last_month_end_before",
    "simulate_book",
    "true_assumptions",
]

CHUNK_LOANS = 250_000  # loans simulated per chunk; fixed so results never depend on memory
MAX_LOANS = 10_000_000  # the loans table is built in one piece (≈ 1.7 GB peak at 1M loans)
MAX_MONTHS = 240


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    """What ``generate_book`` wrote (for the CLI's summary and for calibration tests)."""

    batch_id: int
    seed: int
    n_loans: int
    n_months: int
    n_performance_rows: int
    as_of: dt.date
    first_origination_month: dt.date  # first day of the oldest vintage's month
    total_principal: float
    balance_at_as_of: float  # outstanding balance on the as_of rows
    seconds: float
    params_sha256: str
    factor: tuple[float, ...] = field(default=())  # Z_t per history month (oldest first)
    factor_months: tuple[dt.date, ...] = field(default=())  # the month-ends of ``factor``
    # the Markov mode's true parameters and factor path (``markov.truth_record``); None in
    # the default (hazard) mode
    truth: dict[str, object] | None = None


def last_month_end_before(today: dt.date) -> dt.date:
    """The last month-end strictly before ``today`` (the default ``as_of``)."""
    return today.replace(day=1) - dt.timedelta(days=1)


def _is_month_end(d: dt.date) -> bool:
    return (d + dt.timedelta(days=1)).day == 1


def _month_ends(as_of: dt.date, n_months: int) -> np.ndarray:
    """datetime64[D] month-ends of the n_months history months, oldest first."""
    last = np.datetime64(as_of, "M")
    months = np.arange(last - (n_months - 1), last + 1)
    return (months + 1).astype("datetime64[D]") - 1


def check_request(n_loans: object, n_months: object, seed: object,
                  as_of: dt.date | None = None, today: dt.date | None = None) -> dt.date:
    """Validate the arguments of a generation; returns ``as_of`` (default resolved).

    ``as_of`` must be a month-end not after ``today``; default the last month-end before it.
    """
    for name, value, hi in (("loans", n_loans, MAX_LOANS), ("months", n_months, MAX_MONTHS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                1 <= value <= hi):
            raise ValidationError(must_be(name, f"an integer in [1, {hi:,}]", value))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(must_be("seed", "an integer >= 0", seed))
    today = today or dt.date.today()
    if as_of is None:
        return last_month_end_before(today)
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise ValidationError(must_be("as_of", "a date (a month-end)", as_of))
    if not _is_month_end(as_of) or as_of > today:
        raise ValidationError(must_be("as_of", f"a month-end date not after today ({today})",
                                      as_of.isoformat()))
    return as_of


@dataclass(frozen=True, slots=True)
class SyntheticBook:
    """A generated book in memory (``simulate_book``); tables have the store's columns."""

    loans: pa.Table
    performance: pa.Table
    factor: np.ndarray  # (n_months,) Z_t, oldest first
    month_ends: np.ndarray  # (n_months,) datetime64[D]


class _Plan:
    """Originations, macro path and conditional hazards of one request; performance by chunk."""

    def __init__(self, n_loans: int, n_months: int, seed: int, as_of: dt.date,
                 params: GeneratorParams) -> None:
        self.params = params
        self.seed = seed
        self.n_loans = n_loans
        self.month_ends = _month_ends(as_of, n_months)
        seq_orig, seq_factor = (np.random.SeedSequence(seed, spawn_key=(i,)) for i in (0, 1))
        rng_orig = np.random.Generator(np.random.PCG64(seq_orig))
        self.book = originate(params, n_loans, self.month_ends, rng_orig)
        self.borrower_key = int(rng_orig.integers(0, 2**63))
        self.factor = draw_factor(np.random.Generator(np.random.PCG64(seq_factor)), n_months,
                                   params.factor_persistence)
        h = params.go_bad_hazard(n_months)
        self.smm = params.true_prepay_smm(n_months)
        with np.errstate(divide="ignore"):
            q = ndtri(h)
        sr, s1 = np.sqrt(params.rho), np.sqrt(1.0 - params.rho)
        # (n_months, bands, terms, age): go-bad probability given Z_t
        self.hazard_by_month = ndtr((q[None] - sr * self.factor[:, None, None, None]) / s1)
        self.loan_ids = pa.array([f"L{i:09d}" for i in range(1, n_loans + 1)])

    def loans_table(self, batch_id: int | None) -> pa.Table:
        return tables.loans_table(self.book, self.params, self.loan_ids, self.borrower_key, batch_id)

    def performance_chunks(self, batch_id: int | None) -> Iterator[pa.Table]:
        for c, lo in enumerate(range(0, self.n_loans, CHUNK_LOANS)):
            sl = slice(lo, min(lo + CHUNK_LOANS, self.n_loans))
            rng = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence(self.seed, spawn_key=(2, c))))
            if self.params.credit_model == "markov":
                rows = simulate_chunk_markov(self.params, self.book, sl, self.month_ends,
                                             self.factor, self.smm, rng)
            else:
                rows = simulate_chunk(self.params, self.book, sl, self.month_ends,
                                      self.hazard_by_month, self.smm, rng)
            yield tables.performance_table(rows, self.loan_ids[sl], batch_id)


def simulate_book(
    n_loans: int,
    n_months: int,
    seed: int,
    as_of: dt.date | None = None,
    params: GeneratorParams | None = None,
) -> SyntheticBook:
    """The book ``generate_book`` would write, as Arrow tables in memory (no database)."""
    params = params or GeneratorParams()
    as_of = check_request(n_loans, n_months, seed, as_of)
    plan = _Plan(int(n_loans), int(n_months), int(seed), as_of, params)
    perf = pa.concat_tables(list(plan.performance_chunks(None)))
    return SyntheticBook(plan.loans_table(None), perf, plan.factor.copy(), plan.month_ends)


def generate_book(
    store: Store,
    n_loans: int,
    n_months: int,
    seed: int,
    as_of: dt.date | None = None,
    params: GeneratorParams | None = None,
) -> GenerateSummary:
    """Originate ``n_loans`` over ``n_months`` vintages ending at ``as_of`` and write their
    month-end history to ``as_of`` into an empty book, all in one transaction.

    ``as_of`` must be a month-end, not in the future; default: the last month-end before today.
    Records one ``ingest_batches`` row (kind ``generate``; sha256 of the parameters).
    """
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    params = params or GeneratorParams()
    as_of = check_request(n_loans, n_months, seed, as_of)
    n_loans, n_months, seed = int(n_loans), int(n_months), int(seed)
    if store.read_only:
        raise RiskpoolError(f"database {store.path} is open read-only; cannot generate into it")
    existing = store_book.count_rows(store.con, "loans")
    if existing:
        raise RiskpoolError(
            f"database {store.path} already holds {existing:,} loans; `generate` builds a "
            "whole book into an empty database — use a new --db file")

    plan = _Plan(n_loans, n_months, seed, as_of, params)
    params_sha = params_hash(params, seed=seed, loans=n_loans, months=n_months,
                              as_of=as_of.isoformat())
    n_rows = 0
    bal_as_of = 0.0
    last_day = pa.scalar(plan.month_ends[-1].item(), pa.date32())
    with store.transaction() as con:
        batch_id = store_ingest.next_batch_id(con)
        store_book.insert_loans(con, plan.loans_table(batch_id))
        for table in plan.performance_chunks(batch_id):
            n_rows += table.num_rows
            on_last = pc.equal(table["as_of"], last_day)
            bal_as_of += float(pc.sum(pc.filter(table["balance"], on_last)).as_py() or 0.0)
            store_book.insert_performance(con, table)
        store_ingest.insert_batch(con, store_ingest.BatchRecord(
            batch_id=batch_id,
            kind="generate",
            source=f"generate(seed={seed}, loans={n_loans}, months={n_months})",
            sha256=params_sha,
            n_rows=n_loans,
            n_loaded=n_loans,
            n_rejected=0,
            started_at=started_at,
            finished_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            note=f"as_of={as_of.isoformat()}; performance_rows={n_rows}",
        ))
    first_month = plan.month_ends[0].astype("datetime64[M]").astype("datetime64[D]").item()
    return GenerateSummary(
        batch_id=batch_id,
        seed=seed,
        n_loans=n_loans,
        n_months=n_months,
        n_performance_rows=n_rows,
        as_of=as_of,
        first_origination_month=first_month,
        total_principal=float(np.round(plan.book.principal.sum(), 2)),
        balance_at_as_of=round(bal_as_of, 2),
        seconds=time.perf_counter() - started,
        params_sha256=params_sha,
        factor=tuple(float(z) for z in plan.factor),
        factor_months=tuple(d.item() for d in plan.month_ends),
        truth=(truth_record(params, plan.factor, plan.month_ends)
               if params.credit_model == "markov" else None),
    )
