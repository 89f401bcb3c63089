"""The typed records of a simulation run: its inputs, and its assumptions as exact JSON —
what the store writes and what a replay reads (pure: no database, no files).

:class:`SimulationInputs` holds everything a recorded run needs to be simulated again with
the same numbers (pool, assumptions, path count, seed, engine, deterministic factor level,
the allocation whose party split it carries) and what describes it (the stress flags that
made the stored assumptions, the pool's name and size, the Dask placement, the deal file).
:meth:`SimulationInputs.to_json` gives the JSON object stored in ``runs.inputs``;
:meth:`SimulationInputs.from_json` reads one back through a declared schema
(``portfolio.validation``) and refuses anything it does not know: an unknown key, a missing
required key, a value of the wrong type or outside its bounds, an engine, scenario or
deterministic level that is not one of the allowed names. The error is a ``SchemaError``
naming the field (``inputs.engine``), the allowed values, what was received and where
(``run 4``); nothing is ever mapped to a default. The same schema checks a record built in
code (``__post_init__``), so an invalid record cannot exist.

:func:`assumptions_to_json` / :func:`assumptions_from_json` write and read the assumptions a
run used, bit for bit. The assumptions TOML is for people: it rounds to 12 significant
digits and its reader rescales the recovery lag to sum to 1, so a run whose assumptions had
more digits (calibrated in memory, or stressed) would not replay exactly from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from portfolio.montecarlo.assumptions import (
    CHARGE_OFF_DPD,
    CURE_RULES,
    NAMED_SCENARIOS,
    Assumptions,
    DelinquencyAssumptions,
)
from portfolio.montecarlo.delinquency import MODELS
from portfolio.montecarlo.dq_kernels import DQ_LEGACY_SAMPLER, DQ_SAMPLER
from portfolio.montecarlo.engines import LOAN_SAMPLER
from portfolio.montecarlo.lanes import GRANULAR_LEGACY_SAMPLER, GRANULAR_SAMPLER
from portfolio.montecarlo.simulation import (
    DETERMINISTIC_Z,
    ENGINES,
    LEGACY_LOAN_SAMPLER,
    Engine,
)
from portfolio.validation import (
    Anything,
    Date,
    Field,
    Interval,
    ListOf,
    Options,
    OrNull,
    SchemaError,
    Spec,
    Str,
    StrOptions,
    Table,
    validate,
)

__all__ = ["MAX_PATHS", "DaskPlacement", "SimulationInputs", "Stress", "assumptions_from_json",
           "assumptions_to_json", "optional", "text"]

MAX_PATHS = 1_000_000  # the path arrays are kept in memory
_R = TypeVar("_R")


def text(what: str = "a non-empty string") -> Str:
    """A string with at least one non-blank character, kept as written (not stripped)."""
    return Str(pattern=r"(?s).*\S.*", what=what)


def optional(spec: Spec) -> Field:
    """A key that may be left out or null (the stored records write every field)."""
    return Field.optional(OrNull(spec), None)


def placed(cls: type[_R], values: Mapping[str, Any], where: str) -> _R:
    """``cls(**values)``; a rule broken across fields (``__post_init__``) is reported with
    the place the record came from, like the schema's own errors."""
    try:
        return cls(**values)
    except SchemaError as exc:
        if not where or exc.where:
            raise
        raise SchemaError(exc.field_path, exc.allowed, exc.got, where) from None


def _require_type(value: object, kind: type | tuple[type, ...], path: str, what: str) -> None:
    if not isinstance(value, kind):
        raise SchemaError(path, what, value)


# ------------------------------------------------------------------------------------------
# the schemas of the stored JSON

_MULTIPLIER = Interval(float, 0, None, unit="a multiplier")
_SHA256 = Str(pattern=r"[0-9a-f]{64}", what="a sha256 (64 lowercase hex digits)")

STRESS = Table({
    "scenario": optional(StrOptions(tuple(NAMED_SCENARIOS))),
    "pd_mult": optional(_MULTIPLIER),
    "rho": optional(Interval(float, 0, 1, closed="left", unit="a correlation")),
    "smm_mult": optional(_MULTIPLIER),
    "recovery_mult": optional(_MULTIPLIER),
})

DASK = Table({
    "workers": Field(Interval(int, 1)),
    "scheduler": Field(text("'local' or a scheduler address")),
})

SIMULATION = Table({
    "pool_id": Field(Interval(int, 1, unit="a pool id")),
    "n_paths": Field(Interval(int, 1, MAX_PATHS)),
    "seed": Field(Interval(int, 0)),
    "engine": Field(StrOptions(ENGINES)),
    "assumptions": Field(text("the assumptions file")),
    "assumptions_sha256": optional(_SHA256),
    "assumptions_exact": optional(text("the exact assumptions file")),
    "assumptions_exact_sha256": optional(_SHA256),
    "assumptions_source": optional(text()),
    "stress": Field.optional(STRESS, {}),
    "deterministic": optional(StrOptions(tuple(DETERMINISTIC_Z))),
    "deterministic_z": optional(Interval(float)),
    "batch_size": optional(Interval(int, 1)),
    "allocation_id": optional(Interval(int, 1, unit="an allocation id")),
    "party_ids": Field.optional(ListOf(text("a party id"), unique=True), []),
    "pool_name": optional(text()),
    "n_loans": optional(Interval(int, 1)),
    "cutoff_date": optional(Date()),
    "dask": optional(DASK),
    "book": optional(text()),
    "structure": optional(text()),
    "source": optional(text()),
    "model": Field.optional(StrOptions(MODELS), "hazard"),
    "charge_off_dpd": optional(Options(CHARGE_OFF_DPD)),
    "loan_sampler": optional(StrOptions((LOAN_SAMPLER, DQ_SAMPLER, GRANULAR_SAMPLER))),
})


# ------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, slots=True)
class Stress:
    """The stress flags applied to the assumptions file before the run (``apply_stress``):
    a named scenario and/or explicit values. Recorded for the reader; the assumptions stored
    with the run already carry them."""

    scenario: str | None = None
    pd_mult: float | None = None
    rho: float | None = None
    smm_mult: float | None = None
    recovery_mult: float | None = None

    def __post_init__(self) -> None:
        validate(STRESS, self.to_json(), path="inputs.stress")

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: object, where: str = "") -> Stress:
        return placed(cls, validate(STRESS, data, where, "inputs.stress"), where)


@dataclass(frozen=True, slots=True)
class DaskPlacement:
    """Where the paths ran when they ran on Dask: worker count and ``local`` or the address
    of the scheduler. Provenance only: the numbers do not depend on it."""

    workers: int
    scheduler: str

    def __post_init__(self) -> None:
        validate(DASK, self.to_json(), path="inputs.dask")

    def to_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "scheduler": self.scheduler}

    @classmethod
    def from_json(cls, data: object, where: str = "") -> DaskPlacement:
        return placed(cls, validate(DASK, data, where, "inputs.dask"), where)


def loan_sampler_for(engine: str, model: str, deterministic: str | None) -> str | None:
    """The sampler a run draws its loans with, recorded as ``inputs.loan_sampler``:
    ``engines.LOAN_SAMPLER`` for a Monte Carlo run of the hazard model's loan engine,
    ``lanes.GRANULAR_SAMPLER`` for one of its granular engine, ``dq_kernels.DQ_SAMPLER`` for
    one of the delinquency model's granular engine, else ``None`` (no draw with versions). A
    run recorded without it drew the earlier way: the hazard loan engine one float32 uniform
    per loan and path, either granular engine path by path from one PCG64 stream
    (``GRANULAR_LEGACY_SAMPLER``, ``DQ_LEGACY_SAMPLER``): the same laws, other numbers."""
    if deterministic is not None:
        return None
    if model == "hazard":
        return LOAN_SAMPLER if engine == "loan" else GRANULAR_SAMPLER
    if engine == "granular" and model == "delinquency":
        return DQ_SAMPLER
    return None


def replay_loan_sampler(inputs: SimulationInputs) -> str:
    """The draw that gives a recorded run's numbers again: the recorded ``loan_sampler``, or
    for a run recorded without one ``simulation.LEGACY_LOAN_SAMPLER`` (the hazard model's
    loan engine: one float32 uniform per loan and path), ``GRANULAR_LEGACY_SAMPLER`` (its
    granular engine) or ``DQ_LEGACY_SAMPLER`` (the delinquency model's granular engine): the
    granular engines path by path from one PCG64 stream."""
    if inputs.loan_sampler is not None:
        return inputs.loan_sampler
    if inputs.model == "delinquency":  # the granular engine's draw before dq-lanes-v1
        return DQ_LEGACY_SAMPLER if inputs.engine == "granular" else LOAN_SAMPLER
    return LEGACY_LOAN_SAMPLER if inputs.engine == "loan" else GRANULAR_LEGACY_SAMPLER


@dataclass(frozen=True, slots=True)
class SimulationInputs:
    """The inputs of one simulation run (``runs.inputs`` of a run of kind ``simulation``).

    Required: ``pool_id``, ``n_paths``, ``seed``, ``engine`` and ``assumptions`` — the
    assumptions TOML the run used, stress applied. Once the run is recorded, that is the copy
    stored with it, written relative to the database's directory (``runs/4/assumptions.toml``)
    with its ``assumptions_sha256``, and ``assumptions_exact`` is the exact copy a replay
    reads (``runs/4/assumptions.json``, :func:`assumptions_to_json`) with its sha256 (``None``
    for a run migrated from schema version 1, which kept only the TOML);
    ``assumptions_source`` is the file the user named. ``deterministic``
    (``base``/``adverse``/``severe``) and ``deterministic_z`` (its factor level,
    ``DETERMINISTIC_Z``) go together and make a one-path run. ``allocation_id`` and
    ``party_ids``: the allocation whose shares split the paths between parties, in the order
    of the stored party flows. ``loan_sampler``: the draw of the run's engine
    (:func:`loan_sampler_for`).
    """

    pool_id: int
    n_paths: int
    seed: int
    engine: Engine
    assumptions: str
    assumptions_sha256: str | None = None
    assumptions_exact: str | None = None
    assumptions_exact_sha256: str | None = None
    assumptions_source: str | None = None
    stress: Stress = field(default_factory=Stress)
    deterministic: str | None = None
    deterministic_z: float | None = None
    batch_size: int | None = None
    allocation_id: int | None = None
    party_ids: tuple[str, ...] = ()
    pool_name: str | None = None
    n_loans: int | None = None
    cutoff_date: dt.date | None = None
    dask: DaskPlacement | None = None
    book: str | None = None
    structure: str | None = None
    source: str | None = None
    model: str = "hazard"
    charge_off_dpd: int | None = None
    loan_sampler: str | None = None

    def __post_init__(self) -> None:
        _require_type(self.stress, Stress, "inputs.stress", "a Stress record")
        if self.dask is not None:
            _require_type(self.dask, DaskPlacement, "inputs.dask", "a DaskPlacement record")
        _require_type(self.party_ids, tuple, "inputs.party_ids", "a tuple of party ids")
        if self.cutoff_date is not None and (not isinstance(self.cutoff_date, dt.date)
                                             or isinstance(self.cutoff_date, dt.datetime)):
            raise SchemaError("inputs.cutoff_date", "a date", self.cutoff_date)
        validate(SIMULATION, self.to_json(), path="inputs")
        # rules across fields
        if self.deterministic is None:
            if self.deterministic_z is not None:
                raise SchemaError("inputs.deterministic_z", "null when `inputs.deterministic` "
                                  "is null", self.deterministic_z)
        else:
            name = self.deterministic
            if self.deterministic_z != DETERMINISTIC_Z[name]:
                raise SchemaError("inputs.deterministic_z", f"{DETERMINISTIC_Z[name]!r} (the "
                                  f"factor level of the {name} projection)", self.deterministic_z)
            if self.n_paths != 1:
                raise SchemaError("inputs.n_paths", "1 for a deterministic projection",
                                  self.n_paths)
            if self.dask is not None:
                raise SchemaError("inputs.dask", "null for a deterministic projection",
                                  self.dask.to_json())
        if self.model != "delinquency" and self.charge_off_dpd is not None:
            raise SchemaError("inputs.charge_off_dpd", "null unless `inputs.model` is "
                              "'delinquency'", self.charge_off_dpd)
        if self.model == "delinquency" and self.deterministic is not None:
            raise SchemaError("inputs.deterministic", "null with the delinquency model",
                              self.deterministic)
        if self.loan_sampler is not None and self.loan_sampler != loan_sampler_for(
                self.engine, self.model, self.deterministic):
            raise SchemaError("inputs.loan_sampler", "null unless the run is a Monte Carlo run "
                              "of the hazard model or of the delinquency model's granular "
                              "engine, and then its engine's sampler ("
                              + str(loan_sampler_for(self.engine, self.model, self.deterministic))
                              + ")", self.loan_sampler)
        if (self.assumptions_exact is None) != (self.assumptions_exact_sha256 is None):
            raise SchemaError("inputs.assumptions_exact_sha256", "given exactly when "
                              "`inputs.assumptions_exact` is", self.assumptions_exact_sha256)

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``runs.inputs`` (every field, null when not set)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["stress"] = self.stress.to_json()
        out["party_ids"] = list(self.party_ids)
        out["cutoff_date"] = None if self.cutoff_date is None else self.cutoff_date.isoformat()
        out["dask"] = None if self.dask is None else self.dask.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str = "") -> SimulationInputs:
        """Read a stored ``runs.inputs`` object; refuses unknown keys and values (module doc)."""
        v = validate(SIMULATION, data, where, "inputs")
        v["stress"] = placed(Stress, v["stress"], where)
        v["dask"] = None if v["dask"] is None else placed(DaskPlacement, v["dask"], where)
        v["party_ids"] = tuple(v["party_ids"])
        return placed(cls, v, where)


# ------------------------------------------------------------------------------------------
# the assumptions a run used, exactly

ASSUMPTIONS = Table({
    "default_hazard": Field(Anything()),  # arrays: checked by Assumptions itself
    "prepay_smm": Field(Anything()),
    "recovery_rate": Field(Interval(float, 0, 1)),
    "recovery_lag": Field(ListOf(Interval(float, 0, 1), min_len=1)),
    "rho": Field(Interval(float, 0, 1, closed="left")),
    "factor_persistence": Field(Interval(float, -1, 1, closed="neither")),
    "copula": Field(StrOptions(("gaussian", "t"))),
    "t_dof": Field(Interval(float, 0, None, closed="neither")),
    "score_bands": Field(ListOf(ListOf(Interval(int), min_len=2, max_len=2), min_len=1)),
    "terms": Field(ListOf(Interval(int, 1), min_len=1)),
    "rho_se": optional(Interval(float, 0)),
    "provenance": Field(Anything(table=True)),
    "delinquency": optional(Table({
        "roll_current": Field(Anything()),  # arrays: checked by DelinquencyAssumptions
        "roll": Field(Anything()),
        "cure": Field(Anything()),
        "charge_off_dpd": Field(Options(CHARGE_OFF_DPD)),
        "cure_rule": Field(StrOptions(CURE_RULES)),
        "factor_loading": optional(Interval(float, 0, 1, closed="left")),
        "provenance": Field(Anything(table=True)),
    })),
})


def _delinquency_to_json(dq: DelinquencyAssumptions | None) -> dict[str, Any] | None:
    if dq is None:
        return None
    return {
        "roll_current": np.asarray(dq.roll_current).tolist(),
        "roll": np.asarray(dq.roll).tolist(),
        "cure": np.asarray(dq.cure).tolist(),
        "charge_off_dpd": int(dq.charge_off_dpd),
        "cure_rule": dq.cure_rule,
        "factor_loading": None if dq.factor_loading is None else float(dq.factor_loading),
        "provenance": dict(dq.provenance),
    }


def _array(value: Any, path: str, where: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SchemaError(path, "an array of monthly probabilities", value, where) from None


def assumptions_to_json(a: Assumptions) -> dict[str, Any]:
    """Every field of ``a`` as JSON; floats read back bit for bit (``json`` writes the
    shortest repr that round-trips). The provenance is kept as given."""
    return {
        "default_hazard": np.asarray(a.default_hazard).tolist(),
        "prepay_smm": np.asarray(a.prepay_smm).tolist(),
        "recovery_rate": float(a.recovery_rate),
        "recovery_lag": [float(x) for x in a.recovery_lag],
        "rho": float(a.rho),
        "factor_persistence": float(a.factor_persistence),
        "copula": a.copula,
        "t_dof": float(a.t_dof),
        "score_bands": [[int(lo), int(hi)] for lo, hi in a.score_bands],
        "terms": [int(t) for t in a.terms],
        "rho_se": None if a.rho_se is None else float(a.rho_se),
        "provenance": dict(a.provenance),
        "delinquency": _delinquency_to_json(a.delinquency),
    }


def assumptions_from_json(data: object, where: str = "") -> Assumptions:
    """The ``Assumptions`` of :func:`assumptions_to_json`; an unknown or missing field is
    refused, and the values pass ``Assumptions``' own checks."""
    v = validate(ASSUMPTIONS, data, where, "assumptions")
    curves = {}
    for name in ("default_hazard", "prepay_smm"):
        try:
            arr = np.asarray(v[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise SchemaError(f"assumptions.{name}", "an array of monthly probabilities",
                              v[name], where) from None
        curves[name] = arr
    delinquency = None
    dq = v["delinquency"]
    if dq is not None:
        delinquency = DelinquencyAssumptions(
            roll_current=_array(dq["roll_current"], "assumptions.delinquency.roll_current",
                                where),
            roll=_array(dq["roll"], "assumptions.delinquency.roll", where),
            cure=_array(dq["cure"], "assumptions.delinquency.cure", where),
            charge_off_dpd=dq["charge_off_dpd"], cure_rule=dq["cure_rule"],
            factor_loading=dq["factor_loading"], provenance=dict(dq["provenance"]))
    return Assumptions(
        default_hazard=curves["default_hazard"], prepay_smm=curves["prepay_smm"],
        recovery_rate=v["recovery_rate"], recovery_lag=tuple(v["recovery_lag"]),
        rho=v["rho"], factor_persistence=v["factor_persistence"], copula=v["copula"],
        t_dof=v["t_dof"], score_bands=tuple(tuple(b) for b in v["score_bands"]),
        terms=tuple(v["terms"]), rho_se=v["rho_se"], provenance=dict(v["provenance"]),
        delinquency=delinquency)
