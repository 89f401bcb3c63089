"""Significant risk transfer (SRT): may the originator stop holding capital against a
securitised pool? Each test states its source; the assessment reports every test with its
numbers, and capital relief is claimed only when all of them pass.

Tests (a traditional securitisation: the loans are sold to the issuing vehicle):

The Basel items are those of the operational requirements for traditional securitisations in
CRE40 (Basel Framework; the list of the July 2016 revisions to the securitisation framework):
(1) significant credit risk transferred to third parties, (2) no effective or indirect control
by the transferor (legal isolation), (3) the securities not obligations of the transferor, (4)
the transferee an SPE, (5) clean-up calls as CRE40 allows them, (6) no clause that lets the
originator's retained first loss or credit enhancement grow after inception (nor alter the
pool or raise others' yield on a deterioration), (7) no other termination options.

* ``CRE40 (1)`` **significant credit risk transferred to third parties**. Basel leaves
  "significant" to the supervisor; riskpool measures it on the simulated paths as the share of
  the securitised loans' 99.9% VaR that left the originator, and requires at least
  ``SrtPolicy.min_tail_transferred`` (default 50%: more than half of the tail). With
  ``SrtPolicy.eu_tests`` the EU's mechanical tests decide instead (below).
* ``CRE40 (6)`` **no credit support from the originator** beyond its retained positions: a
  shortfall undertaking, a liquidity or credit facility the originator gives the notes is
  credit enhancement that keeps the risk with it (items (1) and (6); support beyond the
  contract is implicit support, which removes the relief).
* ``CRE40 (5)``: a clean-up call at the originator's discretion only when 10% or less of the
  original pool remains.
* ``CRE40 (2)-(4)``: legal isolation (true sale), the notes not the originator's obligations,
  the issuer an SPE: matters of the legal documents, not of the numbers — reported as
  *declared by the user* (``SrtPolicy.true_sale``), never computed.
* ``CRR 244(2)(a)`` **EU mezzanine test** (Regulation (EU) No 575/2013 as amended by
  Regulation (EU) 2017/2401, Art. 244(2)(a)): the risk-weighted exposure amounts of the
  mezzanine positions the originator holds ≤ 50% of those of all mezzanine positions.
  Mezzanine position (Art. 242(18)): subordinated to the senior position, more senior than the
  first loss tranche, and risk-weighted below 1250%. The **first loss tranche** (Art. 242(17))
  is the most subordinated tranche, the first to bear losses; the initial OC, which ranks below
  it and belongs to its holder, is counted with it. (Before 2019 the CRR defined mezzanine
  positions by seniority and risk weight alone, and the first-loss test counted every position
  at 1250%; a subordinated class just below 1250% under SEC-SA then read as mezzanine.)
* ``CRR 244(2)(b)`` **EU first-loss test**, used when there is no mezzanine position: the
  originator holds ≤ 20% of the exposure value of the first loss tranche, and that tranche
  exceeds a reasoned estimate of the pool's expected loss by a substantial margin (reported as
  its size ÷ the simulated EL; the test requires it > 1).
* ``CN retention``: China's risk retention (中国人民银行 中国银行业监督管理委员会公告〔2013〕第21号): the originator holds at least 5% of the issue — in the most subordinated tranche
  (≥ 5% of the whole issue) or vertically (≥ 5% of every tranche). A deal that breaks it
  cannot be issued, so it is reported with the SRT tests and must pass too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from partners.capital import RW_MAX, PositionCapital

MEZZANINE_SHARE_MAX = 0.50  # CRR Art. 244(2)(a)
FIRST_LOSS_SHARE_MAX = 0.20  # CRR Art. 244(2)(b)
CLEAN_UP_CALL_MAX = 0.10  # CRE40, traditional securitisations, item (5)
CN_RETENTION_MIN = 0.05  # PBOC/CBRC announcement 2013 No. 21


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    DECLARED = "declared"  # a legal matter the user declares; not computed
    NOT_APPLICABLE = "n/a"


@dataclass(frozen=True, slots=True)
class SrtTest:
    test_id: str
    name: str
    source: str
    status: Status
    detail: str  # the numbers behind the verdict


@dataclass(frozen=True, slots=True)
class SrtPolicy:
    """Which tests apply and their parameters.

    ``eu_tests``: decide "significant risk transferred" by the EU CRR Art. 244(2) mechanical
    tests instead of the tail-transfer measure. ``min_tail_transferred``: the share of the 99.9%
    VaR that must leave the originator (stands in for the supervisor's judgement of CRE40 (1)).
    ``cn_retention``: apply China's 5% retention. ``true_sale``: the user declares the legal
    conditions (true sale, SPE, notes not the originator's obligations) met."""

    eu_tests: bool = False
    min_tail_transferred: float = 0.50
    cn_retention: bool = True
    true_sale: bool = True


@dataclass(frozen=True, slots=True)
class SrtAssessment:
    scenario: str
    tests: tuple[SrtTest, ...]

    @property
    def passed(self) -> bool:
        return all(t.status is not Status.FAIL for t in self.tests)

    def reasons(self) -> list[str]:
        """Why SRT fails: each failing test with its numbers (empty when it passes)."""
        return [f"{t.test_id} ({t.name}): {t.detail}" for t in self.tests
                if t.status is Status.FAIL]

    def rows(self) -> list[dict[str, str]]:
        return [{"test": t.test_id, "name": t.name, "status": str(t.status), "detail": t.detail,
                 "source": t.source} for t in self.tests]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def first_loss_tranche(positions: Sequence[PositionCapital]) -> list[PositionCapital]:
    """The positions of the first loss tranche (CRR Art. 242(17)): the most subordinated note
    tranche (lowest attachment), with the initial OC below it (its holder's first loss)."""
    notes = [p for p in positions if p.tranche != "OC"]
    junior = min(notes, key=lambda p: p.attachment).tranche if notes else None
    return [p for p in positions if p.tranche == "OC" or p.tranche == junior]


def mezzanine_test(positions: Sequence[PositionCapital], originator: str) -> SrtTest | None:
    """CRR Art. 244(2)(a); None when there is no mezzanine position (Art. 242(18): junior to
    the senior position, more senior than the first loss tranche, below 1250%)."""
    first = {id(p) for p in first_loss_tranche(positions)}
    mezz = [p for p in positions
            if not p.senior and p.risk_weight < RW_MAX and id(p) not in first]
    if not mezz:
        return None
    total = sum(p.rwa for p in mezz)
    held = sum(p.rwa for p in mezz if p.holder == originator)
    share = held / total if total > 0 else 0.0
    ok = share <= MEZZANINE_SHARE_MAX
    names = ", ".join(sorted({p.tranche for p in mezz}))
    return SrtTest("CRR 244(2)(a)", "EU mezzanine test",
                   "Regulation (EU) No 575/2013 Art. 244(2)(a), 242(18)",
                   Status.PASS if ok else Status.FAIL,
                   f"originator holds {_pct(share)} of the mezzanine RWA ({names}: "
                   f"{held:,.0f} of {total:,.0f}); at most {_pct(MEZZANINE_SHARE_MAX)}")


def first_loss_test(positions: Sequence[PositionCapital], originator: str,
                    expected_loss: float) -> SrtTest:
    """CRR Art. 244(2)(b): the originator's share of the first loss tranche (Art. 242(17))."""
    first = first_loss_tranche(positions)
    total = sum(p.amount for p in first)
    held = sum(p.amount for p in first if p.holder == originator)
    share = held / total if total > 0 else 0.0
    margin = total / expected_loss if expected_loss > 0 else float("inf")
    ok = total > 0 and share <= FIRST_LOSS_SHARE_MAX and margin > 1.0
    names = ", ".join(sorted({p.tranche for p in first})) or "none"
    return SrtTest("CRR 244(2)(b)", "EU first-loss test",
                   "Regulation (EU) No 575/2013 Art. 244(2)(b), 242(17)",
                   Status.PASS if ok else Status.FAIL,
                   f"originator holds {_pct(share)} of the first loss tranche ({names}: "
                   f"{held:,.0f} of {total:,.0f}); at most {_pct(FIRST_LOSS_SHARE_MAX)}; the first "
                   f"loss tranche is {margin:.2f}× the expected loss {expected_loss:,.0f} (must "
                   f"exceed it)")


def cn_retention_test(positions: Sequence[PositionCapital], originator: str) -> SrtTest:
    """PBOC/CBRC 2013 No. 21: ≥ 5% of the issue, in the most subordinated tranche or
    vertically. OC is not an issued security and does not count."""
    notes = [p for p in positions if p.tranche != "OC"]
    issue = sum(p.amount for p in notes)
    by_tranche: dict[str, list[PositionCapital]] = {}
    for p in notes:
        by_tranche.setdefault(p.tranche, []).append(p)
    junior = min(notes, key=lambda p: p.attachment).tranche if notes else ""
    held_junior = sum(p.amount for p in by_tranche.get(junior, []) if p.holder == originator)
    first_loss = held_junior / issue if issue > 0 else 0.0
    vertical = min((sum(p.amount for p in ps if p.holder == originator)
                    / max(sum(p.amount for p in ps), 1e-300)) for ps in by_tranche.values()) \
        if by_tranche else 0.0
    ok = first_loss >= CN_RETENTION_MIN - 1e-12 or vertical >= CN_RETENTION_MIN - 1e-12
    return SrtTest("CN retention", "China risk retention (>= 5%)",
                   "中国人民银行 中国银行业监督管理委员会公告〔2013〕第21号",
                   Status.PASS if ok else Status.FAIL,
                   f"originator holds {_pct(first_loss)} of the issue in the most subordinated "
                   f"tranche ({junior}) and at least {_pct(vertical)} of every tranche; "
                   f"needs {_pct(CN_RETENTION_MIN)} either way")


def assess(scenario: str, positions: Sequence[PositionCapital], *, originator: str,
           tail_share_left: float, expected_loss: float, clean_up_call: float | None,
           originator_support: Sequence[str] = (), policy: SrtPolicy = SrtPolicy()) -> SrtAssessment:
    """Every test for one securitisation scenario.

    ``positions``: all positions of the deal (every holder) with the risk weights of the
    approach the originator would use; ``tail_share_left``: the share of the securitised
    loans' 99.9% VaR that left the originator on the paths; ``expected_loss``: the securitised
    loans' EL (CNY); ``clean_up_call``: the deal's call threshold (share of the initial pool);
    ``originator_support``: credit support the originator gives the notes (e.g. "shortfall
    undertaking on A")."""
    tests: list[SrtTest] = []
    if policy.eu_tests:
        mezz = mezzanine_test(positions, originator)
        tests.append(mezz if mezz is not None else
                     first_loss_test(positions, originator, expected_loss))
    else:
        ok = tail_share_left >= policy.min_tail_transferred
        tests.append(SrtTest(
            "CRE40 (1)", "significant credit risk transferred to third parties",
            "Basel Framework CRE40, traditional securitisations, item (1); measured as the "
            "share of the 99.9% VaR that left",
            Status.PASS if ok else Status.FAIL,
            f"{_pct(tail_share_left)} of the securitised loans' 99.9% VaR left the originator; "
            f"at least {_pct(policy.min_tail_transferred)} required"))
    support = tuple(originator_support)
    tests.append(SrtTest(
        "CRE40 (6)", "no credit support from the originator beyond its positions",
        "Basel Framework CRE40, traditional securitisations, items (1) and (6); implicit support",
        Status.FAIL if support else Status.PASS,
        "credit support given: " + "; ".join(support) + " (it keeps the risk with the originator)"
        if support else "none given"))
    if clean_up_call is None:
        tests.append(SrtTest("CRE40 (5)", "clean-up call at most 10% of the pool",
                             "Basel Framework CRE40, traditional securitisations, item (5)", Status.NOT_APPLICABLE,
                             "no clean-up call"))
    else:
        ok = clean_up_call <= CLEAN_UP_CALL_MAX + 1e-12
        tests.append(SrtTest("CRE40 (5)", "clean-up call at most 10% of the pool",
                             "Basel Framework CRE40, traditional securitisations, item (5)",
                             Status.PASS if ok else Status.FAIL,
                             f"callable when the pool is below {_pct(clean_up_call)} of its "
                             f"initial balance; at most {_pct(CLEAN_UP_CALL_MAX)}"))
    tests.append(SrtTest("CRE40 (2)-(4)", "true sale, SPE issuer, notes not the "
                         "originator's obligations",
                         "Basel Framework CRE40, traditional securitisations, items (2)-(4)",
                         Status.DECLARED if policy.true_sale else Status.FAIL,
                         "declared met by the user (legal documents; not computed)"
                         if policy.true_sale else "not declared met"))
    if policy.cn_retention:
        tests.append(cn_retention_test(positions, originator))
    return SrtAssessment(scenario, tuple(tests))
