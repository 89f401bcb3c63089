"""Two recorded runs side by side (``riskpool runs diff A B``, the dashboard's Compare tab).

:func:`compare_runs` returns two tables read from the store:

- **inputs**: every input of either run (the typed record flattened to dotted keys, e.g.
  ``stress.pd_mult``), the value in A and in B as text (counts of paths and loans with
  thousands separators, "10,000") and whether they differ; file names that only
  differ by the run's own directory (``runs/3/assumptions.toml`` vs ``runs/5/…``) are compared
  by the file's sha256, which the record keeps.
- **results**: for the pool and every party the runs share, EL, VaR and ES at each level with
  the Monte Carlo standard error of each, the delta B − A, the delta in % of A, and the
  standard error of the delta (the two runs' SEs in quadrature — independent seeds; with the
  same seed the runs share their draws and the true SE of the delta is smaller). A measure
  whose tail rests on fewer than :data:`MIN_TAIL_PATHS` paths (n·(1 − level) for VaR and ES)
  is flagged "too few paths": a 500-path run's VaR 99.9% is its worst path, and its SE says
  nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from portfolio.store.core import Store
from portfolio.store.runs import RunRecord, get_run, run_loss_stats

__all__ = ["MIN_TAIL_PATHS", "RunComparison", "compare_runs", "flatten", "results_table",
           "tail_paths"]

MIN_TAIL_PATHS = 50

# inputs that name the run's own copy of a file: compared through their sha256 instead
_OWN_FILES = {"assumptions": "assumptions_sha256", "assumptions_exact": "assumptions_exact_sha256"}


@dataclass(frozen=True)
class RunComparison:
    a: RunRecord
    b: RunRecord
    inputs: pd.DataFrame   # input, a, b, differs
    results: pd.DataFrame  # party, measure, level, a, a_se, b, b_se, delta, delta_pct, delta_se, note


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested JSON object as ``{"dotted.key": leaf}``; lists become comma-joined text."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple):
        return {prefix: ", ".join(str(v) for v in value)}
    return {prefix: value}


def tail_paths(n_paths: int, level: float) -> int:
    """Paths in the tail beyond the ``level`` quantile: ⌊n · (1 − level)⌋ (0 for EL's NaN)."""
    if math.isnan(level):
        return n_paths
    return int(math.floor(n_paths * (1.0 - level) + 1e-9))


# inputs that count something (paths, loans): written with thousands separators ("10,000");
# ids and seeds stay plain
_COUNTS = frozenset({"n_paths", "n_loans", "batch_size"})


def _shown(value: Any, key: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool) \
            and key.rsplit(".", 1)[-1] in _COUNTS:
        return f"{value:,}"
    return str(value)


def _inputs_table(a: RunRecord, b: RunRecord) -> pd.DataFrame:
    fa, fb = flatten(a.inputs.to_json()), flatten(b.inputs.to_json())
    rows = []
    for key in list(dict.fromkeys([*fa, *fb])):
        if key in _OWN_FILES.values():
            continue
        va, vb = fa.get(key), fb.get(key)
        if va is None and vb is None:
            continue
        if key in _OWN_FILES:
            differs = fa.get(_OWN_FILES[key]) != fb.get(_OWN_FILES[key])
        else:
            differs = va != vb
        rows.append({"input": key, "a": _shown(va, key), "b": _shown(vb, key),
                     "differs": bool(differs)})
    rows += [{"input": "label", "a": _shown(a.label), "b": _shown(b.label),
              "differs": a.label != b.label},
             {"input": "code_version", "a": _shown(a.code_version), "b": _shown(b.code_version),
              "differs": a.code_version != b.code_version}]
    return pd.DataFrame(rows, columns=["input", "a", "b", "differs"])


def _results_table(store: Store, a: RunRecord, b: RunRecord) -> pd.DataFrame:
    sa, sb = run_loss_stats(store, a.run_id, None), run_loss_stats(store, b.run_id, None)
    n_a, n_b = int(a.summary.get("n_paths", 0)), int(b.summary.get("n_paths", 0))
    return results_table(sa, sb, n_a, n_b)


def results_table(stats_a: pd.DataFrame, stats_b: pd.DataFrame, n_a: int,
                  n_b: int) -> pd.DataFrame:
    """The results table of two runs' loss measures: ``stats_*`` have the columns party_id
    ('' for the pool), measure (EL, VaR, ES), level (0 for EL), loss and se, as the store's
    ``run_loss_stats``; ``n_*`` are the runs' path counts (module doc for the columns)."""
    keys = ["party_id", "measure", "level"]
    merged = stats_a.merge(stats_b, on=keys, how="inner", suffixes=("_a", "_b"))
    rows = []
    for r in merged.itertuples(index=False):
        level = float(r.level) if r.measure != "EL" else math.nan
        a_val, b_val = float(r.loss_a), float(r.loss_b)
        few = min(tail_paths(n_a, level), tail_paths(n_b, level))
        rows.append({
            "party": r.party_id or "(pool)",
            "measure": r.measure,
            "level": level,
            "a": a_val, "a_se": float(r.se_a),
            "b": b_val, "b_se": float(r.se_b),
            "delta": b_val - a_val,
            "delta_pct": (b_val - a_val) / a_val if a_val else math.nan,
            "delta_se": math.hypot(float(r.se_a), float(r.se_b)),
            "note": (f"too few paths: {few} beyond the {level:.1%} quantile "
                     f"(fewer than {MIN_TAIL_PATHS})") if few < MIN_TAIL_PATHS else "",
        })
    return pd.DataFrame(rows, columns=["party", "measure", "level", "a", "a_se", "b", "b_se",
                                       "delta", "delta_pct", "delta_se", "note"])


def compare_runs(store: Store, run_a: int, run_b: int) -> RunComparison:
    """The inputs and the loss measures of two simulation runs side by side (module doc)."""
    a, b = get_run(store, run_a), get_run(store, run_b)
    a.simulation_inputs()
    b.simulation_inputs()  # both must be simulation runs: refused by name otherwise
    return RunComparison(a, b, _inputs_table(a, b), _results_table(store, a, b))
