"""The loan book as a partitioned Parquet dataset (issue 7: books larger than one file).

Layout written by :func:`export_book` (hive style, one folder per origination month)::

    DIR/loans/origination_month=YYYY-MM/data_0.parquet
    DIR/loan_performance/origination_month=YYYY-MM/data_0.parquet

Both tables keep the columns and types of the database tables (``DECIMAL(18,2)`` money,
``DATE`` dates); a performance row sits in the partition of its loan's origination month,
so a vintage reads as one folder. The partition key is not stored inside the files.

:func:`attach_book` makes a connection read such a dataset instead of the database file's
tables: it creates TEMP views ``loans`` and ``loan_performance`` over
``read_parquet('DIR/<table>/**/*.parquet', hive_partitioning = true)``. DuckDB resolves
temporary objects before the file's own tables, so every query in ``portfolio.store`` that
reads ``loans`` / ``loan_performance`` (pool selection, analytics) runs unchanged over the
Parquet dataset; writes (pools, runs) still go to the database file.

DuckDB does not take ``?`` parameters for ``COPY … TO`` targets or ``read_parquet`` paths
inside a view; paths are therefore inlined as SQL string literals with quotes doubled
(:func:`_literal`) — the only non-parameterised values in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays

TABLES: tuple[str, ...] = ("loans", "loan_performance")
LOAN_COLUMNS: tuple[str, ...] = (
    "loan_id", "balance", "apr", "term_months", "remaining_term", "months_on_book",
    "repayment_type", "credit_score", "region", "origination_date", "next_due_date",
    "principal", "disclosed_apr")
"""The columns of a loan-tape partition (:func:`write_loan_parts`): ``LoanArrays``' fields,
a pool's loans at its cut-off."""
PARTITION = "origination_month"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_book` wrote: row counts, number of month partitions, the folder."""

    out: Path
    n_loans: int
    n_performance_rows: int
    n_partitions: int


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _glob(book: Path, table: str) -> Path:
    return Path(book).resolve() / table / "**" / "*.parquet"


def export_book(con: duckdb.DuckDBPyConnection, out: str | Path) -> ExportSummary:
    """Write ``loans`` and ``loan_performance`` under ``out`` partitioned by origination month.

    ``out`` must not exist or be an empty folder (nothing is overwritten). Runs inside one
    read transaction, so both tables come from the same state of the book.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(must_be("--out", "a new or empty folder", str(out),
                                      "(it already holds files; nothing is overwritten)"))
    out.mkdir(parents=True, exist_ok=True)
    month = f"strftime(l.origination_date, '%Y-%m') AS {PARTITION}"
    con.execute("BEGIN TRANSACTION")
    try:
        n_loans = int(con.execute("SELECT count(*) FROM loans").fetchone()[0])  # type: ignore[index]
        n_perf = int(con.execute("SELECT count(*) FROM loan_performance").fetchone()[0])  # type: ignore[index]
        con.execute(
            f"COPY (SELECT l.*, {month} FROM loans l ORDER BY l.loan_id) "
            f"TO {_literal(out.resolve() / 'loans')} "
            f"(FORMAT PARQUET, PARTITION_BY ({PARTITION}), COMPRESSION ZSTD)"
        )
        con.execute(
            f"COPY (SELECT p.*, {month} FROM loan_performance p JOIN loans l USING (loan_id) "
            "ORDER BY p.loan_id, p.as_of) "
            f"TO {_literal(out.resolve() / 'loan_performance')} "
            f"(FORMAT PARQUET, PARTITION_BY ({PARTITION}), COMPRESSION ZSTD)"
        )
        n_parts = int(con.execute(  # type: ignore[index]
            "SELECT count(DISTINCT strftime(origination_date, '%Y-%m')) FROM loans"
        ).fetchone()[0])
    finally:
        con.execute("COMMIT")
    return ExportSummary(out, n_loans, n_perf, n_parts)


def check_book_dir(book: str | Path) -> Path:
    """``book`` must be a folder written by :func:`export_book` (both tables present)."""
    path = Path(book)
    for table in TABLES:
        folder = path / table
        if not folder.is_dir() or next(folder.glob("*/*.parquet"), None) is None:
            raise ValidationError(must_be("--book", "a folder written by `riskpool book export` "
                                          f"(with {table}/{PARTITION}=YYYY-MM/*.parquet)",
                                          str(path)))
    return path


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_book_files(con: duckdb.DuckDBPyConnection, book: Path) -> None:
    """Every file of the dataset ``book`` must be a Parquet file holding the columns of its
    database table with the same types (``loans`` or ``loan_performance`` as
    :func:`export_book` writes them, the partition column aside), and no null in a column
    the table declares NOT NULL. Read from each file's footer (its schema and row-group
    statistics), not its rows; a file without null counts is counted. Else a
    ``ValidationError`` naming ``--book``, the file and the column."""
    for table in TABLES:
        declared = con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main' "
            "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
        want = {name: kind for name, kind, _ in declared}
        required = [name for name, _, nullable in declared if nullable == "NO"]
        allowed = (f"a Parquet book written by `riskpool book export`: every file of {table}/ "
                   f"with the columns of the `{table}` table")
        for f in sorted((book / table).rglob("*.parquet")):  # what the view reads
            try:
                got = {row[0]: row[1] for row in con.execute(
                    f"DESCRIBE SELECT * FROM read_parquet({_literal(f)}, "
                    "hive_partitioning = false)").fetchall()}
                nulls = dict(con.execute(
                    "SELECT path_in_schema, CASE WHEN bool_or(stats_null_count IS NULL) "
                    "THEN NULL ELSE sum(stats_null_count) END "
                    f"FROM parquet_metadata({_literal(f)}) GROUP BY path_in_schema").fetchall())
            except duckdb.Error as exc:
                raise ValidationError(must_be("--book", allowed, f"{f}, which is not a "
                                              f"readable Parquet file ({_first_line(exc)})")
                                      ) from None
            for name, kind in want.items():
                if name not in got:
                    raise ValidationError(must_be("--book", allowed, f"{f} without `{name}`"))
                if got[name] != kind:
                    raise ValidationError(must_be("--book", allowed, f"{f} whose `{name}` is "
                                                  f"{got[name]}, not {kind}"))
            for name in required:
                count = nulls.get(name)
                if count is None:  # no statistics in the footer: count them
                    count = con.execute(f"SELECT count(*) FROM read_parquet({_literal(f)}, "
                                        f"hive_partitioning = false) WHERE \"{name}\" IS NULL"
                                        ).fetchone()[0]  # type: ignore[index]
                if count:
                    raise ValidationError(must_be("--book", allowed, f"{f} with {int(count):,} "
                                                  f"null `{name}` value(s) (the table's "
                                                  f"`{name}` is NOT NULL)"))


def attach_book(con: duckdb.DuckDBPyConnection, book: str | Path) -> None:
    """Make ``loans`` / ``loan_performance`` on ``con`` read the Parquet dataset ``book``
    (TEMP views that shadow the database file's tables for this connection only), once
    :func:`check_book_files` has checked its files against the tables."""
    path = check_book_dir(book)
    check_book_files(con, path)
    for table in TABLES:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * EXCLUDE ({PARTITION}) "
            f"FROM read_parquet({_literal(_glob(path, table))}, hive_partitioning = true)"
        )


def check_loans_in_book(con: duckdb.DuckDBPyConnection, loan_ids: np.ndarray, where: str) -> None:
    """Every id in ``loan_ids`` must be a loan of the attached book (else name the first few
    missing ones)."""
    ids = pa.table({"loan_id": pa.array(np.asarray(loan_ids).astype(str), type=pa.string())})
    con.register("_pool_ids", ids)
    try:
        missing, first = con.execute(
            "SELECT count(*), coalesce(list(i.loan_id ORDER BY i.loan_id)[1:5], []) "
            "FROM _pool_ids i ANTI JOIN loans l USING (loan_id)"
        ).fetchall()[0]
    finally:
        con.unregister("_pool_ids")
    if missing:
        shown = ", ".join(first) + (", …" if missing > 5 else "")
        raise ValidationError(must_be("--book", "a book holding every loan of the pool",
                                      f"{missing} loan(s) missing ({shown})", where))


# ------------------------------------------------------------------------------------------
# Loan tapes at a cut-off, partitioned: what the Monte Carlo engine reads on Dask workers


@dataclass(frozen=True, slots=True)
class LoanPart:
    """One partition of a loan tape (a Parquet file of :data:`LOAN_COLUMNS`); calling it
    reads it as ``LoanArrays``. Picklable: a Dask worker reads its own partitions
    (``portfolio.montecarlo.distributed.prepare_on_workers``)."""

    path: str

    def __call__(self) -> LoanArrays:
        table = pq.read_table(self.path, columns=list(LOAN_COLUMNS))
        col = {name: table.column(name).combine_chunks() for name in LOAN_COLUMNS}
        region = col["region"].dictionary_encode()
        return LoanArrays(
            loan_id=col["loan_id"].to_numpy(zero_copy_only=False).astype(object),
            balance=col["balance"].to_numpy().astype(np.float64),
            apr=col["apr"].to_numpy().astype(np.float64),
            term_months=col["term_months"].to_numpy().astype(np.int16),
            remaining_term=col["remaining_term"].to_numpy().astype(np.int16),
            months_on_book=col["months_on_book"].to_numpy().astype(np.int16),
            repayment_type=col["repayment_type"].to_numpy().astype(np.int8),
            credit_score=col["credit_score"].to_numpy().astype(np.int16),
            region=region.dictionary.to_numpy(zero_copy_only=False)[region.indices.to_numpy()],
            origination_date=col["origination_date"].to_numpy(zero_copy_only=False)
            .astype("datetime64[D]"),
            next_due_date=col["next_due_date"].to_numpy(zero_copy_only=False)
            .astype("datetime64[D]"),
            principal=col["principal"].to_numpy().astype(np.float64),
            disclosed_apr=col["disclosed_apr"].to_numpy(zero_copy_only=False)
            .astype(np.float64),
        )


def write_loan_parts(loans: LoanArrays, out: str | Path, start: int = 0) -> Path:
    """Append ``loans`` to the loan tape ``out`` as one partition file
    ``out/part-{start:05d}.parquet`` (columns :data:`LOAN_COLUMNS`); returns its path.
    Nothing is overwritten."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"part-{int(start):05d}.parquet"
    if path.exists():
        raise ValidationError(must_be("out", "a loan tape without this partition", str(path),
                                      "(nothing is overwritten)"))
    table = pa.table({
        "loan_id": pa.array(np.asarray(loans.loan_id).astype(str), type=pa.string()),
        "balance": pa.array(np.asarray(loans.balance, dtype=np.float64)),
        "apr": pa.array(np.asarray(loans.apr, dtype=np.float64)),
        "term_months": pa.array(np.asarray(loans.term_months, dtype=np.int16)),
        "remaining_term": pa.array(np.asarray(loans.remaining_term, dtype=np.int16)),
        "months_on_book": pa.array(np.asarray(loans.months_on_book, dtype=np.int16)),
        "repayment_type": pa.array(np.asarray(loans.repayment_type, dtype=np.int8)),
        "credit_score": pa.array(np.asarray(loans.credit_score, dtype=np.int16)),
        "region": pa.array(np.asarray(loans.region).astype(str), type=pa.string())
        .dictionary_encode(),
        "origination_date": pa.array(np.asarray(loans.origination_date, dtype="datetime64[D]")),
        "next_due_date": pa.array(np.asarray(loans.next_due_date, dtype="datetime64[D]")),
        "principal": pa.array(np.asarray(loans.principal, dtype=np.float64)),
        "disclosed_apr": pa.array(np.asarray(loans.disclosed_apr, dtype=np.float64)),
    })
    pq.write_table(table, path, compression="zstd")
    return path


def write_loan_tape(loans: LoanArrays, out: str | Path) -> int:
    """Write ``loans`` (e.g. a pool's at its cut-off) as a loan tape under ``out``: one
    partition per origination month, in month order (each partition's loans in their order
    in ``loans``). ``out`` must not exist or be empty. Returns the number of partitions."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(must_be("--out", "a new or empty folder", str(out),
                                      "(it already holds files; nothing is overwritten)"))
    if len(loans) == 0:
        raise ValidationError(must_be("loans", "at least one loan", "0 loans"))
    month = np.asarray(loans.origination_date, dtype="datetime64[D]").astype("datetime64[M]")
    order = np.argsort(month, kind="stable")
    cuts = np.flatnonzero(np.r_[True, month[order][1:] != month[order][:-1], True])
    for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        write_loan_parts(loans.take(order[lo:hi]), out, i)
    return len(cuts) - 1


TAPE_TYPES: dict[str, tuple[pa.DataType, ...]] = {
    "loan_id": (pa.string(), pa.large_string()),
    "balance": (pa.float64(),), "apr": (pa.float64(),),
    "term_months": (pa.int16(),), "remaining_term": (pa.int16(),),
    "months_on_book": (pa.int16(),), "repayment_type": (pa.int8(),),
    "credit_score": (pa.int16(),),
    "region": (pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())),
    "origination_date": (pa.date32(),), "next_due_date": (pa.date32(),),
    "principal": (pa.float64(),), "disclosed_apr": (pa.float64(),),
}
"""The Arrow types :func:`write_loan_parts` writes for :data:`LOAN_COLUMNS` (the text columns
also as large or dictionary-encoded strings)."""


def _check_part(part: LoanPart) -> int:
    """One partition's rows, once its footer shows it is a loan-tape partition: readable
    Parquet, every column of :data:`LOAN_COLUMNS` with its type, no null (the statistics of
    each row group; a column without them is read and counted)."""
    allowed = ("a loan tape written by `riskpool pool export`: part-NNNNN.parquet files with "
               "the columns " + ", ".join(LOAN_COLUMNS))
    try:
        meta = pq.ParquetFile(part.path).metadata
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(must_be("--tape", allowed, f"{part.path}, which is not a "
                                      f"readable Parquet file ({_first_line(exc)})")) from None
    for name, types in TAPE_TYPES.items():
        if name not in schema.names:
            raise ValidationError(must_be("--tape", allowed, f"{part.path} without `{name}`"))
        if schema.field(name).type not in types:
            raise ValidationError(must_be("--tape", allowed, f"{part.path} whose `{name}` is "
                                          f"{schema.field(name).type}, not {types[0]}"))
    for name in LOAN_COLUMNS:
        j = meta.schema.names.index(name)
        stats = [meta.row_group(i).column(j).statistics for i in range(meta.num_row_groups)]
        if all(s is not None and s.has_null_count for s in stats):
            nulls = sum(s.null_count for s in stats)  # type: ignore[union-attr]
        else:
            nulls = pq.read_table(part.path, columns=[name]).column(name).null_count
        if nulls:
            raise ValidationError(must_be("--tape", allowed, f"{part.path} with {nulls:,} "
                                          f"null `{name}` value(s)"))
    return int(meta.num_rows)


def tape_rows(parts: list[LoanPart]) -> int:
    """Loans in a loan tape, from the files' footers (nothing else is read), each partition
    checked first (:func:`_check_part`): a damaged tape is refused on the client, naming the
    file and the column, before any worker reads it."""
    return sum(_check_part(p) for p in parts)


def loan_parts(tape: str | Path) -> list[LoanPart]:
    """The partitions of the loan tape ``tape`` in file-name order (their order in the pool)."""
    files = sorted(Path(tape).glob("part-*.parquet"))
    if not files:
        raise ValidationError(must_be("tape", "a folder of part-NNNNN.parquet loan partitions",
                                      str(tape)))
    return [LoanPart(str(f.resolve())) for f in files]
