"""The typed inputs of every kind of row in ``runs`` (pure: no SQL, no files).

A ``runs`` row is a ``simulation`` (:class:`portfolio.montecarlo.records.SimulationInputs`)
or a ``report`` (:class:`ReportInputs`, written by the scheduled report). Its ``inputs``
JSON is read back through :func:`parse_run_inputs`, which refuses an unknown kind, an unknown
key or a bad value with a ``ValidationError`` naming the field and the run.

Records of the layers above (an allocation's inputs, a deal stored with a run) are typed in
the layer that owns them (``partners.records``, ``tranching.revolving``); the store keeps
their JSON as they give it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from portfolio.montecarlo.records import SimulationInputs, optional, placed, text
from portfolio.validation import Date, Field, Interval, SchemaError, Table, validate

__all__ = ["RUN_KINDS", "REPORT", "ReportInputs", "RunInputs", "parse_run_inputs", "run_kind"]

RUN_KINDS: tuple[str, ...] = ("simulation", "report")

REPORT = Table({
    "as_of": Field(Date()),
    "partner": optional(text("a partner id")),
    "out": Field(text("the report directory")),
    "run_id": optional(Interval(int, 1)),
    "allocation_id": optional(Interval(int, 1)),
})


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """A report run: the as-of date, the partner it was for (``None``: the treasury's
    report), the directory its files were written to, and the simulation run and allocation
    it reported on (``None``: there was none; reports recorded before these keys existed
    have them ``None`` too)."""

    as_of: dt.date
    partner: str | None
    out: str
    run_id: int | None = None
    allocation_id: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.as_of, dt.date) or isinstance(self.as_of, dt.datetime):
            raise SchemaError("inputs.as_of", "a date", self.as_of)
        validate(REPORT, self.to_json(), path="inputs")

    def to_json(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "partner": self.partner, "out": self.out,
                "run_id": self.run_id, "allocation_id": self.allocation_id}

    @classmethod
    def from_json(cls, data: object, where: str = "") -> ReportInputs:
        return placed(cls, validate(REPORT, data, where, "inputs"), where)


RunInputs = SimulationInputs | ReportInputs


def run_kind(inputs: RunInputs) -> str:
    """``simulation`` or ``report``: the kind of run a record belongs to."""
    if isinstance(inputs, SimulationInputs):
        return "simulation"
    if isinstance(inputs, ReportInputs):
        return "report"
    raise SchemaError("inputs", "a SimulationInputs or ReportInputs record",
                      type(inputs).__name__)


def parse_run_inputs(kind: object, data: object, where: str = "") -> RunInputs:
    """The typed inputs of a ``runs`` row of ``kind``; refuses an unknown kind or record."""
    if kind == "simulation":
        return SimulationInputs.from_json(data, where)
    if kind == "report":
        return ReportInputs.from_json(data, where)
    raise SchemaError("runs.kind", "one of " + ", ".join(repr(k) for k in RUN_KINDS), kind, where)
