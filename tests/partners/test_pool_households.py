"""Each pool loan's borrower and household credit limit, stored with the pool
(portfolio.book.households): the stored values are the live ones exactly, and they are read
only while the book and the code are as they were (else ``pool_loans`` computes live)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from partners.allocation import allocate
from partners.records import pool_loans, pool_loans_then
from portfolio.book import households
from portfolio.book.pools import create_pool, parse_criteria
from portfolio.errors import NotFound, ValidationError
from portfolio.store import allocations as alloc_sql
from portfolio.store import open_store
from portfolio.store.summaries import book_key
from portfolio.synthetic.generate import generate_book

CUT = dt.date(2026, 10, 31)
CRITERIA = {"eligibility": {"dpd_max": 0}}


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    db = tmp_path_factory.mktemp("pool_households") / "db.duckdb"
    with open_store(db) as store:
        generate_book(store, 4000, 8, seed=5, as_of=CUT)
        info = create_pool(store, "p", parse_criteria(CRITERIA), CUT)
    return db, info.pool_id


@pytest.fixture()
def writable(book: tuple[Path, int], tmp_path: Path) -> tuple[Path, int]:
    db, pool_id = book
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(db, copy)
    return copy, pool_id


def _live(con, pool_id: int) -> dict[str, np.ndarray]:
    """What pool_loans computed before anything was stored: the one-query live read."""
    return alloc_sql.pool_loans_for_allocation(con, pool_id, CUT)


def test_create_pool_stores_the_live_values_exactly(book) -> None:
    db, pool_id = book
    with open_store(db, read_only=True) as store:
        stored = households.stored_pool_households(store.con, pool_id)
        live = _live(store.con, pool_id)
        batch = pool_loans(store, pool_id)
    assert stored is not None
    np.testing.assert_array_equal(stored.borrower_id, live["borrower_id"])
    # bit for bit, not within a tolerance
    assert stored.household_limit.tobytes() == live["household_limit"].tobytes()
    # the codes are pandas' first-appearance factorisation of the ids, in loan_id order
    codes, uniques = pd.factorize(live["borrower_id"])
    np.testing.assert_array_equal(stored.borrower_code, codes)
    np.testing.assert_array_equal(stored.borrowers, np.asarray(uniques, dtype=object))
    assert len(np.unique(stored.borrower_code)) < len(stored.borrower_code)  # shared households
    # the pool read hands them over with the snapshot, in the same loan order
    assert batch.borrower_code is not None
    np.testing.assert_array_equal(batch.loans.loan_id, live["loan_id"])
    np.testing.assert_array_equal(batch.borrower_id, live["borrower_id"])
    assert batch.household_limit.tobytes() == live["household_limit"].tobytes()
    assert batch.borrowers is batch.borrower_code


def test_allocating_with_the_stored_codes_is_allocating_with_the_ids(book, registry) -> None:
    db, pool_id = book
    with open_store(db, read_only=True) as store:
        batch = pool_loans(store, pool_id)
    by_codes = allocate(batch.loans, registry, as_of=CUT, borrower_id=batch.borrowers,
                        household_limit=batch.household_limit)
    by_ids = allocate(batch.loans, registry, as_of=CUT, borrower_id=batch.borrower_id,
                      household_limit=batch.household_limit)
    assert by_codes.shares.tobytes() == by_ids.shares.tobytes()
    assert by_codes.checks == by_ids.checks
    # R5 on balances (no household limits): the codes group the loans as the ids do
    by_codes = allocate(batch.loans, registry, as_of=CUT, borrower_id=batch.borrowers)
    by_ids = allocate(batch.loans, registry, as_of=CUT, borrower_id=batch.borrower_id)
    assert by_codes.shares.tobytes() == by_ids.shares.tobytes()
    assert by_codes.checks == by_ids.checks


def test_a_new_ingest_batch_makes_pool_loans_compute_live(writable) -> None:
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        assert households.stored_pool_households(con, pool_id) is not None
        con.execute("INSERT INTO ingest_batches VALUES (999, 'loans', 'x', 'x', 0, 0, 0, "
                    "now()::TIMESTAMP, now()::TIMESTAMP, NULL)")
        assert households.stored_pool_households(con, pool_id) is None
        batch = pool_loans(store, pool_id)
        live = _live(con, pool_id)
    assert batch.borrower_code is None  # computed live
    np.testing.assert_array_equal(batch.borrower_id, live["borrower_id"])
    assert batch.household_limit.tobytes() == live["household_limit"].tobytes()


def test_a_credit_limit_changed_in_place_is_not_read_stale(writable) -> None:
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        before = pool_loans(store, pool_id)
        assert before.borrower_code is not None
        target = str(before.loans.loan_id[0])
        borrower = str(before.borrower_id[0])
        con.execute("UPDATE loans SET credit_limit = coalesce(credit_limit, principal) + 1000 "
                    "WHERE loan_id = ?", [target])
        after = pool_loans(store, pool_id)
        live = _live(con, pool_id)
    # the live values, not the stored ones: the borrower's household limit moved by 1,000
    assert after.household_limit.tobytes() == live["household_limit"].tobytes()
    same = after.borrower_id == borrower
    np.testing.assert_array_equal(after.household_limit[same],
                                  before.household_limit[same] + 1000.0)
    np.testing.assert_array_equal(after.household_limit[~same], before.household_limit[~same])


def test_a_limit_or_borrower_swapped_between_two_loans_changes_the_key(writable) -> None:
    # the book's exact sums stay the same; the digest of who holds which limit does not
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        key = alloc_sql.pool_household_key(con, "v")
        a, b = [r[0] for r in con.execute(
            "SELECT loan_id FROM loans WHERE credit_limit IS NOT NULL ORDER BY loan_id "
            "LIMIT 2").fetchall()]
        la, lb = [con.execute("SELECT credit_limit FROM loans WHERE loan_id = ?",
                              [x]).fetchall()[0][0] for x in (a, b)]
        assert la != lb
        con.execute("UPDATE loans SET credit_limit = ? WHERE loan_id = ?", [lb, a])
        con.execute("UPDATE loans SET credit_limit = ? WHERE loan_id = ?", [la, b])
        swapped = alloc_sql.pool_household_key(con, "v")
        assert swapped != key
        a, b = [r[0] for r in con.execute(  # two loans of different borrowers swap them
            "SELECT min(loan_id) FROM loans GROUP BY borrower_id ORDER BY 1 LIMIT 2").fetchall()]
        ba, bb = [con.execute("SELECT borrower_id FROM loans WHERE loan_id = ?",
                              [x]).fetchall()[0][0] for x in (a, b)]
        con.execute("UPDATE loans SET borrower_id = ? WHERE loan_id = ?", [bb, a])
        con.execute("UPDATE loans SET borrower_id = ? WHERE loan_id = ?", [ba, b])
        assert alloc_sql.pool_household_key(con, "v") != swapped
        assert alloc_sql.pool_household_key(con, "w") != alloc_sql.pool_household_key(con, "v")


# (table, column, an in-place change of one value): each column the households read
_READ = (
    ("loans", "loan_id", "loan_id = loan_id || 'x'"),
    ("loans", "borrower_id", "borrower_id = borrower_id || 'x'"),
    ("loans", "origination_date", "origination_date = origination_date - 1"),
    ("loans", "principal", "principal = principal + 0.01"),
    ("loans", "credit_limit", "credit_limit = coalesce(credit_limit, principal) + 0.01"),
    ("loan_performance", "loan_id", "loan_id = loan_id || 'x'"),
    ("loan_performance", "as_of", "as_of = as_of - 1"),
    ("loan_performance", "balance", "balance = balance + 0.01"),
)
# every other column of the two tables, changed in place: the households cannot see it
_NOT_READ = (
    ("loans", "apr", "apr = apr + 0.01"),
    ("loans", "term_months", "term_months = CASE WHEN term_months = 12 THEN 6 ELSE 12 END"),
    ("loans", "repayment_type", "repayment_type = CASE WHEN repayment_type = 'flat_fee' "
     "THEN 'level_annuity' ELSE 'flat_fee' END"),
    ("loans", "credit_score", "credit_score = credit_score + 1"),
    ("loans", "region", "region = 'x'"),
    ("loans", "channel", "channel = 'x'"),
    ("loans", "product", "product = 'x'"),
    ("loans", "disclosed_apr", "disclosed_apr = 0.3"),
    ("loans", "batch_id", "batch_id = 77"),
    ("loan_performance", "months_on_book", "months_on_book = months_on_book + 1"),
    ("loan_performance", "paid_principal", "paid_principal = paid_principal + 1"),
    ("loan_performance", "paid_interest", "paid_interest = paid_interest + 1"),
    ("loan_performance", "prepaid_principal", "prepaid_principal = prepaid_principal + 1"),
    ("loan_performance", "dpd", "dpd = dpd + 1"),
    ("loan_performance", "status",
     "status = CASE WHEN status = 'default' THEN 'current' ELSE 'default' END"),
    ("loan_performance", "charge_off", "charge_off = charge_off + 1"),
    ("loan_performance", "recovery", "recovery = recovery + 1"),
    ("loan_performance", "batch_id", "batch_id = 77"),
)


def test_the_key_digests_every_column_the_households_read_and_only_those(writable) -> None:
    """The key hashes only the columns the households' query reads: a value changed in place
    in any of them gives another key; a change to any other column of ``loans`` or
    ``loan_performance`` leaves the key and the live households exactly as they were (the
    full book key, for the Book page's tables, changes). Both tables' columns are listed
    whole, so a column added to either fails here until it is placed."""
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        columns = {(t, c) for t in ("loans", "loan_performance")
                   for (c,) in con.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_name = ?", [t]).fetchall()}
        assert columns == {(t, c) for t, c, _ in _READ + _NOT_READ}
        # a closed borrower's loan (the case the performance columns decide) and an open one
        closed = con.execute(
            "SELECT loan_id FROM loan_performance WHERE balance <= 0 AND as_of <= ? "
            "ORDER BY loan_id LIMIT 1", [CUT]).fetchall()[0][0]
        target = str(pool_loans(store, pool_id).loans.loan_id[0])
        for table, column, change in _READ + _NOT_READ:
            loan = closed if table == "loan_performance" else target
            where = ("loan_id = ? AND as_of = (SELECT max(as_of) FROM loan_performance "
                     "WHERE loan_id = ? AND as_of <= ?)" if table == "loan_performance"
                     else "loan_id = ?")
            params = [loan, loan, CUT] if table == "loan_performance" else [loan]
            key = alloc_sql.pool_household_key(con, "v")
            book = book_key(con, "v")
            live = _live(con, pool_id)
            con.execute("BEGIN TRANSACTION")
            con.execute(f"UPDATE {table} SET {change} WHERE {where}", params)
            changed = alloc_sql.pool_household_key(con, "v")
            after = _live(con, pool_id)
            # (book_key leaves out the rows' batch ids too: it has the last batch's)
            assert (book_key(con, "v") != book) is (column != "batch_id"), (table, column)
            con.execute("ROLLBACK")
            if (table, column, change) in _READ:
                assert changed != key, (table, column)
            else:
                assert changed == key, (table, column)
                np.testing.assert_array_equal(after["borrower_id"], live["borrower_id"])
                assert after["household_limit"].tobytes() == live["household_limit"].tobytes()


def test_a_balance_swapped_between_two_performance_rows_changes_the_key(writable) -> None:
    # a closed loan's last zero balance and an open loan's balance trade places: every count
    # and sum stays, which loans are closed does not
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        key = alloc_sql.pool_household_key(con, "v")
        (l1, day, b1), = con.execute("SELECT loan_id, as_of, balance FROM loan_performance "
                                     "WHERE balance <= 0 ORDER BY loan_id, as_of "
                                     "LIMIT 1").fetchall()
        (l2, b2), = con.execute("SELECT loan_id, balance FROM loan_performance WHERE as_of = ? "
                                "AND balance > 0 ORDER BY loan_id LIMIT 1", [day]).fetchall()
        con.execute("UPDATE loan_performance SET balance = ? WHERE loan_id = ? AND as_of = ?",
                    [b2, l1, day])
        con.execute("UPDATE loan_performance SET balance = ? WHERE loan_id = ? AND as_of = ?",
                    [b1, l2, day])
        assert alloc_sql.pool_household_key(con, "v") != key


def test_a_database_without_them_computes_live_and_ensure_stores_them(writable) -> None:
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        con.execute("DROP TABLE pool_households")  # as a pool created before they were stored
        assert households.stored_pool_households(con, pool_id) is None
        live_batch = pool_loans(store, pool_id)
        assert live_batch.borrower_code is None
        assert households.ensure_pool_households(store, pool_id) is True
        assert households.ensure_pool_households(store, pool_id) is False  # current already
        batch = pool_loans(store, pool_id)
        with pytest.raises(NotFound, match="pool"):
            households.ensure_pool_households(store, 99)
    assert batch.borrower_code is not None
    np.testing.assert_array_equal(batch.borrower_id, live_batch.borrower_id)
    assert batch.household_limit.tobytes() == live_batch.household_limit.tobytes()


def _counts(con) -> dict[str, int]:
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_type = 'BASE TABLE'").fetchall()]
    return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0] for n in names}


def test_a_refused_or_failed_pool_create_leaves_nothing(writable, monkeypatch) -> None:
    db, _ = writable
    with open_store(db) as store:
        con = store.con
        con.execute("DROP TABLE pool_households")
        before = _counts(con)
        with pytest.raises(ValidationError, match="name"):  # refused: the name is taken
            create_pool(store, "p", parse_criteria(CRITERIA), CUT)
        with pytest.raises(ValidationError, match="no loan"):  # refused: nothing eligible
            create_pool(store, "q", parse_criteria({"eligibility": {"score_min": 900}}), CUT)
        assert _counts(con) == before

        def fail(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(alloc_sql, "write_pool_households", fail)
        with pytest.raises(RuntimeError, match="disk full"):  # failed while storing them
            create_pool(store, "r", parse_criteria(CRITERIA), CUT)
        assert _counts(con) == before  # no pool, no pool loans, no table
        assert "pool_households" not in before


def _blob_compression(con) -> set[str]:
    con.execute("CHECKPOINT")
    return {r[0] for r in con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('pool_households') "
        "WHERE column_name IN ('loans', 'borrowers') AND segment_type = 'BLOB'").fetchall()}


def test_the_blobs_are_stored_uncompressed_and_an_older_table_is_rebuilt(writable) -> None:
    """The households' Arrow blobs are stored as they are (no general-purpose compression to
    undo at each read); a table made with the earlier DDL (blobs compressed) is rebuilt so at
    the next write, its other rows kept byte for byte, and reads the same households."""
    db, pool_id = writable
    with open_store(db) as store:
        con = store.con
        assert _blob_compression(con) == {"Uncompressed"}
        before = pool_loans(store, pool_id)
        rows = con.execute("SELECT * FROM pool_households ORDER BY pool_id").fetchall()
        # the earlier table: the same columns without the compression clause, plus another
        # pool's row that the rebuild must keep
        con.execute("DROP TABLE pool_households")
        con.execute("CREATE TABLE pool_households (pool_id BIGINT NOT NULL PRIMARY KEY, "
                    "as_of DATE NOT NULL, household_key VARCHAR NOT NULL, loans BLOB NOT NULL, "
                    "borrowers BLOB NOT NULL, computed_at TIMESTAMP NOT NULL)")
        other = (pool_id + 100, *rows[0][1:])
        con.executemany("INSERT INTO pool_households VALUES (?, ?, ?, ?, ?, ?)", [*rows, other])
        assert _blob_compression(con) != {"Uncompressed"}
        with store.transaction() as tx:
            households.write_pool_households(tx, pool_id, CUT)
        assert _blob_compression(con) == {"Uncompressed"}
        kept = con.execute("SELECT * FROM pool_households WHERE pool_id = ?",
                           [pool_id + 100]).fetchall()
        assert kept == [other]
        after = pool_loans(store, pool_id)
    assert after.borrower_code is not None
    assert after.borrower_code.tobytes() == before.borrower_code.tobytes()
    assert after.household_limit.tobytes() == before.household_limit.tobytes()


def _work(calls: list[bool]):
    """A pool's work as ``pool_loans_then`` runs it: records whether each batch it was given
    had the stored codes, returns the batch's household limits and borrower ids."""
    def work(batch):
        calls.append(batch.borrower_code is not None)
        return batch.household_limit.copy(), np.asarray(batch.borrower_id)
    return work


def test_work_on_current_households_runs_once_and_is_kept(book) -> None:
    db, pool_id = book
    calls: list[bool] = []
    with open_store(db, read_only=True) as store:
        batch, (limits, ids) = pool_loans_then(store, pool_id, _work(calls))
        plain = pool_loans(store, pool_id)
    assert calls == [True]  # on the stored households, while their key was computed
    assert batch.borrower_code is not None
    assert batch.loans.balance.tobytes() == plain.loans.balance.tobytes()
    np.testing.assert_array_equal(batch.borrower_code, plain.borrower_code)
    assert limits.tobytes() == plain.household_limit.tobytes()
    np.testing.assert_array_equal(ids, plain.borrower_id)


def test_work_on_stale_households_is_discarded_and_run_again_on_the_live(writable) -> None:
    db, pool_id = writable
    calls: list[bool] = []
    with open_store(db) as store:
        target = str(pool_loans(store, pool_id).loans.loan_id[0])
        store.con.execute("UPDATE loans SET credit_limit = coalesce(credit_limit, principal) "
                          "+ 1000 WHERE loan_id = ?", [target])
        batch, (limits, ids) = pool_loans_then(store, pool_id, _work(calls))
        live = _live(store.con, pool_id)
    assert calls == [True, False]  # the stored ones first, then the live ones, kept
    assert batch.borrower_code is None
    assert limits.tobytes() == live["household_limit"].tobytes()
    np.testing.assert_array_equal(ids, live["borrower_id"])


def test_an_error_of_work_is_raised_only_if_the_households_are_current(writable) -> None:
    db, pool_id = writable

    def fails_on_stored(batch):
        if batch.borrower_code is not None:
            raise ValidationError("work failed on the stored households")
        return "live"

    with open_store(db) as store:
        with pytest.raises(ValidationError, match="on the stored households"):
            pool_loans_then(store, pool_id, fails_on_stored)
        store.con.execute("INSERT INTO ingest_batches VALUES (999, 'loans', 'x', 'x', 0, 0, 0, "
                          "now()::TIMESTAMP, now()::TIMESTAMP, NULL)")
        batch, got = pool_loans_then(store, pool_id, fails_on_stored)  # stale: run live
    assert got == "live" and batch.borrower_code is None


def test_work_without_stored_households_or_in_a_transaction_runs_once(writable) -> None:
    db, pool_id = writable
    with open_store(db) as store:
        calls: list[bool] = []
        with store.transaction():  # the key first, on this connection, then the work
            batch, _ = pool_loans_then(store, pool_id, _work(calls))
        assert calls == [True] and batch.borrower_code is not None
        store.con.execute("DROP TABLE pool_households")
        calls.clear()
        batch, (limits, _) = pool_loans_then(store, pool_id, _work(calls))
        live = _live(store.con, pool_id)
    assert calls == [False] and batch.borrower_code is None
    assert limits.tobytes() == live["household_limit"].tobytes()


def test_households_of_another_code_version_are_not_worked_on(writable, monkeypatch) -> None:
    # their key names the code version that stored them: stale for sure, so the work runs
    # once, on the live households, without waiting for the book's pass to say so
    db, pool_id = writable
    with open_store(db) as store:
        monkeypatch.setattr(households, "code_version", lambda: "0+another")
        with store.transaction() as con:
            households.write_pool_households(con, pool_id, CUT)
        monkeypatch.undo()
        assert not households.may_be_current(
            households.stored_households_under(store.con, pool_id, CUT)[0])
        calls: list[bool] = []
        batch, (limits, _) = pool_loans_then(store, pool_id, _work(calls))
        live = _live(store.con, pool_id)
    assert calls == [False] and batch.borrower_code is None
    assert limits.tobytes() == live["household_limit"].tobytes()
