"""Implied ratings: a tranche's expected loss at its WAL against a rating table kept as data.

No default table is shipped: the published idealised expected-loss tables could not be
confirmed figure by figure here, and riskpool does not invent numbers. The user supplies a
table (``--rating-table FILE``); ``examples/rating_table_illustrative.toml`` shows the format
and is labelled illustrative.

Rating table TOML::

    source = "where the figures come from (publication, date, table number)"
    illustrative = false          # true: numbers are for demonstration only
    wal_years = [1, 2, 3, 4, 5]   # increasing
    [[rating]]                    # best first
    name = "AAA"
    el = [0.00001, 0.00002, ...]  # expected loss (decimal share) at each WAL, one per wal_years

Rule: the implied rating is the best rating whose EL threshold — linearly interpolated in WAL,
flat beyond the first/last column — is at least the tranche's EL. A tranche worse than every
row gets ``"below <worst>"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portfolio.validation import Bool, Field, Interval, ListOf, Str, Table, read_toml, validate
from tranching.errors import RatingTableError

RATING_TABLE_SCHEMA = Table({
    "source": Field(Str(nonempty=True, strip=False,
                              what="a non-empty citation of the table's source")),
    "illustrative": Field.optional(Bool(), False),
    "wal_years": Field(ListOf(Interval(float, 0, 100, closed="right", unit="a WAL in years"),
                              min_len=1)),
    "rating": Field(ListOf(Table({
        "name": Field(Str(nonempty=True, strip=False)),
        "el": Field(ListOf(Interval(float, 0, 1, unit="an expected loss (decimal share)"),
                           min_len=1)),
    }, name="[[rating]]"), min_len=1, what="a non-empty array of tables [[rating]]")),
})


@dataclass(frozen=True, slots=True)
class RatingTable:
    source: str
    illustrative: bool
    wal_years: tuple[float, ...]
    names: tuple[str, ...]  # best first
    el: np.ndarray  # (n_ratings, n_wal) expected-loss thresholds (decimal)

    def __post_init__(self) -> None:
        w = np.asarray(self.wal_years, dtype=np.float64)
        if w.size < 1 or np.any(np.diff(w) <= 0) or np.any(w <= 0):
            raise RatingTableError("wal_years", "positive and increasing", list(self.wal_years))
        el = np.asarray(self.el, dtype=np.float64)
        if el.shape != (len(self.names), w.size):
            raise RatingTableError("rating[].el", f"{w.size} values per rating (one per "
                                   "wal_years)", f"shape {el.shape}")
        if not np.all((el >= 0) & (el <= 1)):
            raise RatingTableError("rating[].el", "decimal shares in [0, 1]",
                                   f"min {el.min()}, max {el.max()}")
        if np.any(np.diff(el, axis=0) < 0):
            raise RatingTableError("rating[].el", "non-decreasing from the best rating to the "
                                   "worst at every WAL", self.names)
        if len(set(self.names)) != len(self.names):
            raise RatingTableError("rating[].name", "distinct names", self.names)
        if not self.source.strip():
            raise RatingTableError("source", "a non-empty citation of the table's source",
                                   self.source)
        el.setflags(write=False)
        object.__setattr__(self, "el", el)

    def threshold(self, wal: float) -> np.ndarray:
        """(n_ratings,) EL thresholds at ``wal`` years (linear in WAL, flat outside the table)."""
        w = np.asarray(self.wal_years, dtype=np.float64)
        return np.array([np.interp(wal, w, row) for row in self.el])


def parse_rating_table(data: dict[str, object], source: str = "rating table") -> RatingTable:
    """A rating table from the TOML layout (``RATING_TABLE_SCHEMA``); ``RatingTableError``
    naming the field path and ``source`` otherwise."""
    doc = validate(RATING_TABLE_SCHEMA, data, source, error=RatingTableError)
    wal = doc["wal_years"]
    for k in range(1, len(wal)):
        if not wal[k] > wal[k - 1]:
            raise RatingTableError(f"wal_years[{k}]", f"> {wal[k - 1]} (increasing)", wal[k],
                                   source)
    names: list[str] = []
    for k, row in enumerate(doc["rating"]):
        if len(row["el"]) != len(wal):
            raise RatingTableError(f"rating[{k}].el", f"{len(wal)} values (one per wal_years)",
                                   row["el"], source)
        if row["name"] in names:
            raise RatingTableError(f"rating[{k}].name", "a name not used by an earlier rating",
                                   row["name"], source)
        if k and any(e < p for e, p in zip(row["el"], doc["rating"][k - 1]["el"], strict=True)):
            raise RatingTableError(f"rating[{k}].el", "at least the previous (better) rating's "
                                   "el at every WAL", row["el"], source)
        names.append(row["name"])
    return RatingTable(source=doc["source"], illustrative=doc["illustrative"],
                       wal_years=tuple(wal), names=tuple(names),
                       el=np.array([row["el"] for row in doc["rating"]], dtype=np.float64))


def load_rating_table(path: str | Path) -> RatingTable:
    return parse_rating_table(read_toml(path, "rating table", RatingTableError), str(path))


def implied_rating(table: RatingTable, el: float, wal: float) -> str:
    """The best rating whose EL threshold at ``wal`` is ≥ ``el``; else ``"below <worst>"``."""
    thresholds = table.threshold(wal)
    ok = np.nonzero(thresholds >= el)[0]
    return table.names[int(ok[0])] if ok.size else f"below {table.names[-1]}"


def rating_rank(table: RatingTable, rating: str) -> int:
    """Position of ``rating`` in the table (0 = best)."""
    if rating not in table.names:
        raise RatingTableError("target_rating", "one of " + ", ".join(table.names), rating)
    return table.names.index(rating)
