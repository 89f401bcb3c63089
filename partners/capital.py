"""Regulatory capital: Basel retail IRB for loans and loan shares, and the securitisation
hierarchy (SEC-IRBA, SEC-ERBA, SEC-SA; Basel CRE40–CRE44) for tranche positions.

**Retail IRB** (Basel II ¶328–330; the current framework's CRE31.14–31.16), PD and LGD as
decimals, no maturity adjustment and no 1.06 scaling (the figures of Basel II Annex 5)::

    other retail:  f = (1 − e^(−35·PD)) / (1 − e^(−35)),  R = 0.03·f + 0.16·(1 − f)
    QRRE:          R = 0.04
    K = LGD·[Φ((Φ⁻¹(PD) + √R·Φ⁻¹(0.999)) / √(1 − R)) − PD]      (not in default)
    K = max(0, LGD − EL_BE)                                        (in default: PD = 1)
    RW = 12.5·K;  capital = K·EAD;  RWA = 12.5·K·EAD

Floors by framework (``Framework``) and retail sub-class (``RetailClass``):

* Basel II (¶331): PD ≥ 0.03% for every retail exposure; no LGD floor.
* Basel III as finalised in December 2017 (CRE32.58: PD floors 0.05% for other retail and
  QRRE transactors, 0.10% for QRRE revolvers (CRE30.24); LGD floors for unsecured exposures:
  30% other retail, 50% QRRE).

**Securitisation** (CRE40–CRE44; the EU CRR Art. 254–264 has the same formulas): the
simplified supervisory formula (SSFA) shared by SEC-IRBA and SEC-SA, with K = K_IRB (SEC-IRBA)
or K_A (SEC-SA)::

    a = −1 / (p·K),  u = D − K,  l = max(A − K, 0)
    K_SSFA = (e^(a·u) − e^(a·l)) / (a·(u − l))
    RW = 12.5                                   if D ≤ K
       = 12.5·K_SSFA                            if A ≥ K
       = 12.5·[(K − A) + (D − K)·K_SSFA] / (D − A)   otherwise
    floored at 15% (10% for a senior STC position), capped at 1250%

* SEC-IRBA (CRE44): K_IRB = the pool's IRB capital *including its expected loss* per unit of
  exposure, Σ(K_i + PD_i·LGD_i)·EAD_i / Σ EAD_i (CRE44.2); p = max(0.3, A + B/N + C·K_IRB +
  D·LGD + E·M_T) with (A, B, C, D, E) from CRE44.5 (retail senior 0, 0, −7.48, 0.71, 0.24;
  retail non-senior 0, 0, −5.78, 0.55, 0.27); for an STC position p = max(0.3, 0.5·(…))
  (the STC treatment of the July 2016 revisions to the securitisation framework; EU CRR
  Art. 260 for STS).
* SEC-SA (CRE41): K_A = (1 − W)·K_SA + 0.5·W, then (1 − d)·K_A + d when the delinquency
  status of a share d ≤ 5% is unknown; p = 1 (0.5 for STC; 1.5 for a resecuritisation).
* SEC-ERBA (CRE42): a risk weight per rating for senior and non-senior positions at 1 and
  5 years' tranche maturity, linear in M_T between; a non-senior tranche's weight × (1 −
  min(T, 50%)) with T = D − A its thickness; floored at 15%, capped at 1250%. The table is the
  user's (a mapping table file): riskpool ships none.

The hierarchy (CRE40.41–40.46): an IRB originator with K_IRB uses SEC-IRBA; otherwise SEC-ERBA
where the position is rated and a mapping table is given; otherwise SEC-SA; the user may
override the approach.

K_SA of a pool of regulatory-retail consumer loans: 8% × 75% risk weight = 0.06 (CRE20).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import special

from partners.errors import CapitalFileError, DispersionError
from partners.lookup import factorize_sorted, float_codes
from portfolio.errors import must_be
from portfolio.validation import Field, Interval, MapOf, Str, Table, read_toml, validate

PD_FLOOR = 0.0003  # Basel II ¶331
RETAIL_K_SA = 0.08 * 0.75  # regulatory retail, 75% risk weight
SEC_SA_RW_FLOOR = 0.15
SEC_STC_SENIOR_RW_FLOOR = 0.10
RW_MAX = 12.5  # 1250%


class Framework(StrEnum):
    """Which retail IRB floors apply."""

    BASEL2 = "basel2"  # Basel II (2006): PD ≥ 0.03%, no LGD floor
    BASEL3 = "basel3"  # Basel III (Dec 2017, CRE32): PD and LGD floors by sub-class


class RetailClass(StrEnum):
    OTHER = "other"  # other retail: consumer instalment loans
    QRRE_REVOLVER = "qrre_revolver"  # qualifying revolving retail, balance carried
    QRRE_TRANSACTOR = "qrre_transactor"  # QRRE repaid in full each month


# (PD floor, unsecured LGD floor) per framework and sub-class
RETAIL_FLOORS: Mapping[Framework, Mapping[RetailClass, tuple[float, float]]] = {
    Framework.BASEL2: {c: (PD_FLOOR, 0.0) for c in RetailClass},
    Framework.BASEL3: {RetailClass.OTHER: (0.0005, 0.30),
                       RetailClass.QRRE_REVOLVER: (0.0010, 0.50),
                       RetailClass.QRRE_TRANSACTOR: (0.0005, 0.50)},
}


@dataclass(frozen=True, slots=True)
class RetailIrb:
    """How retail IRB capital is computed: the framework's floors and the sub-class."""

    framework: Framework = Framework.BASEL3
    sub_class: RetailClass = RetailClass.OTHER

    @property
    def pd_floor(self) -> float:
        return RETAIL_FLOORS[self.framework][self.sub_class][0]

    @property
    def lgd_floor(self) -> float:
        return RETAIL_FLOORS[self.framework][self.sub_class][1]


def retail_other_correlation(pd: np.ndarray | float) -> np.ndarray:
    pd = np.asarray(pd, dtype=np.float64)
    f = -np.expm1(-35.0 * pd) / -np.expm1(-35.0)
    return 0.03 * f + 0.16 * (1.0 - f)


def _vasicek_k(p: np.ndarray, lgd: np.ndarray, r: np.ndarray | float) -> np.ndarray:
    # Φ⁻¹ and Φ as special.ndtri/ndtr: what scipy.stats.norm.ppf/cdf compute, without their
    # per-call argument checks (the same numbers)
    x = (special.ndtri(p) + np.sqrt(r) * special.ndtri(0.999)) / np.sqrt(1.0 - r)
    return np.maximum(lgd * (special.ndtr(x) - p), 0.0)


def irb_retail_other_k(pd: np.ndarray | float, lgd: np.ndarray | float,
                       pd_floor: float = PD_FLOOR) -> np.ndarray:
    """Basel II other-retail K per unit of EAD (not in default: PD < 1), PD floored at
    ``pd_floor``, no LGD floor (Annex 5's figures)."""
    p = np.clip(np.asarray(pd, dtype=np.float64), pd_floor, 1.0 - 1e-12)
    return _vasicek_k(p, np.asarray(lgd, dtype=np.float64), retail_other_correlation(p))


def irb_retail_other_rw(pd: np.ndarray | float, lgd: np.ndarray | float,
                        pd_floor: float = PD_FLOOR) -> np.ndarray:
    """Risk weight (1.0 = 100%)."""
    return 12.5 * irb_retail_other_k(pd, lgd, pd_floor)


def irb_retail_k(pd: np.ndarray | float, lgd: np.ndarray | float, method: RetailIrb = RetailIrb(),
                 *, defaulted: np.ndarray | bool = False,
                 el_best_estimate: np.ndarray | float = 0.0) -> np.ndarray:
    """K per unit of EAD under ``method``: PD and LGD floored by the framework and sub-class;
    a defaulted exposure's K = max(0, LGD − EL_BE) (CRE31.3 / Basel II ¶328), its LGD floored
    like the others (CRE32.58: the LGD used in the formula and in EL)."""
    pd_a = np.asarray(pd, dtype=np.float64)
    lgd_a = np.asarray(lgd, dtype=np.float64)
    if np.any(~np.isfinite(pd_a)) or np.any((pd_a < 0) | (pd_a > 1)):
        raise DispersionError(must_be("pd", "in [0, 1]", pd_a[~((pd_a >= 0) & (pd_a <= 1))][:1]))
    if np.any(~np.isfinite(lgd_a)) or np.any((lgd_a < 0) | (lgd_a > 1)):
        raise DispersionError(must_be("lgd", "in [0, 1]",
                                      lgd_a[~((lgd_a >= 0) & (lgd_a <= 1))][:1]))
    lgd_f = np.maximum(lgd_a, method.lgd_floor)
    p = np.clip(pd_a, method.pd_floor, 1.0 - 1e-12)
    r = 0.04 if method.sub_class is not RetailClass.OTHER else retail_other_correlation(p)
    k = _vasicek_k(p, lgd_f, r)
    d = np.asarray(defaulted, dtype=bool) | (pd_a >= 1.0)
    if np.any(d):
        k_def = np.maximum(lgd_f - np.asarray(el_best_estimate, dtype=np.float64), 0.0)
        k = np.where(d, k_def, k)
    return k


def irb_retail_k_distinct(pd: np.ndarray, lgd: np.ndarray,
                          method: RetailIrb = RetailIrb()) -> np.ndarray:
    """:func:`irb_retail_k` per loan, computed once per distinct (PD, LGD) pair and gathered
    (``partners.lookup.float_codes``: each distinct bit pattern once): the same numbers, K
    being a function of the pair alone, for a book whose loans share a few hundred risk
    cells. Falls back to the loan-by-loan computation where the pairs are many or a value is
    NaN (whose error it then raises)."""
    pd_a = np.ascontiguousarray(pd, dtype=np.float64)
    lgd_a = np.ascontiguousarray(lgd, dtype=np.float64)
    if pd_a.ndim != 1 or pd_a.shape != lgd_a.shape or pd_a.size < 1024 \
            or np.isnan(pd_a).any() or np.isnan(lgd_a).any():
        return irb_retail_k(pd_a, lgd_a, method)
    pd_code, pd_values = float_codes(pd_a)  # each distinct value (bit pattern) once
    if len(pd_values) > pd_a.size // 8:
        return irb_retail_k(pd_a, lgd_a, method)
    if bool(np.all(lgd_a == lgd_a[0])):  # one LGD (a calibrated recovery rate): the PDs' codes
        return irb_retail_k(pd_values, np.full(len(pd_values), lgd_a[0]), method)[pd_code]
    lgd_code, lgd_values = float_codes(lgd_a)
    n_lgd = len(lgd_values)
    if len(pd_values) * n_lgd > pd_a.size // 8:
        return irb_retail_k(pd_a, lgd_a, method)
    code, pairs = factorize_sorted(pd_code * n_lgd + lgd_code)
    k = irb_retail_k(pd_values[pairs // n_lgd], lgd_values[pairs % n_lgd], method)
    return k[code]


def irb_retail_el_rate(pd: np.ndarray | float, lgd: np.ndarray | float,
                       method: RetailIrb = RetailIrb()) -> np.ndarray:
    """Regulatory expected loss per unit of EAD, PD·LGD with the same floors as K."""
    p = np.maximum(np.asarray(pd, dtype=np.float64), method.pd_floor)
    return np.minimum(p, 1.0) * np.maximum(np.asarray(lgd, dtype=np.float64), method.lgd_floor)


# --------------------------------------------------------------------------- securitisation
class SecApproach(StrEnum):
    IRBA = "SEC-IRBA"
    ERBA = "SEC-ERBA"
    SA = "SEC-SA"
    RW1250 = "1250%"


class OriginatorApproach(StrEnum):
    IRB = "irb"
    SA = "sa"


def sec_sa_ka(k_sa: float, w: float, unknown_share: float = 0.0) -> float:
    """K_A from the pool's standardised capital K_SA, its delinquent share W and the share d
    (≤ 5%) whose delinquency status is unknown."""
    for name, v, hi in (("k_sa", k_sa, 1.0), ("w", w, 1.0), ("unknown_share", unknown_share, 0.05)):
        if not 0.0 <= v <= hi:
            raise DispersionError(must_be(name, f"in [0, {hi:g}]", v))
    ka = (1.0 - w) * k_sa + 0.5 * w
    return (1.0 - unknown_share) * ka + unknown_share


def ssfa_risk_weight(attachment: float, detachment: float, k: float, p: float,
                     floor: float = SEC_SA_RW_FLOOR) -> float:
    """The SSFA risk weight (1.0 = 100%) of a tranche [A, D) of a pool with capital K (K_A for
    SEC-SA, K_IRB for SEC-IRBA) and supervisory parameter p."""
    a_, d_ = float(attachment), float(detachment)
    if not 0.0 <= a_ < d_ <= 1.0 + 1e-12:
        raise DispersionError(must_be("attachment/detachment", "0 <= A < D <= 1", (a_, d_)))
    if not 0.0 < k <= 1.0:
        raise DispersionError(must_be("k", "in (0, 1]", k))
    if not p > 0:
        raise DispersionError(must_be("p", "> 0", p))
    if d_ <= k:
        return RW_MAX
    a = -1.0 / (p * k)
    u = d_ - k
    low = max(a_ - k, 0.0)
    k_ssfa = (math.exp(a * u) - math.exp(a * low)) / (a * (u - low))
    if a_ >= k:
        rw = 12.5 * k_ssfa
    else:
        rw = 12.5 * ((k - a_) + (d_ - k) * k_ssfa) / (d_ - a_)
    return float(min(max(rw, floor), RW_MAX))


def sec_sa_risk_weight(attachment: float, detachment: float, ka: float, p: float = 1.0,
                       floor: float = SEC_SA_RW_FLOOR) -> float:
    """SEC-SA risk weight (1.0 = 100%) of a tranche [A, D) of a pool with capital K_A."""
    if not 0.0 < ka <= 1.0:
        raise DispersionError(must_be("ka", "in (0, 1]", ka))
    return ssfa_risk_weight(attachment, detachment, ka, p, floor)


# CRE44.5: (A, B, C, D, E) of p = max(0.3, A + B/N + C·K_IRB + D·LGD + E·M_T)
IRBA_P_PARAMETERS: Mapping[tuple[str, bool, bool], tuple[float, float, float, float, float]] = {
    ("wholesale", True, True): (0.0, 3.56, -1.85, 0.55, 0.07),
    ("wholesale", True, False): (0.11, 2.61, -2.91, 0.68, 0.07),
    ("wholesale", False, True): (0.16, 2.87, -1.03, 0.21, 0.07),
    ("wholesale", False, False): (0.22, 2.35, -2.46, 0.48, 0.07),
    ("retail", True, True): (0.0, 0.0, -7.48, 0.71, 0.24),
    ("retail", False, True): (0.0, 0.0, -5.78, 0.55, 0.27),
}


def sec_irba_p(k_irb: float, lgd: float, maturity: float, *, senior: bool, retail: bool = True,
               n_effective: float = math.inf, sts: bool = False) -> float:
    """Supervisory parameter p of SEC-IRBA (CRE44.4–44.5): ``lgd`` the pool's
    exposure-weighted LGD, ``maturity`` the tranche maturity M_T in years (bounded to [1, 5],
    CRE40.48), ``n_effective`` the effective number of exposures (wholesale only: granular
    when N ≥ 25). STC: half the formula, floor 0.3 (EU CRR Art. 260)."""
    if not 0.0 < k_irb <= 1.0:
        raise DispersionError(must_be("k_irb", "in (0, 1]", k_irb))
    if not 0.0 <= lgd <= 1.0:
        raise DispersionError(must_be("lgd", "in [0, 1]", lgd))
    if not math.isfinite(maturity) or maturity <= 0:
        raise DispersionError(must_be("maturity", "a finite number of years > 0", maturity))
    m_t = min(max(maturity, 1.0), 5.0)
    key = ("retail", senior, True) if retail else ("wholesale", senior, n_effective >= 25)
    a, b, c, d, e = IRBA_P_PARAMETERS[key]
    inv_n = 0.0 if retail or math.isinf(n_effective) else 1.0 / n_effective
    raw = a + b * inv_n + c * k_irb + d * lgd + e * m_t
    return max(0.3, 0.5 * raw if sts else raw)


def sec_irba_risk_weight(attachment: float, detachment: float, k_irb: float, p: float, *,
                         senior: bool = False, sts: bool = False) -> float:
    floor = SEC_STC_SENIOR_RW_FLOOR if (sts and senior) else SEC_SA_RW_FLOOR
    return ssfa_risk_weight(attachment, detachment, k_irb, p, floor)


@dataclass(frozen=True, slots=True)
class ErbaRow:
    """SEC-ERBA risk weights (1.0 = 100%) of one rating: senior and non-senior tranches at 1
    and 5 years' maturity."""

    senior_1y: float
    senior_5y: float
    non_senior_1y: float
    non_senior_5y: float


def sec_erba_risk_weight(rating: str, table: Mapping[str, ErbaRow], attachment: float,
                         detachment: float, maturity: float, *, senior: bool,
                         sts: bool = False) -> float:
    """SEC-ERBA (CRE42.3–42.5): the table's weight for ``rating``, linear in M_T between 1 and
    5 years; a non-senior tranche's weight × (1 − min(D − A, 0.5)); floor 15% (10% senior STC),
    cap 1250%."""
    if rating not in table:
        raise DispersionError(must_be("rating", f"one of the mapping table's {sorted(table)}",
                                      rating))
    row = table[rating]
    m_t = min(max(float(maturity), 1.0), 5.0)
    lo, hi = (row.senior_1y, row.senior_5y) if senior else (row.non_senior_1y, row.non_senior_5y)
    rw = lo + (hi - lo) * (m_t - 1.0) / 4.0
    if not senior:
        rw *= 1.0 - min(float(detachment) - float(attachment), 0.5)
    floor = SEC_STC_SENIOR_RW_FLOOR if (sts and senior) else SEC_SA_RW_FLOOR
    return float(min(max(rw, floor), RW_MAX))


@dataclass(frozen=True, slots=True)
class SecuritisationCapital:
    """How securitisation positions are charged.

    ``originator``: the originator's approach for the pool (IRB → SEC-IRBA); ``override``: an
    approach the user imposes (e.g. SEC-SA); ``sts``: the positions qualify as simple,
    transparent and comparable (STC; STS in the EU): SEC-SA p = 0.5, SEC-IRBA p halved, senior
    floor 10%. ``k_sa``, ``w``, ``unknown_share``: the SEC-SA pool inputs. ``maturity``: the
    tranche maturity M_T in years (SEC-IRBA's p and SEC-ERBA). ``ratings``: tranche → rating
    and ``erba_table`` rating → weights, both needed for SEC-ERBA."""

    originator: OriginatorApproach = OriginatorApproach.IRB
    override: SecApproach | None = None
    sts: bool = False
    k_sa: float = RETAIL_K_SA
    w: float = 0.0
    unknown_share: float = 0.0
    maturity: float = 1.0
    ratings: Mapping[str, str] | None = None
    erba_table: Mapping[str, ErbaRow] | None = None

    def approach(self, tranche: str, k_irb: float | None) -> SecApproach:
        """The hierarchy of CRE40.41–40.46 for one position, or the user's override."""
        rated = self.ratings is not None and self.erba_table is not None and tranche in self.ratings
        if self.override is SecApproach.ERBA and not rated:
            return SecApproach.SA  # SEC-ERBA needs a rating: an unrated position takes SEC-SA
        if self.override is not None:
            return self.override
        if self.originator is OriginatorApproach.IRB and k_irb is not None and k_irb > 0:
            return SecApproach.IRBA
        if rated:
            return SecApproach.ERBA
        return SecApproach.SA


@dataclass(frozen=True, slots=True)
class PoolCapitalInputs:
    """The securitised pool's figures that the approaches need: K_IRB (with EL), its
    exposure-weighted LGD."""

    k_irb: float
    lgd: float


def pool_k_irb(balance: np.ndarray, pd: np.ndarray, lgd: np.ndarray,
               method: RetailIrb = RetailIrb(), *,
               k_loan: np.ndarray | None = None,
               per_loan: tuple[np.ndarray, np.ndarray] | None = None) -> PoolCapitalInputs:
    """K_IRB = Σ (K_i + EL_i)·EAD_i / Σ EAD_i (CRE44.2: the IRB capital requirement including
    the expected-loss portion, per unit of the pool) and the EAD-weighted LGD (CRE44.5; the
    floored LGD the capital uses). ``k_loan``: ``irb_retail_k(pd, lgd, method)`` when the
    caller already has it (not computed again); ``per_loan``: :func:`pool_k_irb_per_loan`
    of these loans when the caller weighs them more than once (the same numbers)."""
    bal = np.asarray(balance, dtype=np.float64)
    total = float(bal.sum())
    if not total > 0:
        raise DispersionError(must_be("balance", "a pool with a positive total", total))
    k, lgd_f = pool_k_irb_per_loan(pd, lgd, method, k_loan=k_loan) if per_loan is None \
        else per_loan
    return PoolCapitalInputs(float((k * bal).sum() / total), float((lgd_f * bal).sum() / total))


def pool_k_irb_per_loan(pd: np.ndarray, lgd: np.ndarray, method: RetailIrb = RetailIrb(), *,
                        k_loan: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per loan, what :func:`pool_k_irb` weighs by the exposures: K_i + EL_i and the floored
    LGD."""
    k_i = irb_retail_k(pd, lgd, method) if k_loan is None else k_loan
    k = k_i + irb_retail_el_rate(pd, lgd, method)
    return k, np.maximum(np.asarray(lgd, dtype=np.float64), method.lgd_floor)


@dataclass(frozen=True, slots=True)
class PositionCapital:
    tranche: str
    holder: str
    approach: SecApproach
    attachment: float
    detachment: float
    senior: bool
    p: float | None  # SSFA parameter (None for SEC-ERBA and 1250%)
    k: float | None  # K_IRB or K_A the SSFA used
    risk_weight: float  # 1.0 = 100%
    amount: float
    rwa: float
    capital: float  # 8% × RWA


def position_capital(tranche: str, holder: str, attachment: float, detachment: float,
                     amount: float, *, senior: bool, pool: PoolCapitalInputs | None,
                     method: SecuritisationCapital) -> PositionCapital:
    """One position's approach, risk weight, RWA and capital."""
    approach = method.approach(tranche, pool.k_irb if pool is not None else None)
    p = k = None
    if approach is SecApproach.IRBA:
        if pool is None:
            raise DispersionError(must_be("pool K_IRB", "given for SEC-IRBA", None))
        k = pool.k_irb
        p = sec_irba_p(k, pool.lgd, method.maturity, senior=senior, sts=method.sts)
        rw = sec_irba_risk_weight(attachment, detachment, k, p, senior=senior, sts=method.sts)
    elif approach is SecApproach.SA:
        k = sec_sa_ka(method.k_sa, method.w, method.unknown_share)
        p = 0.5 if method.sts else 1.0
        floor = SEC_STC_SENIOR_RW_FLOOR if (method.sts and senior) else SEC_SA_RW_FLOOR
        rw = sec_sa_risk_weight(attachment, detachment, k, p, floor)
    elif approach is SecApproach.ERBA:
        if method.ratings is None or method.erba_table is None or tranche not in method.ratings:
            raise DispersionError(must_be(f"ratings[{tranche!r}]",
                                          "a rating and a mapping table for SEC-ERBA", None))
        rw = sec_erba_risk_weight(method.ratings[tranche], method.erba_table, attachment,
                                  detachment, method.maturity, senior=senior, sts=method.sts)
    else:
        rw = RW_MAX
    return PositionCapital(tranche, holder, approach, float(attachment), float(detachment),
                           senior, p, k, rw, float(amount), rw * amount, 0.08 * rw * amount)


# --------------------------------------------------------------------------- SEC-ERBA file
_RW = Interval(float, 0.15, 12.5, unit="a risk weight (1.0 = 100%) between 15% and 1250%")
ERBA_FILE = Table({
    "ratings": Field(MapOf(Str(nonempty=True, what="a tranche name"),
                           Str(nonempty=True, what="a rating of the mapping table"))),
    "mapping": Field(MapOf(Str(nonempty=True, what="a rating"), Table({
        "senior_1y": Field(_RW), "senior_5y": Field(_RW),
        "non_senior_1y": Field(_RW), "non_senior_5y": Field(_RW),
    }, name="[mapping.<rating>]"))),
}, name="SEC-ERBA file")


def load_erba_file(path: str) -> tuple[dict[str, str], dict[str, ErbaRow]]:
    """A SEC-ERBA file: ``[ratings]`` tranche = rating, and ``[mapping.<rating>]`` its risk
    weights (1.0 = 100%) ``senior_1y``, ``senior_5y``, ``non_senior_1y``, ``non_senior_5y`` —
    the user's mapping of the ratings to the CRE42 table. Every rating used must be mapped."""
    doc = validate(ERBA_FILE, read_toml(path, "SEC-ERBA file", CapitalFileError), str(path),
                   error=CapitalFileError)
    table = {r: ErbaRow(**v) for r, v in doc["mapping"].items()}
    for tranche, rating in doc["ratings"].items():
        if rating not in table:
            raise CapitalFileError(f"ratings.{tranche}", f"a rating of [mapping] {sorted(table)}",
                                   rating, str(path))
    return dict(doc["ratings"]), table
