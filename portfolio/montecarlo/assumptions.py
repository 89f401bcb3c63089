"""Projection assumptions: default hazard, prepayment, recovery and the systematic factor.

Curves are indexed by segment (score band × original term) and by age: a loan in its
``a``-th month on book (a = 1, 2, …) uses column ``min(a, n_age) − 1``. A loan with
``months_on_book = m`` at cut-off is in its ``(m + t)``-th month during projection month t
(t = 1, 2, …).

Conditional on the systematic factor Z_t (AR(1) with persistence ``factor_persistence`` and
unit variance), a segment's monthly default probability is
``Φ((Φ⁻¹(h) − √ρ·Z_t) / √(1−ρ))`` (one-factor Gaussian copula; Student-t as an option).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tomli_w

from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
from portfolio.validation import (
    Anything,
    Field,
    Interval,
    ListOf,
    SchemaError,
    Str,
    StrOptions,
    Table,
    parse_toml,
    read_toml,
    verbatim,
    validate,
)


@dataclass(frozen=True, slots=True)
class Assumptions:
    default_hazard: np.ndarray  # (n_bands, n_terms, n_age) monthly default probability
    prepay_smm: np.ndarray  # (n_bands, n_terms, n_age) monthly full-prepayment probability
    recovery_rate: float  # share of the defaulted balance recovered in the end
    recovery_lag: tuple[float, ...]  # share of the recovery collected 1, 2, … months after default
    rho: float  # asset correlation with the systematic factor
    factor_persistence: float = 0.0  # AR(1) coefficient of Z_t
    copula: Literal["gaussian", "t"] = "gaussian"
    t_dof: float = 5.0
    score_bands: tuple[tuple[int, int], ...] = SCORE_BANDS
    terms: tuple[int, ...] = ALLOWED_TERMS
    rho_se: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.score_bands), len(self.terms))
        for name in ("default_hazard", "prepay_smm"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim != 3 or arr.shape[:2] != shape:
                raise ValidationError(
                    must_be(name, f"an array shaped (score bands={shape[0]}, terms={shape[1]}, age)",
                            f"shape {arr.shape}")
                )
            if not np.all((arr >= 0) & (arr < 1)):
                raise ValidationError(must_be(name, "monthly probabilities in [0, 1)",
                                              f"min {arr.min():.4g}, max {arr.max():.4g}"))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if not 0 <= self.recovery_rate <= 1:
            raise ValidationError(must_be("recovery_rate", "in [0, 1]", self.recovery_rate))
        lag = np.asarray(self.recovery_lag, dtype=np.float64)
        if lag.size == 0 or np.any(lag < 0) or abs(lag.sum() - 1) > 1e-9:
            raise ValidationError(must_be("recovery_lag", "non-negative shares that sum to 1",
                                          list(self.recovery_lag)))
        if not 0 <= self.rho < 1:
            raise ValidationError(must_be("rho", "in [0, 1)", self.rho))
        if not -1 < self.factor_persistence < 1:
            raise ValidationError(must_be("factor_persistence", "in (-1, 1)",
                                          self.factor_persistence))
        if self.copula not in ("gaussian", "t"):
            raise ValidationError(must_be("copula", "'gaussian' or 't'", self.copula))
        if self.copula == "t" and not self.t_dof > 2:
            raise ValidationError(must_be("t_dof", "> 2", self.t_dof))

    @property
    def n_age(self) -> int:
        return int(self.default_hazard.shape[2])

    @property
    def recovery_lag_months(self) -> int:
        return len(self.recovery_lag)

    def stressed(
        self,
        pd_multiplier: float = 1.0,
        rho: float | None = None,
        smm_multiplier: float = 1.0,
        recovery_multiplier: float = 1.0,
    ) -> Assumptions:
        """A new set with the stress overlays applied (probabilities capped below 1)."""
        for name, value in (("pd_multiplier", pd_multiplier), ("smm_multiplier", smm_multiplier),
                            ("recovery_multiplier", recovery_multiplier)):
            if not value >= 0:
                raise ValidationError(must_be(name, ">= 0", value))
        cap = 0.999
        return dataclasses.replace(
            self,
            default_hazard=np.minimum(self.default_hazard * pd_multiplier, cap),
            prepay_smm=np.minimum(self.prepay_smm * smm_multiplier, cap),
            recovery_rate=min(1.0, self.recovery_rate * recovery_multiplier),
            rho=self.rho if rho is None else rho,
            provenance={**self.provenance, "stress": {
                "pd_multiplier": pd_multiplier, "rho": rho, "smm_multiplier": smm_multiplier,
                "recovery_multiplier": recovery_multiplier}},
        )


NAMED_SCENARIOS: dict[str, dict[str, float]] = {
    "base": {},
    "adverse": {"pd_multiplier": 1.5, "smm_multiplier": 0.8, "recovery_multiplier": 0.8},
    "severe": {"pd_multiplier": 2.5, "smm_multiplier": 0.6, "recovery_multiplier": 0.6},
}


def apply_stress(
    a: Assumptions,
    *,
    scenario: str | None = None,
    pd_multiplier: float | None = None,
    rho: float | None = None,
    smm_multiplier: float | None = None,
    recovery_multiplier: float | None = None,
) -> Assumptions:
    """The stress overlays of the CLI (``calibrate`` and ``simulate``): a named scenario
    (``NAMED_SCENARIOS``) and/or explicit values; an explicit value overrides the scenario's.

    With nothing given, ``a`` is returned unchanged.
    """
    if scenario is None and all(v is None for v in (pd_multiplier, rho, smm_multiplier,
                                                    recovery_multiplier)):
        return a
    base: dict[str, float] = {}
    if scenario is not None:
        if scenario not in NAMED_SCENARIOS:
            raise ValidationError(must_be("scenario", "one of " + ", ".join(NAMED_SCENARIOS),
                                          scenario))
        base = dict(NAMED_SCENARIOS[scenario])
    for name, value in (("pd_multiplier", pd_multiplier), ("smm_multiplier", smm_multiplier),
                        ("recovery_multiplier", recovery_multiplier)):
        if value is not None:
            base[name] = value
    if rho is not None and not 0 <= rho < 1:
        raise ValidationError(must_be("rho", "in [0, 1)", rho))
    out = a.stressed(
        pd_multiplier=base.get("pd_multiplier", 1.0),
        rho=rho,
        smm_multiplier=base.get("smm_multiplier", 1.0),
        recovery_multiplier=base.get("recovery_multiplier", 1.0),
    )
    if scenario is not None:
        stress = dict(out.provenance.get("stress", {}))
        stress["scenario"] = scenario
        out = dataclasses.replace(out, provenance={**out.provenance, "stress": stress})
    return out


# ---------------------------------------------------------------- TOML file format
#
# A file people read and edit (``riskpool calibrate`` writes one):
#
#   format = "riskpool-assumptions/1"
#   [factor]      rho, rho_se (optional), factor_persistence, copula, t_dof
#   [recovery]    rate, lag = [shares 1, 2, … months after default; sum to 1]
#   [grid]        score_bands = [[lo, hi], …], terms = […], n_age
#   [provenance]  free-form: pool id, as-of, db, observation counts, method, stress …
#   [[segment]]   one table per (score band × term): score_band = "lo-hi", term,
#                 default_hazard = […], prepay_smm = […] (entry a = a-th month on book);
#                 a curve shorter than n_age is extended with its last value.
#                 Informational keys beside the curves (ignored when loading): exposure,
#                 defaults, prepayments (loan-months at risk and events per age),
#                 daily_interest_mpr, daily_interest_exposure.

ASSUMPTIONS_FORMAT = "riskpool-assumptions/1"
_SEGMENT_INFO_KEYS = ("exposure", "defaults", "prepayments", "daily_interest_mpr",
                      "daily_interest_exposure")
_MAX_AGE = 600  # months: the longest curve (and term) a file may hold
_CURVE = ListOf(Interval(float, 0, 1, closed="left", unit="a monthly probability"),
                min_len=1, max_len=_MAX_AGE)
ASSUMPTIONS_SCHEMA = Table({
    "format": Field.optional(StrOptions((ASSUMPTIONS_FORMAT,)), ASSUMPTIONS_FORMAT),
    "factor": Field(Table({
        "rho": Field(Interval(float, 0, 1, closed="left")),
        "rho_se": Field.optional(Interval(float, 0, None)),
        "factor_persistence": Field.optional(Interval(float, -1, 1, closed="neither"), 0.0),
        "copula": Field.optional(StrOptions(("gaussian", "t")), "gaussian"),
        # a Student-t with <= 2 degrees of freedom has no variance
        "t_dof": Field.optional(Interval(float, 2, None, closed="neither"), 5.0),
    }, name="[factor]")),
    "recovery": Field(Table({
        "rate": Field(Interval(float, 0, 1)),
        "lag": Field(ListOf(Interval(float, 0, None), min_len=1, max_len=_MAX_AGE,
                            what="a non-empty list of shares >= 0 that sum to 1")),
    }, name="[recovery]")),
    "grid": Field.optional(Table({
        "score_bands": Field.optional(ListOf(
            ListOf(Interval(int, 0, 1000), min_len=2, max_len=2,
                   what="a [lo, hi] pair of scores with lo < hi"), min_len=1)),
        "terms": Field.optional(ListOf(Interval(int, 1, _MAX_AGE), min_len=1, unique=True)),
        "n_age": Field.optional(Interval(int, 1, _MAX_AGE)),
    }, name="[grid]"), {}),
    "provenance": Field.optional(Anything(table=True), {}),
    "segment": Field.optional(ListOf(Table({
        "score_band": Field(Str()),
        "term": Field(Interval(int, 1, _MAX_AGE)),
        "default_hazard": Field(_CURVE),
        "prepay_smm": Field(_CURVE),
        # informational, written beside the curves and ignored when loading
        **{key: Field.optional(Anything()) for key in _SEGMENT_INFO_KEYS},
    }, name="[[segment]]")), []),
})


def _band_label(lo: int, hi: int) -> str:
    return f"{lo}-{min(hi, 951) - 1}"


def _toml_value(value: Any) -> str:
    """One TOML value on one line (floats in shortest round-trip form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        if not np.isfinite(x):
            raise ValidationError(must_be("assumption value", "a finite number", x))
        text = repr(float(f"{x:.12g}"))  # 12 significant digits: 0.16, not 0.16000000000000003
        return text if any(ch in text for ch in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(_toml_value(v) for v in list(value)) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [_drop_none(v) for v in obj if v is not None]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    return obj


def assumptions_to_toml(a: Assumptions, exposure: dict[str, np.ndarray] | None = None) -> str:
    """The assumptions as a commented, human-editable TOML document.

    ``exposure`` (optional) maps informational keys (``exposure``, ``defaults``,
    ``prepayments``: arrays shaped like the curves; ``daily_interest_mpr``,
    ``daily_interest_exposure``: the same shape) written beside each segment's curves.
    """
    lines = [
        "# riskpool projection assumptions. Monthly probabilities; in every curve, entry a",
        "# (1-based) applies to a loan in its a-th month on book. Edit freely: the file is",
        "# validated when it is loaded (riskpool simulate / pricing --assumptions FILE).",
        f"format = {_toml_value(ASSUMPTIONS_FORMAT)}",
        "",
        "[factor]",
        "# one-factor copula: conditional hazard = Phi((Phi^-1(h) - sqrt(rho) Z_t) / sqrt(1 - rho)),",
        "# Z_t AR(1) with coefficient factor_persistence and unit variance",
        f"rho = {_toml_value(a.rho)}",
    ]
    if a.rho_se is not None:
        lines.append(f"rho_se = {_toml_value(a.rho_se)}  # standard error of the estimate")
    lines += [
        f"factor_persistence = {_toml_value(a.factor_persistence)}",
        f"copula = {_toml_value(a.copula)}  # gaussian or t",
        f"t_dof = {_toml_value(a.t_dof)}  # degrees of freedom when copula = \"t\"",
        "",
        "[recovery]",
        "# share of the defaulted balance recovered in the end, and the shares of that",
        "# recovery collected 1, 2, ... months after default (they sum to 1)",
        f"rate = {_toml_value(a.recovery_rate)}",
        f"lag = {_toml_value(list(a.recovery_lag))}",
        "",
        "[grid]",
        "# score bands [lo, hi) and original terms of the segments below; n_age = curve length",
        f"score_bands = {_toml_value([list(b) for b in a.score_bands])}",
        f"terms = {_toml_value(list(a.terms))}",
        f"n_age = {a.n_age}",
        "",
    ]
    prov = _drop_none(a.provenance)
    if prov:
        lines.append(tomli_w.dumps({"provenance": prov}).rstrip())
        lines.append("")
    info = exposure or {}
    for i, band in enumerate(a.score_bands):
        for j, term in enumerate(a.terms):
            n_in = min(int(term), a.n_age)
            life_pd = 1.0 - float(np.prod(1.0 - a.default_hazard[i, j, :n_in]))
            note = f"# {_band_label(*band)} × {term} months: default within the term " \
                   f"{life_pd:.2%} (no prepayment)"
            if "exposure" in info:
                note += f"; {int(np.asarray(info['exposure'])[i, j].sum()):,} loan-months " \
                        "at risk in the data"
            lines += [
                note,
                "[[segment]]",
                f"score_band = {_toml_value(_band_label(*band))}",
                f"term = {term}",
                f"default_hazard = {_toml_value(a.default_hazard[i, j])}",
                f"prepay_smm = {_toml_value(a.prepay_smm[i, j])}",
            ]
            for key in _SEGMENT_INFO_KEYS:
                if key in info:
                    arr = np.asarray(info[key])[i, j]
                    values = [int(v) if float(v).is_integer() and key != "daily_interest_mpr"
                              else float(v) for v in arr]
                    lines.append(f"{key} = {_toml_value(values)}")
            lines.append("")
    return "\n".join(lines)


def _curve(values: list[float], path: str, n_age: int, where: str) -> np.ndarray:
    """A validated curve, extended to ``n_age`` with its last value."""
    if len(values) > n_age:
        raise SchemaError(path, f"a list of 1 to {n_age} monthly probabilities (n_age)",
                          verbatim(f"a list of {len(values)} values"), where)
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < n_age:
        arr = np.concatenate([arr, np.full(n_age - len(arr), arr[-1])])
    return arr


def assumptions_from_dict(data: dict[str, Any], source: str = "assumptions") -> Assumptions:
    """Validate the TOML layout (``ASSUMPTIONS_SCHEMA``) into ``Assumptions``.

    Errors are ``SchemaError`` naming the field path (``segment[3].prepay_smm[0]``), the
    allowed values, what was received and ``source``.
    """
    doc = validate(ASSUMPTIONS_SCHEMA, data, source)
    factor, recovery, grid = doc["factor"], doc["recovery"], doc["grid"]
    lag = recovery["lag"]
    if abs(sum(lag) - 1) > 1e-6:
        raise SchemaError("recovery.lag", "a non-empty list of shares >= 0 that sum to 1",
                          lag, source)
    lag_arr = np.asarray(lag, dtype=np.float64)
    lag_arr = lag_arr / lag_arr.sum()

    bands_raw = grid.get("score_bands") or [list(b) for b in SCORE_BANDS]
    for k, (lo, hi) in enumerate(bands_raw):
        if not lo < hi:
            raise SchemaError(f"grid.score_bands[{k}]", "a [lo, hi] pair of scores with lo < hi",
                              [lo, hi], source)
    bands = tuple((int(lo), int(hi)) for lo, hi in bands_raw)
    terms = tuple(grid.get("terms") or ALLOWED_TERMS)
    n_age = grid.get("n_age") or max(terms)

    labels = {_band_label(*b): i for i, b in enumerate(bands)}
    term_index = {t: j for j, t in enumerate(terms)}
    hazard = np.full((len(bands), len(terms), n_age), np.nan)
    smm = np.full_like(hazard, np.nan)
    for k, seg in enumerate(doc["segment"]):
        path = f"segment[{k}]"
        band, term = seg["score_band"], seg["term"]
        if band not in labels:
            raise SchemaError(f"{path}.score_band", "one of " + ", ".join(labels), band, source)
        if term not in term_index:
            raise SchemaError(f"{path}.term", "one of " + str(list(terms)), term, source)
        i, j = labels[band], term_index[term]
        if not np.isnan(hazard[i, j, 0]):
            raise SchemaError(path, "a score band × term not given before",
                              verbatim(f"segment {band} × {term}m again (it appears twice)"),
                              source)
        hazard[i, j] = _curve(seg["default_hazard"], f"{path}.default_hazard", n_age, source)
        smm[i, j] = _curve(seg["prepay_smm"], f"{path}.prepay_smm", n_age, source)
    missing = [f"{_band_label(*bands[i])} × {terms[j]}m" for i in range(len(bands))
               for j in range(len(terms)) if np.isnan(hazard[i, j, 0])]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SchemaError("segment", "one [[segment]] table per score band × term",
                          verbatim(f"missing {', '.join(missing[:5])}{more}"), source)
    return Assumptions(
        default_hazard=hazard,
        prepay_smm=smm,
        recovery_rate=recovery["rate"],
        recovery_lag=tuple(float(x) for x in lag_arr),
        rho=factor["rho"],
        factor_persistence=factor["factor_persistence"],
        copula=factor["copula"],
        t_dof=factor["t_dof"],
        score_bands=bands,
        terms=terms,
        rho_se=factor["rho_se"],
        provenance=doc["provenance"],
    )


def assumptions_from_toml(text: str, source: str = "assumptions") -> Assumptions:
    """Parse and validate the TOML layout written by ``assumptions_to_toml``."""
    return assumptions_from_dict(parse_toml(text, source), source)


def load_assumptions(path: str | Path) -> Assumptions:
    """Read and validate an assumptions TOML file."""
    return assumptions_from_dict(read_toml(path, "assumptions file"), str(path))


def save_assumptions(a: Assumptions, path: str | Path,
                     exposure: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``a`` as TOML (via a temporary file renamed into place: all or nothing)."""
    p = Path(path)
    text = assumptions_to_toml(a, exposure)
    assumptions_from_toml(text, str(p))  # never write a file we could not read back
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p
