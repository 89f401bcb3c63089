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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from portfolio.errors import ValidationError, must_be
from portfolio.types import ALLOWED_TERMS, SCORE_BANDS


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
