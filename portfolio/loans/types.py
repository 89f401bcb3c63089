"""Closed sets of conventions: repayment types, loan status, delinquency buckets."""

from __future__ import annotations

from enum import Enum

from portfolio.errors import ValidationError, must_be


class RepaymentType(str, Enum):
    """The five repayment types (docs/model.md, "Repayment schedules"). ``code`` is the int8
    used in arrays (declaration order: a new type goes at the end so that stored codes keep
    their meaning)."""

    LEVEL_ANNUITY = "level_annuity"  # 等额本息
    EQUAL_PRINCIPAL = "equal_principal"  # 等额本金
    INTEREST_ONLY = "interest_only"  # 先息后本
    DAILY_INTEREST = "daily_interest"  # 随借随还
    FLAT_FEE = "flat_fee"  # 等本等息: equal principal + a fixed fee on the original principal

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def code(self) -> int:
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int) -> RepaymentType:
        return _BY_CODE[int(code)]

    @classmethod
    def parse(cls, value: object, where: str = "") -> RepaymentType:
        """Accept the English name or the Chinese label (surrounding blanks ignored)."""
        text = str(value).strip() if value is not None else ""
        found = _BY_TEXT.get(text) or _BY_TEXT.get(text.lower())
        if found is None:
            allowed = "one of " + ", ".join(f"{t.value} ({t.label})" for t in cls)
            raise ValidationError(must_be("repayment_type", allowed, value, where))
        return found


_LABELS = {
    RepaymentType.LEVEL_ANNUITY: "等额本息",
    RepaymentType.EQUAL_PRINCIPAL: "等额本金",
    RepaymentType.INTEREST_ONLY: "先息后本",
    RepaymentType.DAILY_INTEREST: "随借随还",
    RepaymentType.FLAT_FEE: "等本等息",
}
_CODES = {t: i for i, t in enumerate(RepaymentType)}
_BY_CODE = {i: t for t, i in _CODES.items()}
_BY_TEXT: dict[str, RepaymentType] = {}
for _t in RepaymentType:
    _BY_TEXT[_t.value] = _t
    _BY_TEXT[_LABELS[_t]] = _t


class LoanStatus(str, Enum):
    CURRENT = "current"
    DELINQUENT = "delinquent"
    DEFAULT = "default"
    PREPAID = "prepaid"
    MATURED = "matured"


ALLOWED_TERMS: tuple[int, ...] = (3, 6, 9, 12, 18, 24)
SCORE_MIN, SCORE_MAX = 350, 950
PRINCIPAL_MAX = 200_000.0  # rule R5: household consumer credit cap (CNY)
APR_CAP_DEFAULT = 0.24  # rule R9: APR cap, on the cash-flow APR
# rule R8: a disclosed APR may differ from the cash-flow APR of the loan's terms by this much
# (a decimal: 0.0005 = 0.05 percentage point: disclosure to two decimals of a percent, and the
# cent rounding of the instalments, fit well inside it).
APR_DISCLOSURE_TOL = 0.0005
BULLET_MAX_TERM = 12  # rule R6: bullet loans at most 12 months
DEFAULT_DPD = 90  # default = more than 90 days past due
WRITE_OFF_DPD = 180

# Score bands used by analytics, calibration and strats: [lo, hi).
SCORE_BANDS: tuple[tuple[int, int], ...] = (
    (350, 600),
    (600, 650),
    (650, 700),
    (700, 750),
    (750, 800),
    (800, 951),
)


def score_band_label(lo: int, hi: int) -> str:
    return f"{lo}-{min(hi, SCORE_MAX + 1) - 1}"


SCORE_BAND_LABELS: tuple[str, ...] = tuple(score_band_label(lo, hi) for lo, hi in SCORE_BANDS)


def dpd_bucket(dpd: int) -> str:
    """current (0), M1 (1–30), M2 (31–60), M3 (61–90), default (> 90)."""
    if dpd <= 0:
        return "current"
    if dpd <= 30:
        return "M1"
    if dpd <= 60:
        return "M2"
    if dpd <= 90:
        return "M3"
    return "default"
