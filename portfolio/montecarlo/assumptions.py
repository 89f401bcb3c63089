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
    Options,
    SchemaError,
    Str,
    StrOptions,
    Table,
    parse_toml,
    read_toml,
    validate,
    verbatim,
)

DELINQUENCY_BUCKETS = 6
"""30-day delinquency buckets a ``[delinquency]`` record holds rates for: 1–30, 31–60, 61–90,
91–120, 121–150, 151–180 days past due (the latest charge-off point is 180 DPD)."""
CHARGE_OFF_DPD: tuple[int, ...] = (90, 120, 150, 180)
CURE_RULES: tuple[str, ...] = ("catch_up", "re_age")
BUCKET_LABELS: tuple[str, ...] = ("1-30", "31-60", "61-90", "91-120", "121-150", "151-180")


@dataclass(frozen=True, slots=True)
class DelinquencyAssumptions:
    """Monthly transition probabilities of the delinquency-state model (``--model
    delinquency``; docs/model.md, "Delinquency states").

    States: current, delinquency buckets k = 1 … K of 30 days each (1–30, 31–60, 61–90,
    91–120, …) with ``K = charge_off_dpd / 30``, and the exits charged off, prepaid, matured.
    A loan in bucket k has k instalments unpaid. Every array is indexed like the hazard
    curves (score band, term, age), age column ``min(a, n_age) − 1`` for a loan in its a-th
    month on book; the bucket arrays have a last axis of ``DELINQUENCY_BUCKETS`` = 6 buckets
    (entry k − 1 = bucket k), of which the first K are used.

    * ``roll_current`` (n_bands, n_terms, n_age): P(current → 1–30) — the loan misses its
      instalment this month. Prepayment from current is ``Assumptions.prepay_smm`` (applied
      to the loans that paid, as in the hazard model).
    * ``roll`` (n_bands, n_terms, n_age, 6): P(bucket k → k + 1) — misses again; from bucket
      K the roll is the charge-off.
    * ``cure`` (n_bands, n_terms, n_age, 6): P(bucket k → current).
    * stay = 1 − roll − cure: the loan pays one instalment and stays k behind.
    * ``charge_off_dpd`` (90, 120, 150 or 180): a loan that rolls past it is charged off.
    * ``cure_rule``: ``catch_up`` (a cured loan pays every missed instalment that month) or
      ``re_age`` (it pays one instalment and its missed ones move to the end of the
      schedule; a loan is re-aged at most once, later cures catch up).
    * ``factor_loading``: ρ of the transitions on the systematic factor; ``None`` = the
      ``[factor]`` rho. Conditional on Z_t, rolls rise and cures fall in a bad month:
      ``roll(Z) = Φ((Φ⁻¹(roll) − √ρ·Z)/√(1 − ρ))``, ``cure(Z) = Φ((Φ⁻¹(cure) + √ρ·Z)/√(1 − ρ))``.

    Unconditionally roll + cure ≤ 1 in every entry. A file without a ``[delinquency]``
    section gets :func:`derived_delinquency`: ``roll_current`` = the default hazard, every
    roll 1 and every cure 0 — the hazard model's go-bad events, charged off K months later.

    For calibration (``riskpool calibrate``): write the estimates with
    :func:`save_assumptions` (``Assumptions(delinquency=...)``); counts and intervals go in
    ``provenance`` (free-form, kept) or per segment through ``assumptions_to_toml``'s
    ``delinquency_info`` (written as each segment's ``info`` table, ignored when loading).
    """

    roll_current: np.ndarray
    roll: np.ndarray
    cure: np.ndarray
    charge_off_dpd: int = 90
    cure_rule: Literal["catch_up", "re_age"] = "catch_up"
    factor_loading: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rc = np.asarray(self.roll_current, dtype=np.float64)
        if rc.ndim != 3:
            raise ValidationError(must_be("delinquency.roll_current",
                                          "an array shaped (score bands, terms, age)",
                                          f"shape {rc.shape}"))
        want = (*rc.shape, DELINQUENCY_BUCKETS)
        arrays = {"roll_current": rc}
        for name in ("roll", "cure"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != want:
                raise ValidationError(must_be(f"delinquency.{name}", f"an array shaped {want} "
                                              "(score bands, terms, age, buckets)",
                                              f"shape {arr.shape}"))
            arrays[name] = arr
        for name, arr in arrays.items():
            if not np.all((arr >= 0) & (arr <= 1)):
                raise ValidationError(must_be(f"delinquency.{name}", "monthly probabilities "
                                              "in [0, 1]", f"min {np.nanmin(arr):.4g}, "
                                              f"max {np.nanmax(arr):.4g}"))
        if not np.all(rc < 1):
            raise ValidationError(must_be("delinquency.roll_current",
                                          "monthly probabilities below 1", float(rc.max())))
        excess = arrays["roll"] + arrays["cure"] - 1.0
        if np.any(excess > 1e-12):
            idx = tuple(int(v) for v in np.argwhere(excess > 1e-12)[0])
            raise ValidationError(must_be("delinquency.roll + delinquency.cure", "at most 1 "
                                          "(the rest is the stay probability)",
                                          float(excess[idx] + 1.0),
                                          f"band {idx[0]}, term {idx[1]}, age column {idx[2]}, "
                                          f"bucket {BUCKET_LABELS[idx[3]]}"))
        for name, arr in arrays.items():
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if self.charge_off_dpd not in CHARGE_OFF_DPD or isinstance(self.charge_off_dpd, bool):
            raise ValidationError(must_be("delinquency.charge_off_dpd",
                                          "one of " + ", ".join(map(str, CHARGE_OFF_DPD)),
                                          self.charge_off_dpd))
        if self.cure_rule not in CURE_RULES:
            raise ValidationError(must_be("delinquency.cure_rule",
                                          "one of " + ", ".join(CURE_RULES), self.cure_rule))
        if self.factor_loading is not None and not 0 <= self.factor_loading < 1:
            raise ValidationError(must_be("delinquency.factor_loading", "in [0, 1) or None",
                                          self.factor_loading))

    @property
    def n_buckets(self) -> int:
        """K: the delinquency buckets before the charge-off (charge_off_dpd / 30)."""
        return self.charge_off_dpd // 30

    def loading(self, rho: float) -> float:
        """The factor loading ρ of the transitions (``rho`` of ``[factor]`` when not set)."""
        return float(rho if self.factor_loading is None else self.factor_loading)


def derived_delinquency(default_hazard: np.ndarray, charge_off_dpd: int = 90,
                        cure_rule: str = "catch_up",
                        factor_loading: float | None = None) -> DelinquencyAssumptions:
    """The delinquency record implied by hazard curves: ``roll_current`` = the hazard (the
    went-bad probability), every roll 1, every cure 0 — a loan that misses an instalment
    misses every later one and is charged off ``charge_off_dpd / 30`` months after it went
    bad, with the balance it had then (what the hazard model calls its default)."""
    h = np.asarray(default_hazard, dtype=np.float64)
    shape = (*h.shape, DELINQUENCY_BUCKETS)
    return DelinquencyAssumptions(
        roll_current=h, roll=np.ones(shape), cure=np.zeros(shape),
        charge_off_dpd=charge_off_dpd, cure_rule=cure_rule,  # type: ignore[arg-type]
        factor_loading=factor_loading, provenance={"derived": "from default_hazard"})


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
    delinquency: DelinquencyAssumptions | None = None  # None: derived_delinquency when used

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
        if self.delinquency is not None:
            if not isinstance(self.delinquency, DelinquencyAssumptions):
                raise ValidationError(must_be("delinquency", "a DelinquencyAssumptions record "
                                              "or None", type(self.delinquency).__name__))
            want = np.asarray(self.default_hazard).shape
            if self.delinquency.roll_current.shape != want:
                raise ValidationError(must_be(
                    "delinquency.roll_current", f"shaped like default_hazard {want}",
                    f"shape {self.delinquency.roll_current.shape}"))

    def delinquency_model(self) -> DelinquencyAssumptions:
        """The delinquency transitions to project with: the ``[delinquency]`` record, else
        the one derived from the hazard curves (:func:`derived_delinquency`)."""
        if self.delinquency is not None:
            return self.delinquency
        return derived_delinquency(self.default_hazard)

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
            if not (np.isfinite(value) and value >= 0):
                raise ValidationError(must_be(name, ">= 0 and finite", value))
        cap = 0.999
        dq = self.delinquency
        if dq is not None:  # the entry into delinquency is the go-bad hazard's analogue
            dq = dataclasses.replace(dq, roll_current=np.minimum(dq.roll_current * pd_multiplier,
                                                                 cap),
                                     factor_loading=dq.factor_loading if rho is None else rho)
        return dataclasses.replace(
            self,
            delinquency=dq,
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
#   [delinquency] optional (the delinquency-state model; without it the transitions are
#                 derived from the hazard curves): charge_off_dpd (90, 120, 150, 180),
#                 cure_rule ("catch_up", "re_age"), factor_loading (optional: [factor] rho),
#                 [delinquency.provenance] free-form, and either no segments (transitions
#                 derived from default_hazard) or one [[delinquency.segment]] per score band ×
#                 term: score_band, term, roll_current = [per age], roll = [[per age] per
#                 bucket 1-30, 31-60, …], cure = the same (a curve shorter than n_age is
#                 extended with its last value, a list of fewer than 6 buckets with its last
#                 bucket); info = { … } informational, ignored when loading.

ASSUMPTIONS_FORMAT = "riskpool-assumptions/1"
_SEGMENT_INFO_KEYS = ("exposure", "defaults", "prepayments", "daily_interest_mpr",
                      "daily_interest_exposure")
_MAX_AGE = 600  # months: the longest curve (and term) a file may hold
_CURVE = ListOf(Interval(float, 0, 1, closed="left", unit="a monthly probability"),
                min_len=1, max_len=_MAX_AGE)
_PROB = Interval(float, 0, 1, unit="a monthly probability")
_BUCKET_CURVES = ListOf(ListOf(_PROB, min_len=1, max_len=_MAX_AGE),
                        min_len=1, max_len=DELINQUENCY_BUCKETS,
                        what=f"a list of 1 to {DELINQUENCY_BUCKETS} curves (buckets 1-30, "
                             "31-60, …), each a list of monthly probabilities per age")
DELINQUENCY_SCHEMA = Table({
    "charge_off_dpd": Field.optional(Options(CHARGE_OFF_DPD), 90),
    "cure_rule": Field.optional(StrOptions(CURE_RULES), "catch_up"),
    "factor_loading": Field.optional(Interval(float, 0, 1, closed="left")),
    "provenance": Field.optional(Anything(table=True), {}),
    "segment": Field.optional(ListOf(Table({
        "score_band": Field(Str()),
        "term": Field(Interval(int, 1, _MAX_AGE)),
        "roll_current": Field(ListOf(Interval(float, 0, 1, closed="left",
                                              unit="a monthly probability"),
                                     min_len=1, max_len=_MAX_AGE)),
        "roll": Field(_BUCKET_CURVES),
        "cure": Field(_BUCKET_CURVES),
        "info": Field.optional(Anything(table=True), {}),  # informational, ignored
    }, name="[[delinquency.segment]]")), []),
}, name="[delinquency]")

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
    "delinquency": Field.optional(DELINQUENCY_SCHEMA),
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


def _trimmed(curve: np.ndarray) -> list[float]:
    """A curve without its trailing repeats of the last value (the reader extends it)."""
    c = [float(x) for x in curve]
    while len(c) > 1 and c[-2] == c[-1]:
        c.pop()
    return c


def _trimmed_buckets(arr: np.ndarray) -> list[list[float]]:
    """(n_age, buckets) → per bucket a trimmed curve, without trailing repeated buckets."""
    out = [_trimmed(arr[:, k]) for k in range(arr.shape[1])]
    while len(out) > 1 and out[-2] == out[-1]:
        out.pop()
    return out


def _delinquency_toml(a: Assumptions, info: dict[str, np.ndarray] | None) -> list[str]:
    dq = a.delinquency
    if dq is None:
        return []
    lines = [
        "[delinquency]",
        "# delinquency-state model: monthly P(current -> 1-30) = roll_current; from bucket k",
        "# (1-30, 31-60, ...): roll to k + 1 (charge-off from the last bucket), cure to",
        "# current, else stay (pay one instalment). Conditional on Z_t:",
        "# roll(Z) = Phi((Phi^-1(roll) - sqrt(rho) Z)/sqrt(1 - rho)), cure with + sqrt(rho) Z",
        f"charge_off_dpd = {dq.charge_off_dpd}  # 90, 120, 150 or 180",
        f"cure_rule = {_toml_value(dq.cure_rule)}  # catch_up or re_age",
    ]
    if dq.factor_loading is not None:
        lines.append(f"factor_loading = {_toml_value(dq.factor_loading)}  # else [factor] rho")
    lines.append("")
    prov = _drop_none(dq.provenance)
    if prov:
        lines.append(tomli_w.dumps({"delinquency": {"provenance": prov}}).rstrip())
        lines.append("")
    for i, band in enumerate(a.score_bands):
        for j, term in enumerate(a.terms):
            lines += [
                "[[delinquency.segment]]",
                f"score_band = {_toml_value(_band_label(*band))}",
                f"term = {term}",
                f"roll_current = {_toml_value(_trimmed(dq.roll_current[i, j]))}",
                f"roll = {_toml_value(_trimmed_buckets(dq.roll[i, j]))}",
                f"cure = {_toml_value(_trimmed_buckets(dq.cure[i, j]))}",
            ]
            if info:
                items = ", ".join(f"{key} = {_toml_value(np.asarray(v)[i, j])}"
                                  for key, v in info.items())
                lines.append(f"info = {{ {items} }}")
            lines.append("")
    return lines


def assumptions_to_toml(a: Assumptions, exposure: dict[str, np.ndarray] | None = None,
                        delinquency_info: dict[str, np.ndarray] | None = None) -> str:
    """The assumptions as a commented, human-editable TOML document.

    ``exposure`` (optional) maps informational keys (``exposure``, ``defaults``,
    ``prepayments``: arrays shaped like the curves; ``daily_interest_mpr``,
    ``daily_interest_exposure``: the same shape) written beside each segment's curves.
    ``delinquency_info`` (optional) maps keys to arrays whose first two axes are (score band,
    term), written as each ``[[delinquency.segment]]``'s ``info`` table (ignored when
    loading): e.g. transition counts and confidence intervals.
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
    lines += _delinquency_toml(a, delinquency_info)
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
        i, j = _segment_cell(seg, path, labels, term_index, hazard, source)
        hazard[i, j] = _curve(seg["default_hazard"], f"{path}.default_hazard", n_age, source)
        smm[i, j] = _curve(seg["prepay_smm"], f"{path}.prepay_smm", n_age, source)
    _check_every_cell(hazard, labels, term_index, "segment",
                      "one [[segment]] table per score band × term", source)
    delinquency = None
    if doc["delinquency"] is not None:
        delinquency = _delinquency_from_doc(doc["delinquency"], hazard, labels, term_index,
                                            source)
    return Assumptions(
        delinquency=delinquency,
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


def _segment_cell(seg: dict[str, Any], path: str, labels: dict[str, int],
                  term_index: dict[int, int], filled: np.ndarray, source: str) -> tuple[int, int]:
    """The (band, term) cell of segment table ``seg`` at ``path``: a known score band and
    term, not given before (``filled[i, j, 0]`` still NaN)."""
    band, term = seg["score_band"], seg["term"]
    if band not in labels:
        raise SchemaError(f"{path}.score_band", "one of " + ", ".join(labels), band, source)
    if term not in term_index:
        raise SchemaError(f"{path}.term", "one of " + str(list(term_index)), term, source)
    i, j = labels[band], term_index[term]
    if not np.isnan(filled[i, j, 0]):
        raise SchemaError(path, "a score band × term not given before",
                          verbatim(f"segment {band} × {term}m again (it appears twice)"),
                          source)
    return i, j


def _check_every_cell(filled: np.ndarray, labels: dict[str, int], term_index: dict[int, int],
                      field: str, allowed: str, source: str) -> None:
    """Every score band × term given (``filled[i, j, 0]`` not NaN); else the first five
    missing named under ``field``."""
    missing = [f"{band} × {term}m" for band, i in labels.items() for term, j in term_index.items()
               if np.isnan(filled[i, j, 0])]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SchemaError(field, allowed, verbatim(f"missing {', '.join(missing[:5])}{more}"),
                          source)


def _bucket_curves(values: list[list[float]], path: str, n_age: int, where: str) -> np.ndarray:
    """(n_age, DELINQUENCY_BUCKETS): each bucket's curve extended to n_age, the last bucket
    repeated up to the sixth."""
    curves = [_curve(v, f"{path}[{k}]", n_age, where) for k, v in enumerate(values)]
    curves += [curves[-1]] * (DELINQUENCY_BUCKETS - len(curves))
    return np.stack(curves, axis=1)


def _delinquency_from_doc(dq: dict[str, Any], hazard: np.ndarray, labels: dict[str, int],
                          term_index: dict[int, int], source: str) -> DelinquencyAssumptions:
    """The validated ``[delinquency]`` table as a record (segments complete or absent)."""
    n_age = hazard.shape[2]
    if not dq["segment"]:
        out = derived_delinquency(hazard, dq["charge_off_dpd"], dq["cure_rule"],
                                  dq["factor_loading"])
        return dataclasses.replace(out, provenance={**dq["provenance"], **out.provenance})
    rc = np.full(hazard.shape, np.nan)
    roll = np.full((*hazard.shape, DELINQUENCY_BUCKETS), np.nan)
    cure = np.full_like(roll, np.nan)
    for k, seg in enumerate(dq["segment"]):
        path = f"delinquency.segment[{k}]"
        i, j = _segment_cell(seg, path, labels, term_index, rc, source)
        rc[i, j] = _curve(seg["roll_current"], f"{path}.roll_current", n_age, source)
        roll[i, j] = _bucket_curves(seg["roll"], f"{path}.roll", n_age, source)
        cure[i, j] = _bucket_curves(seg["cure"], f"{path}.cure", n_age, source)
        bad = roll[i, j] + cure[i, j] > 1.0 + 1e-12
        if bad.any():
            age, b = (int(v) for v in np.argwhere(bad)[0])
            raise SchemaError(f"{path}.cure[{min(b, len(seg['cure']) - 1)}]",
                              "at most 1 − roll (roll + cure ≤ 1: the rest is the stay "
                              "probability)",
                              verbatim(f"roll {roll[i, j, age, b]:.6g} + cure "
                                       f"{cure[i, j, age, b]:.6g} at age {age + 1}, bucket "
                                       f"{BUCKET_LABELS[b]}"), source)
    _check_every_cell(rc, labels, term_index, "delinquency.segment",
                      "one [[delinquency.segment]] table per score band × term, or none "
                      "(derived from default_hazard)", source)
    return DelinquencyAssumptions(
        roll_current=rc, roll=roll, cure=cure, charge_off_dpd=dq["charge_off_dpd"],
        cure_rule=dq["cure_rule"], factor_loading=dq["factor_loading"],
        provenance=dq["provenance"])


def assumptions_from_toml(text: str, source: str = "assumptions") -> Assumptions:
    """Parse and validate the TOML layout written by ``assumptions_to_toml``."""
    return assumptions_from_dict(parse_toml(text, source), source)


def load_assumptions(path: str | Path) -> Assumptions:
    """Read and validate an assumptions TOML file."""
    return assumptions_from_dict(read_toml(path, "assumptions file"), str(path))


def save_assumptions(a: Assumptions, path: str | Path,
                     exposure: dict[str, np.ndarray] | None = None,
                     delinquency_info: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``a`` as TOML (via a temporary file renamed into place: all or nothing)."""
    p = Path(path)
    text = assumptions_to_toml(a, exposure, delinquency_info)
    assumptions_from_toml(text, str(p))  # never write a file we could not read back
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p
