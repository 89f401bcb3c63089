"""Scenario sets: named stresses and grids of stresses run together on common random numbers.

A set file (TOML, ``riskpool scenarios run --set FILE``) names the members of the set::

    [set]
    name = "jun26 stress"          # shown by `riskpool scenarios list`
    seed = 7                       # every member is drawn from this seed
    paths = 2000                   # Monte Carlo paths per member
    model = "hazard"               # or "delinquency" (needed for roll_mult)
    structure = "deal_cn_consumer.toml"   # optional deal TOML, relative to this file

    [[scenario]]                   # one member each
    name = "severe"
    pd_mult = 2.5                  # default hazards (and the entry into delinquency) ×
    prepay_mult = 0.6              # prepayment SMM ×
    recovery_mult = 0.6            # recovery rate ×
    rho = 0.15                     # the factor's correlation, replaced
    roll_mult = 1.2                # delinquency rolls (bucket k → k + 1) ×; model "delinquency"
                                   # and assumptions with a [delinquency] section

    [[grid]]                       # every combination of the listed values is a member
    name = "pd x rho"
    pd_mult = [1.0, 1.5, 2.0]
    rho = [0.05, 0.10, 0.20]

A field left out is the base's value: multipliers 1, the assumptions' own ρ. The **base** is
the assumptions file unchanged; a member named "base" with no change is the base run itself.

**Common random numbers.** Every member is projected with the same seed, path count, engine
and batch size, so each member draws the same factor paths and the same uniforms; only the
assumptions differ. A member that changes nothing is the base run to the byte, and the
difference between two members is the assumptions' effect, without the sampling noise of
two independent runs (Glasserman, *Monte Carlo Methods in Financial Engineering*, 2004,
§7.1: finite differences with common random numbers).

:func:`stressed` applies a member to an assumption set; :func:`changes_text` says what a
member changes relative to the base ("PD ×2.5, prepayment ×0.6, ρ 0.05 → 0.15").
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.delinquency import MODELS
from portfolio.montecarlo.records import MAX_PATHS
from portfolio.validation import (
    Field,
    Interval,
    ListOf,
    SchemaError,
    Str,
    StrOptions,
    Table,
    index,
    read_toml,
    validate,
)

__all__ = ["FACTORS", "Member", "ScenarioSet", "changes_text", "load_scenario_set",
           "parse_scenario_set", "stressed"]

# the fields a member may change: name → (what it is called on screen, its spec)
MULTIPLIER = Interval(float, 0, 20, unit="a multiplier")
RHO = Interval(float, 0, 1, closed="left", unit="a correlation")
FACTORS: dict[str, tuple[str, Interval]] = {
    "pd_mult": ("PD", MULTIPLIER),
    "rho": ("ρ", RHO),
    "roll_mult": ("roll rate", MULTIPLIER),
    "recovery_mult": ("recovery", MULTIPLIER),
    "prepay_mult": ("prepayment", MULTIPLIER),
}
NAME = Str(nonempty=True, pattern=r"[^\n]{1,80}", what="a name of 1 to 80 characters")

SET_SPEC = Table({
    "set": Field(Table({
        "name": Field(NAME),
        "seed": Field(Interval(int, 0, 2**63 - 1)),
        "paths": Field.optional(Interval(int, 1, MAX_PATHS), 2000),
        "model": Field.optional(StrOptions(tuple(MODELS)), "hazard"),
        "engine": Field.optional(StrOptions(("granular", "loan")), "granular"),
        "structure": Field.optional(Str(nonempty=True, what="a deal TOML file name"), None),
    }, name="[set]")),
    "scenario": Field.optional(ListOf(Table(
        {"name": Field(NAME), **{k: Field.optional(spec, None) for k, (_, spec) in FACTORS.items()}},
        name="[[scenario]]")), []),
    "grid": Field.optional(ListOf(Table(
        {"name": Field(NAME),
         **{k: Field.optional(ListOf(spec, min_len=1, max_len=12, unique=True), None)
            for k, (_, spec) in FACTORS.items()}},
        name="[[grid]]")), []),
})
MAX_MEMBERS = 100


@dataclass(frozen=True)
class Member:
    """One scenario of a set: its name, the grid it comes from ('' for a named scenario)
    and the factors it changes (absent: the base's value)."""

    name: str
    group: str
    changes: dict[str, float]

    def value(self, factor: str) -> float | None:
        return self.changes.get(factor)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "changes": dict(self.changes)}


@dataclass(frozen=True)
class ScenarioSet:
    name: str
    seed: int
    paths: int
    model: str
    engine: str
    structure: Path | None  # resolved against the set file's directory
    members: tuple[Member, ...]
    source: str
    text: str  # the set file as read (stored with the set)


def _fmt(factor: str, value: float) -> str:
    label = FACTORS[factor][0]
    return f"{label} {value:.4g}" if factor == "rho" else f"{label} ×{value:g}"


def _grid_members(grid: dict[str, Any]) -> list[Member]:
    axes = [(k, grid[k]) for k in FACTORS if grid.get(k) is not None]
    out = []
    for combo in itertools.product(*(values for _, values in axes)):
        changes = {k: float(v) for (k, _), v in zip(axes, combo, strict=True)}
        label = ", ".join(_fmt(k, v) for k, v in changes.items())
        out.append(Member(f"{grid['name']} [{label}]", grid["name"], changes))
    return out


def parse_scenario_set(data: Any, source: str, text: str = "",
                       base_dir: Path | None = None) -> ScenarioSet:
    """A set document checked and expanded (module doc); ``SchemaError`` naming the field."""
    doc = validate(SET_SPEC, data, source)
    members: list[Member] = []
    for sc in doc["scenario"]:
        members.append(Member(sc["name"], "", {k: float(sc[k]) for k in FACTORS
                                                if sc[k] is not None}))
    for i, grid in enumerate(doc["grid"]):
        if not any(grid.get(k) is not None for k in FACTORS):
            raise SchemaError(index("grid", i), "a grid with at least one of "
                              + ", ".join(FACTORS), grid["name"], source)
        members.extend(_grid_members(grid))
    if not members:
        raise SchemaError("scenario", "at least one [[scenario]] or [[grid]]", None, source)
    if len(members) > MAX_MEMBERS:
        raise SchemaError("grid", f"at most {MAX_MEMBERS} members in all (the product of a "
                          "grid's lists counts each combination)", len(members), source)
    seen: set[str] = set()
    for i, m in enumerate(members):
        if m.name in seen:
            where = index("scenario", i) if not m.group else f"grid {m.group!r}"
            raise SchemaError(f"{where}.name", "a name no other member of the set has",
                              m.name, source)
        seen.add(m.name)
    sett = doc["set"]
    if sett["model"] != "delinquency":
        for kind in ("scenario", "grid"):
            for i, entry in enumerate(doc[kind]):
                value = entry.get("roll_mult")
                if value is not None and value not in (1.0, [1.0]):
                    raise SchemaError(f"{index(kind, i)}.roll_mult", "left out unless [set] "
                                      "model = \"delinquency\" (the hazard model has no roll "
                                      "rates)", value, source)
    structure = None
    if sett["structure"] is not None:
        structure = Path(sett["structure"])
        if not structure.is_absolute() and base_dir is not None:
            structure = base_dir / structure
    return ScenarioSet(sett["name"], int(sett["seed"]), int(sett["paths"]), sett["model"],
                       sett["engine"], structure, tuple(members), source, text)


def load_scenario_set(path: str | Path) -> ScenarioSet:
    """Read and check a set file (``SchemaError`` naming the file and the field)."""
    p = Path(path)
    data = read_toml(p, "scenario set file")
    text = p.read_text(encoding="utf-8-sig")
    return parse_scenario_set(data, str(p), text, p.resolve().parent)


def stressed(base: Assumptions, member: Member, model: str = "hazard") -> Assumptions:
    """``base`` with ``member``'s changes: hazards (and the entry into delinquency) × PD
    multiplier, SMM × prepayment multiplier, recovery rate × recovery multiplier (each capped
    as ``Assumptions.stressed`` caps them), ρ replaced; with the delinquency model the rolls
    P(bucket k → k + 1) × roll multiplier, capped at 1, the probability taken from the stay
    first and then from the cure (cure' = min(cure, 1 − roll'): roll + cure ≤ 1), so a
    stressed bucket rolls more and cures less once it can no longer stay less. A member that
    changes nothing returns ``base`` itself."""
    ch = member.changes
    if not ch or all((k == "rho" and v == base.rho) or (k != "rho" and v == 1.0)
                     for k, v in ch.items()):
        return base
    out = base.stressed(pd_multiplier=ch.get("pd_mult", 1.0), rho=ch.get("rho"),
                        smm_multiplier=ch.get("prepay_mult", 1.0),
                        recovery_multiplier=ch.get("recovery_mult", 1.0))
    roll_mult = ch.get("roll_mult", 1.0)
    if model == "delinquency" and roll_mult != 1.0:
        dq = out.delinquency
        if dq is None:
            raise ValidationError(must_be(
                f"roll_mult of {member.name!r}", "given with assumptions that have a "
                "[delinquency] section (`riskpool calibrate` writes one): without it every "
                "roll is 1 (derived from the hazards) and a multiplier has nothing to scale",
                roll_mult))
        roll = np.minimum(dq.roll * roll_mult, 1.0)
        cure = np.minimum(dq.cure, 1.0 - roll)
        out = dataclasses.replace(out, delinquency=dataclasses.replace(dq, roll=roll, cure=cure))
    return dataclasses.replace(out, provenance={**out.provenance, "scenario": member.to_json()})


def changes_text(member: Member, base: Assumptions) -> str:
    """What ``member`` changes relative to the base, e.g. "PD ×2.5, ρ 0.05 → 0.15";
    "nothing (the base)" when it changes nothing."""
    parts = []
    for k in FACTORS:
        v = member.changes.get(k)
        if v is None:
            continue
        if k == "rho":
            if v != base.rho:
                parts.append(f"ρ {base.rho:.4g} → {v:.4g}")
        elif v != 1.0:
            parts.append(_fmt(k, v))
    return ", ".join(parts) if parts else "nothing (the base)"
