"""``riskpool simulate``, ``riskpool runs list|show`` and ``riskpool migrate``.

``simulate`` projects a stored pool under an assumptions file (with optional stress
overlays), prints the loss distribution (EL, VaR and ES at 95 / 99 / 99.9% with their Monte
Carlo standard errors) and records the run: a ``runs`` row, summary tables and the path
arrays as Parquet beside the database (``portfolio.store.runs``). Every flag is checked
before anything is read or written; a bad one gives "error: …" and exit code 2.
``--structure DEAL.toml`` also runs the deal's waterfall on the paths (a revolving period buys
new loans: ``tranching.revolving``) and stores the tranche and trigger tables with the run in
the same transaction (``riskpool tranche report --run ID``); a bad deal file writes nothing.

The work is done by :func:`run_simulation` (plain arguments in, a :class:`SimulationResult`
out) so that other commands can add steps (a deal structure, Dask workers) around it. The run
is recorded with its typed inputs (``portfolio.montecarlo.records.SimulationInputs``).
``--workers/--scheduler`` run the paths (and with ``--structure`` the deal's waterfall) on a
Dask cluster and bring back summaries only; the run is recorded from them
(``portfolio.store.runs.record_simulation_summary``: no path flows stored).

``migrate`` brings a database written by an older riskpool to the current schema
(``portfolio.store.migrations``), or refuses and says how to rebuild it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
import typer

from dashboards import access
from dashboards.auth import Viewer
from portfolio.book.compare import MIN_TAIL_PATHS, compare_runs, tail_paths
from portfolio.book.pools import PoolInfo, get_pool, load_pool_loans
from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.assumptions import (
    CHARGE_OFF_DPD,
    Assumptions,
    apply_stress,
    load_assumptions,
)
from portfolio.montecarlo.delinquency import MODELS, DqPrepared, prepare_delinquency, project
from portfolio.montecarlo.distributed import (
    SummaryRun,
    check_cluster_flags,
    open_client,
    prepare_delinquency_on_workers,
    prepare_on_workers,
    prepare_with_new_loans_on_workers,
    run_summary,
)
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import (
    MAX_PATHS,
    DaskPlacement,
    SimulationInputs,
    Stress,
    loan_sampler_for,
)
from portfolio.montecarlo.replenishment import ProfileFromCells, profile_from_cells
from portfolio.montecarlo.simulation import (
    BLOCK_PATHS,
    DETERMINISTIC_Z,
    ENGINES,
    LOSS_LEVELS,
    Engine,
    LossStats,
    PreparedPool,
    loss_distribution,
    prepare_pool,
    root_seed,
)
from portfolio.montecarlo.summaries import PartCells
from portfolio.store.core import Store, open_store
from portfolio.store.parquet_book import (
    LoanPart,
    attach_book,
    check_book_dir,
    check_loans_in_book,
    loan_parts,
    tape_rows,
)
from portfolio.store.records import RUN_KINDS
from portfolio.store.runs import (
    clean_label,
    get_run,
    label_run,
    list_runs,
    record_simulation,
    record_simulation_summary,
    run_loss_stats,
    run_monthly,
)
from portfolio.store.tranches import insert_tranche_results
from portfolio.version import code_version
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import emit, fixed
from riskpool.commands.pools import (
    PdMultOption,
    RecoveryMultOption,
    RhoOption,
    ScenarioOption,
    SmmMultOption,
    check_stress_flags,
)
from riskpool.commands.progress import QuietOption, progress_bar
from tranching.deal import Deal, load_deal
from tranching.distributed import TranchesOnWorkers, deal_tables
from tranching.ratings import RatingTable, load_rating_table
from tranching.revolving import (
    DealRun,
    DealSettings,
    replenishment_for,
    replenishment_started,
    run_deal,
)

ENGINE_CHOICES = ENGINES
LabelOption = Annotated[str | None, typer.Option(
    "--label", help="A name for the run, shown by `riskpool runs list` (e.g. 'jun26 base').")]
TagOption = Annotated[list[str] | None, typer.Option(
    "--tag", help="A tag for the run (repeat for several, e.g. --tag q3 --tag adverse).")]


@dataclass
class SimulationResult:
    """``paths``: every path's flows (None for a run on Dask workers, which brings back
    ``summary`` instead: ``portfolio.montecarlo.distributed.SummaryRun``); ``deal_run``: the
    local waterfall with ``--structure``, ``deal_tables`` (tranche table, trigger table) the
    one computed on the workers."""

    run_id: int | None
    paths: PoolPaths | None
    stats: LossStats
    pool: PoolInfo
    n_loans: int
    inputs: SimulationInputs
    timings: dict[str, float] = field(default_factory=dict)
    deal_run: DealRun | None = None  # when --structure was given
    summary: SummaryRun | None = None
    deal_tables: tuple[pd.DataFrame, pd.DataFrame] | None = None
    deal: Deal | None = None
    replenishment_months: int = 0

    @property
    def n_paths(self) -> int:
        return self.paths.n_paths if self.paths is not None else self.inputs.n_paths

    @property
    def initial_balance(self) -> float:
        if self.paths is not None:
            return float(self.paths.initial_balance)
        assert self.summary is not None
        return float(self.summary.summary.initial_balance)

    @property
    def dates(self) -> np.ndarray:
        if self.paths is not None:
            return np.asarray(self.paths.dates)
        assert self.summary is not None
        return np.asarray(self.summary.summary.dates)


def check_simulation_flags(n_paths: int, seed: int, engine: str, batch_size: int,
                           deterministic: str | None) -> None:
    """Validate the simulation flags before any work is done."""
    if n_paths < 1 or n_paths > MAX_PATHS:
        raise ValidationError(must_be("--paths", f"an integer in [1, {MAX_PATHS:,}] (the "
                                      "path arrays are kept in memory)", n_paths))
    if seed < 0:
        raise ValidationError(must_be("--seed", "an integer >= 0", seed))
    if engine not in ENGINE_CHOICES:
        raise ValidationError(must_be("--engine", "granular or loan", engine))
    if batch_size < 1:
        raise ValidationError(must_be("--batch-size", "an integer >= 1", batch_size))
    if deterministic is not None and deterministic not in DETERMINISTIC_Z:
        raise ValidationError(must_be("--deterministic", "one of " + ", ".join(DETERMINISTIC_Z),
                                      deterministic))


def check_model_flags(model: str, charge_off_dpd: int | None, deterministic: str | None
                      ) -> None:
    """``--model`` and ``--charge-off-dpd``, before any work."""
    if model not in MODELS:
        raise ValidationError(must_be("--model", "one of " + ", ".join(MODELS), model))
    if charge_off_dpd is not None:
        if model != "delinquency":
            raise ValidationError(must_be("--charge-off-dpd", "given with --model delinquency",
                                          charge_off_dpd))
        if charge_off_dpd not in CHARGE_OFF_DPD:
            raise ValidationError(must_be("--charge-off-dpd", "one of "
                                          + ", ".join(map(str, CHARGE_OFF_DPD)), charge_off_dpd))
    if model == "delinquency":
        if deterministic is not None:
            raise ValidationError(must_be("--deterministic", "not given with --model "
                                          "delinquency (Monte Carlo paths only)", deterministic))


def run_simulation(
    db: Path,
    pool_id: int,
    assumptions_path: Path,
    n_paths: int,
    seed: int,
    engine: str = "granular",
    batch_size: int = 1000,
    scenario: str | None = None,
    pd_mult: float | None = None,
    rho: float | None = None,
    smm_mult: float | None = None,
    recovery_mult: float | None = None,
    deterministic: str | None = None,
    record: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    book: Path | None = None,
    structure: Path | None = None,
    rating_table: Path | None = None,
    label: str | None = None,
    tags: Sequence[str] = (),
    model: str = "hazard",
    charge_off_dpd: int | None = None,
    progress: Callable[[float], None] | None = None,
    tape: Path | None = None,
) -> SimulationResult:
    """Load the pool and assumptions, simulate, and (``record``) store the run.

    ``workers`` (a local Dask cluster of that many processes) or ``scheduler`` (an existing
    cluster's address) run the paths on Dask keeping summaries only on the client
    (``portfolio.montecarlo.distributed.run_summary``: each path's loss, per-block monthly
    moments, the paths at the VaR levels; the same loss figures), with ``structure`` the
    deal's waterfall on the workers too (``tranching.distributed.TranchesOnWorkers``; a
    revolving deal's replenishment profile computed once here and shipped); the run is
    recorded from the summaries, without path flows (``result.paths`` is None).
    ``book``: a Parquet book (``riskpool book export``) that must hold every pool loan.
    ``structure``: a deal TOML (checked first); the waterfall then runs on the paths (with the
    replenishment profile of new loans when the deal revolves, ``tranching.revolving``) and the
    tranche and trigger tables are stored with the run, in the run's transaction.
    ``rating_table``: a rating table TOML (checked first) for the tranche table's implied
    ratings (only with ``structure``).
    ``label``, ``tags``: stored with the run (``riskpool runs list``), in its transaction.
    ``model``: ``hazard`` (default) or ``delinquency`` (the delinquency-state model,
    ``portfolio.montecarlo.delinquency``; no deterministic projection; on Dask workers as the
    hazard model, from a ``tape`` with a deal that does not revolve);
    ``charge_off_dpd`` (delinquency model only) overrides the assumptions' charge-off point.
    ``progress(fraction)``: called as the paths' blocks complete (a progress bar).
    ``tape``: the pool's loan tape (``riskpool pool export``), read partition by partition on
    the workers (with ``workers``/``scheduler``; granular engine): the client never loads the
    loans (``portfolio.montecarlo.distributed.prepare_on_workers``; every cell by binomial
    counts, the same numbers as ``summaries.prepare_from_parts`` in one process); with
    ``structure`` the deal's waterfall runs on the workers, a revolving deal's profile built
    from the partitions' new-loan cells (``replenishment.replenishment_from_cells``).
    """
    check_simulation_flags(n_paths, seed, engine, batch_size, deterministic)
    clean_label(label, tags)  # refused before any work
    check_model_flags(model, charge_off_dpd, deterministic)
    eng = cast(Engine, engine)  # one of ENGINES: checked above
    check_stress_flags(scenario, pd_mult, rho, smm_mult, recovery_mult)
    if workers is not None or scheduler is not None:
        check_cluster_flags(workers, scheduler, deterministic)
    if book is not None:
        check_book_dir(book)
    parts = _check_tape(tape, workers, scheduler, book, engine)
    if rating_table is not None and structure is None:
        raise ValidationError(must_be("--rating-table", "given with --structure (it rates the "
                                      "deal's tranches)", str(rating_table)))
    deal = None
    if structure is not None:
        deal = load_deal(structure)
        if parts is not None and model == "delinquency" and deal.revolving_months > 0:
            raise ValidationError(must_be(
                "--structure", "a deal that does not revolve with --tape and --model "
                "delinquency (the purchases' profile built from the tape's cells is the hazard "
                "model's; run a revolving deal from the database's pool)", str(structure)))
    ratings = load_rating_table(rating_table) if rating_table is not None else None
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    assumptions = apply_stress(load_assumptions(assumptions_path), scenario=scenario,
                               pd_multiplier=pd_mult, rho=rho, smm_multiplier=smm_mult,
                               recovery_multiplier=recovery_mult)
    if parts is not None:
        return _simulate_tape(db, pool_id, parts, assumptions, assumptions_path, n_paths, seed,
                              workers, scheduler, tape, scenario, pd_mult, rho, smm_mult,
                              recovery_mult, batch_size, record, label, tags, started, timings,
                              progress, deal, structure, ratings, model, charge_off_dpd)
    with open_store(db, read_only=True) as store:
        pool = get_pool(store, pool_id)
        loans = load_pool_loans(store, pool_id)
        if book is not None:
            attach_book(store.con, book)
            check_loans_in_book(store.con, loans.loan_id, f"pool {pool_id}")
    timings["load_s"] = time.perf_counter() - t0
    if len(loans) == 0:
        raise ValidationError(must_be("--pool", "a pool with at least one loan", pool_id))
    z = None if deterministic is None else DETERMINISTIC_Z[deterministic]
    inputs = SimulationInputs(
        pool_id=int(pool_id), n_paths=1 if z is not None else int(n_paths), seed=int(seed),
        engine=eng, assumptions=str(Path(assumptions_path).resolve()),
        stress=Stress(scenario=scenario, pd_mult=_opt_float(pd_mult), rho=_opt_float(rho),
                      smm_mult=_opt_float(smm_mult), recovery_mult=_opt_float(recovery_mult)),
        deterministic=deterministic, deterministic_z=z, batch_size=int(batch_size),
        pool_name=pool.name, n_loans=len(loans), cutoff_date=pool.cutoff_date,
        book=None if book is None else str(Path(book).resolve()),
        structure=None if structure is None else str(Path(structure).resolve()),
        source="riskpool simulate", model=model, charge_off_dpd=charge_off_dpd,
        loan_sampler=loan_sampler_for(eng, model, deterministic))
    if workers is not None or scheduler is not None:
        t1 = time.perf_counter()
        prep: PreparedPool | DqPrepared
        if model == "delinquency":
            prep = prepare_delinquency(loans, assumptions, engine=eng,
                                       charge_off_dpd=charge_off_dpd)
        else:
            prep = prepare_pool(loans, assumptions, loan_level=eng == "loan")
        profile = None
        if deal is not None:  # computed once here, shipped to every worker with the deal
            profile = replenishment_for(deal, loans, assumptions, int(n_paths), seed, eng,
                                        cutoff=pool.cutoff_date, model=model,
                                        charge_off_dpd=charge_off_dpd)
        timings["prepare_s"] = time.perf_counter() - t1
        with open_client(workers=workers, scheduler=scheduler) as client:
            return _simulate_summaries(db, client, prep, pool, len(loans), inputs, assumptions,
                                       scheduler, deal, profile, structure, ratings, record,
                                       label, tags, started, timings, progress)
    t1 = time.perf_counter()
    n_run = 1 if z is not None else int(n_paths)
    profile_of = None  # a revolving deal's purchases profiled beside the projection
    if deal is not None and structure is not None:
        profile_of = replenishment_started(deal, loans, assumptions, n_run, seed, eng,
                                           cutoff=pool.cutoff_date, deterministic_z=z,
                                           model=model, charge_off_dpd=charge_off_dpd)
    paths = project(loans, assumptions, n_run, seed,
                    model=model, engine=eng, batch_size=batch_size, deterministic_z=z,
                    charge_off_dpd=charge_off_dpd, progress=progress)
    timings["simulate_s"] = time.perf_counter() - t1
    stats = loss_distribution(paths)
    deal_run = None
    on_record = None
    stored_profile = None  # the revolving deal's profile, stored with the run's paths
    if deal is not None and structure is not None and profile_of is not None:
        t3 = time.perf_counter()
        profile = profile_of()
        deal_run = run_deal(deal, paths, profile, rating_table=ratings)
        if profile is not None:
            stored_profile = (deal.revolving_months, profile)
        timings["tranches_s"] = time.perf_counter() - t3
        on_record = _tranche_recorder(deal_run, Path(structure))
    if label is not None or tags:
        on_record = _with_label(on_record, label, tags)
    run_id = None
    if record:
        t2 = time.perf_counter()
        with open_store(db) as store:
            run_id = record_simulation(store, paths, inputs, code_version(), timings=timings,
                                       assumptions=assumptions, started_at=started,
                                       on_record=on_record, replenishment=stored_profile)
        timings["record_s"] = time.perf_counter() - t2
        if deal_run is not None:  # the dashboard's Tranches/Dispersion pages read their views
            t2 = time.perf_counter()
            access.store_run_views(db, Viewer("simulate", "treasury"), run_id)
            timings["page_views_s"] = time.perf_counter() - t2
    return SimulationResult(run_id, paths, stats, pool, len(loans), inputs, timings, deal_run)


def _check_tape(tape: Path | None, workers: int | None, scheduler: str | None,
                book: Path | None, engine: str) -> list[LoanPart] | None:
    """``--tape`` and the flags it cannot go with, before any work; its partitions."""
    if tape is None:
        return None
    if workers is None and scheduler is None:
        raise ValidationError(must_be("--tape", "given with --workers or --scheduler (the "
                                      "workers read it)", str(tape)))
    if book is not None:
        raise ValidationError(must_be("--book", "not given with --tape", str(book)))
    if engine != "granular":
        raise ValidationError(must_be("--engine", "granular with --tape (no process holds "
                                      "every loan)", engine))
    return loan_parts(tape)


def _simulate_tape(db: Path, pool_id: int, parts: list[LoanPart], assumptions: Assumptions,
                   assumptions_path: Path, n_paths: int, seed: int, workers: int | None,
                   scheduler: str | None, tape: Path | None, scenario: str | None,
                   pd_mult: float | None, rho: float | None, smm_mult: float | None,
                   recovery_mult: float | None, batch_size: int, record: bool,
                   label: str | None, tags: Sequence[str], started: dt.datetime,
                   timings: dict[str, float],
                   progress: Callable[[float], None] | None, deal: Deal | None = None,
                   structure: Path | None = None, ratings: RatingTable | None = None,
                   model: str = "hazard", charge_off_dpd: int | None = None
                   ) -> SimulationResult:
    """:func:`run_simulation` of a pool whose loans the workers read from its loan tape. With a
    revolving ``deal`` each worker also sends back its partition's cells as new loans bought
    at the pool's cut-off; the client merges them (``profile_from_cells``: cells × months, no
    loan) and ships them with the deal, and each waterfall task computes the replenishment
    profile of its own blocks (``ProfileFromCells.paths``): no paths-sized profile is built
    on the client or shipped. With ``model`` ``delinquency`` the client adds each merged
    cell's transition tables (``prepare_delinquency_on_workers``; a revolving deal is refused
    before this)."""
    with open_store(db, read_only=True) as store:
        pool = get_pool(store, pool_id)
    n_rows = tape_rows(parts)
    if n_rows != pool.n_loans:
        raise ValidationError(must_be("--tape", f"the loan tape of pool {pool_id} "
                                      f"({pool.n_loans:,} loans; riskpool pool export)",
                                      f"{n_rows:,} loans", str(tape)))
    inputs = SimulationInputs(
        pool_id=int(pool_id), n_paths=int(n_paths), seed=int(seed), engine="granular",
        assumptions=str(Path(assumptions_path).resolve()),
        stress=Stress(scenario=scenario, pd_mult=_opt_float(pd_mult), rho=_opt_float(rho),
                      smm_mult=_opt_float(smm_mult), recovery_mult=_opt_float(recovery_mult)),
        batch_size=int(batch_size), pool_name=pool.name, n_loans=pool.n_loans,
        cutoff_date=pool.cutoff_date,
        book=None if tape is None else str(Path(tape).resolve()),
        structure=None if structure is None else str(Path(structure).resolve()),
        source="riskpool simulate", model=model, charge_off_dpd=charge_off_dpd,
        loan_sampler=loan_sampler_for("granular", model, None))
    revolving = deal is not None and deal.revolving_months > 0
    t1 = time.perf_counter()
    with open_client(workers=workers, scheduler=scheduler) as client:
        new_cells: list[PartCells] = []
        prep: PreparedPool | DqPrepared
        if model == "delinquency":
            prep = prepare_delinquency_on_workers(client, parts, assumptions, charge_off_dpd)
        elif revolving:
            prep, new_cells = prepare_with_new_loans_on_workers(client, parts, assumptions,
                                                                pool.cutoff_date)
        else:
            prep = prepare_on_workers(client, parts, assumptions)
        timings["load_s"] = time.perf_counter() - t1
        base = prep.base if isinstance(prep, DqPrepared) else prep
        if abs(base.initial_balance - pool.balance) > max(0.01, 1e-9 * pool.balance):
            raise ValidationError(must_be("--tape", f"the loan tape of pool {pool_id} "
                                          f"(balance {pool.balance:,.2f})",
                                          f"balance {base.initial_balance:,.2f}", str(tape)))
        profile = None
        if revolving:
            assert deal is not None
            t2 = time.perf_counter()
            profile = profile_from_cells(new_cells, assumptions, base.T, int(n_paths),
                                         int(seed), purchase_months=deal.revolving_months)
            timings["prepare_s"] = time.perf_counter() - t2
        return _simulate_summaries(db, client, prep, pool, base.n_loans,
                                   dataclasses.replace(inputs, n_loans=base.n_loans),
                                   assumptions, scheduler, deal, profile, structure, ratings,
                                   record, label, tags, started, timings, progress)


def _simulate_summaries(db: Path, client: Any, prep: PreparedPool | DqPrepared, pool: PoolInfo,
                        n_loans: int,
                        inputs: SimulationInputs, assumptions: Assumptions,
                        scheduler: str | None, deal: Deal | None,
                        profile: PoolPaths | ProfileFromCells | None,
                        structure: Path | None, ratings: RatingTable | None, record: bool,
                        label: str | None, tags: Sequence[str], started: dt.datetime,
                        timings: dict[str, float],
                        progress: Callable[[float], None] | None) -> SimulationResult:
    """Run ``prep``'s paths on ``client``'s cluster keeping summaries only on the client
    (``portfolio.montecarlo.distributed.run_summary``: each path's loss, per-block monthly
    moments and the paths at the VaR levels), with ``deal``'s waterfall on the workers
    (``tranching.distributed.TranchesOnWorkers``, ``profile`` its replenishment profile) and
    record the run from them (``portfolio.store.runs.record_simulation_summary``)."""
    t2 = time.perf_counter()
    inner = None if deal is None else TranchesOnWorkers(deal, profile)
    srun = run_summary(client, prep, root_seed(inputs.seed), inputs.n_paths,
                       engine=inputs.engine, inner=inner, quantiles=LOSS_LEVELS,
                       progress=progress)
    timings["simulate_s"] = time.perf_counter() - t2
    inputs = dataclasses.replace(inputs, dask=DaskPlacement(int(srun.n_workers),
                                                            scheduler or "local"))
    entropy = root_seed(inputs.seed).entropy
    tables = None
    on_record = None
    if deal is not None and structure is not None:
        t3 = time.perf_counter()
        tables = deal_tables(deal, srun.reduced, srun.summary.initial_balance,
                             rating_table=ratings)
        settings = DealSettings(
            replenishment="new-loan profile" if profile is not None else "none",
            replenishment_months=profile.n_months if profile is not None else 0,
            waterfall_months=len(srun.reduced.dates))
        timings["tranches_s"] = time.perf_counter() - t3
        on_record = _tables_recorder(deal.name, tables, settings, Path(structure))
    if label is not None or tags:
        on_record = _with_label(on_record, label, tags)
    run_id = None
    if record:
        t4 = time.perf_counter()
        with open_store(db) as store:
            run_id = record_simulation_summary(
                store, srun.summary, inputs, code_version(),
                seed_entropy=int(entropy) if isinstance(entropy, int) else None,
                timings=timings, assumptions=assumptions, started_at=started,
                on_record=on_record, bytes_back=srun.bytes_back,
                quantile_paths=(srun.quantile_levels, srun.quantile_index,
                                srun.quantile_paths) if srun.quantile_paths is not None
                else None)
        timings["record_s"] = time.perf_counter() - t4
    stats = loss_distribution(srun.summary.loss, initial_balance=srun.summary.initial_balance)
    return SimulationResult(run_id, None, stats, pool, n_loans, inputs, timings, None,
                            summary=srun, deal_tables=tables, deal=deal,
                            replenishment_months=0 if profile is None else profile.n_months)


def _with_label(inner: Callable[[Store, int], None] | None, label: str | None,
                tags: Sequence[str]) -> Callable[[Store, int], None]:
    """``on_record`` that also stores the run's label and tags (after ``inner``)."""
    def record(store: Store, run_id: int) -> None:
        if inner is not None:
            inner(store, run_id)
        label_run(store, run_id, label, tags)

    return record


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _tables_recorder(deal_name: str, tables: tuple[pd.DataFrame, pd.DataFrame],
                     settings: DealSettings, structure: Path) -> Callable[[Store, int], None]:
    """``on_record`` storing a deal's tranche and trigger tables computed from the workers'
    summaries (as :func:`_tranche_recorder` does from a local waterfall)."""
    text = structure.read_text(encoding="utf-8")

    def record(store: Store, run_id: int) -> None:
        insert_tranche_results(store.con, run_id, deal_name, tables[0],
                               deal_source=str(structure), deal_toml=text,
                               settings=settings.to_json(),
                               triggers=tables[1].to_dict("records"))

    return record


def _tranche_recorder(deal_run: DealRun, structure: Path) -> Callable[[Store, int], None]:
    """``record_simulation``'s ``on_record``: the tranche tables, in the run's transaction."""
    text = structure.read_text(encoding="utf-8")

    def record(store: Store, run_id: int) -> None:
        insert_tranche_results(store.con, run_id, deal_run.deal.name, deal_run.tranches,
                               deal_source=str(structure), deal_toml=text,
                               settings=deal_run.settings().to_json(),
                               triggers=deal_run.triggers.to_dict("records"))

    return record


_MONEY = fixed("{:,.2f}")
_SIGNED_PCT = fixed("{:+.2f}")


def _money(x: float) -> str:
    return _MONEY(x)


def loss_rows_shown(losses: pd.DataFrame, n_paths: int) -> pd.DataFrame:
    """A run's stored loss statistics (``run_loss_stats``: party, measure, level, loss, SE,
    % of balance) as ``riskpool runs show`` prints them, with a ``note`` on every quantile
    whose tail holds fewer than ``MIN_TAIL_PATHS`` of the run's ``n_paths`` paths (as
    ``simulate`` and ``runs diff`` flag them: there its SE means little)."""
    shown = losses.copy()
    shown["party_id"] = shown["party_id"].replace("", "(pool)")
    levels = shown["level"].astype(float)
    is_el = shown["measure"] == "EL"
    shown["level"] = ["" if el else f"{lv * 100:g}%" for el, lv in zip(is_el, levels, strict=True)]
    shown["loss"] = shown["loss"].map(_money)
    shown["se"] = shown["se"].map(_money)
    shown["loss_pct"] = shown["loss_pct"].map(lambda v: "" if pd.isna(v) else f"{v * 100:.3f}%")
    tails = [None if el or math.isnan(lv) else tail_paths(n_paths, lv)
             for el, lv in zip(is_el, levels, strict=True)]
    shown["note"] = ["" if k is None or k >= MIN_TAIL_PATHS else f"too few paths: {k} in the tail"
                     for k in tails]
    return shown


def loss_table_text(stats: LossStats, title: str = "pool", n_paths: int | None = None) -> str:
    """The loss distribution as aligned text: measure, level, loss ± SE, % of balance; with
    ``n_paths``, a quantile whose tail holds fewer than 50 paths is flagged (its SE means
    little: at 500 paths VaR 99.9% is the worst path and ES 99.9% equals it)."""
    lines = [f"{'measure':<8}{'level':>7}{'loss (CNY)':>20}{'± SE':>16}{'% balance':>11}"]
    for row in stats.rows():
        lv = float(row["level"])
        level = "" if math.isnan(lv) else f"{lv * 100:g}%"
        note = ""
        if n_paths is not None and not math.isnan(lv) and tail_paths(n_paths, lv) < MIN_TAIL_PATHS:
            note = f"   too few paths: {tail_paths(n_paths, lv)} in the tail"
        lines.append(f"{row['measure']:<8}{level:>7}{_money(float(row['loss'])):>20}"
                     f"{_money(float(row['se'])):>16}{float(row['loss_pct']) * 100:>10.3f}%{note}")
    return f"{title}:\n  " + "\n  ".join(lines)


def simulate_cmd(
    pool: Annotated[int, typer.Option("--pool", help="Pool id (riskpool pool list).")],
    assumptions: Annotated[Path, typer.Option("--assumptions", help="Assumptions TOML "
                                              "(riskpool calibrate writes one).")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the run's root SeedSequence.")],
    paths: Annotated[int, typer.Option("--paths", help="Monte Carlo paths.")] = 10_000,
    engine: Annotated[str, typer.Option("--engine", help="granular (fast, default) or loan "
                                        "(every loan drawn; the reference).")] = "granular",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Paths per batch (results "
                                            "do not depend on it).")] = 1000,
    scenario: ScenarioOption = None,
    pd_mult: PdMultOption = None,
    rho: RhoOption = None,
    smm_mult: SmmMultOption = None,
    recovery_mult: RecoveryMultOption = None,
    deterministic: Annotated[str | None, typer.Option(
        "--deterministic", help="Single-path expected projection with the factor fixed: "
        "base (Z = 0), adverse (Z = 1-in-20 quantile every month) or severe (1-in-100).")] = None,
    db: DbOption = DEFAULT_DB,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Run the paths (and a --structure deal's waterfall) on a local Dask "
        "cluster of N worker processes (127.0.0.1 only; summaries only come back and are "
        "recorded; same loss figures as a local run; needs riskpool[distributed]).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run the paths on an existing Dask cluster at this scheduler "
        "address (e.g. tcp://10.0.0.5:8786).")] = None,
    book: Annotated[Path | None, typer.Option(
        "--book", help="Parquet book directory (riskpool book export) to check the pool's "
        "loans against.")] = None,
    tape: Annotated[Path | None, typer.Option(
        "--tape", help="The pool's loan tape (riskpool pool export): the Dask workers read its "
        "partitions; the client never loads the loans (with --workers/--scheduler; granular "
        "engine; every cell drawn by binomial counts; with --structure the waterfall runs on "
        "the workers too).")] = None,
    structure: Annotated[Path | None, typer.Option(
        "--structure", help="Deal TOML: run its waterfall on the paths (revolving purchases "
        "as new loans) and store the tranche table with the run (riskpool tranche report).")] = None,
    rating_table: Annotated[Path | None, typer.Option(
        "--rating-table", help="Rating table TOML: the tranche table's implied ratings "
        "(with --structure; none is shipped).")] = None,
    label: LabelOption = None,
    tag: TagOption = None,
    model: Annotated[str, typer.Option(
        "--model", help="Credit model: hazard (default: a loan defaults in the month it goes "
        "bad) or delinquency (monthly delinquency states, charge-off at the charge-off "
        "point).")] = "hazard",
    charge_off_dpd: Annotated[int | None, typer.Option(
        "--charge-off-dpd", help="With --model delinquency: charge off at 90, 120, 150 or 180 "
        "days past due (default: the assumptions' [delinquency] charge_off_dpd, else 90).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Project a pool's cash flows and credit losses by Monte Carlo; record the run."""
    with progress_bar(f"simulating {paths:,} paths", quiet=quiet) as update:
        res = run_simulation(db, pool, assumptions, paths, seed, engine=engine,
                             batch_size=batch_size, scenario=scenario, pd_mult=pd_mult, rho=rho,
                             smm_mult=smm_mult, recovery_mult=recovery_mult,
                             deterministic=deterministic, workers=workers, scheduler=scheduler,
                             book=book, structure=structure, rating_table=rating_table,
                             label=label, tags=tag or (), model=model,
                             charge_off_dpd=charge_off_dpd, progress=update, tape=tape)
    _print_simulation(res, deterministic, engine, seed, model)


def _print_simulation(res: SimulationResult, deterministic: str | None, engine: str, seed: int,
                      model: str) -> None:
    dates = res.dates
    typer.echo(f"pool {res.pool.pool_id} ({res.pool.name}): {res.n_loans:,} loans, cut-off "
               f"balance {_money(res.initial_balance)}, {len(dates)} months "
               f"(to {dates[-1]})")
    if deterministic is not None:
        p = res.paths
        assert p is not None  # a deterministic projection never runs on a cluster
        z = res.inputs.deterministic_z
        assert z is not None
        typer.echo(f"deterministic {deterministic} projection (Z = {z:.4f} every month, "
                   "conditional expectation)")
        typer.echo(f"  projected loss {_money(float(p.loss[0]))} "
                   f"({p.loss[0] / p.initial_balance * 100:.3f}% of balance); defaults "
                   f"{_money(float(p.default.sum()))}, recoveries {_money(float(p.recovery.sum()))}")
    else:
        where = ""
        if res.inputs.dask is not None:
            where = f" on {res.inputs.dask.workers} Dask workers"
        shown = "" if model == "hazard" else f"model {model}, "
        typer.echo(f"{res.n_paths:,} paths, {shown}engine {engine}, seed {seed}{where} "
                   f"({res.timings['simulate_s']:.2f} s)")
        if res.summary is not None:
            typer.echo(f"summaries only came back from the workers: {res.summary.bytes_back:,} "
                       "bytes (each path's loss, monthly moments per block of "
                       f"{BLOCK_PATHS} paths, the paths at the VaR levels"
                       + (", the deal's per-path tranche figures" if res.deal is not None
                          else "") + ")")
        typer.echo(loss_table_text(res.stats, "pool loss over the horizon (defaults − recoveries)",
                                   n_paths=res.n_paths))
    if res.deal_tables is not None and res.deal is not None:
        how = (f"revolving {res.deal.revolving_months} months, purchases as new loans "
               f"({res.replenishment_months}-month profile)" if res.replenishment_months
               else "no revolving period")
        frames = {"tranches": res.deal_tables[0]}
        if not res.deal_tables[1].empty:
            frames["triggers"] = res.deal_tables[1]
        emit(frames, None, title=f"deal {res.deal.name} ({how}; waterfall on the Dask workers; "
             "EL, WAL in years, p_breach = probability a trigger is ever breached; the "
             "residual holder and reconciliation tables need every path's waterfall: run "
             "without --workers/--scheduler for them)")
    if res.deal_run is not None:
        dr = res.deal_run
        how = (f"revolving {dr.deal.revolving_months} months, purchases as new loans "
               f"({dr.replenishment.n_months}-month profile)" if dr.replenishment is not None
               else "no revolving period")
        frames = {"tranches": dr.tranches}
        if not dr.triggers.empty:
            frames["triggers"] = dr.triggers
        frames["residual_holder"] = dr.residual
        frames["reconciliation"] = dr.reconciliation
        emit(frames, None, title=f"deal {dr.deal.name} ({how}; {len(dr.result.dates)} payment "
             f"dates; EL, WAL in years, p_breach = probability a trigger is ever breached; "
             "residual holder = the subordinated tranche's holder, cash including the residual; "
             "reconciliation in CNY, mean/min/max over paths)")
    typer.echo(f"run {res.run_id} recorded")


# ------------------------------------------------------------------------------------------
# runs


runs_app = typer.Typer(help="Recorded runs (simulation, allocation, report): list, show, "
                       "label, diff.",
                       no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind "
                                             "(simulation, report, …).")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """List runs, newest first."""
    if kind is not None and kind not in RUN_KINDS:
        raise ValidationError(must_be("--kind", "one of " + ", ".join(RUN_KINDS), kind))
    with open_store(db, read_only=True) as store:
        frame = list_runs(store, kind)
    if frame.empty:
        typer.echo("no runs yet (riskpool simulate)")
        return
    shown = frame.drop(columns=["inputs", "parties"]).copy()
    shown["started_at"] = pd.to_datetime(shown["started_at"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["finished_at"] = pd.to_datetime(shown["finished_at"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["el"] = shown["el"].map(lambda v: "" if v is None or pd.isna(v) else _money(v))
    for col in ("pool_id", "n_paths", "seed"):
        shown[col] = shown[col].map(lambda v: "" if v is None or pd.isna(v) else f"{int(v)}")
    shown = shown.fillna("")
    typer.echo(shown.to_string(index=False))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="Run id (riskpool runs list).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """A run's inputs, seed, code version, timings, loss distribution and monthly means."""
    with open_store(db, read_only=True) as store:
        rec = get_run(store, run_id)
        losses = run_loss_stats(store, run_id, None) if rec.kind == "simulation" else None
        monthly = run_monthly(store, run_id) if rec.kind == "simulation" else None
    typer.echo(f"run {rec.run_id}: {rec.kind}, {rec.status}; started {rec.started_at}, "
               f"finished {rec.finished_at}")
    if rec.label or rec.tags:
        typer.echo(f"label: {rec.label or '—'}; tags: {', '.join(rec.tags) or '—'}")
    typer.echo(f"code version {rec.code_version}; seed entropy {rec.seed_entropy}")
    for key, value in rec.inputs.to_json().items():
        if value is not None:
            typer.echo(f"  {key}: {value}")
    if rec.timings:
        typer.echo("timings: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in rec.timings.items()))
    if rec.artifact_path:
        typer.echo(f"files: {rec.artifact_path}")
    if rec.summary.get("paths_stored") is False:
        typer.echo(f"summaries only (run on Dask workers): {rec.summary.get('bytes_back', 0):,} "
                   "bytes came back; each path's loss, the monthly means and the paths at "
                   "the VaR levels are stored, not every path's flows")
    if losses is not None and not losses.empty and isinstance(rec.inputs, SimulationInputs):
        typer.echo("\nloss distribution (CNY; ± Monte Carlo standard error):")
        typer.echo(loss_rows_shown(losses, rec.inputs.n_paths).to_string(index=False))
    if monthly is not None and not monthly.empty:
        typer.echo("\nmean monthly flows of the pool (CNY; ± SE):")
        cols = ["interest", "scheduled_principal", "prepayment", "default", "recovery",
                "balance_eop"]
        shown = monthly[["month", "period_end"]].copy()
        for c in cols:
            shown[c] = [f"{m:,.0f} ± {s:,.0f}" for m, s in zip(monthly[c], monthly[f"{c}_se"],
                                                               strict=True)]
        typer.echo(shown.to_string(index=False))


@runs_app.command("label")
def runs_label(
    run_id: Annotated[int, typer.Argument(help="Run id (riskpool runs list).")],
    label: LabelOption = None,
    tag: TagOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Name a run and tag it (replaces its label and tags; `--label ''` clears the label)."""
    with open_store(db, create=False) as store, store.transaction():
        label_run(store, run_id, label, tag or ())
        rec = get_run(store, run_id)
    typer.echo(f"run {run_id}: label {rec.label or '—'}; tags {', '.join(rec.tags) or '—'}")


def _pct(v: float) -> str:
    return "" if math.isnan(v) else _SIGNED_PCT(v * 100) + "%"


@runs_app.command("diff")
def runs_diff(
    run_a: Annotated[int, typer.Argument(help="Run A (the base).")],
    run_b: Annotated[int, typer.Argument(help="Run B (compared with A).")],
    all_inputs: Annotated[bool, typer.Option("--all", help="Show every input, not only "
                                             "those that differ.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Two simulation runs side by side: the inputs that differ, then EL, VaR and ES per party
    with B − A, the change in %, and its standard error; a quantile resting on fewer than 50
    tail paths is flagged."""
    with open_store(db, read_only=True) as store:
        cmp = compare_runs(store, run_a, run_b)
    name = {run_a: f"run {run_a}" + (f" ({cmp.a.label})" if cmp.a.label else ""),
            run_b: f"run {run_b}" + (f" ({cmp.b.label})" if cmp.b.label else "")}
    typer.echo(f"A = {name[run_a]}, B = {name[run_b]}")
    inputs = cmp.inputs if all_inputs else cmp.inputs[cmp.inputs["differs"]]
    if inputs.empty:
        typer.echo("\ninputs: identical")
    else:
        shown = inputs.rename(columns={"a": "A", "b": "B"}).copy()
        shown["differs"] = shown["differs"].map(lambda d: "≠" if d else "")
        typer.echo("\ninputs" + ("" if all_inputs else " that differ (--all for every input)")
                   + ":")
        typer.echo(shown.to_string(index=False))
    res = cmp.results
    shown = pd.DataFrame({
        "party": res["party"], "measure": res["measure"],
        "level": res["level"].map(lambda v: "" if math.isnan(v) else f"{v * 100:g}%"),
        "A (CNY)": [f"{v:,.0f} ± {s:,.0f}" for v, s in zip(res["a"], res["a_se"], strict=True)],
        "B (CNY)": [f"{v:,.0f} ± {s:,.0f}" for v, s in zip(res["b"], res["b_se"], strict=True)],
        "B − A": [f"{v:+,.0f} ± {s:,.0f}" for v, s in zip(res["delta"], res["delta_se"],
                                                          strict=True)],
        "B − A %": res["delta_pct"].map(_pct),
        "note": res["note"],
    })
    typer.echo("\nloss over the horizon (± Monte Carlo SE; the delta's SE assumes independent "
               "draws):")
    typer.echo(shown.to_string(index=False))


def migrate_cmd(db: DbOption = DEFAULT_DB) -> None:
    """Bring a database written by an older riskpool to this version's schema (every run kept,
    its inputs rewritten as typed records), or refuse and say how to rebuild it."""
    if not Path(db).exists():
        raise ValidationError(must_be("--db", "an existing database file", str(db)))
    with open_store(db) as store:
        version = store.schema_version()
    typer.echo(f"database {db}: schema version {version}")


def register(app: typer.Typer) -> None:
    """Add ``simulate``, ``runs list|show`` and ``migrate`` to the app."""
    app.command("simulate")(simulate_cmd)
    app.add_typer(runs_app, name="runs")
    app.command("migrate")(migrate_cmd)
