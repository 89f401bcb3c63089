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

from portfolio.validation import read_toml
from tranching.errors import RatingTableError, must_be


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
            raise RatingTableError(must_be("wal_years", "positive and increasing", list(self.wal_years)))
        el = np.asarray(self.el, dtype=np.float64)
        if el.shape != (len(self.names), w.size):
            raise RatingTableError(must_be("rating[].el", f"{w.size} values per rating (one per wal_years)",
                                           f"shape {el.shape}"))
        if np.any(el < 0) or np.any(el > 1):
            raise RatingTableError(must_be("rating[].el", "decimal shares in [0, 1]",
                                           f"min {el.min()}, max {el.max()}"))
        if np.any(np.diff(el, axis=0) < 0):
            raise RatingTableError(must_be("rating[].el", "non-decreasing from the best rating to the "
                                           "worst at every WAL", self.names))
        if not self.source.strip():
            raise RatingTableError(must_be("source", "a non-empty citation of the table's source", self.source))
        el.setflags(write=False)
        object.__setattr__(self, "el", el)

    def threshold(self, wal: float) -> np.ndarray:
        """(n_ratings,) EL thresholds at ``wal`` years (linear in WAL, flat outside the table)."""
        w = np.asarray(self.wal_years, dtype=np.float64)
        return np.array([np.interp(wal, w, row) for row in self.el])


def load_rating_table(path: str | Path) -> RatingTable:
    p = Path(path)
    data = read_toml(p, "rating table", RatingTableError)
    for key in ("source", "wal_years", "rating"):
        if key not in data:
            raise RatingTableError(must_be(key, "present", "nothing", str(p)))
    rows = data["rating"]
    if not isinstance(rows, list) or not rows:
        raise RatingTableError(must_be("rating", "a list of [[rating]] tables", rows, str(p)))
    names, els = [], []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "name" not in r or "el" not in r:
            raise RatingTableError(must_be(f"rating[{i}]", "a table with `name` and `el`", r, str(p)))
        names.append(str(r["name"]))
        els.append([float(x) for x in r["el"]])
    if len({len(e) for e in els}) != 1:
        raise RatingTableError(must_be("rating[].el", "lists of equal length", [len(e) for e in els], str(p)))
    return RatingTable(source=str(data["source"]), illustrative=bool(data.get("illustrative", False)),
                       wal_years=tuple(float(x) for x in data["wal_years"]), names=tuple(names),
                       el=np.array(els))


def implied_rating(table: RatingTable, el: float, wal: float) -> str:
    """The best rating whose EL threshold at ``wal`` is ≥ ``el``; else ``"below <worst>"``."""
    thresholds = table.threshold(wal)
    ok = np.nonzero(thresholds >= el)[0]
    return table.names[int(ok[0])] if ok.size else f"below {table.names[-1]}"


def rating_rank(table: RatingTable, rating: str) -> int:
    """Position of ``rating`` in the table (0 = best)."""
    if rating not in table.names:
        raise RatingTableError(must_be("target_rating", "one of " + ", ".join(table.names), rating))
    return table.names.index(rating)
