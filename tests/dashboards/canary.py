"""A canary book for the leak test: the demo book with every loan that is not the demo
partner's given a huge, recognisable balance, and two runs simulated on it.

Every loan in which ``PARTNER`` holds no share (in any allocation) gets the balance
``CANARY`` (987,654,321.00 CNY) in ``loan_performance`` at every month-end, in the pool
snapshot (``pool_loans.cutoff_balance``) and in the allocation's risk table
(``allocation_loans.balance``). The partner's own loans keep their demo balances (a whole
partner book of a few million CNY). So any figure a partner sees that is at least
``THRESHOLD`` (1e8) in absolute value, or that spells the canary's digits, could only come from
another party's loans: a single canary loan's balance is ten times the threshold, and the
partner's own book is two orders of magnitude below it (checked in the fixture).

Two runs are simulated on the canary pool through the library (as ``riskpool simulate``
would): ``run_id`` carries the allocation's party split (the partner is party to it; stored
with the US example deal, whose holders are investors and the platform), ``pool_run_id`` carries
no party split (treasury's whole-pool run: the partner is not party to it). A partner report
is written for the book's as-of date.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dashboards.reports import write_report
from partners.records import load_allocation
from portfolio.book.pools import load_pool_loans
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.records import SimulationInputs
from portfolio.montecarlo.simulation import simulate
from portfolio.store import open_store
from portfolio.store.runs import record_simulation
from portfolio.store.tranches import record_tranche_results
from portfolio.version import code_version
from tranching.deal import load_deal
from tranching.revolving import run_deal

CANARY = 987_654_321.0
THRESHOLD = 1e8
CANARY_TEXT = ("987654321", "987,654,321", "9.87654321e+08", "9.876543e+08")
N_PATHS = 300
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class CanaryBook:
    db: Path
    pool_id: int
    allocation_id: int
    run_id: int  # carries the allocation's parties
    pool_run_id: int  # no party split: not the partner's
    demo_run_id: int
    as_of: str
    own_loans: frozenset[str]
    foreign_loans: frozenset[str]


def build_canary(src_db: Path, root: Path, partner: str, pool_id: int, allocation_id: int,
                 demo_run_id: int, as_of: str) -> CanaryBook:
    root.mkdir(parents=True, exist_ok=True)
    db = root / "canary.duckdb"
    shutil.copy(src_db, db)
    for f in Path(src_db).parent.glob("assumptions*.toml"):
        shutil.copy(f, root / f.name)
    shutil.copytree(Path(src_db).parent / "runs", root / "runs")
    con = duckdb.connect(str(db))
    try:
        own = {r[0] for r in con.execute(
            "SELECT DISTINCT loan_id FROM allocation_shares WHERE party_id = ? AND share > 0",
            [partner]).fetchall()}
        every = {r[0] for r in con.execute("SELECT loan_id FROM loans").fetchall()}
        foreign = every - own
        con.execute("CREATE TEMP TABLE own AS SELECT unnest(?::VARCHAR[]) AS loan_id",
                    [sorted(own)])
        con.execute("UPDATE loan_performance SET balance = ? WHERE loan_id NOT IN "
                    "(SELECT loan_id FROM own)", [CANARY])
        con.execute("UPDATE pool_loans SET cutoff_balance = ? WHERE loan_id NOT IN "
                    "(SELECT loan_id FROM own)", [CANARY])
        con.execute("UPDATE allocation_loans SET balance = ? WHERE loan_id NOT IN "
                    "(SELECT loan_id FROM own)", [CANARY])
        own_balance = con.execute(
            "SELECT sum(p.balance * s.share) FROM loan_performance p JOIN allocation_shares s "
            "USING (loan_id) WHERE s.party_id = ? AND p.as_of = ?", [partner, as_of]).fetchone()
    finally:
        con.close()
    assert float(own_balance[0]) < THRESHOLD / 10, own_balance  # the detector's premise

    store = open_store(db)
    try:
        a_path = root / f"assumptions_pool{pool_id}.toml"
        assumptions = load_assumptions(a_path)
        loans = load_pool_loans(store, pool_id)
        stored = load_allocation(store, allocation_id)
        index = np.searchsorted(stored.loan_id.astype(str),
                                np.asarray(loans.loan_id).astype(str))
        paths = simulate(loans, assumptions, N_PATHS, 11, shares=stored.shares[index],
                         party_ids=stored.party_ids)
        run_id = record_simulation(
            store, paths,
            SimulationInputs(pool_id=pool_id, n_paths=N_PATHS, seed=11, engine="granular",
                             assumptions=str(a_path), allocation_id=allocation_id,
                             party_ids=stored.party_ids, n_loans=len(loans),
                             source="canary"),
            code_version(), assumptions=assumptions)
        deal = load_deal(EXAMPLES / "deal_us_consumer.toml")
        deal_run = run_deal(deal, paths)
        record_tranche_results(store, run_id, deal, deal_run.tranches,
                               triggers=deal_run.triggers,
                               settings=deal_run.settings().to_json())
        pool_paths = simulate(loans, assumptions, N_PATHS, 12)
        pool_run_id = record_simulation(
            store, pool_paths,
            SimulationInputs(pool_id=pool_id, n_paths=N_PATHS, seed=12, engine="granular",
                             assumptions=str(a_path), n_loans=len(loans), source="canary"),
            code_version(), assumptions=assumptions)
    finally:
        store.close()
    write_report(db, dt.date.fromisoformat(as_of), root / "reports", partner=partner)
    return CanaryBook(db, pool_id, allocation_id, run_id, pool_run_id, demo_run_id, as_of,
                      frozenset(own), frozenset(foreign))


# --------------------------------------------------------------------------- the detector

_BIG_FORMATTED = re.compile(r"-?\d{1,3}(?:,\d{3}){2,}(?:\.\d+)?")


def _numbers_in_text(text: str) -> Iterator[float]:
    """Figures written with thousands separators (1,234,567.89): how the pages format money."""
    for m in _BIG_FORMATTED.finditer(text):
        yield float(m.group(0).replace(",", ""))


def find_canary(value: Any, where: str = "", own: frozenset[float] = frozenset()) -> list[str]:
    """Every place in ``value`` (a DataFrame, a Styler, an array, a dataclass, a mapping, a
    sequence, a number or a text) holding a figure of at least ``THRESHOLD`` in absolute
    value or the canary's digits. Returns a description of each hit (empty: clean).

    ``own``: large figures that are the partner's own and not sums over loans — its capacity
    and regulatory limits from its registry entry as stored by treasury (the ``limit`` of its
    rule checks: capacity 3e8, R2 and R3 from its tier-1 capital and total loans), compared
    to the cent."""
    hits: list[str] = []
    if value is None or isinstance(value, bool):
        return hits
    if hasattr(value, "data") and isinstance(value.data, pd.DataFrame):
        value = value.data  # a pandas Styler
    if isinstance(value, pd.DataFrame):
        for col in value.columns:
            hits += find_canary(value[col], f"{where}[{col}]", own)
        return hits
    if isinstance(value, pd.Series):
        if pd.api.types.is_numeric_dtype(value) and not pd.api.types.is_bool_dtype(value):
            x = value.astype(np.float64)
            big = value[(np.abs(x) >= THRESHOLD) & ~np.round(x, 2).isin(list(own))]
            if len(big):
                hits.append(f"{where}: {big.iloc[0]!r} ({len(big)} cells)")
            return hits
        for i, cell in enumerate(value.tolist()):
            hits += find_canary(cell, f"{where}[{i}]", own)
            if hits:
                return hits
        return hits
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iuf":
            x = value.astype(np.float64)
            n = int(np.sum((np.abs(x) >= THRESHOLD) & ~np.isin(np.round(x, 2), list(own))))
            if n:
                hits.append(f"{where}: {n} array cells >= {THRESHOLD:g}")
        elif value.dtype.kind == "O":
            for i, cell in enumerate(value.ravel().tolist()):
                hits += find_canary(cell, f"{where}[{i}]", own)
        return hits
    if isinstance(value, (int, float, np.integer, np.floating)):
        if (np.isfinite(value) and abs(float(value)) >= THRESHOLD
                and round(float(value), 2) not in own):
            hits.append(f"{where}: {value!r}")
        return hits
    if isinstance(value, bytes):
        return find_canary(value.decode("utf-8", "replace"), where, own)
    if isinstance(value, str):
        for token in CANARY_TEXT:
            if token in value:
                hits.append(f"{where}: text holds {token!r}")
        for x in _numbers_in_text(value):
            if abs(x) >= THRESHOLD and round(x, 2) not in own:
                hits.append(f"{where}: text figure {x:,.2f}")
                break
        return hits
    if is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            hits += find_canary(getattr(value, f.name), f"{where}.{f.name}", own)
        return hits
    if isinstance(value, dict):
        for k, v in value.items():
            hits += find_canary(v, f"{where}[{k!r}]", own)
        return hits
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            hits += find_canary(v, f"{where}[{i}]", own)
        return hits
    return hits


def page_outputs(at: Any) -> dict[str, Any]:
    """Everything an AppTest page shows, as data: each dataframe's (and data editor's) value
    — the DataFrame behind the table, not its rendered text —, metrics, texts, widget labels
    and options, download buttons' labels."""
    out: dict[str, Any] = {}
    for i, d in enumerate(at.dataframe):
        out[f"dataframe[{i}]"] = d.value
    for i, m in enumerate(at.metric):
        out[f"metric[{i}]"] = f"{m.label} {m.value} {m.proto.help}"  # help: the exact amount
    for group in ("title", "subheader", "markdown", "caption", "info", "warning", "success",
                  "error", "text", "exception"):
        for i, e in enumerate(getattr(at, group)):
            out[f"{group}[{i}]"] = str(e.value)
    for sb in at.selectbox:
        out[f"selectbox[{sb.key}]"] = [sb.label, *[str(o) for o in sb.options]]
    for i, b in enumerate(at.get("download_button")):
        out[f"download_button[{i}]"] = b.label
    return out
