"""Human column headers and the glossary: one mapping from the tables' internal column names
(``el``, ``wa_remaining_term``) to the labels a person reads (``EL, % of balance``, ``WA
remaining term, months``), used by every workbook (``dashboards.xlsx``) and by the pages'
tables (``dashboards.ui.table``).

A label is a base name and a unit, ``"<base>, <unit>"``. The unit is fixed for some columns
(months, years, days) and follows the values for the others: the same internal name can hold
a share (an EL of 1.4% of the balance) in one table and an amount (an EL of 3.6 m CNY) in
another, so :func:`label` takes the column's kind as ``dashboards.xlsx.column_kind`` finds it
(``percent`` → a percent unit, ``money`` or an amount word → CNY).

:func:`internal_name` reverses :func:`label` (a workbook read back by a program finds its
columns), and :data:`GLOSSARY` defines, in one plain line each, every abbreviation a label
uses (:func:`glossary_terms` lists those a set of labels uses).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["GLOSSARY", "LABELS", "base_label", "glossary_terms", "help_text", "internal_name",
           "label"]

# internal name -> (base, unit); unit None: from the values (percent / CNY / none)
LABELS: dict[str, tuple[str, str | None]] = {
    # book and pools
    "loans": ("Loans", ""), "n_loans": ("Number of loans", ""), "balance": ("Balance", None),
    "balance_share": ("Share of the balance", None), "wa_apr": ("WA APR", None),
    "wa_score": ("WA score", ""), "wa_remaining_term": ("WA remaining term", "months"),
    "wa_term": ("WA term", "months"), "dpd30_ratio": ("30+ DPD", None),
    "dpd90_ratio": ("90+ DPD", None), "dimension": ("Dimension", ""), "group": ("Group", ""),
    "as_of": ("As of", ""), "cutoff_date": ("Cut-off date", ""), "vintage": ("Vintage", ""),
    "months_on_book": ("Months on book", ""), "original_balance": ("Original balance", None),
    "principal": ("Principal", None), "apr": ("APR", None), "score": ("Score", ""),
    "score_band": ("Score band", ""), "term": ("Term", "months"),
    "remaining_term": ("Remaining term", "months"), "region": ("Region", ""),
    "repayment_type": ("Repayment type", ""), "product": ("Product", ""),
    "cutoff_balance": ("Cut-off balance", None), "dpd": ("DPD", "days"),
    "default_rate": ("Default rate", None), "cdr": ("CDR", None), "cpr": ("CPR", None),
    "smm": ("SMM", None), "mdr": ("MDR", None), "mpr": ("MPR", None),
    "pool_id": ("Pool", ""), "run_id": ("Run", ""), "n_paths": ("Paths", ""),
    "loan_id": ("Loan id", ""), "borrower_id": ("Borrower id", ""),
    "party_id": ("Party id", ""), "party": ("Party", ""),
    # losses and risk measures
    "el": ("EL", None), "el_se": ("EL SE", None), "el_share": ("EL share", None),
    "loss": ("Loss", None), "loss_pct": ("Loss share", "% of balance"), "se": ("SE", None),
    "var_99": ("VaR 99%", None), "var_999": ("VaR 99.9%", None), "es_99": ("ES 99%", None),
    "es_999": ("ES 99.9%", None), "pd": ("PD", None), "lgd": ("LGD", None),
    "lgl": ("LGL", None), "measure": ("Measure", ""), "level": ("Level", ""),
    "loss_q95": ("Loss 95th percentile", None), "loss_q99": ("Loss 99th percentile", None),
    "loss_q999": ("Loss 99.9th percentile", None), "mean": ("Mean", None),
    "p5": ("5th percentile", None), "p25": ("25th percentile", None),
    "p50": ("Median", None), "p75": ("75th percentile", None),
    "p95": ("95th percentile", None),
    # tranches
    "tranche": ("Class", ""), "holder": ("Holder", ""), "size": ("Size", None),
    "size_share": ("Size share", "% of the pool"), "coupon": ("Coupon", None),
    "wal_mean": ("WAL mean", "years"), "wal_p5": ("WAL 5th percentile", "years"),
    "wal_p95": ("WAL 95th percentile", "years"), "irr": ("IRR", None),
    "price": ("Price", "per 1 of face"), "yield": ("Discount yield", None),
    "present_value": ("Present value at the discount rate", "CNY"),
    "pv_to_investment": ("Present value / investment", ""),
    "mod_duration": ("Modified duration", "years"), "ce": ("CE", None),
    "rating": ("Rating", ""), "attachment": ("Attachment", None),
    "detachment": ("Detachment", None), "p_breach": ("Breach probability", None),
    "oc": ("OC", None), "cnl": ("CNL", None), "excess_spread": ("Excess spread", None),
    "period": ("Period", ""), "date": ("Date", ""),
    # partners and dispersion
    "exposure": ("Exposure", None), "loan_exposure": ("Loan exposure", None),
    "tranche_exposure": ("Tranche exposure", None), "capital": ("Capital", None),
    "capital_irb": ("Capital, IRB", None), "capital_sec": ("Capital, securitisation", None),
    "rwa": ("RWA", None), "risk_weight": ("Risk weight", None), "share": ("Share", None),
    "roles": ("Roles", ""), "srt": ("SRT", ""), "hhi": ("HHI", None),
    "el_share_left": ("EL left the platform", "%"),
    "tail_share_left": ("99.9% tail left the platform", "%"),
    "k": ("K", None),
    # mixed units in one column (loans, CNY, shares): no unit in the header
    "value": ("Value", ""), "limit": ("Limit", ""),
    "p_in_force": ("In-force probability", None), "p": ("Supervisory parameter p", ""),
    # partner tapes
    "term_months": ("Original term", "months"), "credit_score": ("Credit score", ""),
    "origination_date": ("Origination date", ""),
}

# the abbreviations the labels use, each defined in one plain line
GLOSSARY: dict[str, str] = {
    "APR": "Annual percentage rate: the yearly cost of a loan to the borrower, interest and "
           "fees, as a share of the balance.",
    "CDR": "Constant default rate: the share of the performing balance that defaults in a "
           "year, at the month's pace.",
    "CE": "Credit enhancement: the share of the pool below a class that takes losses before "
          "it.",
    "CNL": "Cumulative net loss: losses after recoveries since closing, as a share of the "
           "pool.",
    "CPR": "Conditional prepayment rate: the share of the performing balance prepaid in a "
           "year, at the month's pace.",
    "DPD": "Days past due: how late the oldest unpaid instalment of a loan is.",
    "EL": "Expected loss: the average loss over all simulated paths.",
    "ES": "Expected shortfall: the average loss on the paths worse than the VaR.",
    "HHI": "Herfindahl-Hirschman index: the sum of squared shares; 1 means one party holds "
           "everything.",
    "M1": "Delinquency bucket 1: 1 to 30 days past due.",
    "M2": "Delinquency bucket 2: 31 to 60 days past due.",
    "M3": "Delinquency bucket 3: 61 to 90 days past due.",
    "IRB": "Internal ratings-based approach: the Basel capital formula driven by PD and LGD.",
    "IRR": "Internal rate of return: the discount rate at which the cash flows are worth "
           "their price.",
    "LGD": "Loss given default: the share of a defaulted balance lost after recoveries.",
    "LGL": "Loss given loss: a class's average loss on the paths where it loses anything.",
    "MDR": "Monthly default rate: the share of the performing balance that defaults in a "
           "month.",
    "MPR": "Monthly payment rate: a month's collections as a share of the balance.",
    "OC": "Overcollateralisation: how far the pool balance exceeds the notes outstanding.",
    "PD": "Probability of default: the chance that a loan defaults (for a class: that it "
          "loses anything).",
    "RWA": "Risk-weighted assets: the exposure times its risk weight, the base of the capital "
           "requirement.",
    "SE": "Standard error: the Monte Carlo uncertainty of an estimate from a finite number of "
          "paths.",
    "SMM": "Single monthly mortality: the share of the balance prepaid in one month.",
    "SRT": "Significant risk transfer: the supervisory test that a securitisation moves "
           "enough credit risk to investors to lower the originator's capital.",
    "VaR": "Value at risk: the loss not exceeded on the given share of paths (VaR 99.9%: 999 "
           "paths in 1,000).",
    "WA": "Weighted average: an average with each loan's balance as its weight.",
    "WAL": "Weighted average life: the average time until principal is repaid, weighted by "
           "the principal.",
}

# amounts, whatever their size (a small balance is still CNY)
_AMOUNT_WORDS = frozenset({"balance", "amount", "principal", "interest", "exposure", "capital",
                           "cash", "fees", "face", "investment", "collections", "recovery",
                           "rwa", "size", "due", "paid", "shortfall", "writedown", "pdl",
                           "proceeds", "transfer"})
# lower-case words written in capitals (the buckets M1-M3 are capitals in the column names)
_ABBREVIATIONS = {t.lower(): t for t in GLOSSARY if t.isalpha()} | {"id": "id", "dq": "DQ", "pdl": "PDL",
                                                    "vat": "VAT", "rng": "RNG"}
_BASE_TO_NAME = {base: name for name, (base, _unit) in LABELS.items()}
_UNIT_SEP = ", "
_LEVELS = {"95": "95%", "99": "99%", "999": "99.9%"}
_LEVEL_NAMES = {v: k for k, v in _LEVELS.items()}


def _fallback_base(name: str) -> str:
    """``written_off_balance`` → ``Written off balance``: words split at ``_``, abbreviations
    in capitals (``wa`` → ``WA``), the first letter capitalised unless the first word has a
    digit (``M1 balance``, ``q95 loss``: as the name writes it)."""
    words = [_ABBREVIATIONS.get(w, w) for w in name.split("_")]
    for i in range(1, len(words)):  # var_999 → VaR 99.9%
        if words[i - 1] in ("VaR", "ES") and words[i] in _LEVELS:
            words[i] = _LEVELS[words[i]]
    text = " ".join(words)
    if any(c.isdigit() for c in words[0]):  # "q95 loss", "M1 balance": as the name writes it
        return text
    return text[:1].upper() + text[1:]


def _fallback_name(base: str) -> str:
    """The reverse of :func:`_fallback_base`."""
    words = base.split(" ")
    out = []
    for i, w in enumerate(words):
        if w in _ABBREVIATIONS.values() and w.lower() in _ABBREVIATIONS:
            w = w.lower()
        elif i > 0 and words[i - 1] in ("VaR", "ES") and w in _LEVEL_NAMES:
            w = _LEVEL_NAMES[w]
        elif i == 0 and w[1:] == w[1:].lower() and not any(c.isdigit() for c in w):
            w = w[:1].lower() + w[1:]
        out.append(w)
    return "_".join(out)


def base_label(name: str) -> str:
    """The header of column ``name`` without its unit."""
    return LABELS[name][0] if name in LABELS else _fallback_base(name)


def label(name: str, kind: str = "text") -> str:
    """The header of column ``name`` whose values are of ``kind`` (``dashboards.xlsx``'s
    ``column_kind``: ``percent``, ``money``, ``integer``, …)."""
    name = str(name)
    if " " in name or not name.isascii():  # a header written for a person: as it is
        return name  # ("Pool EL (% of balance)", "ρ", not "Ρ")
    base, unit = LABELS.get(name, (_fallback_base(name), None))
    if unit is None:
        words = set(re.split(r"[^0-9a-z]+", name.lower()))
        if kind == "percent":
            unit = "% of balance" if words & {"el", "loss", "var", "es", "cnl"} else "%"
        elif kind == "money" or (kind in ("integer", "number") and words & _AMOUNT_WORDS):
            unit = "CNY"
        else:
            unit = ""
    return f"{base}{_UNIT_SEP}{unit}" if unit else base


def internal_name(header: str) -> str:
    """The internal column name of a header :func:`label` wrote (the reverse mapping): the
    longest part before a ", " that is a base of :data:`LABELS` ("Capital, IRB" is one),
    else the generated base read back."""
    text = str(header)
    cuts = [len(text)] + [i for i in range(len(text)) if text.startswith(_UNIT_SEP, i)]
    for cut in sorted(cuts, reverse=True):
        if text[:cut] in _BASE_TO_NAME:
            return _BASE_TO_NAME[text[:cut]]
    return _fallback_name(text.split(_UNIT_SEP, 1)[0])


def glossary_terms(headers: Iterable[str]) -> list[str]:
    """The glossary's terms that appear as words in ``headers`` (glossary order)."""
    words: set[str] = set()
    for h in headers:
        words |= set(re.findall(r"[A-Za-z][A-Za-z0-9]*", str(h)))
    return [t for t in GLOSSARY if t in words]


def help_text(header: str) -> str | None:
    """The glossary lines of the terms in ``header`` (a table column's tooltip), or None."""
    terms = glossary_terms([header])
    return " ".join(f"{t}: {GLOSSARY[t]}" for t in terms) or None
