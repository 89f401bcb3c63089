"""Adversarial configuration files through the CLI: the partners registry (``riskpool allocate
--partners``), pool criteria (``riskpool pool create --criteria``) and deals (``riskpool tranche
check --structure``). Each case exits 2 with the field path in the message (no traceback),
and — where a database is named — every table's row count is unchanged."""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path

import pytest
import test_deal_bounds as deal_bounds
import test_registry_bounds as registry_bounds
import tomli_w
from adversarial_helpers import row_counts

pytestmark = pytest.mark.adversarial("config")
ROOT = Path(__file__).resolve().parents[2]
INF, NAN = math.inf, math.nan


def _exits_2(r, *, file: str, field: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err
    assert file in r.err, r.err
    assert re.search(field, r.err), (field, r.err)


@pytest.mark.parametrize(("path", "value", "field"), registry_bounds.BOUNDS,
                         ids=[f"{'.'.join(map(str, p))}={v!r}"
                              for p, v, _ in registry_bounds.BOUNDS])
def test_partners_file(cli, seeded_db: Path, tmp_path: Path, path: tuple, value: object,
                       field: str) -> None:
    bad = tmp_path / "partners_bad.toml"
    bad.write_text(tomli_w.dumps(registry_bounds._doc(path, value)), encoding="utf-8")
    before = row_counts(seeded_db)
    r = cli("allocate", "--db", seeded_db, "--partners", bad, "--originated", "2024-01-01",
            "2024-01-31")
    _exits_2(r, file="partners_bad.toml", field=field)
    assert row_counts(seeded_db) == before


@pytest.mark.parametrize(("raw", "field"), [
    (b"\xff\xfe[platform]\n", "not UTF-8"),
    (b"[platform]\nname = \"\xff\"\n", "not UTF-8"),
    (b"[platform\n", "not valid TOML"),
    (b"\x00\x01\x02", "not valid TOML"),
    (b"", "`partner` must be given"),
])
def test_partners_file_bytes(cli, seeded_db: Path, tmp_path: Path, raw: bytes,
                             field: str) -> None:
    bad = tmp_path / "partners_bad.toml"
    bad.write_bytes(raw)
    before = row_counts(seeded_db)
    r = cli("allocate", "--db", seeded_db, "--partners", bad, "--originated", "2024-01-01",
            "2024-01-31")
    _exits_2(r, file="partners_bad.toml", field=re.escape(field))
    assert row_counts(seeded_db) == before


CRITERIA = [
    (("eligibility", "score_min"), 2000, r"eligibility\.score_min"),
    (("eligibility", "score_min"), 600.5, r"eligibility\.score_min"),
    (("eligibility", "dpd_max"), -1, r"eligibility\.dpd_max"),
    (("eligibility", "terms"), [7], r"eligibility\.terms"),
    (("eligibility", "terms"), [], r"eligibility\.terms"),
    (("eligibility", "repayment_types"), ["balloon"], r"eligibility\.repayment_types"),
    (("eligibility", "apr_max"), INF, r"eligibility\.apr_max"),
    (("eligibility", "apr_min"), NAN, r"eligibility\.apr_min"),
    (("eligibility", "principal_min"), -5.0, r"eligibility\.principal_min"),
    (("eligibility", "balance_max"), INF, r"eligibility\.balance_max"),
    (("eligibility", "originated_from"), "yesterday", r"eligibility\.originated_from"),
    (("eligibility", "regions_include"), [""], r"eligibility\.regions_include"),
    (("eligibility", "score_mim"), 600, r"eligibility\.score_mim"),
    (("concentration", "max_obligor_share"), 1.5, r"concentration\.max_obligor_share"),
    (("concentration", "max_region_share"), NAN, r"concentration\.max_region_share"),
    (("eligibility",), "all", r"eligibility"),
    (("colour",), "red", r"colour"),
]


@pytest.mark.parametrize(("path", "value", "field"), CRITERIA,
                         ids=[f"{'.'.join(p)}={v!r}" for p, v, _ in CRITERIA])
def test_criteria_file(cli, seeded_db: Path, tmp_path: Path, path: tuple, value: object,
                       field: str) -> None:
    doc = copy.deepcopy(tomllib.loads((ROOT / "examples" / "criteria.toml").read_text("utf-8")))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    bad = tmp_path / "criteria_bad.toml"
    bad.write_text(tomli_w.dumps(doc), encoding="utf-8")
    before = row_counts(seeded_db)
    r = cli("pool", "create", "--db", seeded_db, "--name", "p", "--criteria", bad,
            "--cutoff", "2024-03-31")
    _exits_2(r, file="criteria_bad.toml", field=field)
    assert row_counts(seeded_db) == before


@pytest.mark.parametrize(("path", "value", "field"), deal_bounds.BOUNDS,
                         ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in deal_bounds.BOUNDS])
def test_deal_file(cli, tmp_path: Path, path: tuple, value: object, field: str) -> None:
    """No database is involved (``tranche check`` reads the file only): the file is named,
    with the field path."""
    bad = tmp_path / "deal_bad.toml"
    bad.write_text(tomli_w.dumps(deal_bounds._doc(path, value)), encoding="utf-8")
    r = cli("tranche", "check", "--structure", bad)
    _exits_2(r, file="deal_bad.toml", field=field)
