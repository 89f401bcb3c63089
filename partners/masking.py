"""Borrower-id masking in partner exports: a keyed hash per partner.

A partner's tape (``riskpool allocate export``, the dashboard's download) carries, in place of
the book's ``borrower_id``, the masked id

    ``bk_`` + the first 32 hex digits of HMAC-SHA256(key_partner, normalise_id(borrower_id))

(HMAC: RFC 2104; SHA-256: FIPS 180-4). ``key_partner`` is a random 256-bit key made for that
partner the first time one of its tapes is exported, kept in the keys file
(``portfolio.settings.partner_keys_path``: ``partner_keys.toml`` beside the database, mode
0600)::

    [keys]
    bank_east = "5f0c…"   # 64 hex digits

So a partner sees the same masked id for the same borrower in every export (it can count a
borrower's loans, and the household rule R5 stays checkable), two partners see different
masked ids for the same borrower (they cannot join their tapes on it), and without the key the
raw id cannot be recovered or confirmed by hashing guesses. Deleting a partner's line rotates
its key (its next export has new masked ids). The file goes through the one validation layer
(``KEYS_SCHEMA``); a new partner's key is added under an exclusive lock on
``partner_keys.toml.lock`` and written to a temporary file then renamed, so two exports at once
never make two keys for one partner.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import tomli_w

from portfolio.errors import ValidationError, must_be
from portfolio.validation import Field, MapOf, Str, Table, normalise_id, read_toml, validate

MASK_PREFIX = "bk_"
MASK_HEX_DIGITS = 32  # 128 bits of the HMAC: no collision among a book's borrowers
KEY_BYTES = 32
PARTY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"

KEYS_SCHEMA = Table({
    "keys": Field.optional(MapOf(
        Str(pattern=PARTY_PATTERN, what="a partner id (letters, digits, _ . -)"),
        Str(pattern=r"[0-9a-f]{64}", what="64 lowercase hex digits (a 256-bit key)"),
    ), {}),
}, name="partner keys file")


def load_keys(path: str | Path) -> dict[str, bytes]:
    """The keys by partner id (a missing file is no keys); a file of the wrong shape is a
    ``SchemaError`` naming the field (``keys.bank_east``)."""
    p = Path(path)
    if not p.exists():
        return {}
    doc = validate(KEYS_SCHEMA, read_toml(p, "partner keys file"), str(p))
    return {party: bytes.fromhex(hexkey) for party, hexkey in doc["keys"].items()}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def partner_key(path: str | Path, party_id: str) -> bytes:
    """``party_id``'s key from the keys file, made (random, 256 bits) and saved if it has none."""
    p = Path(path)
    party = normalise_id(party_id)
    keys = load_keys(p)
    if party in keys:
        return keys[party]
    try:
        return _add_key(p, party)
    except OSError as exc:
        raise ValidationError(must_be("partner keys file", "a writable file (a new partner's "
                                      "key is saved there)", str(p),
                                      f"({exc.strerror or exc})")) from None


def _add_key(p: Path, party: str) -> bytes:
    with _locked(p):
        keys = load_keys(p)  # another process may have added it meanwhile
        if party not in keys:
            keys[party] = secrets.token_bytes(KEY_BYTES)
            doc = {"keys": {k: v.hex() for k, v in sorted(keys.items())}}
            tmp = p.with_name(p.name + ".tmp")
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("# riskpool: per-partner keys masking borrower ids in partner exports "
                         "(partners.masking). Keep secret.\n" + tomli_w.dumps(doc))
            os.chmod(tmp, 0o600)
            tmp.replace(p)
    return keys[party]


def mask_id(borrower_id: str, key: bytes) -> str:
    """One borrower id masked with a partner's key (see the module docstring)."""
    digest = hmac.new(key, normalise_id(str(borrower_id)).encode("utf-8"), hashlib.sha256)
    return MASK_PREFIX + digest.hexdigest()[:MASK_HEX_DIGITS]


def mask_ids(borrower_ids: Iterable[str], key: bytes) -> np.ndarray:
    """Each id masked with ``key`` (an object array in the same order)."""
    return np.array([mask_id(b, key) for b in borrower_ids], dtype=object)
