"""``riskpool tranche ...``: deal checks, stored tranche reports, and tranche sizing.

- ``riskpool tranche check --structure DEAL.toml`` — validate a deal file and print its
  priority of payments line by line (to check against the prospectus).
- ``riskpool tranche report --run ID [--rating-table FILE] [--out FILE]`` — the tranche table
  (and trigger probabilities) stored with a run by ``riskpool simulate ... --structure
  DEAL.toml``, with the implied ratings of ``--rating-table``; then the stored deal rerun on the
  run's paths for the residual holder (cash including the residual, IRR, money multiple,
  present value in CNY and per 1 invested),
  the cash and loss reconciliation and excess spread by period (``tranching.reconcile``);
  ``--out`` writes CSV, Parquet or XLSX.
- ``riskpool tranche cashflows --run ID --out FILE [--path expected|pNN|INDEX]`` — the
  cash-flow tape (``tranching.tape``) of the stored deal rerun on the run's paths: the expected
  path or one path (a pool-loss percentile or an index); a scenario is a run made with
  ``--scenario``/``--deterministic``.
- ``riskpool tranche grid --structure DEAL.toml --balance B --wac R --wam N [--cdr ...]
  [--severity ...] [--cpr ...]`` — deterministic scenario grid and breakeven CDRs
  (``tranching.grid``); ``--run N`` grids around a stored run instead: the pool's balance,
  rate and remaining term and the run's CDR (times ``--cdr-multipliers``), severity, CPR and
  recovery lag, the run's stored deal unless ``--structure`` is given. ``--roll-multipliers
  M,.. --roll-current P --roll R1,R2,R3 --cure C1,C2,C3`` adds a roll-rate grid: the line's
  deterministic expected path under the delinquency transitions with the roll-forward rates
  times each multiplier (``tranching.grid.roll_rate_paths``); with ``--run`` and none of the
  three rate flags, the run's own delinquency transitions, balance-weighted over its pool.
- ``riskpool tranche size --run ID --structure DEAL.toml --tranche NAME (--target-el X |
  --target-rating R --rating-table FILE)`` — the largest size of NAME meeting the target, by
  bisection on the run's own paths (common random numbers), within the size limits (``--min-sub``,
  a first-loss retention); prints the binding constraint and every constraint's slack. No rating
  table is shipped: a rating target needs ``--rating-table``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from portfolio.book.pools import load_pool_loans
from portfolio.book.replay import replay_run
from portfolio.errors import NotFound, StoredFileDamaged, ValidationError, must_be
from portfolio.store.core import open_store
from portfolio.store.runs import get_run, load_paths
from portfolio.store.tranches import load_tranche_results
from riskpool.commands.options import DEFAULT_DB, DbOption
from riskpool.commands.output import check_out_path, emit, write_tables
from tranching.analytics import with_class_total
from tranching.deal import load_deal
from tranching.grid import (
    BaseScenario,
    base_scenario,
    breakeven_table,
    grid,
    representative_chain,
    roll_grid,
)
from tranching.ratings import RatingTable, implied_rating, load_rating_table
from tranching.revolving import (
    load_deal_record,
    recorded_deal,
    rerun_recorded_deal,
    run_replenishment,
)
from tranching.sizing import size_tranche
from tranching.tape import cashflow_tape, choose_path

RunOption = Annotated[int, typer.Option("--run", help="Run id (see `riskpool runs list`).")]
RatingTableOption = Annotated[Path | None, typer.Option(
    "--rating-table", help="Rating table TOML for the implied ratings (none is shipped).")]


def _rates(flag: str, text: str) -> list[float]:
    """A comma-separated list of decimals in [0, 1] (``--cdr 0,0.05,0.1``)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValidationError(must_be(flag, "comma-separated decimals in [0, 1]", text)) from None
    if not values or not all(0 <= v <= 1 for v in values):
        raise ValidationError(must_be(flag, "comma-separated decimals in [0, 1]", text))
    return values


def _multipliers(text: str, flag: str = "--cdr-multipliers") -> list[float]:
    """``--cdr-multipliers`` (multiples of the run's CDR), ``--roll-multipliers`` (of the
    roll-forward rates): comma-separated non-negative numbers."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValidationError(must_be(flag, "comma-separated numbers >= 0", text)) from None
    if not values or not all(np.isfinite(v) and v >= 0 for v in values):
        raise ValidationError(must_be(flag, "comma-separated numbers >= 0", text))
    return values


def with_ratings(table: pd.DataFrame, ratings: RatingTable) -> pd.DataFrame:
    """The tranche table with ``rating`` = the implied rating of each row's EL at its mean
    WAL (``tranching.ratings.implied_rating``; empty where the WAL is undefined)."""
    out = table.copy()
    out["rating"] = [implied_rating(ratings, float(el), float(w)) if np.isfinite(w) else None
                     for el, w in zip(out["el"], out["wal_mean"], strict=True)]
    return out


def register(app: typer.Typer) -> None:
    tranche = typer.Typer(help="Tranches: check deal files, report stored results, size tranches.",
                          no_args_is_help=True)

    @tranche.command("check")
    def check(
        structure: Annotated[Path, typer.Option("--structure", help="Deal TOML file.")],
    ) -> None:
        """Validate a deal file and print its priority of payments, one numbered line per step."""
        deal = load_deal(structure)
        typer.echo(f"{deal.name}: {len(deal.tranches)} tranches, "
                   f"{deal.principal_mode.value} principal, {len(deal.triggers)} trigger(s)")
        for t in deal.tranches:
            size = f"{t.size:.2%}" if t.size is not None else f"{t.amount:,.2f} CNY"
            typer.echo(f"  {t.name:<8} {size:>12}  coupon {t.coupon:.4%}  holder {t.holder}")
        typer.echo("priority of payments:")
        typer.echo(deal.describe_waterfall())

    @tranche.command("report")
    def report(
        run: RunOption,
        db: DbOption = DEFAULT_DB,
        out: Annotated[Path | None, typer.Option("--out", help="Write CSV, Parquet or XLSX.")] = None,
        rating_table: RatingTableOption = None,
    ) -> None:
        """Print the tranche table stored with a run, the residual holder's return, the cash
        and loss reconciliation and excess spread by period; ``--out`` also writes them."""
        check_out_path(out)
        ratings = load_rating_table(rating_table) if rating_table is not None else None
        with open_store(db, read_only=True) as store:
            table = load_tranche_results(store, run)
            info = load_deal_record(store, run)
            try:
                rerun = rerun_recorded_deal(store, run)
            except (NotFound, StoredFileDamaged) as exc:  # paths or deal text gone or
                # damaged: the stored tables only
                rerun, missing = None, str(exc)
        if ratings is not None:
            table = with_ratings(table, ratings)
        frames = {"tranches": with_class_total(table)}  # the notes' total row
        if not info.triggers.empty:
            frames["triggers"] = info.triggers
        if rerun is not None:
            frames["residual_holder"] = rerun.residual
            frames["reconciliation"] = rerun.reconciliation
            frames["excess_spread"] = rerun.excess_spread
        else:
            typer.echo(f"(no residual holder, reconciliation or excess spread: {missing})")
        emit(frames, out, title=f"run {run}: deal {info.deal_name} ({info.deal_source}); "
             "reconciliation in CNY (mean, min, max over paths); residual holder = the holder "
             "of the subordinated tranche, cash including the residual")

    @tranche.command("cashflows")
    def cashflows(
        run: RunOption,
        out: Annotated[Path, typer.Option("--out", help="CSV, Parquet or XLSX file.")],
        db: DbOption = DEFAULT_DB,
        path: Annotated[str, typer.Option(
            "--path", help="expected (means over paths), pNN (the path at the NN-th "
            "percentile of pool loss, e.g. p95) or a path index.")] = "expected",
    ) -> None:
        """The cash-flow tape of the deal stored with a run: one row per payment date and
        class, fee, reserve, residual, residual holder and pool (tranching.tape)."""
        check_out_path(out)
        with open_store(db, read_only=True) as store:
            info = load_deal_record(store, run)
            rerun = rerun_recorded_deal(store, run)
        which = choose_path(rerun.result, path)
        tape = cashflow_tape(rerun.result, which)
        label = "expected path (means over paths)" if which is None else f"path {which}"
        written = write_tables({"cashflows": tape}, out)
        typer.echo(f"run {run}: deal {info.deal_name}, {label}: {len(rerun.result.dates)} "
                   f"payment dates x {tape['item'].nunique()} items")
        for p in written:
            typer.echo(f"wrote {p}")

    @tranche.command("grid")
    def grid_cmd(
        structure: Annotated[Path | None, typer.Option(
            "--structure", help="Deal TOML file (with --run: default the run's stored deal).")] = None,
        run: Annotated[int | None, typer.Option(
            "--run", help="Grid around a stored run: the pool's balance, rate and remaining "
            "term and the run's CDR, severity, CPR and recovery lag read back from its paths.")] = None,
        db: DbOption = DEFAULT_DB,
        balance: Annotated[float | None, typer.Option("--balance", help="Pool balance (CNY).")] = None,
        wac: Annotated[float | None, typer.Option("--wac", help="Pool rate (annual, decimal).")] = None,
        wam: Annotated[int | None, typer.Option("--wam", help="Remaining term (months).")] = None,
        cdr: Annotated[str | None, typer.Option(
            "--cdr", help="CDRs, comma-separated decimals (default 0,0.05,0.1,0.2; with --run "
            "the run's CDR times --cdr-multipliers).")] = None,
        cdr_multipliers: Annotated[str, typer.Option(
            "--cdr-multipliers", help="With --run: multiples of the run's CDR.")] = "0,0.5,1,1.5,2,3",
        severity: Annotated[str | None, typer.Option(
            "--severity", help="Loss severities (1 − recovery rate), comma-separated (default "
            "0.8; with --run the run's).")] = None,
        cpr: Annotated[str | None, typer.Option(
            "--cpr", help="CPRs, comma-separated (default 0.1; with --run the run's).")] = None,
        lag: Annotated[int | None, typer.Option("--recovery-lag", help="Months from default to "
                                                "recovery (default 3; with --run the run's).")] = None,
        tol: Annotated[float, typer.Option("--tol", help="Breakeven CDR tolerance.")] = 1e-6,
        roll_multipliers: Annotated[str | None, typer.Option(
            "--roll-multipliers", help="Also a roll-rate grid: multiples of the roll-forward "
            "rates of --roll-current and --roll (the cures --cure kept), comma-separated.")] = None,
        roll_current: Annotated[float | None, typer.Option(
            "--roll-current", help="Monthly P(current -> 1-30 DPD) of the roll-rate grid.")] = None,
        roll: Annotated[str | None, typer.Option(
            "--roll", help="Monthly roll rates of the 30-day buckets (3 to 6, the last one's "
            "roll is the charge-off), comma-separated.")] = None,
        cure: Annotated[str | None, typer.Option(
            "--cure", help="Monthly cure rates of the same buckets, comma-separated.")] = None,
        out: Annotated[Path | None, typer.Option("--out", help="Write CSV, Parquet or XLSX.")] = None,
    ) -> None:
        """Deterministic CDR x severity x CPR runs of a representative line through the deal:
        each class's WAL, yield, loss and first-loss month; the breakeven CDR per class. With
        --run, around the run's own assumptions (tranching.grid.base_scenario). With
        --roll-multipliers, also roll-rate multiplier x severity x CPR runs of the line under
        delinquency transitions (tranching.grid.roll_rate_paths)."""
        check_out_path(out)
        roll_mult = (_multipliers(roll_multipliers, "--roll-multipliers")
                     if roll_multipliers is not None else None)
        chain_from_run = False
        if roll_mult is not None:
            missing = {"--roll-current": roll_current, "--roll": roll, "--cure": cure}
            chain_from_run = run is not None and all(v is None for v in missing.values())
        if roll_mult is not None and not chain_from_run:
            if any(v is None for v in missing.values()):
                raise ValidationError(must_be(", ".join(k for k, v in missing.items() if v is None),
                                              "given with --roll-multipliers (or --run N to take "
                                              "the run's delinquency transitions)", None))
            if not 0 <= roll_current <= 1:  # type: ignore[operator]
                raise ValidationError(must_be("--roll-current", "a monthly probability in [0, 1]",
                                              roll_current))
            rolls, cures = _rates("--roll", roll), _rates("--cure", cure)  # type: ignore[arg-type]
            if len(rolls) != len(cures) or not 3 <= len(rolls) <= 6:
                raise ValidationError(must_be("--roll, --cure", "the same number of buckets, 3 "
                                              "to 6", f"{roll} / {cure}"))
            if any(r + c > 1 + 1e-12 for r, c in zip(rolls, cures, strict=True)):
                raise ValidationError(must_be("--roll, --cure", "roll + cure <= 1 in every "
                                              "bucket", f"{roll} / {cure}"))
        base: BaseScenario | None = None
        deal = load_deal(structure) if structure is not None else None
        if run is not None:
            with open_store(db, read_only=True) as store:
                paths = load_paths(store, run)
                pool_id = get_run(store, run).simulation_inputs().pool_id
                loans = load_pool_loans(store, pool_id)
                if deal is None:
                    deal = recorded_deal(store, run)
                if chain_from_run:
                    replay = replay_run(store, run)
                    roll_current, run_rolls, run_cures = representative_chain(
                        loans, replay.assumptions.delinquency_model(), replay.assumptions.terms,
                        replay.inputs.charge_off_dpd)
                    rolls, cures = [float(x) for x in run_rolls], [float(x) for x in run_cures]
            weights = np.asarray(loans.balance, dtype=np.float64)
            term = float((weights * loans.remaining_term).sum() / weights.sum())
            base = base_scenario(paths, max(int(round(term)), 1))
        if deal is None:
            raise ValidationError(must_be("--structure", "a deal TOML file (or --run with a "
                                          "stored deal)", None))
        given = {"--balance": balance, "--wac": wac, "--wam": wam}
        if base is None and any(v is None for v in given.values()):
            raise ValidationError(must_be(", ".join(k for k, v in given.items() if v is None),
                                          "given (or --run N to take them from a run)", None))
        if balance is not None and not 0 < balance <= 1e15:
            raise ValidationError(must_be("--balance", "an amount in (0, 1e15] CNY", balance))
        if wam is not None and not 1 <= wam <= 600:
            raise ValidationError(must_be("--wam", "a whole number of months in [1, 600]", wam))
        bal = balance if balance is not None else base.balance  # type: ignore[union-attr]
        rate = wac if wac is not None else base.wac  # type: ignore[union-attr]
        term_m = wam if wam is not None else base.wam  # type: ignore[union-attr]
        if cdr is not None:
            cdrs = _rates("--cdr", cdr)
        elif base is not None:
            mult = _multipliers(cdr_multipliers)
            cdrs = [min(base.cdr * k, 1.0 - 1e-9) for k in mult]
        else:
            cdrs = [0.0, 0.05, 0.1, 0.2]
        sevs = (_rates("--severity", severity) if severity is not None
                else [base.severity] if base is not None else [0.8])
        cprs = (_rates("--cpr", cpr) if cpr is not None
                else [base.cpr] if base is not None else [0.1])
        rlag = lag if lag is not None else (base.lag if base is not None else 3)
        frames = {"grid": grid(deal, bal, rate, term_m, cdrs=cdrs, severities=sevs, cprs=cprs,
                               lag=rlag),
                  "breakeven_cdr": breakeven_table(deal, bal, rate, term_m, severities=sevs,
                                                   cprs=cprs, lag=rlag, tol=tol)}
        if roll_mult is not None:
            frames["roll_chain"] = pd.DataFrame([{
                "source": f"run {run}'s delinquency transitions, balance-weighted"
                if chain_from_run else "--roll-current, --roll, --cure",
                "roll_current": float(roll_current),  # type: ignore[arg-type]
                **{f"roll_{k + 1}": v for k, v in enumerate(rolls)},
                **{f"cure_{k + 1}": v for k, v in enumerate(cures)}}])
            frames["roll_grid"] = roll_grid(
                deal, bal, rate, term_m, roll_current=float(roll_current),  # type: ignore[arg-type]
                roll=rolls, cure=cures, multipliers=roll_mult, severities=sevs, cprs=cprs,
                lag=rlag)
        if base is not None:
            frames = {"base": pd.DataFrame([{
                "run": run, "balance": base.balance, "wac": base.wac, "wam": base.wam,
                "cdr": base.cdr, "severity": base.severity, "cpr": base.cpr,
                "recovery_lag": base.lag}]), **frames}
        emit(frames, out, title=f"{deal.name}: representative line {bal:,.2f} CNY at "
             f"{rate:.4%} over {term_m} months, recovery lag {rlag}; WAL in years, yield at par, "
             f"loss = share of the class; breakeven CDR to {tol:g}"
             + (f"; around run {run}'s assumptions (base row)" if base is not None else ""))

    @tranche.command("size")
    def size(
        run: RunOption,
        structure: Annotated[Path, typer.Option("--structure", help="Deal TOML file.")],
        tranche_name: Annotated[str, typer.Option("--tranche", help="Tranche to size.")],
        db: DbOption = DEFAULT_DB,
        target_el: Annotated[float | None, typer.Option("--target-el",
                                                        help="Largest EL (decimal share).")] = None,
        target_rating: Annotated[str | None, typer.Option("--target-rating",
                                                          help="Worst acceptable rating.")] = None,
        rating_table: Annotated[Path | None, typer.Option("--rating-table",
                                                          help="Rating table TOML (no default).")] = None,
        tol: Annotated[float, typer.Option("--tol", help="Size tolerance (share of pool).")] = 1e-4,
        min_sub: Annotated[float, typer.Option("--min-sub", help="Smallest share of the pool "
                                               "the subordinated tranche keeps.")] = 0.0,
    ) -> None:
        """Largest size of a tranche meeting a target EL or rating, on the run's own paths."""
        if (target_el is None) == (target_rating is None):
            raise ValidationError(must_be("--target-el / --target-rating", "exactly one of them",
                                          {"--target-el": target_el, "--target-rating": target_rating}))
        if target_el is not None and not 0 <= target_el < 1:
            raise ValidationError(must_be("--target-el", "a decimal share in [0, 1)", target_el))
        if target_rating is not None and rating_table is None:
            raise ValidationError(must_be("--rating-table", "a rating table file when sizing to a "
                                          "rating (riskpool ships no default table)", None))
        if not 0 < tol < 0.1:
            raise ValidationError(must_be("--tol", "in (0, 0.1)", tol))
        if not 0 <= min_sub < 1:
            raise ValidationError(must_be("--min-sub", "a share of the pool in [0, 1)", min_sub))
        deal = load_deal(structure)
        deal.index(tranche_name)
        table = load_rating_table(rating_table) if rating_table is not None else None
        with open_store(db, read_only=True) as store:
            paths = load_paths(store, run)
            # a revolving deal buys new loans: the run's replenishment profile (same seed)
            profile = run_replenishment(store, run, deal)
        res = size_tranche(deal, paths, tranche_name, target_el=target_el,
                           target_rating=target_rating, rating_table=table, tol=tol,
                           replenishment=profile, min_sub=min_sub)
        target = f"EL <= {target_el:.4%}" if target_el is not None else f"rating {target_rating} or better"
        typer.echo(f"{deal.name}, run {run} ({paths.n_paths} paths): largest {tranche_name} meeting {target}")
        typer.echo(f"  size {res.size:.4%} of the pool ({res.size * paths.initial_balance:,.2f} CNY), "
                   f"EL {res.el:.4%}, WAL {res.wal:.2f} y"
                   + (f", implied rating {res.rating}" if res.rating else "")
                   + f"  [{res.iterations} waterfall runs]")
        sizes = ", ".join(f"{t.name} {t.size:.4%}" for t in res.deal.tranches if t.size is not None)
        typer.echo(f"  resized structure: {sizes}")
        typer.echo(f"  binding constraint: {res.binding}")
        if res.capped:
            typer.echo(f"  (the maximum: the target holds even with {deal.tranche_names[-1]} "
                       "reduced to zero)")
        if res.constraints is not None:
            emit({"constraints": res.constraints}, None)

    app.add_typer(tranche, name="tranche")
