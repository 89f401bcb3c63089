"""Tranche sizing: the largest tranche that still meets a target expected loss or rating.

The tranche being sized grows at the expense of the subordinated (last) tranche, so the
tranches between them keep their sizes and the total stays the pool less the initial OC.
Every candidate size is run through the waterfall on the *same* paths (common random numbers),
so the tranche's EL is a deterministic function of its size. As the tranche grows its
subordination (the subordinated tranche) shrinks, so its EL rises with its size — exactly so
for a static loss allocation, and bisection assumes it for the full waterfall.

Rule: size = the largest share s in [0, s_hi] with EL(s) ≤ target (or implied rating at least as
good as the target), to ``tol`` (share of the pool); s_max = current size + subordinated size.

The constraints and which one binds (``SizingResult.constraints``, one row each):

- ``target`` (EL ≤ target, or the implied rating at least the target rating: a rating table's
  limit): slack = the EL limit at the tranche's WAL (the target EL, or the target rating's
  threshold at the WAL) − the tranche's EL at the size found;
- ``minimum sub``: the subordinated tranche keeps at least ``min_sub`` of the pool (0 by
  default), so s ≤ s_max − min_sub;
- ``retention``: a first-loss retention must stay covered by the junior tranches its holder
  holds (``Deal`` checks it): when the subordinated tranche is part of that cover, s ≤ s_max −
  (retention share − the rest of the cover).

s_hi = the smallest of the size limits. When the target holds at s_hi, the size is s_hi and the
limits equal to it bind; otherwise the target binds and the size is found by bisection. Slack of
a size limit = limit − size (share of the pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio.montecarlo.paths import PoolPaths
from tranching.analytics import loss_shares, wal_per_path
from tranching.deal import SIZE_TOLERANCE, Deal, RetentionKind
from tranching.errors import DealError, SizingError, must_be
from tranching.ratings import RatingTable, implied_rating, rating_rank
from tranching.waterfall import run_waterfall


@dataclass(frozen=True, slots=True)
class SizingResult:
    tranche: str
    size: float  # share of the pool
    el: float  # the tranche's EL at that size
    wal: float  # mean WAL (years)
    rating: str | None
    iterations: int
    deal: Deal  # the resized deal
    capped: bool = False  # True: the target holds even with the subordinated tranche gone
    binding: str = "target"  # the constraint that stops the tranche growing (module doc)
    constraints: pd.DataFrame | None = None  # constraint, limit, size, slack, unit, binding


def retention_limit(deal: Deal, shares: dict[str, float], tranche: str, s_max: float) -> float:
    """The largest size of ``tranche`` a first-loss retention allows when it grows at the
    subordinated tranche's expense (``inf`` when the retention does not limit it)."""
    ret = deal.retention
    if ret is None or ret.kind is not RetentionKind.FIRST_LOSS:
        return float("inf")
    sub = deal.tranche_names[-1]
    held_other = deal.initial_oc
    sub_in_cover = False
    for tr in reversed(deal.tranches):
        if tr.holder != ret.holder:
            break
        if tr.name == sub:
            sub_in_cover = True
        elif tr.name == tranche:
            return float("inf")  # it grows and the sub shrinks inside the cover: no change
        else:
            held_other += shares[tr.name]
    if not sub_in_cover:
        return float("inf")
    return s_max - max(ret.share - held_other, 0.0)


def _shares(deal: Deal, paths: PoolPaths) -> dict[str, float]:
    init = float(paths.initial_balance)
    return {t.name: a / init for t, a in zip(deal.tranches, deal.tranche_amounts(init), strict=True)}


def size_tranche(
    deal: Deal,
    paths: PoolPaths,
    tranche: str,
    *,
    target_el: float | None = None,
    target_rating: str | None = None,
    rating_table: RatingTable | None = None,
    tol: float = 1e-4,
    replenishment: PoolPaths | None = None,
    min_sub: float = 0.0,
) -> SizingResult:
    """Largest size of ``tranche`` meeting ``target_el`` or ``target_rating`` (bisection, CRN),
    within the size limits (``min_sub``: the subordinated tranche's smallest share; a
    first-loss retention); the binding constraint and the others' slack in the result.

    ``replenishment``: the revolving purchases' new-loan profile (``run_waterfall``)."""
    if (target_el is None) == (target_rating is None):
        raise SizingError(must_be("target", "exactly one of target_el or target_rating",
                                  {"target_el": target_el, "target_rating": target_rating}))
    if target_el is not None and not 0 <= target_el < 1:
        raise SizingError(must_be("target_el", "in [0, 1) (a decimal share)", target_el))
    if target_rating is not None:
        if rating_table is None:
            raise SizingError(must_be("rating_table", "a rating table (--rating-table FILE) when "
                                      "sizing to a rating; none is shipped by default", None))
        goal = rating_rank(rating_table, target_rating)
    j = deal.index(tranche)
    names = deal.tranche_names
    if j == len(names) - 1:
        raise SizingError(must_be("tranche", "a tranche senior to the subordinated one: "
                                  + ", ".join(names[:-1]), tranche))
    shares = _shares(deal, paths)
    sub = names[-1]
    s_max = shares[tranche] + shares[sub]
    if not 0 <= min_sub <= s_max:
        raise SizingError(must_be("min_sub", f"in [0, {s_max:.6f}] (the share the tranche and "
                                  f"{sub} hold together)", min_sub))
    limits = {"minimum sub": s_max - min_sub,
              "retention": retention_limit(deal, shares, tranche, s_max)}
    s_hi = min(limits.values())

    def evaluate(s: float) -> tuple[bool, float, float, str | None, Deal]:
        try:
            trial = deal.with_sizes({**shares, tranche: s, sub: max(s_max - s, 0.0)})
        except DealError:  # the size breaks a deal rule (e.g. first-loss retention): infeasible
            return False, float("nan"), float("nan"), None, deal
        result = run_waterfall(trial, paths, replenishment=replenishment)
        el = float(loss_shares(result)[j].mean())
        w = wal_per_path(result, deal.closing_date)[j]
        wal = float(np.nanmean(w)) if np.isfinite(w).any() else float("nan")
        rating = (implied_rating(rating_table, el, wal)
                  if rating_table is not None and np.isfinite(wal) else None)
        if target_el is not None:
            ok = el <= target_el + 1e-12
        else:
            ok = rating is not None and rating in rating_table.names and (  # type: ignore[union-attr]
                rating_table.names.index(rating) <= goal)  # type: ignore[union-attr]
        return ok, el, wal, rating, trial

    lo, hi = 0.0, s_hi
    ok_hi = evaluate(hi)
    iterations = 1
    if ok_hi[0]:
        best = (hi, ok_hi)
    else:
        ok_lo = evaluate(tol)
        iterations += 1
        if not ok_lo[0]:
            raise SizingError(
                f"no size of tranche {tranche!r} down to {tol:.2%} of the pool meets the target "
                f"({'EL ≤ ' + format(target_el, '.4%') if target_el is not None else target_rating}); "
                f"at that size its EL is {ok_lo[1]:.4%}"
            )
        lo, best = tol, (tol, ok_lo)
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            res = evaluate(mid)
            iterations += 1
            if res[0]:
                lo, best = mid, (mid, res)
            else:
                hi = mid
    size, (_, el, wal, rating, trial) = best
    at_limit = bool(ok_hi[0])
    if target_el is not None:
        el_limit, what = target_el, f"EL <= {target_el:.4%}"
    else:
        assert rating_table is not None
        el_limit = (float(rating_table.threshold(wal)[goal]) if np.isfinite(wal)
                    else float("nan"))
        what = f"implied rating {target_rating} or better (rating table's EL limit at the WAL)"
    rows = [{"constraint": "target", "what": what, "limit": el_limit, "value": el,
             "slack": el_limit - el, "unit": "EL (share of the tranche)",
             "binding": not at_limit}]
    for name, limit in limits.items():
        rows.append({
            "constraint": name,
            "what": (f"{sub} >= {min_sub:.4%} of the pool" if name == "minimum sub" else
                     "first-loss retention covered" if np.isfinite(limit) else
                     "no first-loss retention on this tranche's growth"),
            "limit": limit, "value": size, "slack": limit - size,
            "unit": f"size of {tranche} (share of the pool)",
            "binding": at_limit and abs(limit - s_hi) <= SIZE_TOLERANCE})
    table = pd.DataFrame(rows)
    binding = ", ".join(table.loc[table["binding"], "constraint"])
    return SizingResult(tranche=tranche, size=size, el=el, wal=wal, rating=rating,
                        iterations=iterations, deal=trial, capped=size >= s_max,
                        binding=binding, constraints=table)
