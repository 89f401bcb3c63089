"""Shared pieces of the adversarial suite: a small seeded book (the 5 golden loans) copied per
case."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from portfolio.book.ingest import ingest
from portfolio.store import open_store

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "tapes"


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("adv_seeded") / "seeded.duckdb"
    with open_store(db) as store:
        ingest(store, GOLDEN / "loans_small.csv", today=dt.date.today())
    return db


@pytest.fixture
def seeded_db(seeded_template: Path, tmp_path: Path) -> Path:
    db = tmp_path / "book.duckdb"
    shutil.copyfile(seeded_template, db)
    return db
