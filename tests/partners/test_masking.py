"""Borrower-id masking in partner exports (``partners.masking``): HMAC-SHA256 with a key per
partner. The masked id is stable for a partner, differs across partners, and no raw borrower
id appears anywhere in a masked export (CLI CSV and Parquet, the dashboard's download)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import shutil
import stat
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dashboards import access
from dashboards.auth import Viewer
from partners.masking import load_keys, mask_id, partner_key
from portfolio.errors import ValidationError
from portfolio.store import open_store
from portfolio.synthetic.generate import generate_book

ROOT = Path(__file__).resolve().parents[2]
PARTNERS = ROOT / "examples" / "partners.toml"
WINDOW = ("2026-10-01", "2026-10-31")
TWO = ("bank_east", "hangzhou_city")


def test_mask_id_is_hmac_sha256_rfc4231() -> None:
    """RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?") =
    5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843 (published vector); the
    masked id is its first 32 hex digits after ``bk_``; the id is normalised first (NFC,
    trimmed), so ``" x "`` and ``"x"`` mask alike."""
    msg = "what do ya want for nothing?"
    assert mask_id(msg, b"Jefe") == "bk_5bdcc146bf60754e6a042426089575c7"
    assert mask_id(f"  {msg}\t", b"Jefe") == mask_id(msg, b"Jefe")
    assert mask_id("Cafe\u0301", b"k") == mask_id("Caf\u00e9", b"k")


def test_partner_key_made_once_and_kept_private(tmp_path: Path) -> None:
    keys = tmp_path / "partner_keys.toml"
    a = partner_key(keys, "bank_east")
    assert len(a) == 32 and partner_key(keys, "bank_east") == a  # stable
    b = partner_key(keys, "hangzhou_city")
    assert b != a and partner_key(keys, "bank_east") == a  # adding one keeps the other
    assert load_keys(keys) == {"bank_east": a, "hangzhou_city": b}
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600


def test_unwritable_keys_file_is_a_message(tmp_path: Path) -> None:
    """The keys file's folder is a regular file (unwritable even for root): a ValidationError
    naming the keys file, not an OSError traceback."""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(ValidationError, match="partner keys file"):
        partner_key(blocker / "partner_keys.toml", "bank_east")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(("text", "field"), [
    ('[keys]\nbank_east = "abc"\n', "keys.bank_east"),
    ('[keys]\n"bad id!" = "' + "0" * 64 + '"\n', "`keys.\"bad id!\"`"),
    ('keys = 3\n', "keys"),
    ('[other]\n', "other"),
])
def test_keys_file_of_the_wrong_shape_names_the_field(tmp_path: Path, text: str,
                                                      field: str) -> None:
    keys = tmp_path / "partner_keys.toml"
    keys.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as err:
        partner_key(keys, "bank_east")
    assert field in str(err.value)
    assert keys.read_text(encoding="utf-8") == text  # nothing rewritten


@pytest.fixture(scope="module")
def allocated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from riskpool.cli import main

    path = tmp_path_factory.mktemp("mask") / "book.duckdb"
    with open_store(path) as store:
        generate_book(store, 3000, 6, seed=4, as_of=dt.date(2026, 10, 31))
    try:
        main(["allocate", "--db", str(path), "--partners", str(PARTNERS), "--originated",
              *WINDOW])
    except SystemExit as exc:
        assert not exc.code
    return path


@pytest.fixture
def db(allocated: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "db.duckdb"
    shutil.copy(allocated, dst)
    return dst


def _raw_ids(db: Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT borrower_id FROM loans").fetchall()}
    finally:
        con.close()


def test_cli_export_masks_borrower_ids(cli, db: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKPOOL_PARTNER_KEYS", raising=False)
    tapes: dict[str, pd.DataFrame] = {}
    for party in TWO:
        raw = tmp_path / f"{party}_raw.parquet"
        r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", party,
                "--out", raw, "--borrower-ids", "raw")
        assert r.code == 0 and "borrower ids raw" in r.out, r.err
        tapes[f"{party} raw"] = pd.read_parquet(raw)
        for n, suffix in enumerate((".csv", ".parquet", ".csv")):
            out = tmp_path / f"{party}_{n}{suffix}"
            r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", party,
                    "--out", out)
            assert r.code == 0 and "borrower ids masked" in r.out, r.err
            tape = pd.read_csv(out, dtype=str) if suffix == ".csv" else pd.read_parquet(out)
            tapes[f"{party} {n}"] = tape
            # no raw borrower id anywhere in the file's bytes (any column, any encoding of it)
            data = out.read_bytes()
            leaked = [b for b in _raw_ids(db) if b.encode() in data]
            assert leaked == [], f"{out.name} holds raw borrower ids {leaked[:3]}"
    keyfile = db.with_name("partner_keys.toml")
    keys = load_keys(keyfile)
    assert set(keys) == set(TWO)
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    for party in TWO:
        raw = tapes[f"{party} raw"]
        assert len(raw) > 0
        # the masked id is HMAC-SHA256 by the standard library with the partner's own key
        expect = ["bk_" + hmac.new(keys[party], b.encode(), hashlib.sha256).hexdigest()[:32]
                  for b in raw["borrower_id"]]
        for n in range(3):  # stable across exports (CSV and Parquet)
            assert list(tapes[f"{party} {n}"]["borrower_id"]) == expect
            assert list(tapes[f"{party} {n}"]["loan_id"]) == list(raw["loan_id"])
        # one borrower, one masked id: a borrower's loans stay countable
        assert (raw.groupby("borrower_id").size().sort_values().to_numpy()
                == pd.Series(expect).value_counts().sort_values().to_numpy()).all()
    # across partners: the same borrower masks differently (the tapes cannot be joined on it)
    some = sorted(_raw_ids(db))[:50]
    assert all(mask_id(b, keys[TWO[0]]) != mask_id(b, keys[TWO[1]]) for b in some)
    masked = [set(tapes[f"{p} 0"]["borrower_id"]) for p in TWO]
    assert masked[0].isdisjoint(masked[1])


def test_cli_export_refuses_unknown_borrower_ids_mode(cli, db: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", "bank_east",
            "--out", out, "--borrower-ids", "hashed")
    assert r.code == 2 and "--borrower-ids" in r.err and "masked" in r.err
    assert "Traceback" not in r.err and not out.exists()


def test_dashboard_download_is_masked_with_the_partners_key(db: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    keyfile = db.with_name("keys_elsewhere.toml")
    monkeypatch.setenv("RISKPOOL_PARTNER_KEYS", str(keyfile))
    me = Viewer("bank_user", "partner:bank_east")
    first = access.partner_tape(db, me, 1, "bank_east")
    again = access.partner_tape(db, Viewer("t", "treasury"), 1, "bank_east")
    key = load_keys(keyfile)["bank_east"]
    assert list(first["borrower_id"]) == list(again["borrower_id"])
    assert all(m == mask_id(b, key) for m, b in zip(
        first["borrower_id"], _tape_raw(db, "bank_east"), strict=True))
    text = first.to_csv(index=False)
    assert not [b for b in _raw_ids(db) if b in text]


def _tape_raw(db: Path, party: str) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT l.borrower_id FROM allocation_shares s JOIN loans l USING (loan_id) "
            "WHERE s.allocation_id = 1 AND s.party_id = ? AND s.share > 0 ORDER BY s.loan_id",
            [party]).fetchall()]
    finally:
        con.close()
