"""``riskpool scenarios run|list|show``: scenario sets on common random numbers.

``scenarios run --set FILE --pool N --assumptions FILE`` reads a set file
(``portfolio.book.scenarios``: named scenarios and grids of PD ×, ρ, roll-rate ×, recovery ×,
prepayment ×), projects every member of the set with the **same seed and path count** (common
random numbers: each member draws the same factor paths and uniforms, so the differences
between members are the assumptions', not the sampling noise's; a member that changes nothing
is the base run to the byte), and prints what each member changes relative to the base, then
one table: pool EL, VaR 99.9% and ES 99.9% (± Monte Carlo SE, % of the cut-off balance); with
a deal (``[set] structure`` or ``--structure``), each class's EL, its breakeven CDR at the
member's own severity, CPR and recovery lag (``tranching.grid.breakeven_cdr`` on the member's
representative line, ``tranching.grid.base_scenario``; the member's own CDR beside it) and
each trigger's breach share (the share of paths on which it is ever breached). The set is
stored as one object (``portfolio.store.scenarios``), in one transaction, after every member
ran; a bad set file, flag or deal writes nothing (exit 2, naming the field).

``--workers N`` / ``--scheduler ADDRESS`` run every member's paths, and the deal's waterfall on
them, on a Dask cluster (``portfolio.montecarlo.distributed.run_summary``; either model):
the same seed and path blocks, so the same common random numbers and the same loss figures to
the byte as a local run. The client keeps each member's loss per path, its monthly flow sums
(per block of 256 paths) and, with a deal, each class's principal loss and each trigger's
breach per path — not the member's (paths × months) flow arrays; the representative line of
the breakeven columns comes from those monthly means (equal to a local run's to float
rounding). A revolving deal's replenishment profile is still projected on the client.

**The loan engine's sampler.** A hazard-model set of the loan engine (``[set] engine =
"loan"``) is recorded with the draw that made its numbers (``loan_sampler``: the current
``engines.LOAN_SAMPLER`` unless the caller asks for another of ``simulation.LOAN_SAMPLERS``,
as a re-run of a stored set made with an earlier one must: ``--loan-sampler``), as a run
records ``inputs.loan_sampler``; ``scenarios show`` and ``scenarios list`` print it, ``--json`` gives
the provenance as JSON. A set of either model's granular engine records its draw the same way
(``lanes.GRANULAR_SAMPLER``, ``dq_kernels.DQ_SAMPLER``; a set stored before it has null:
``GRANULAR_LEGACY_SAMPLER``'s or ``DQ_LEGACY_SAMPLER``'s numbers). Other sets have no such
draw (null).

The work is :func:`run_scenario_set` (plain arguments in, a :class:`ScenarioSetRun` out).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
import typer

from portfolio.book.compare import MIN_TAIL_PATHS, tail_paths
from portfolio.book.pools import get_pool, load_pool_loans
from portfolio.book.scenarios import (
    FACTORS,
    Member,
    ScenarioSet,
    changes_text,
    load_scenario_set,
    stressed,
)
from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo.assumptions import Assumptions, load_assumptions
from portfolio.montecarlo.delinquency import dq_sampler, prepare_delinquency, project
from portfolio.montecarlo.distributed import check_cluster_flags, open_client, run_summary
from portfolio.montecarlo.dq_kernels import DQ_LEGACY_SAMPLER, DQ_SAMPLER
from portfolio.montecarlo.engines import LOAN_SAMPLER
from portfolio.montecarlo.lanes import GRANULAR_LEGACY_SAMPLER, GRANULAR_SAMPLER
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import MAX_PATHS, loan_sampler_for
from portfolio.montecarlo.simulation import (
    LEGACY_LOAN_SAMPLER,
    Engine,
    loss_distribution,
    prepare_pool,
)
from portfolio.montecarlo.summaries import PathSummary
from portfolio.risk import mean_and_se
from portfolio.store.core import open_store
from portfolio.store.migrations import file_sha256
from portfolio.store.scenarios import (
    check_set_sampler,
    get_scenario_set,
    insert_scenario_set,
    list_scenario_sets,
)
from portfolio.version import code_version
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import check_out_path, fixed, write_tables
from riskpool.commands.progress import QuietOption, progress_bar
from tranching.deal import Deal, load_deal
from tranching.distributed import WaterfallOnWorkers, WaterfallSummary
from tranching.grid import (
    MEAN_FLOWS,
    BaseScenario,
    base_scenario,
    base_scenario_from_means,
    breakeven_cdr,
)
from tranching.revolving import replenishment_for, run_deal

BREAKEVEN_TOL = 1e-3  # CDR: each breakeven is found to 0.1% CDR (bisection)
LEVEL = 0.999


@dataclass
class ScenarioSetRun:
    scenario_set: ScenarioSet
    set_id: int | None
    table: pd.DataFrame  # one row per member (module doc)
    changes: dict[str, str]  # member → what it changes relative to the base
    n_paths: int
    seed: int
    deal_name: str | None = None
    paths: dict[str, PoolPaths] = field(default_factory=dict)  # with keep_paths
    loan_sampler: str | None = None  # the draw of its engine (module doc); None: no such draw


def _effective(member: Member, base_rho: float) -> dict[str, float]:
    out = {}
    for k in FACTORS:
        v = member.changes.get(k)
        out[k] = float(v) if v is not None else (base_rho if k == "rho" else 1.0)
    return out


def _deal_columns(deal: Deal, paths: PoolPaths, profile: PoolPaths | None,
                  wam: int) -> dict[str, float]:
    dr = run_deal(deal, paths, profile)
    row: dict[str, float] = {}
    for _, t in dr.tranches.iterrows():
        row[f"el_{t['tranche']}"] = float(t["el"])
    row.update(_breakeven_columns(deal, base_scenario(paths, wam)))
    for _, t in dr.triggers.iterrows():
        row[f"p_breach_{t['trigger']}"] = float(t["p_breach"])
    return row


def _breakeven_columns(deal: Deal, base: BaseScenario) -> dict[str, float]:
    row = {"cdr": float(base.cdr)}
    be = breakeven_cdr(deal, base.balance, base.wac, base.wam, severity=base.severity,
                       cpr=base.cpr, lag=base.lag, tol=BREAKEVEN_TOL)
    for name, value in be.items():
        row[f"breakeven_cdr_{name}"] = float(value)
    return row


def _deal_columns_summary(deal: Deal, wf: WaterfallSummary, summary: PathSummary,
                          wam: int) -> dict[str, float]:
    """:func:`_deal_columns` from what a Dask run brings back (the waterfall's per-path
    summary and the paths' monthly means): each class's EL is the mean loss share, as in
    ``tranching.analytics.tranche_table``; p_breach the share of paths ever breached, as in
    ``trigger_table``."""
    row: dict[str, float] = {}
    el, _ = mean_and_se(wf.loss_shares(), axis=1)
    for j, name in enumerate(wf.tranche_names):
        row[f"el_{name}"] = float(el[j])
    mean = summary.flow_mean()
    row.update(_breakeven_columns(deal, base_scenario_from_means(
        {k: mean[k] for k in MEAN_FLOWS}, summary.initial_balance, wam)))
    for trig in deal.triggers:
        row[f"p_breach_{trig.name}"] = float(wf.breached_ever[trig.name].mean())
    return row


def _member_row(member: Member, a: Assumptions, base_rho: float, changes: str,
                loans: LoanArrays, cutoff: dt.date, paths_n: int, seed: int, model: str,
                engine: Engine, batch_size: int, deal: Deal | None, wam: int, client: Any,
                kept: dict[str, PoolPaths] | None, sampler: str) -> dict[str, object]:
    """One member's row of the table: locally, or on ``client``'s cluster (module doc);
    ``sampler``: the draw of the set's engine (module doc)."""
    wf = summary = paths = None
    if client is None:
        paths = project(loans, a, paths_n, seed, model=model, engine=engine,
                        batch_size=batch_size, loan_sampler=sampler)
        stats = loss_distribution(paths)
        dq = paths.delinquency
        charge_off = None if dq is None else dq.charge_off_dpd
    else:
        charge_off = None
    profile = None
    if deal is not None:
        profile = replenishment_for(deal, loans, a, paths_n, seed, engine, cutoff=cutoff,
                                    model=model, charge_off_dpd=charge_off)
    if client is not None:
        prep = prepare_delinquency(loans, a, engine=engine, sampler=dq_sampler(sampler)) \
            if model == "delinquency" \
            else prepare_pool(loans, a, loan_level=engine == "loan", loan_sampler=sampler)
        run = run_summary(client, prep, seed, paths_n, engine=engine,
                          inner=None if deal is None else WaterfallOnWorkers(deal, profile))
        summary, wf = run.summary, run.reduced
        stats = loss_distribution(summary.loss, initial_balance=summary.initial_balance)
    k = stats.levels.index(LEVEL)
    bal = stats.initial_balance or 1.0
    row: dict[str, object] = {
        "scenario": member.name, "grid": member.group, "changes": changes,
        **_effective(member, base_rho),
        "el": stats.el, "el_se": stats.el_se, "el_pct": stats.el / bal,
        "var_999": stats.var[k], "var_999_se": stats.var_se[k],
        "es_999": stats.es[k], "es_999_se": stats.es_se[k], "es_999_pct": stats.es[k] / bal,
    }
    if deal is not None:
        if paths is not None:
            row.update(_deal_columns(deal, paths, profile, wam))
        else:
            assert wf is not None and summary is not None
            row.update(_deal_columns_summary(deal, wf, summary, wam))
    if kept is not None and paths is not None:
        kept[member.name] = paths
    return row


def run_scenario_set(db: Path, pool_id: int, assumptions_path: Path, set_path: Path, *,
                     n_paths: int | None = None, seed: int | None = None,
                     structure: Path | None = None, batch_size: int = 1000,
                     record: bool = True, keep_paths: bool = False,
                     workers: int | None = None, scheduler: str | None = None,
                     progress: Callable[[float], None] | None = None,
                     loan_sampler: str | None = None) -> ScenarioSetRun:
    """Run every member of the set at ``set_path`` on pool ``pool_id`` (module doc).
    ``n_paths``/``seed``/``structure`` override the set file's; ``keep_paths`` keeps each
    member's paths in the result (tests; not with a cluster); ``workers`` / ``scheduler``:
    run the members on Dask (module doc); ``progress(fraction)`` is called as members
    finish; ``loan_sampler``: the draw of the set's engine (``simulation.LOAN_SAMPLERS``,
    ``lanes.GRANULAR_SAMPLERS`` or ``dq_kernels.DQ_SAMPLERS``, by its model and engine;
    default the current one), recorded with the set."""
    on_cluster = workers is not None or scheduler is not None
    if on_cluster:
        check_cluster_flags(workers, scheduler)
        if keep_paths:
            raise ValidationError(must_be("keep_paths", "False with --workers/--scheduler "
                                          "(the paths stay on the workers)", keep_paths))
    sset = load_scenario_set(set_path)
    sampler = loan_sampler_for(sset.engine, sset.model, None)
    if loan_sampler is not None:
        sampler = loan_sampler
        check_set_sampler(sset.engine, sset.model, sampler, "--loan-sampler")
    paths_n = sset.paths if n_paths is None else n_paths
    if not 1 <= paths_n <= MAX_PATHS:
        raise ValidationError(must_be("--paths", f"an integer in [1, {MAX_PATHS:,}]", paths_n))
    seed_v = sset.seed if seed is None else seed
    if seed_v < 0:
        raise ValidationError(must_be("--seed", "an integer >= 0", seed_v))
    if batch_size < 1:
        raise ValidationError(must_be("--batch-size", "an integer >= 1", batch_size))
    deal_path = structure if structure is not None else sset.structure
    deal = load_deal(deal_path) if deal_path is not None else None
    base = load_assumptions(assumptions_path)
    # every member's assumptions before any work: a member that cannot apply stops the set
    member_assumptions = [stressed(base, m, sset.model) for m in sset.members]
    with open_store(db, read_only=True) as store:
        pool = get_pool(store, pool_id)
        loans = load_pool_loans(store, pool_id)
    if len(loans) == 0:
        raise ValidationError(must_be("--pool", "a pool with at least one loan", pool_id))
    weights = np.asarray(loans.balance, dtype=np.float64)
    wam = max(int(round(float((weights * loans.remaining_term).sum() / weights.sum()))), 1)
    engine = cast(Engine, sset.engine)
    rows: list[dict[str, object]] = []
    changes: dict[str, str] = {}
    kept: dict[str, PoolPaths] = {}
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(open_client(workers, scheduler)) if on_cluster else None
        for i, (member, a) in enumerate(zip(sset.members, member_assumptions, strict=True)):
            if progress is not None:
                progress(i / len(sset.members))
            changes[member.name] = changes_text(member, base)
            row = _member_row(member, a, base.rho, changes[member.name], loans, pool.cutoff_date,
                              paths_n, seed_v, sset.model, engine, batch_size, deal, wam,
                              client, kept if keep_paths else None,
                              LOAN_SAMPLER if sampler is None else sampler)
            rows.append(row)
    table = pd.DataFrame(rows)
    set_id = None
    if record:
        with open_store(db) as store:
            set_id = insert_scenario_set(
                store, name=sset.name, source=str(Path(set_path).resolve()),
                set_toml=sset.text, pool_id=pool_id,
                assumptions=str(Path(assumptions_path).resolve()),
                assumptions_sha256=file_sha256(Path(assumptions_path)), n_paths=paths_n,
                seed=seed_v, model=sset.model, engine=sset.engine,
                deal_name=deal.name if deal is not None else None,
                deal_source=str(Path(deal_path).resolve()) if deal_path is not None else None,
                code_version=code_version(),
                members=[{**m.to_json(), "text": changes[m.name]} for m in sset.members],
                results=table, loan_sampler=sampler)
    return ScenarioSetRun(sset, set_id, table, changes, paths_n, seed_v,
                          deal.name if deal is not None else None, kept, sampler)


# ------------------------------------------------------------------------------- printing


def _number(v: object) -> float:
    """A table cell as a float (NaN for a missing one: a stored null)."""
    return float(v) if isinstance(v, int | float) else math.nan


def _money(v: object) -> str:
    x = _number(v)
    return "" if math.isnan(x) else fixed("{:,.0f}")(x)


def _pct(v: object, digits: int = 3) -> str:
    x = _number(v)
    return "" if math.isnan(x) else fixed(f"{{:.{digits}f}}")(x * 100) + "%"


def _pm(values: pd.Series, ses: pd.Series) -> list[str]:
    return [f"{_money(v)} ± {_money(s)}" for v, s in zip(values, ses, strict=True)]


def _cols(table: pd.DataFrame, prefix: str) -> list[str]:
    skip = {"el_se", "el_pct"}
    return [str(c) for c in table.columns if str(c).startswith(prefix) and str(c) not in skip]


def shown_tables(table: pd.DataFrame, n_paths: int) -> dict[str, pd.DataFrame]:
    """The result table as text a person reads (CNY with separators, %, ± SE): the pool's
    losses; with a deal, the classes' EL and breakeven CDRs, and the triggers' breach shares.
    VaR/ES 99.9% resting on fewer than 50 tail paths are flagged (their SE means little)."""
    pool = pd.DataFrame({
        "scenario": table["scenario"],
        "EL (CNY)": _pm(table["el"], table["el_se"]),
        "EL %": table["el_pct"].map(_pct),
        "VaR 99.9% (CNY)": _pm(table["var_999"], table["var_999_se"]),
        "ES 99.9% (CNY)": _pm(table["es_999"], table["es_999_se"]),
        "ES 99.9% %": table["es_999_pct"].map(_pct),
    })
    tail = tail_paths(n_paths, LEVEL)
    if tail < MIN_TAIL_PATHS:
        pool["note"] = f"too few paths: {tail} in the 99.9% tail"
    out = {"pool": pool}
    classes = _cols(table, "el_")
    if classes:
        deal = pd.DataFrame({"scenario": table["scenario"]})
        for c in classes:
            deal[f"EL {c[3:]}"] = table[c].map(lambda v: _pct(v, 4))
        deal["pool CDR"] = table["cdr"].map(lambda v: _pct(v, 2))
        for c in _cols(table, "breakeven_cdr_"):
            deal[f"breakeven CDR {c[len('breakeven_cdr_'):]}"] = table[c].map(
                lambda v: _pct(v, 1))
        out["deal"] = deal
    triggers = _cols(table, "p_breach_")
    if triggers:
        trig = pd.DataFrame({"scenario": table["scenario"]})
        for c in triggers:
            trig[c[len("p_breach_"):]] = table[c].map(lambda v: _pct(v, 1))
        out["triggers"] = trig
    return out


TITLES = {
    "pool": "pool loss over the horizon (± Monte Carlo SE; % of the cut-off balance)",
    "deal": "tranche EL (share of the class); the member's own CDR and each class's breakeven "
            "CDR at the member's severity, CPR and recovery lag (to 0.1%)",
    "triggers": "triggers: share of paths on which each is ever breached",
}


def engine_text(engine: str, loan_sampler: str | None) -> str:
    """"loan engine (sampler subset-binomial-v1)", "granular engine"."""
    return f"{engine} engine" + (f" (sampler {loan_sampler})" if loan_sampler else "")


def _print_set(name: str, set_id: int | None, n_paths: int, seed: int, model: str,
               engine: str, loan_sampler: str | None, deal_name: str | None,
               changes: dict[str, str], table: pd.DataFrame) -> None:
    head = f"scenario set {set_id}: {name}" if set_id is not None else f"scenario set {name}"
    typer.echo(f"{head} — {len(table)} members, {model} model, "
               f"{engine_text(engine, loan_sampler)}"
               + (f", deal {deal_name}" if deal_name else ""))
    typer.echo(f"common random numbers: every member drawn from seed {seed} with {n_paths:,} "
               "paths (the same draws; only the assumptions differ)")
    typer.echo("\nwhat each member changes relative to the base:")
    width = max(len(k) for k in changes)
    for member, text in changes.items():
        typer.echo(f"  {member:<{width}}  {text}")
    for key, frame in shown_tables(table, n_paths).items():
        typer.echo(f"\n{TITLES[key]}:")
        typer.echo(frame.to_string(index=False))


# ------------------------------------------------------------------------------- commands


scenarios_app = typer.Typer(help="Scenario sets on common random numbers: run, list, show.",
                            no_args_is_help=True)


@scenarios_app.command("run")
def scenarios_run(
    set_file: Annotated[Path, typer.Option("--set", help="Scenario set TOML "
                                           "(examples/scenarios.toml).")],
    pool: Annotated[int, typer.Option("--pool", help="Pool id (riskpool pool list).")],
    assumptions: Annotated[Path, typer.Option("--assumptions", help="The base assumptions "
                                              "TOML (riskpool calibrate).")],
    paths: Annotated[int | None, typer.Option("--paths", help="Paths per member (default: "
                                              "the set file's [set] paths).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="The seed every member shares "
                                             "(default: the set file's [set] seed).")] = None,
    structure: Annotated[Path | None, typer.Option(
        "--structure", help="Deal TOML (default: the set file's [set] structure).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the table (CSV, "
                                             "Parquet or XLSX).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Run each member's paths and waterfall on a local Dask cluster of N "
        "worker processes (127.0.0.1 only; same seed, same figures; needs "
        "riskpool[distributed]).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run them on an existing Dask cluster at this scheduler address "
        "(e.g. tcp://10.0.0.5:8786).")] = None,
    loan_sampler: Annotated[str | None, typer.Option(
        "--loan-sampler", help="The loan engine's draw, for a set of [set] engine = \"loan\" "
        "(default: the current one, " + LOAN_SAMPLER + "; " + LEGACY_LOAN_SAMPLER + " gives the "
        "numbers of a set made before it: riskpool scenarios show names a set's), or the "
        "granular engine's, for a hazard-model set (default " + GRANULAR_SAMPLER + "; "
        + GRANULAR_LEGACY_SAMPLER + " for a set made before it) or a delinquency-model set "
        "(default " + DQ_SAMPLER + "; " + DQ_LEGACY_SAMPLER + " for a set made before it).")
    ] = None,
    db: DbOption = DEFAULT_DB,
    quiet: QuietOption = False,
) -> None:
    """Run a scenario set (named scenarios and grids) on common random numbers; store it."""
    check_out_path(out)
    with progress_bar("running the scenario set", quiet=quiet) as update:
        res = run_scenario_set(db, pool, assumptions, set_file, n_paths=paths, seed=seed,
                               structure=structure, workers=workers, scheduler=scheduler,
                               progress=update, loan_sampler=loan_sampler)
    sset = res.scenario_set
    _print_set(sset.name, res.set_id, res.n_paths, res.seed, sset.model, sset.engine,
               res.loan_sampler, res.deal_name, res.changes, res.table)
    if out is not None:
        for path in write_tables({"scenarios": res.table}, out):
            typer.echo(f"wrote {path}")
    typer.echo(f"\nscenario set {res.set_id} recorded (riskpool scenarios show {res.set_id})")


JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print JSON (the provenance: pool, assumptions, seed, paths, model, engine, "
    "the loan engine's sampler, deal, code version) instead of text.")]


def _json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as JSON values: NaN/None → null, timestamps as 'YYYY-MM-DD HH:MM:SS'."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, pd.Timestamp | dt.datetime):
                clean[str(k)] = v.isoformat(sep=" ")
            elif v is None or (isinstance(v, float) and not math.isfinite(v)) \
                    or v is pd.NA or v is pd.NaT:
                clean[str(k)] = None
            else:
                clean[str(k)] = v.item() if isinstance(v, np.generic) else v
        out.append(clean)
    return out


@scenarios_app.command("list")
def scenarios_list(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Stored scenario sets, newest first."""
    with open_store(db, read_only=True) as store:
        frame = list_scenario_sets(store)
    if as_json:
        typer.echo(json.dumps(_json_rows(frame), ensure_ascii=False, indent=2))
        return
    if frame.empty:
        typer.echo("no scenario sets yet (riskpool scenarios run)")
        return
    shown = frame.copy()
    shown["created_at"] = pd.to_datetime(shown["created_at"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["deal_name"] = shown["deal_name"].fillna("")
    shown["loan_sampler"] = shown["loan_sampler"].fillna("")
    typer.echo(shown.rename(columns={"set_id": "set", "pool_id": "pool",
                                     "n_members": "members", "n_paths": "paths",
                                     "loan_sampler": "sampler", "deal_name": "deal",
                                     "created_at": "created"})
               .to_string(index=False))


@scenarios_app.command("show")
def scenarios_show(
    set_id: Annotated[int, typer.Argument(help="Scenario set id (riskpool scenarios list).")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """A stored set: its members, what each changes, and the result table."""
    with open_store(db, read_only=True) as store:
        rec = get_scenario_set(store, set_id)
    if as_json:
        typer.echo(json.dumps({**rec.provenance(), "members": rec.members,
                               "results": _json_rows(rec.results)},
                              ensure_ascii=False, indent=2))
        return
    typer.echo(f"pool {rec.pool_id}; assumptions {rec.assumptions}; created {rec.created_at}; "
               f"code version {rec.code_version}")
    changes = {m["name"]: m.get("text", "") for m in rec.members}
    _print_set(rec.name, rec.set_id, rec.n_paths, rec.seed, rec.model, rec.engine,
               rec.loan_sampler, rec.deal_name, changes, rec.results)


def register(app: typer.Typer) -> None:
    """Add ``scenarios run|list|show`` to the app."""
    app.add_typer(scenarios_app, name="scenarios")
