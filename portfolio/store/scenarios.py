"""SQL of scenario sets (``riskpool scenarios run|list|show``): one set, one stored object.

A set is one row of ``scenario_sets``: its name, the set file's text, the pool, the
assumptions file (name and sha256), the seed and path count every member shared (common
random numbers), the model and engine, the deal (name and file) when the set ran one, the
members (name, grid, the factors each changes) and the result table (one row per member: pool
EL, VaR and ES 99.9% with their standard errors, tranche EL per class, breakeven CDR per
class, trigger breach shares) as JSON, and ``loan_sampler``: the draw the hazard model's loan
engine made the numbers with (``simulation.LOAN_SAMPLERS``), or its granular engine
(``lanes.GRANULAR_SAMPLERS``; null for such a set stored before the sampler was recorded:
``GRANULAR_LEGACY_SAMPLER``'s numbers), or the delinquency model's granular engine
(``dq_kernels.DQ_SAMPLERS``; null for a set stored before: ``DQ_LEGACY_SAMPLER``'s numbers);
null for the other sets, which have no such draw. So sets made with different samplers are
never mixed up. It is written in one short transaction, or not at all. All SQL values are
``?`` parameters.

The table came with schema version 5 (``portfolio.store.migrations.v4_to_v5``), its
``loan_sampler`` with version 6 (``v5_to_v6``: the sets stored before are labelled by
``migrations.legacy_set_sampler``); its DDL is ``portfolio.store.migrations.SCENARIO_DDL``,
shared by a new database and the migration.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from portfolio.errors import NotFound, ValidationError, must_be
from portfolio.montecarlo.delinquency import MODELS
from portfolio.montecarlo.dq_kernels import DQ_SAMPLERS
from portfolio.montecarlo.lanes import GRANULAR_SAMPLERS
from portfolio.montecarlo.simulation import ENGINES, LOAN_SAMPLERS
from portfolio.store.core import Store
from portfolio.validation import (
    Anything,
    Field,
    Interval,
    ListOf,
    MapOf,
    OrNull,
    SchemaError,
    Str,
    StrOptions,
    Table,
    validate,
    verbatim,
)

__all__ = ["ScenarioSetRecord", "check_set_sampler", "get_scenario_set",
           "insert_scenario_set", "list_scenario_sets"]

COLUMNS = ("set_id", "name", "source", "set_toml", "pool_id", "assumptions",
           "assumptions_sha256", "n_paths", "seed", "model", "engine", "deal_name",
           "deal_source", "code_version", "created_at", "members", "results", "loan_sampler")

POOL_RESULT_COLUMNS: tuple[str, ...] = (
    "scenario", "el", "el_se", "el_pct", "var_999", "var_999_se", "es_999", "es_999_se",
    "es_999_pct")
"""The result columns every stored set has (the pool's loss measures; a deal's and its
triggers' columns come after them)."""

STORED_MEMBER = Table({
    "name": Field(Str(nonempty=True, what="a member's name")),
    "group": Field(Str()),
    "changes": Field(MapOf(Str(nonempty=True), Interval(float, 0, None,
                                                          unit="a multiplier or rho"))),
    "text": Field.optional(Str(), ""),
}, name="member")
STORED_SET = Table({
    "model": Field(StrOptions(MODELS)),
    "engine": Field(StrOptions(ENGINES)),
    "n_paths": Field(Interval(int, 1, None)),
    "seed": Field(Interval(int, 0, None)),
    "loan_sampler": Field(OrNull(StrOptions((*LOAN_SAMPLERS, *GRANULAR_SAMPLERS,
                                             *DQ_SAMPLERS)))),
    "members": Field(ListOf(STORED_MEMBER, min_len=1)),
    "results": Field(Table({
        "columns": Field(ListOf(Str(nonempty=True), unique=True, what="a list of distinct "
                                "column names holding " + ", ".join(POOL_RESULT_COLUMNS))),
        "rows": Field(ListOf(Anything(table=True))),
    })),
}, name="stored scenario set")
"""A stored set's typed columns, checked when it is read back (an unknown engine, members
that are not a list of members, results that are not a table of rows are refused by name)."""


@dataclass(frozen=True)
class ScenarioSetRecord:
    set_id: int
    name: str
    source: str
    set_toml: str
    pool_id: int
    assumptions: str
    assumptions_sha256: str | None
    n_paths: int
    seed: int
    model: str
    engine: str
    deal_name: str | None
    deal_source: str | None
    code_version: str
    created_at: dt.datetime
    members: list[dict[str, Any]]
    results: pd.DataFrame  # one row per member (riskpool.commands.scenarios: RESULT_COLUMNS)
    loan_sampler: str | None = None  # the loan engine's draw (module doc)

    def provenance(self) -> dict[str, Any]:
        """What made the set's numbers, as JSON (``riskpool scenarios show --json``): every
        field but the set file's text, the members and the results."""
        return {"set_id": self.set_id, "name": self.name, "source": self.source,
                "pool_id": self.pool_id, "assumptions": self.assumptions,
                "assumptions_sha256": self.assumptions_sha256, "n_paths": self.n_paths,
                "seed": self.seed, "model": self.model, "engine": self.engine,
                "loan_sampler": self.loan_sampler, "deal_name": self.deal_name,
                "deal_source": self.deal_source, "code_version": self.code_version,
                "created_at": self.created_at.isoformat(sep=" ")}


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        return _clean(value.item())
    return value


def check_set_sampler(engine: str, model: str, loan_sampler: str | None,
                      field: str = "loan_sampler", where: str = "") -> None:
    """``loan_sampler`` is one of ``LOAN_SAMPLERS`` for a hazard-model set of the loan engine,
    one of ``lanes.GRANULAR_SAMPLERS`` or None (a set stored before the sampler was recorded:
    ``GRANULAR_LEGACY_SAMPLER``'s numbers) for one of its granular engine, one of
    ``dq_kernels.DQ_SAMPLERS`` or None (``DQ_LEGACY_SAMPLER``'s numbers) for a
    delinquency-model set of the granular engine, and ``None`` for any other set
    (``ValidationError`` naming ``field`` otherwise)."""
    if engine == "loan" and model == "hazard":
        if loan_sampler not in LOAN_SAMPLERS:
            raise ValidationError(must_be(field, "one of " + ", ".join(LOAN_SAMPLERS)
                                          + " (a hazard-model set of the loan engine)",
                                          loan_sampler, where))
    elif engine == "granular" and model == "hazard":
        if loan_sampler not in (None, *GRANULAR_SAMPLERS):
            raise ValidationError(must_be(field, "one of " + ", ".join(GRANULAR_SAMPLERS)
                                          + " or None (a hazard-model set of the granular "
                                          "engine)", loan_sampler, where))
    elif engine == "granular" and model == "delinquency":
        if loan_sampler not in (None, *DQ_SAMPLERS):
            raise ValidationError(must_be(field, "one of " + ", ".join(DQ_SAMPLERS) + " or "
                                          "None (a delinquency-model set of the granular "
                                          "engine)", loan_sampler, where))
    elif loan_sampler is not None:
        raise ValidationError(must_be(field, f"None for a set of the {engine} engine "
                                      f"and the {model} model (only a hazard-model set and a "
                                      "delinquency-model set of the granular engine draw with "
                                      "a versioned sampler)", loan_sampler, where))


def insert_scenario_set(store: Store, *, name: str, source: str, set_toml: str, pool_id: int,
                        assumptions: str, assumptions_sha256: str | None, n_paths: int,
                        seed: int, model: str, engine: str, deal_name: str | None,
                        deal_source: str | None, code_version: str,
                        members: list[dict[str, Any]], results: pd.DataFrame,
                        loan_sampler: str | None) -> int:
    """Store one set (one transaction: the row, or nothing); returns its id. ``loan_sampler``
    is checked first (:func:`check_set_sampler`)."""
    check_set_sampler(engine, model, loan_sampler)
    rows = [{str(k): _clean(v) for k, v in row.items()}
            for row in results.to_dict(orient="records")]
    payload = json.dumps({"columns": [str(c) for c in results.columns], "rows": rows},
                         ensure_ascii=False, allow_nan=False)
    with store.transaction() as con:
        set_id = store.next_id("scenario_set_seq")
        con.execute(
            f"INSERT INTO scenario_sets ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})",
            [set_id, name, source, set_toml, int(pool_id), assumptions, assumptions_sha256,
             int(n_paths), int(seed), model, engine, deal_name, deal_source, code_version,
             dt.datetime.now(dt.UTC).replace(tzinfo=None),
             json.dumps(members, ensure_ascii=False, allow_nan=False), payload, loan_sampler])
    return set_id


def list_scenario_sets(store: Store) -> pd.DataFrame:
    """Every stored set, newest first: id, name, pool, members, paths, seed, model, engine,
    the loan engine's sampler, deal, created."""
    frame = store.con.execute(
        "SELECT set_id, name, pool_id, json_array_length(members) AS n_members, n_paths, "
        "seed, model, engine, loan_sampler, deal_name, created_at FROM scenario_sets "
        "ORDER BY set_id DESC").df()
    return frame


def get_scenario_set(store: Store, set_id: int) -> ScenarioSetRecord:
    """Set ``set_id``; ``NotFound`` naming the ids there are."""
    rows = store.con.execute(
        f"SELECT {', '.join(COLUMNS)} FROM scenario_sets WHERE set_id = ?",
        [int(set_id)]).fetchall()
    if not rows:
        ids = [int(r[0]) for r in store.con.execute(
            "SELECT set_id FROM scenario_sets ORDER BY set_id").fetchall()]
        have = ", ".join(map(str, ids)) if ids else "none yet (riskpool scenarios run)"
        raise NotFound(f"scenario set {set_id} does not exist (sets: {have})")
    r = rows[0]
    where = f"scenario set {int(set_id)}"
    doc = validate(STORED_SET, {"model": r[9], "engine": r[10], "n_paths": r[7], "seed": r[8],
                                "loan_sampler": r[17], "members": json.loads(r[15]),
                                "results": json.loads(r[16])}, where, "scenario_sets")
    check_set_sampler(doc["engine"], doc["model"], doc["loan_sampler"],
                      field="scenario_sets.loan_sampler", where=where)
    columns, rows_ = doc["results"]["columns"], doc["results"]["rows"]
    missing = [c for c in POOL_RESULT_COLUMNS if c not in columns]
    if missing:
        raise SchemaError("scenario_sets.results.columns",
                          "a list holding " + ", ".join(POOL_RESULT_COLUMNS),
                          verbatim(f"one without {', '.join(missing)}"), where)
    for i, row in enumerate(rows_):
        extra = sorted(set(row) - set(columns))
        if extra:
            raise SchemaError(f"scenario_sets.results.rows[{i}]", "a row of the listed columns",
                              verbatim(f"a row with {', '.join(extra)}"), where)
    if len(rows_) != len(doc["members"]):
        raise SchemaError("scenario_sets.results.rows", f"one row per member "
                          f"({len(doc['members'])})", verbatim(f"{len(rows_)} rows"), where)
    results = pd.DataFrame(rows_, columns=columns)
    return ScenarioSetRecord(
        int(r[0]), str(r[1]), str(r[2] or ""), str(r[3] or ""), int(r[4]), str(r[5]), r[6],
        doc["n_paths"], doc["seed"], doc["model"], doc["engine"], r[11], r[12],
        str(r[13] or ""), r[14], doc["members"], results, doc["loan_sampler"])
