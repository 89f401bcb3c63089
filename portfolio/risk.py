"""Loss measures over Monte Carlo paths: expected loss, value at risk and expected shortfall,
each with its Monte Carlo standard error. The one implementation the simulation
(``portfolio.montecarlo.simulation.loss_distribution``), the tranche table
(``tranching.analytics``) and the risk dispersion (``partners.dispersion``) use.

Definitions, for losses ``x_1..x_n`` (one per path) sorted ``x_(1) <= … <= x_(n)`` and a level
``α`` in (0, 1):

* **EL** = the sample mean; its SE = sample standard deviation (``ddof=1``) / √n
  (``mean_and_se``, over any axis).
* **VaR_α** = ``x_(k)`` with ``k = ⌈nα⌉`` (clamped to [1, n]): the smallest loss ``v`` with at
  least a share α of the paths at or below it (the empirical distribution's inverse,
  Hyndman–Fan type 1). SE, distribution-free: half the spread between the order statistics
  ``√(nα(1−α))`` ranks either side of ``k`` (the binomial confidence band of the quantile).
* **ES_α** = the mean of the ``m = n(1−α)`` largest losses, the boundary loss ``x_(n−⌊m⌋)``
  weighted by the fraction ``m − ⌊m⌋`` (the integral of the empirical quantile function over
  [α, 1], divided by 1 − α). SE, asymptotic: ``√((Var(L | L ≥ VaR) + α(ES − VaR)²) / m)``.
* ``interpolated_quantile``: numpy's default (linear, Hyndman–Fan type 7) quantile. The
  tranche table's ``loss_q…`` columns are these (a summary of the loss-share distribution);
  every VaR in the project is ``value_at_risk``.

Ground floor: numpy and ``portfolio.errors`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from portfolio.errors import ValidationError, must_be

__all__ = [
    "LOSS_LEVELS",
    "LossStats",
    "expected_shortfall",
    "interpolated_quantile",
    "loss_stats",
    "mean_and_se",
    "value_at_risk",
]

LOSS_LEVELS: tuple[float, ...] = (0.95, 0.99, 0.999)


def mean_and_se(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo mean over paths and its standard error (sample std / √n)."""
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    se = x.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def value_at_risk(x_sorted: np.ndarray, alpha: float) -> tuple[float, float]:
    """``(VaR_α, its SE)`` of the ascending losses ``x_sorted`` (module docstring)."""
    n = x_sorted.shape[0]
    k = min(n - 1, max(0, math.ceil(n * alpha) - 1))
    q = float(x_sorted[k])
    m = math.sqrt(n * alpha * (1.0 - alpha))
    lo = x_sorted[max(0, int(math.floor(k - m)))]
    hi = x_sorted[min(n - 1, int(math.ceil(k + m)))]
    return q, float(hi - lo) / 2.0


def expected_shortfall(x_sorted: np.ndarray, alpha: float, var: float) -> tuple[float, float]:
    """``(ES_α, its SE)`` of the ascending losses ``x_sorted``; ``var`` is their VaR_α."""
    n = x_sorted.shape[0]
    m = n * (1.0 - alpha)  # number of tail paths (fractional)
    whole = int(math.floor(m))
    tail = x_sorted[n - whole:] if whole else x_sorted[:0]
    if m <= 0:
        return var, 0.0
    total = float(tail.sum())
    if m > whole:
        total += (m - whole) * float(x_sorted[n - whole - 1])
    es = total / m
    beyond = x_sorted[x_sorted >= var]
    var_tail = float(beyond.var(ddof=1)) if beyond.size > 1 else 0.0
    se = math.sqrt(max(var_tail + alpha * (es - var) ** 2, 0.0) / m)
    return es, se


def interpolated_quantile(x: np.ndarray, alpha: float) -> float:
    """numpy's linear (type 7) quantile of ``x`` at ``alpha`` (not a VaR: module docstring)."""
    return float(np.quantile(x, alpha))


@dataclass(frozen=True, slots=True)
class LossStats:
    """Pool credit loss (defaults − recoveries over the horizon) across paths, in CNY.

    ``var[k]``/``es[k]`` belong to ``levels[k]``. Standard errors: EL, sample std / √n;
    VaR, distribution-free from the order statistics ±√(nα(1−α)) ranks around the
    quantile (half the spread of that binomial confidence band); ES, the asymptotic
    ``√((Var(L | L ≥ VaR) + α(ES − VaR)²) / (n(1−α)))``.
    """

    n_paths: int
    initial_balance: float
    el: float
    el_se: float
    levels: tuple[float, ...]
    var: tuple[float, ...]
    var_se: tuple[float, ...]
    es: tuple[float, ...]
    es_se: tuple[float, ...]

    def rows(self) -> list[dict[str, float | str]]:
        """One row per measure: name, amount, SE, share of the initial balance."""
        b = self.initial_balance or 1.0
        out: list[dict[str, float | str]] = [
            {"measure": "EL", "level": float("nan"), "loss": self.el, "se": self.el_se,
             "loss_pct": self.el / b}]
        for lv, v, vse, e, ese in zip(self.levels, self.var, self.var_se, self.es, self.es_se,
                                      strict=True):
            out.append({"measure": "VaR", "level": lv, "loss": v, "se": vse, "loss_pct": v / b})
            out.append({"measure": "ES", "level": lv, "loss": e, "se": ese, "loss_pct": e / b})
        return out


def loss_stats(loss: np.ndarray, levels: Sequence[float] = LOSS_LEVELS,
               initial_balance: float = 0.0) -> LossStats:
    """EL, VaR and ES of the losses ``loss`` (n_paths,) at ``levels``, each with its SE."""
    loss = np.asarray(loss, dtype=np.float64)
    if loss.ndim != 1:
        raise ValidationError(must_be("paths", "one loss per path, shape (n_paths,)",
                                      f"shape {loss.shape}"))
    n = loss.shape[0]
    if n < 1:
        raise ValidationError(must_be("paths", "at least one path", n))
    if not np.isfinite(loss).all():
        bad = int(np.flatnonzero(~np.isfinite(loss))[0])
        raise ValidationError(must_be("paths", "finite losses", float(loss[bad]),
                                      f"path {bad}"))
    xs = np.sort(loss)
    mean, se = mean_and_se(loss)
    el, el_se = float(mean), float(se)
    var, var_se, es, es_se = [], [], [], []
    for a in levels:
        if not 0 < a < 1:
            raise ValidationError(must_be("levels", "in (0, 1)", a))
        q, qse = value_at_risk(xs, a)
        e, ese = expected_shortfall(xs, a, q)
        var.append(q)
        var_se.append(qse)
        es.append(e)
        es_se.append(ese)
    return LossStats(n, float(initial_balance), el, el_se, tuple(float(a) for a in levels),
                     tuple(var), tuple(var_se), tuple(es), tuple(es_se))
