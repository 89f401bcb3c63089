"""Allocations in the database: read the loans to allocate, record a result, read it back,
export one partner's tape. SQL lives in ``portfolio.store.allocations``.

A partner's export holds its own loans only: pseudonymous ``loan_id``, the borrower id masked
with the partner's own key (``partners.masking``; or the book's pseudonymous ``borrower_id``
when treasury asks for raw ids), the loan's terms, its share and its balance (share × cut-off
balance) — nothing about any other party's share.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from partners.allocation import Allocation, LoanRisk, Mode, Objective
from partners.errors import AllocationError
from partners.masking import mask_ids, partner_key
from partners.registry import Registry
from portfolio.book.households import (
    PoolHouseholds,
    current_household_key,
    may_be_current,
    stored_households_under,
)
from portfolio.book.pools import get_pool, pool_loan_arrays
from portfolio.book.replay import RunReplay, replay_run
from portfolio.errors import NotFound, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo.assumptions import Assumptions, load_assumptions
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import optional, placed, text
from portfolio.store import Store
from portfolio.store import allocations as sql
from portfolio.store import pools as pool_sql
from portfolio.store.runs import get_run, load_path_losses, load_paths, paths_stored
from portfolio.validation import (
    Anything,
    Date,
    Field,
    Interval,
    ListOf,
    SchemaError,
    StrOptions,
    Table,
    validate,
)

__all__ = ["TAPE_FORMATS", "AllocationInputs", "AllocationRequest", "LoansToAllocate",
           "RunSplit", "StoredAllocation", "check_replayed_losses",
           "dispersion_on_workers_message", "export_partner", "load_allocation",
           "load_assumptions_file", "originated_loans", "partner_tape_table", "pool_loans",
           "pool_loans_then", "run_party_paths", "run_party_split", "save_allocation", "tape_format"]

T = TypeVar("T")


# ------------------------------------------------------------------------------------------
# the typed record of an allocation's inputs (``allocations.inputs``)

REQUEST_FIELDS: Mapping[str, Field] = {
    "partners_file": optional(text("a file")),
    "pool_id": optional(Interval(int, 1, unit="a pool id")),
    "originated": optional(ListOf(Date(), min_len=2, max_len=2,
                                  what="a window [FROM, TO] of two dates")),
    "mode": optional(StrOptions(tuple(m.value for m in Mode))),
    "objective": optional(StrOptions(tuple(o.value for o in Objective))),
    "assumptions": optional(text("a file")),
    "min_transfer": optional(Interval(float, 0, 1, unit="a share")),
    "code_version": optional(text()),
    "source": optional(text()),
    "supersedes": optional(ListOf(Interval(int, 1, unit="an allocation id"), min_len=1,
                                  unique=True, what="the allocation ids it supersedes")),
}
ALLOCATION_INPUTS = Table({
    **REQUEST_FIELDS,
    "party_ids": Field(ListOf(text("a party id"), min_len=1, unique=True)),
    "as_of": Field(Date()),
    "registry": Field(Anything(table=True)),
})


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """What the caller asked for, recorded with the allocation: the partners file, the loans
    (a pool, or an origination window), mode, objective, the assumptions file that gave the
    PD/LGD (``None``: the partners file's table), the minimum transfer, the code version and
    the program that asked (``riskpool allocate``, ``riskpool demo``, a script)."""

    partners_file: str | None = None
    pool_id: int | None = None
    originated: tuple[dt.date, dt.date] | None = None
    mode: str | None = None
    objective: str | None = None
    assumptions: str | None = None
    min_transfer: float | None = None
    code_version: str | None = None
    source: str | None = None
    # earlier allocations holding some of these loans, superseded by this one (by request)
    supersedes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        window = self.originated
        if window is not None:
            if not (isinstance(window, tuple) and len(window) == 2 and all(
                    isinstance(d, dt.date) and not isinstance(d, dt.datetime) for d in window)):
                raise SchemaError("inputs.originated", "a window (FROM, TO) of two dates",
                                  window)
            if window[0] > window[1]:
                raise SchemaError("inputs.originated", "a window with FROM <= TO",
                                  [d.isoformat() for d in window])
        validate(Table(REQUEST_FIELDS), self.to_json(), path="inputs")

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.originated is not None:
            out["originated"] = [d.isoformat() for d in self.originated]
        if self.supersedes is None:
            del out["supersedes"]  # as recorded before the field existed
        else:
            out["supersedes"] = list(self.supersedes)
        return out


@dataclass(frozen=True, slots=True)
class AllocationInputs:
    """``allocations.inputs``: the request, plus what the allocation was made with — its
    parties in the order of the share columns, the date deciding the rules in force, and
    the partners registry as used (``Registry.as_dict()``, kept as a snapshot)."""

    request: AllocationRequest
    party_ids: tuple[str, ...]
    as_of: dt.date
    registry: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.request, AllocationRequest):
            raise SchemaError("inputs", "an AllocationRequest", self.request)
        if not isinstance(self.party_ids, tuple):
            raise SchemaError("inputs.party_ids", "a tuple of party ids", self.party_ids)
        if not isinstance(self.as_of, dt.date) or isinstance(self.as_of, dt.datetime):
            raise SchemaError("inputs.as_of", "a date", self.as_of)
        if not isinstance(self.registry, Mapping):
            raise SchemaError("inputs.registry", "the partners registry as a table",
                              self.registry)
        validate(ALLOCATION_INPUTS, self.to_json(), path="inputs")

    @classmethod
    def of(cls, request: AllocationRequest, allocation: Allocation,
           registry: Registry) -> AllocationInputs:
        return cls(request, tuple(allocation.party_ids), allocation.as_of, registry.as_dict())

    def to_json(self) -> dict[str, Any]:
        return {**self.request.to_json(), "party_ids": list(self.party_ids),
                "as_of": self.as_of.isoformat(), "registry": dict(self.registry)}

    @classmethod
    def from_json(cls, data: object, where: str = "") -> AllocationInputs:
        """Read ``allocations.inputs``; an unknown key or value is refused (field and place)."""
        v = validate(ALLOCATION_INPUTS, data, where, "inputs")
        request = {k: v[k] for k in REQUEST_FIELDS}
        if request["originated"] is not None:
            request["originated"] = tuple(request["originated"])
        if request["supersedes"] is not None:
            request["supersedes"] = tuple(request["supersedes"])
        return placed(cls, {"request": placed(AllocationRequest, request, where),
                            "party_ids": tuple(v["party_ids"]), "as_of": v["as_of"],
                            "registry": v["registry"]}, where)


# ------------------------------------------------------------------------------------------
# loans to allocate, and allocations in the database


@dataclass(frozen=True, slots=True)
class LoansToAllocate:
    loans: LoanArrays
    # per loan its pseudonymous borrower id (object), or the pool's stored households
    # (``portfolio.book.households``: a code per loan into the distinct ids)
    ids: np.ndarray | PoolHouseholds
    pool_id: int | None
    window: tuple[dt.date, dt.date] | None
    cutoff: dt.date
    # per loan: its household's total credit limit across the book at the cut-off (R5)
    household_limit: np.ndarray | None = None

    @property
    def borrower_id(self) -> np.ndarray:
        """(n_loans,) each loan's pseudonymous borrower id (object); from stored households,
        the codes' ids (built at each call: the allocation needs only the codes)."""
        return self.ids.borrower_id if isinstance(self.ids, PoolHouseholds) else self.ids

    @property
    def borrower_code(self) -> np.ndarray | None:
        """(n_loans,) each loan's code into its pool's distinct borrower ids,
        first-appearance order (``pd.factorize`` of ``borrower_id``), when stored with the
        pool; else None."""
        return self.ids.borrower_code if isinstance(self.ids, PoolHouseholds) else None

    @property
    def borrowers(self) -> np.ndarray:
        """What ``partners.allocation.allocate`` takes as ``borrower_id``: the stored codes
        when there are (the same groups as the ids, not factorised again), else the ids."""
        code = self.borrower_code
        return self.borrower_id if code is None else code


def pool_loans(store: Store, pool_id: int) -> LoansToAllocate:
    """A stored pool's loans at its cut-off, with borrower ids and household limits (for
    R5): those stored with the pool while they are current
    (``portfolio.book.households.stored_pool_households``), else computed live. Checking that
    they are current digests the whole book (``current_household_key``), the costly part: it
    runs on a second connection while this one reads the snapshot and the stored households
    (``Store.concurrently``), which are used only if stored under that key."""
    return pool_loans_then(store, pool_id, _nothing)[0]


def _nothing(batch: LoansToAllocate) -> None:
    return None


def pool_loans_then(store: Store, pool_id: int,
                    work: Callable[[LoansToAllocate], T]) -> tuple[LoansToAllocate, T]:
    """``(batch, work(batch))`` for ``batch = pool_loans(store, pool_id)``, with ``work`` run
    while the households' key is still being computed: :func:`pool_loans` reads the snapshot
    and the stored households on this connection while a second one digests the book
    (``Store.concurrently``); here, as soon as the snapshot and stored households are read,
    ``work`` runs on them in this thread, the key's pass going on meanwhile. Once both are
    done, the result is kept only if the households were stored under the key just
    computed (current: exactly the batch :func:`pool_loans` returns); otherwise it is
    discarded, with any exception ``work`` raised on them, and ``work`` runs again on the
    live households (it is not run on households stored by another code version: they
    cannot be current). So ``work`` must be a function of its argument alone — no writes, no
    state kept — as allocating a pool is (``riskpool allocate --pool``: the risk, the
    allocation and its re-check; B1: ``benchmarks/bench_b1.py``). With none stored (or
    another code version's), it runs once, on the live batch; inside a transaction the key
    is computed first, on this connection, then the rest as above."""
    info = get_pool(store, pool_id)

    def read_then_work() -> tuple[LoanArrays, tuple[str, PoolHouseholds] | None,
                                  tuple[LoansToAllocate, _Outcome[T]] | None]:
        loans = pool_loan_arrays(pool_sql.pool_loan_arrays(store.con, int(pool_id)),
                                 info.cutoff_date)  # the snapshot alone: no join
        found = stored_households_under(store.con, int(pool_id), info.cutoff_date)
        if (found is None or len(loans) != len(found[1].borrower_code)
                or not may_be_current(found[0])):  # another code version's: stale for sure
            return loans, None, None
        batch = LoansToAllocate(loans, found[1], int(pool_id), None, info.cutoff_date,
                                found[1].household_limit)
        return loans, found, (batch, _Outcome.of(work, batch))

    key, (loans, found, done) = store.concurrently(current_household_key, read_then_work)
    if found is not None and found[0] == key and done is not None:
        return done[0], done[1].result()
    # live: each loan's borrower and household limit, the snapshot joined to the book once
    live = sql.pool_households(store.con, int(pool_id), info.cutoff_date)
    batch = LoansToAllocate(loans, live["borrower_id"], int(pool_id), None, info.cutoff_date,
                            live["household_limit"])
    return batch, work(batch)


@dataclass(frozen=True, slots=True)
class _Outcome(Generic[T]):
    """What ``work(batch)`` returned, or the exception it raised (raised again by
    :meth:`result`)."""

    value: T | None
    error: Exception | None

    @staticmethod
    def of(work: Callable[[LoansToAllocate], T], batch: LoansToAllocate) -> _Outcome[T]:
        try:
            return _Outcome(work(batch), None)
        except Exception as exc:  # kept: raised if the batch proves current, else dropped
            return _Outcome(None, exc)

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


def originated_loans(store: Store, start: dt.date, end: dt.date) -> LoansToAllocate:
    """Loans originated in [start, end] as new loans (balance = principal, months on book 0,
    first due date one month after origination)."""
    if end < start:
        raise AllocationError(must_be("--originated", "FROM <= TO", f"{start} {end}"))
    frame = sql.originated_loans(store.con, start, end)
    if frame.empty:
        raise AllocationError(must_be("--originated", "a window with at least one loan in the book",
                                      f"{start} {end}"))
    orig = pd.to_datetime(frame["origination_date"])
    frame["next_due_date"] = orig + pd.DateOffset(months=1)
    limits = sql.household_credit_limits(store.con, end, window=(start, end))
    return LoansToAllocate(LoanArrays.from_frame(frame),
                           frame["borrower_id"].astype(str).to_numpy(dtype=object), None,
                           (start, end), end, limits)


def latest_origination_month(store: Store) -> tuple[dt.date, dt.date] | None:
    """The calendar month of the book's latest origination, as (first day, last day); None
    when the book holds no loan."""
    latest = sql.latest_origination(store.con)
    if latest is None:
        return None
    first = latest.replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return first, last


def already_allocated(store: Store, loan_ids: Any) -> pd.DataFrame:
    """The loans of ``loan_ids`` an earlier allocation holds (loan_id, the latest
    allocation_id holding it)."""
    return sql.allocated_loans(store.con, [str(x) for x in loan_ids])


def save_allocation(store: Store, allocation: Allocation, registry: Registry, risk: LoanRisk,
                    *, pool_id: int | None, request: AllocationRequest) -> int:
    """Record the allocation with its typed inputs (``request`` plus the allocation's parties,
    as-of date and the registry); one transaction: all or nothing. Returns its id."""
    n, k = allocation.shares.shape
    flat = allocation.shares.ravel()
    keep = np.flatnonzero(flat > 0)
    loan_dict = pa.array(np.asarray(allocation.loan_id).astype(str).tolist(), type=pa.string())
    party_dict = pa.array(list(allocation.party_ids), type=pa.string())
    # dictionary-encoded ids: each string converted once, not once per (loan, party) row
    shares = pa.table({
        "loan_id": pa.DictionaryArray.from_arrays(pa.array(keep // k, type=pa.int32()), loan_dict),
        "party_id": pa.DictionaryArray.from_arrays(pa.array(keep % k, type=pa.int32()), party_dict),
        "share": pa.array(flat[keep]),
    })
    loans = pa.table({"loan_id": loan_dict, "balance": pa.array(allocation.balance),
                      "annual_pd": pa.array(risk.annual_pd), "lgd": pa.array(risk.lgd),
                      "lifetime_pd": pa.array(risk.lifetime_pd)})
    inputs = AllocationInputs.of(request, allocation, registry)
    with store.transaction() as con:
        allocation_id = store.next_id("allocation_seq")
        sql.upsert_partners(con, [p.as_dict() for p in registry.partners])
        sql.insert_allocation(con, allocation_id=allocation_id, mode=allocation.mode.value,
                              objective=allocation.objective.value, pool_id=pool_id,
                              inputs=inputs.to_json(), checks=allocation.checks.as_dict(),
                              summary=allocation.summary, shares=shares, loans=loans)
    return allocation_id


@dataclass(frozen=True, slots=True)
class StoredAllocation:
    allocation_id: int
    mode: str
    objective: str
    pool_id: int | None
    party_ids: tuple[str, ...]
    loan_id: np.ndarray  # (n_loans,) sorted
    balance: np.ndarray
    shares: np.ndarray  # (n_loans, n_parties)
    risk: LoanRisk
    inputs: AllocationInputs
    checks: dict[str, Any]
    summary: dict[str, Any]


def load_allocation(store: Store, allocation_id: int) -> StoredAllocation:
    row = sql.allocation_row(store.con, int(allocation_id))
    if row is None:
        known = sql.allocation_ids(store.con)
        raise NotFound(must_be("--allocation", f"an existing allocation id {known[-20:]}", allocation_id))
    where = f"allocation {int(allocation_id)}"
    inputs = AllocationInputs.from_json(row["inputs"], where)
    for column in ("checks", "summary"):  # free-form JSON read with .get: tables only
        validate(Anything(table=True), row[column], where, column)
    party_ids = inputs.party_ids
    lo = sql.allocation_loan_arrays(store.con, int(allocation_id))
    # the (loan, party) cells are placed in SQL (loan order, party position): no string lookup
    cells = sql.allocation_share_cells(store.con, int(allocation_id), party_ids)
    if len(cells["col"]) and int(np.min(cells["col"])) < 0:
        raise NotFound(f"allocation {int(allocation_id)} has shares of a party not in its "
                       f"inputs' parties {list(party_ids)}")
    shares = np.zeros((len(lo["loan_id"]), len(party_ids)))
    shares[cells["row"], cells["col"]] = cells["share"]
    risk = LoanRisk(np.asarray(lo["annual_pd"]), np.asarray(lo["lgd"]),
                    np.asarray(lo["lifetime_pd"]), str(row["summary"].get("risk_source", "")))
    return StoredAllocation(int(allocation_id), row["mode"], row["objective"], row["pool_id"], party_ids,
                            np.asarray(lo["loan_id"], dtype=object), np.asarray(lo["balance"]),
                            shares, risk, inputs, row["checks"], row["summary"])


def masked_tape(tape: pd.DataFrame, party_id: str, keys: str | Path) -> pd.DataFrame:
    """The tape with ``borrower_id`` replaced by the party's masked id
    (``partners.masking``: HMAC-SHA256 with the party's key from the ``keys`` file)."""
    key = partner_key(keys, party_id)
    out = tape.copy()
    out["borrower_id"] = mask_ids(tape["borrower_id"].astype(str), key)
    return out


SHARE_DECIMALS = 8  # a share on a tape: 0.6999999999534339 (solver output) is 0.7


def _half_up(value: float, places: int) -> float:
    """``value`` rounded half away from zero to ``places`` decimals, on its shortest decimal
    text (2.675 → 2.68, where ``round`` gives 2.67 from the binary value)."""
    if not math.isfinite(value):
        return value
    q = decimal.Decimal(1).scaleb(-places)
    return float(decimal.Decimal(repr(value)).quantize(q, rounding=decimal.ROUND_HALF_UP))


def rounded_tape(tape: pd.DataFrame) -> pd.DataFrame:
    """A partner tape as sent: ``balance`` rounded to the cent (half up) and ``share`` to
    :data:`SHARE_DECIMALS` decimals; every other column unchanged. The balance is the party's
    share of the loan's cut-off balance computed unrounded, then rounded once."""
    out = tape.copy()
    if "balance" in out.columns:
        out["balance"] = [_half_up(float(v), 2) for v in out["balance"]]
    if "share" in out.columns:
        out["share"] = [_half_up(float(v), SHARE_DECIMALS) for v in out["share"]]
    return out


def tape_csv(tape: pd.DataFrame) -> bytes:
    """A tape as CSV bytes: UTF-8 with a byte-order mark, so that Excel reads the Chinese
    region names right (without the BOM it takes the file for the system's code page)."""
    return tape.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


TAPE_FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx")


def tape_format(out: str | Path, fmt: str | None = None) -> str:
    """The format of a tape file: ``fmt`` (``--format``) if given, else the file's suffix;
    a suffix naming another format than ``fmt`` is refused (``AllocationError`` naming both)."""
    suffix = Path(out).suffix.lower().lstrip(".")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in TAPE_FORMATS:
            raise AllocationError(must_be("--format", " or ".join(TAPE_FORMATS), fmt))
        if suffix in TAPE_FORMATS and suffix != fmt:
            raise AllocationError(must_be("--out", f"a file ending .{fmt} (--format {fmt})",
                                          str(out)))
        return fmt
    if suffix not in TAPE_FORMATS:
        raise AllocationError(must_be("--out", "a file ending .csv, .parquet or .xlsx (or "
                                      "--format csv|parquet|xlsx)", str(out)))
    return suffix


def partner_tape_table(store: Store, allocation_id: int, party_id: str,
                       keys: str | Path | None = None,
                       borrower_ids: bool = True) -> pd.DataFrame:
    """One party's tape as sent (what every format holds): balances rounded to the cent and
    shares to 8 decimals (:func:`rounded_tape`); with ``keys`` (the partner keys file) the
    borrower ids masked for that party (:func:`masked_tape`), without them the book's
    pseudonymous ids; ``borrower_ids=False`` leaves the column out."""
    stored = load_allocation(store, allocation_id)
    if party_id not in stored.party_ids:
        raise NotFound(must_be("--partner", f"one of {list(stored.party_ids)}", party_id,
                               f"allocation {allocation_id}"))
    tape = sql.partner_tape(store.con, int(allocation_id), party_id)
    if not borrower_ids:
        tape = tape.drop(columns=["borrower_id"])
    elif keys is not None:
        tape = masked_tape(tape, party_id, keys)
    return rounded_tape(tape)


def export_partner(store: Store, allocation_id: int, party_id: str, out: str | Path,
                   keys: str | Path | None = None) -> int:
    """Write one party's tape as Parquet (``.parquet``) or CSV (``.csv``, UTF-8 with a BOM:
    :func:`tape_csv`); returns the row count. The table is :func:`partner_tape_table` (the
    XLSX tape is written by ``riskpool allocate export``, through the workbook layer)."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise AllocationError(must_be("--out", "a file ending .parquet or .csv", str(out)))
    tape = partner_tape_table(store, allocation_id, party_id, keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        tape.to_parquet(path, index=False)
    else:
        path.write_bytes(tape_csv(tape))
    return len(tape)


def run_party_paths(store: Store, run_id: int,
                    stored: StoredAllocation) -> tuple[PoolPaths, str]:
    """The run's paths with the allocation's party split, and how they were obtained.

    If the stored run carries ``party_flows`` made from this allocation (its recorded
    ``allocation_id``, or the same party ids when it records none), they are used as stored.
    Otherwise (loan-level paths are not stored) the run is simulated again by
    ``portfolio.book.replay.replay_run`` with the allocation's shares; the re-simulated pool
    loss must equal the stored one on every path (same seed, same draws), or the request is
    refused. A run recorded from summaries (``riskpool simulate --workers``) keeps no paths:
    ``NotFound`` saying so (:func:`run_party_split` re-simulates it on Dask workers).
    """
    inputs = get_run(store, int(run_id)).simulation_inputs()
    if not paths_stored(store, int(run_id)):
        raise NotFound(dispersion_on_workers_message(int(run_id), stored.allocation_id))
    paths = load_paths(store, int(run_id))
    if (paths.party_flows and tuple(paths.party_ids) == stored.party_ids
            and (inputs.allocation_id is None or inputs.allocation_id == stored.allocation_id)):
        return paths, "party flows stored with the run"
    split = _party_split(store, int(run_id), stored, paths.loss)
    resim = split.replay.paths(shares=split.shares, party_ids=split.party_ids)
    check_replayed_losses(int(run_id), resim.loss, paths.loss)
    return resim, "re-simulated with the run's seed and inputs plus the allocation's shares"


def dispersion_on_workers_message(run_id: int, allocation_id: int) -> str:
    """What a reader of a run recorded from summaries is told about its dispersion: where
    to get it (``riskpool dispersion --workers``)."""
    return (f"run {int(run_id)} was recorded from summaries on Dask workers (riskpool simulate "
            "--workers/--scheduler): its paths' month-by-month flows were not kept, and the "
            "dispersion needs every path with the allocation's party split. Compute it on Dask "
            f"workers: `riskpool dispersion --run {int(run_id)} --allocation "
            f"{int(allocation_id)} --workers 2` (add --structure DEAL.toml for a "
            "securitisation; the run's paths are simulated again there from its seed and "
            "inputs: the same figures)")


@dataclass(frozen=True, slots=True, eq=False)
class RunSplit:
    """A recorded run ready to be simulated again with an allocation's party split:
    ``replay`` (its loans, assumptions, seed), ``shares`` (n_loans, n_parties) of the
    allocation in the replay's loan order, ``party_ids`` in the allocation's order and
    ``loss`` the run's recorded pool loss of every path (what a re-simulation must give)."""

    replay: RunReplay
    shares: np.ndarray
    party_ids: tuple[str, ...]
    loss: np.ndarray


def run_party_split(store: Store, run_id: int, stored: StoredAllocation) -> RunSplit:
    """What re-simulating run ``run_id`` with allocation ``stored``'s party split needs,
    from the run's record alone: for any run, one that kept its paths or one recorded from
    summaries (``riskpool simulate --workers``; every path's loss is kept, so the
    re-simulation is still checked path by path: :func:`check_replayed_losses`).
    ``AllocationError`` if the allocation is not of the run's pool."""
    return _party_split(store, int(run_id), stored, load_path_losses(store, int(run_id)))


def _party_split(store: Store, run_id: int, stored: StoredAllocation,
                 loss: np.ndarray) -> RunSplit:
    inputs = get_run(store, run_id).simulation_inputs()
    if stored.pool_id is not None and inputs.pool_id != int(stored.pool_id):
        raise AllocationError(must_be("--allocation", f"an allocation of run {run_id}'s pool "
                                      f"{inputs.pool_id}", f"allocation {stored.allocation_id} "
                                      f"of pool {stored.pool_id}"))
    replay = replay_run(store, run_id)
    loans = replay.loans
    index = pd.Index(stored.loan_id.astype(str)).get_indexer(np.asarray(loans.loan_id).astype(str))
    if (index < 0).any() or len(loans) != len(stored.loan_id):
        raise AllocationError(must_be("--allocation", f"an allocation of run {run_id}'s pool "
                                      f"{inputs.pool_id} ({len(loans):,} loans)",
                                      f"allocation {stored.allocation_id} "
                                      f"({len(stored.loan_id):,} loans)"))
    return RunSplit(replay, stored.shares[index], stored.party_ids, np.asarray(loss))


def check_replayed_losses(run_id: int, got: np.ndarray, recorded: np.ndarray) -> None:
    """Refuse a re-simulation whose pool loss differs from the run's recorded loss on any
    path (beyond 1e-9 relative / 1e-6 CNY): its party split would not be the run's."""
    if got.shape != recorded.shape or not np.allclose(got, recorded, rtol=1e-9, atol=1e-6):
        raise AllocationError(f"re-simulating run {run_id} with its recorded seed and inputs did "
                              "not reproduce its stored pool losses; refusing to split them")


def load_assumptions_file(path: Path) -> Assumptions:
    """Read an assumptions TOML (``portfolio.montecarlo.assumptions.load_assumptions``; errors
    name the field)."""
    return load_assumptions(path)
