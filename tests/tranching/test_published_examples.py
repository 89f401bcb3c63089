"""Published worked sequential-pay examples reproduced through the waterfall engine.

1. **Fabozzi's FJF-01** — F. J. Fabozzi, *Bond Markets, Analysis, and Strategies* (Prentice
   Hall), chapter "Collateralized mortgage obligations"; the same example is Exhibit 5/6 of the
   CFA Institute reading "Introduction to asset-backed securities" (Fixed Income Analysis):
   a $400,000,000 passthrough (7.5% passthrough rate, WAC 8.125%, WAM 357 months) at 165 PSA,
   tranches A $194,500,000, B $36,000,000, C $96,500,000, D $73,000,000, all 7.5% coupon,
   sequential pay. Published month 1: passthrough SMM 0.00111, mortgage payment 2,975,868, net
   interest 2,500,000, scheduled principal 267,535, prepayment 442,389, total principal 709,923;
   tranche A principal 709,923 and interest 1,215,625 (B 225,000, C 603,125, D 456,250). Month 2:
   balance 399,290,077, SMM 0.00139, net interest 2,495,563, scheduled principal 269,048,
   prepayment 552,847, total principal 821,896; tranche A beginning balance 193,790,077,
   principal 821,896, interest 1,211,188. The book prints whole dollars: the pool's flows and
   the tranche principal are compared at that precision, the coupons (exact products) to the
   cent. (The month-1 tranche figures are quoted from the CFA reading's Exhibit 5, "FI page
   383", in forum.theanalystspace.com thread 189121; the passthrough columns are the book's
   monthly cash-flow exhibit for the same passthrough, recomputed here from its formulas.)
2. **A three-tranche sequential-pay exercise** ("Consider a simple sequential-pay CMO
   structure", published at wizedu.com/questions/579995, a textbook-style problem): tranches A 6% $3 million, B 7% $8 million, C 8% $30 million;
   collateral principal (scheduled + prepaid) $520,000 in month 1 and $510,000 in month 2;
   monthly coupon on the beginning balance, all principal to A until paid off. The worked answer:
   month 1 A interest 15,000.00, principal 520,000.00, B interest 46,666.67, C interest
   200,000.00; month 2 A interest 12,400.00 (0.5% × 2,480,000), principal 510,000.00, B and C
   unchanged; A's balance 1,970,000.00 after month 2.
3. **MathWorks' sequential CMO example** — MathWorks, *Financial Instruments Toolbox*
   documentation, reference page ``cmoseqcf`` ("Generate cash flows for sequential
   collateralized mortgage obligation (CMO)", mathworks.com/help/fininst/cmoseqcf.html, the
   example "Calculate Cash Flows for a Sequential Collateralized Mortgage Obligation (CMO)";
   the page's references are Hayre (ed.), *Salomon Smith Barney Guide to Mortgage-Backed and
   Asset-Backed Securities*, Wiley 2001, and Lyuu, *Financial Engineering and Computation*,
   Cambridge University Press 2004). A $1,000,000 pool at 12% over 6 months, level payments,
   no prepayment (``mbspassthrough``); tranches A and B, $500,000 each at 12%, sequential.
   Published, principal and balances in units of 10⁵ to four decimals (to $10), interest in
   units of 10³ (to $0.10):
   pool principal 1.6255 1.6417 1.6582 1.6747 1.6915 1.7084;
   A balance 3.3745 1.7328 0.0746 0 0 0, B balance 5.0000 5.0000 5.0000 3.3999 1.7084 0.0000;
   A principal 1.6255 1.6417 1.6582 0.0746 0 0, B principal 0 0 0 1.6001 1.6915 1.7084;
   A interest 5.0000 3.3745 1.7328 0.0746 0 0, B interest 5.0000 5.0000 5.0000 5.0000 3.3999
   1.7084. The test reproduces every published figure at its precision and every figure to
   the cent from the annuity arithmetic written out in it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from tranching_pathgen import paths_from_arrays

from tranching.deal import deal_from_dict
from tranching.waterfall import run_waterfall


def _deal(tranches: list[tuple[str, float, float]]) -> dict:
    return {"deal": {"name": "published", "closing_date": dt.date(2026, 1, 1),
                     "first_payment_date": dt.date(2026, 2, 1)},
            "tranches": [{"name": n, "amount": a, "coupon": c} for n, a, c in tranches]}


def psa_passthrough(months: int) -> dict[str, np.ndarray]:
    """The FJF-01 collateral by the book's formulas: 165 PSA (CPR = 1.65 × 6% × min(age, 30)/30,
    age = 3 months of seasoning + month), SMM = 1 − (1 − CPR)^(1/12), level mortgage payment on
    the remaining WAM at WAC/12, net interest at the 7.5% passthrough rate."""
    bal, wac, out = 400_000_000.0, 0.08125 / 12, {k: [] for k in ("smm", "payment", "interest",
                                                                "sched", "prepay", "bop")}
    for m in range(1, months + 1):
        cpr = 1.65 * 0.06 * min(3 + m, 30) / 30
        smm = 1 - (1 - cpr) ** (1 / 12)
        n = 357 - m + 1
        payment = bal * wac / (1 - (1 + wac) ** -n)
        sched = payment - bal * wac
        prepay = smm * (bal - sched)
        for k, v in (("smm", smm), ("payment", payment), ("interest", bal * 0.075 / 12),
                     ("sched", sched), ("prepay", prepay), ("bop", bal)):
            out[k].append(v)
        bal -= sched + prepay
    return {k: np.array(v) for k, v in out.items()}


def test_fabozzi_fjf01_sequential_pay() -> None:
    pt = psa_passthrough(6)
    # the collateral as published (whole dollars; SMM to five places)
    assert [round(x, 5) for x in pt["smm"][:2]] == [0.00111, 0.00139]
    assert [round(x) for x in pt["payment"][:2]] == [2_975_868, 2_972_575]
    assert [round(x) for x in pt["interest"][:2]] == [2_500_000, 2_495_563]
    assert [round(x) for x in pt["sched"][:2]] == [267_535, 269_048]
    assert [round(x) for x in pt["prepay"][:2]] == [442_389, 552_847]
    assert round(pt["bop"][1]) == 399_290_077
    paths = paths_from_arrays(initial_balance=400_000_000.0, interest=pt["interest"][None],
                              scheduled_principal=pt["sched"][None],
                              prepayment=pt["prepay"][None])
    deal = deal_from_dict(_deal([("A", 194_500_000.0, 0.075), ("B", 36_000_000.0, 0.075),
                                 ("C", 96_500_000.0, 0.075), ("D", 73_000_000.0, 0.075)]))
    r = run_waterfall(deal, paths)
    a_prin, interest = r.principal_paid[0, 0], r.interest_paid[:, 0]
    # month 1: A principal 709,923; coupons 1,215,625 / 225,000 / 603,125 / 456,250 to the cent
    assert round(a_prin[0]) == 709_923
    assert [round(x, 2) for x in interest[:, 0]] == [1_215_625.00, 225_000.00, 603_125.00,
                                                     456_250.00]
    assert np.all(r.principal_paid[1:, 0, :2] == 0)  # sequential: B, C, D get no principal
    assert abs(r.residual[0, 0]) < 1e-6  # net interest 2,500,000 = the four coupons
    # month 2: A began at 193,790,077, receives 821,896 principal and 1,211,188 interest
    assert round(r.balance[0, 0, 0]) == 193_790_077
    assert round(a_prin[1]) == 821_896 and round(interest[0, 1]) == 1_211_188
    assert [round(x, 2) for x in interest[1:, 1]] == [225_000.00, 603_125.00, 456_250.00]


def test_three_tranche_textbook_exercise() -> None:
    # collateral 41,000,000 at 9% (any rate covering the coupons: the exercise gives only the
    # principal), principal 520,000 then 510,000 (then more months so that month 2 is not the
    # legal final, when everything falls due)
    principal = np.array([520_000.0, 510_000.0, 500_000.0])
    bop = 41_000_000.0 - np.concatenate([[0.0], np.cumsum(principal)[:-1]])
    paths = paths_from_arrays(initial_balance=41_000_000.0, interest=(0.09 / 12 * bop)[None],
                              scheduled_principal=principal[None])
    deal = deal_from_dict(_deal([("A", 3_000_000.0, 0.06), ("B", 8_000_000.0, 0.07),
                                 ("C", 30_000_000.0, 0.08)]))
    r = run_waterfall(deal, paths)
    cents = lambda a: [round(float(x), 2) for x in a]  # noqa: E731
    assert cents(r.interest_paid[:, 0, 0]) == [15_000.00, 46_666.67, 200_000.00]
    assert cents(r.principal_paid[:, 0, 0]) == [520_000.00, 0.00, 0.00]
    assert cents(r.interest_paid[:, 0, 1]) == [12_400.00, 46_666.67, 200_000.00]
    assert cents(r.principal_paid[:, 0, 1]) == [510_000.00, 0.00, 0.00]
    assert round(float(r.balance[0, 0, 1]), 2) == 1_970_000.00


def test_mathworks_cmoseqcf_sequential_example() -> None:
    # The pool by hand: payment = 1,000,000 × 0.01 / (1 − 1.01⁻⁶) = 172,548.37 (172,548.3667);
    # each month interest = 1% of the balance, principal = payment − interest:
    #   month  interest   principal   balance after
    #     1   10,000.00  162,548.37    837,451.63
    #     2    8,374.52  164,173.85    673,277.78
    #     3    6,732.78  165,815.59    507,462.19
    #     4    5,074.62  167,473.74    339,988.45
    #     5    3,399.88  169,148.48    170,839.97
    #     6    1,708.40  170,839.97          0.00
    # The tranches (1% a month on each beginning balance; principal to A until it is paid):
    # A 500,000 − 162,548.37 − 164,173.85 − 165,815.59 = 7,462.19 after month 3, paid in
    # month 4 with B getting 167,473.74 − 7,462.19 = 160,011.55; B is then 339,988.45,
    # 170,839.97, 0. Interest: A 5,000.00, 3,374.52, 1,732.78, 74.62; B 5,000.00 × 4,
    # 3,399.88, 1,708.40. Pool interest = A's + B's every month: no residual.
    bal, r, pay = 1_000_000.0, 0.01, 1_000_000.0 * 0.01 / (1 - 1.01 ** -6)
    interest, principal = [], []
    for _ in range(6):
        interest.append(r * bal)
        principal.append(pay - r * bal)
        bal -= pay - r * bal
    paths = paths_from_arrays(initial_balance=1_000_000.0, interest=np.array(interest)[None],
                              scheduled_principal=np.array(principal)[None])
    deal = deal_from_dict(_deal([("A", 500_000.0, 0.12), ("B", 500_000.0, 0.12)]))
    res = run_waterfall(deal, paths)
    cents = lambda a: [round(float(x), 2) for x in a]  # noqa: E731
    prin, intr = res.principal_paid[:, 0], res.interest_paid[:, 0]
    eop = res.balance[:, 0]  # balances after each payment date
    assert cents(principal) == [162_548.37, 164_173.85, 165_815.59, 167_473.74, 169_148.48,
                                170_839.97]
    assert cents(prin[0]) == [162_548.37, 164_173.85, 165_815.59, 7_462.19, 0.0, 0.0]
    assert cents(prin[1]) == [0.0, 0.0, 0.0, 160_011.55, 169_148.48, 170_839.97]
    assert cents(intr[0]) == [5_000.00, 3_374.52, 1_732.78, 74.62, 0.0, 0.0]
    assert cents(intr[1]) == [5_000.00, 5_000.00, 5_000.00, 5_000.00, 3_399.88, 1_708.40]
    assert cents(eop[0]) == [337_451.63, 173_277.78, 7_462.19, 0.0, 0.0, 0.0]
    assert cents(eop[1]) == [500_000.00, 500_000.00, 500_000.00, 339_988.45, 170_839.97, 0.0]
    assert np.abs(res.residual[0]).max() < 1e-6
    # the published figures, at their printed precision
    e5 = lambda a: [round(float(x) / 1e5, 4) for x in a]  # noqa: E731
    e3 = lambda a: [round(float(x) / 1e3, 4) for x in a]  # noqa: E731
    assert e5(principal) == [1.6255, 1.6417, 1.6582, 1.6747, 1.6915, 1.7084]
    assert e5(eop[0]) == [3.3745, 1.7328, 0.0746, 0, 0, 0]
    assert e5(eop[1]) == [5.0, 5.0, 5.0, 3.3999, 1.7084, 0.0]
    assert e5(prin[0]) == [1.6255, 1.6417, 1.6582, 0.0746, 0, 0]
    assert e5(prin[1]) == [0, 0, 0, 1.6001, 1.6915, 1.7084]
    assert e3(intr[0]) == [5.0, 3.3745, 1.7328, 0.0746, 0, 0]
    assert e3(intr[1]) == [5.0, 5.0, 5.0, 5.0, 3.3999, 1.7084]
