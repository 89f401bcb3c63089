"""``riskpool dispersion`` on a recorded simulation run and a recorded allocation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from portfolio.montecarlo.records import SimulationInputs
from portfolio.store import open_store

ROOT = Path(__file__).resolve().parents[2]
PARTNERS = ROOT / "examples" / "partners.toml"
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """A book, a pool, an allocation (1) and a run without party split (1)."""
    from portfolio.book.pools import create_pool, parse_criteria
    from portfolio.montecarlo.assumptions import save_assumptions
    from portfolio.synthetic.generate import GeneratorParams, generate_book, true_assumptions
    from riskpool.cli import main

    d = tmp_path_factory.mktemp("disp")
    db = d / "db.duckdb"
    with open_store(db) as store:
        generate_book(store, 3000, 6, seed=8, as_of=dt.date(2026, 10, 31))
        info = create_pool(store, "p", parse_criteria({"eligibility": {"dpd_max": 0}}),
                           dt.date(2026, 10, 31))
    ass = save_assumptions(true_assumptions(GeneratorParams(), 24), d / "ass.toml")
    for argv in (["allocate", "--db", str(db), "--partners", str(PARTNERS), "--pool", str(info.pool_id)],
                 ["simulate", "--db", str(db), "--pool", str(info.pool_id), "--assumptions", str(ass),
                  "--seed", "5", "--paths", "300"]):
        try:
            main(argv)
        except SystemExit as exc:
            assert not exc.code, argv
    return db, info.pool_id, ass


@pytest.fixture
def db(setup, tmp_path):
    src, _, _ = setup
    dst = tmp_path / "db.duckdb"
    shutil.copy(src, dst)
    shutil.copytree(src.parent / "runs", tmp_path / "runs")
    return dst


def test_run_without_party_split_is_resimulated_and_losses_add_up(db):
    from partners.dispersion import disperse_paths
    from partners.records import load_allocation, run_party_paths
    from portfolio.store.runs import load_paths

    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        paths, how = run_party_paths(store, 1, stored)
        original = load_paths(store, 1)
    assert how.startswith("re-simulated")
    # the replay (portfolio.book.replay) gives the stored pool flows bit for bit
    for name in ("default", "recovery", "prepayment", "balance_eop", "interest"):
        assert np.array_equal(getattr(paths, name), getattr(original, name)), name
    d = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd, stored.risk.lgd)
    total = np.sum([d.party_losses[p] for p in stored.party_ids], axis=0)
    np.testing.assert_allclose(total, original.loss, atol=1e-6 * max(1.0, original.loss.max()))


def test_run_with_party_split_is_used_as_stored(db):
    from partners.records import load_allocation, run_party_paths
    from portfolio.book.pools import load_pool_loans
    from portfolio.montecarlo.assumptions import load_assumptions
    from portfolio.montecarlo.simulation import simulate
    from portfolio.store.runs import get_run, record_simulation

    with open_store(db) as store:
        stored = load_allocation(store, 1)
        rec = get_run(store, 1)
        loans = load_pool_loans(store, stored.pool_id)
        idx = np.searchsorted(stored.loan_id.astype(str), np.asarray(loans.loan_id).astype(str))
        ass = load_assumptions(Path(rec.artifact_path) / "assumptions.toml")
        paths = simulate(loans, ass, 100, 3, shares=stored.shares[idx], party_ids=stored.party_ids)
        inputs = SimulationInputs(pool_id=stored.pool_id, n_paths=100, seed=3, engine="granular",
                                  assumptions=rec.inputs.assumptions, allocation_id=1)
        run_id = record_simulation(store, paths, inputs, "test", assumptions=ass)
        got, how = run_party_paths(store, run_id, stored)
    assert how == "party flows stored with the run"
    np.testing.assert_allclose(got.party_flows["default"], paths.party_flows["default"])


def test_dispersion_cli_with_and_without_a_deal(cli, db):
    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "1")
    assert r.code == 0, r.err
    for party in ("platform", "bank_east", "bank_north", "hangzhou_city", "west_trust"):
        assert party in r.out
    assert "joint lending" in r.out and "HHI" in r.out
    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "1", "--structure", DEAL)
    assert r.code == 0, r.err
    assert "investors" in r.out
    for scenario in ("joint lending", "securitisation", "both"):
        assert scenario in r.out


def test_dispersion_cli_errors(cli, db):
    r = cli("dispersion", "--db", db, "--run", "9", "--allocation", "1")
    assert r.code == 2 and "run" in r.err
    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "7")
    assert r.code == 2 and "--allocation" in r.err


def test_dispersion_cli_structure_uses_the_runs_replenishment_profile(cli, db):
    """``--structure`` with a revolving deal: the profile ``simulate --structure`` would build
    (rebuilt from the run's inputs), so the printed rows equal the library's with it."""
    from partners.dispersion import disperse_paths
    from partners.records import load_allocation, run_party_paths
    from portfolio.book.pools import get_pool, load_pool_loans
    from portfolio.montecarlo.assumptions import load_assumptions
    from portfolio.store.runs import get_run
    from tranching.deal import load_deal
    from tranching.revolving import replenishment_for, run_replenishment

    deal = load_deal(DEAL)
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        paths, _ = run_party_paths(store, 1, stored)
        profile = run_replenishment(store, 1, deal)
        rec = get_run(store, 1)
        inputs = rec.simulation_inputs()
        pool = get_pool(store, inputs.pool_id)
        loans = load_pool_loans(store, pool.pool_id)
    # the same profile as `riskpool simulate --structure` builds for the run
    built = replenishment_for(deal, loans,
                              load_assumptions(Path(rec.artifact_path) / "assumptions.toml"),
                              inputs.n_paths, inputs.seed, cutoff=pool.cutoff_date)
    assert profile is not None and built is not None
    np.testing.assert_array_equal(profile.default, built.default)
    d = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd, stored.risk.lgd,
                       deal, replenishment=profile)
    old = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd,
                         stored.risk.lgd, deal)
    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "1", "--structure", DEAL)
    assert r.code == 0, r.err
    for row in d.table():
        line = next(x for x in r.out.splitlines() if x.startswith(f"{row['party']:<14}"))
        assert f"{row['el']:,.2f}" in line and f"{row['var_999']:,.2f}" in line, line
    # without the profile (the scaling approximation) the platform's numbers differ
    plat = next(x for x in r.out.splitlines() if x.startswith(f"{'platform':<14}"))
    old_plat = next(row for row in old.table() if row["party"] == "platform")
    assert f"{old_plat['el']:,.2f}" not in plat


def test_dispersion_cli_reports_srt_and_claims_no_relief_without_it(cli, db):
    from partners.dispersion import disperse_paths
    from partners.records import load_allocation, run_party_paths
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment

    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "1", "--structure", DEAL)
    assert r.code == 0, r.err
    line = next(x for x in r.out.splitlines() if x.startswith("securitisation "))
    # the platform keeps the whole first loss: nothing of the tail leaves, SRT fails, no relief
    assert "SRT FAILS" in line and line.endswith("capital released 0.00")
    assert "SRT, securitisation:" in r.out and "CRE40 (1)" in r.out
    assert "SEC-IRBA" in r.out and "1250.00%" in r.out
    # the printed baseline equals the library's (Basel III floors by default)
    deal = load_deal(DEAL)
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        paths, _ = run_party_paths(store, 1, stored)
        profile = run_replenishment(store, 1, deal)
    d = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd, stored.risk.lgd,
                       deal, replenishment=profile)
    assert f"{d.baseline_capital:,.2f}" in r.out
    head = d.headlines[1]
    assert not head.srt.passed and head.capital_released == 0.0
    assert head.platform_capital == pytest.approx(d.baseline_capital)
    # both: the deal fails SRT too, so what is released is the joint lending's, and the line
    # says so (the platform's capital equals the joint-lending scenario's)
    joint, both = d.headlines[0], d.headlines[2]
    assert both.scenario == "both" and not both.srt.passed
    assert both.platform_capital == pytest.approx(joint.platform_capital, rel=1e-12)
    line = next(x for x in r.out.splitlines() if x.startswith("both "))
    assert "SRT FAILS" in line and line.endswith(
        f"capital released {both.capital_released:,.2f} (by the joint lending only)")
    # the economic result line by line: each party's lines, then its total = its economic EL
    from partners.reconciliation import economic_views

    assert "Economic result, line by line" in r.out
    for v in economic_views(d):
        want = f"{v.party:<14}{'= economic result (EL)':<58}{v.economic.el:>16,.2f}"
        assert any(x.strip() == want.strip() for x in r.out.splitlines()), want
    # the EU tests under SEC-SA (K_A 0.06): B [0.07, 0.11) is the one mezzanine position; Sub
    # [0, 0.07), just below 1250%, is the first loss tranche and not mezzanine (CRR Art.
    # 242(18)), so the platform holds 0% of the mezzanine RWA and the test passes
    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "1", "--structure", DEAL,
            "--eu-srt-tests", "--framework", "basel2", "--approach", "SEC-SA")
    assert r.code == 0, r.err
    assert "SEC-SA" in r.out and "IRB basel2" in r.out
    mezz = [x.split() for x in r.out.splitlines() if "CRR 244(2)(a)" in x]
    assert mezz and all(x[0] == "pass" for x in mezz), mezz
    assert all("0.00% of the mezzanine RWA (B:" in " ".join(x) for x in mezz), mezz


def test_dispersion_cli_refuses_bad_capital_options(cli, db):
    base = ("dispersion", "--db", db, "--run", "1", "--allocation", "1")
    r = cli(*base, "--framework", "basel4")
    assert r.code == 2 and "--framework" in r.err
    r = cli(*base, "--min-tail-transferred", "1.5")
    assert r.code == 2 and "--min-tail-transferred" in r.err
    r = cli(*base, "--approach", "SEC-ERBA")
    assert r.code == 2 and "SEC-ERBA" in r.err


def test_reconciliation_closes_to_the_cent_on_every_path_of_the_run(db):
    """The pool's loss walked to each party (partners.reconciliation) on a recorded run with the
    CN deal and its replenishment profile: the difference is below half a cent on every path,
    each party's lines add up to its row, and the lines' ELs add up."""
    from partners.dispersion import disperse_paths
    from partners.reconciliation import economic_views, reconcile
    from partners.records import load_allocation, run_party_paths
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment

    deal = load_deal(DEAL)
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        paths, _ = run_party_paths(store, 1, stored)
        profile = run_replenishment(store, 1, deal)
    d = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd, stored.risk.lgd,
                       deal, replenishment=profile)
    combined, alone = reconcile(d)
    for rec in (combined, alone):
        assert rec.closes, float(np.abs(rec.difference).max())
        rows = rec.rows()
        holders = sum(r["el"] for r in rows if r["kind"] == "holder")
        to_bear = next(r["el"] for r in rows if r["line"] == "= loss to be borne")
        assert holders == pytest.approx(to_bear, abs=0.01)
    # the combined picture's parties are the party table's, loss for loss
    by_party = combined.by_party()
    assert set(by_party) == set(d.party_losses)
    for pid, loss in d.party_losses.items():
        np.testing.assert_allclose(by_party[pid], loss, rtol=0, atol=0.005)
    # the deal's lines are issue 12's loss reconciliation of the waterfall (tranching.reconcile,
    # from the cash identity), not a second derivation: class losses, excess spread, initial OC
    # and reserve; the walk closes only if that identity and the simulated pool loss agree
    from partners.dispersion import party_paths, waterfall_totals
    from tranching.reconcile import collateral_left
    from tranching.reconcile import reconcile as deal_reconcile
    from tranching.waterfall import run_waterfall

    # the platform's retained securitisation keeps its waterfall's per-path totals only: they
    # are those of the waterfall run here in full on the platform's share, bit for bit
    retained = run_waterfall(deal, party_paths(paths, "platform"), replenishment=profile)
    s = d.securitisations["both"]
    assert s.waterfall is None and s.totals is not None
    for f in dataclasses.fields(s.totals):
        got, want = getattr(s.totals, f.name), getattr(waterfall_totals(retained), f.name)
        if isinstance(want, dict):
            assert list(got) == list(want) and all(
                np.array_equal(got[k], want[k]) for k in want), f.name
        else:
            assert np.array_equal(np.asarray(got), np.asarray(want)), f.name
    for rec, key in ((combined, "both"), (alone, "securitisation")):
        w = retained if key == "both" else d.securitisations[key].waterfall
        borne = deal_reconcile(deal, w).borne
        lines = {ln.label: ln.values for ln in rec.lines}
        # (tranching.reconcile sums its lines in extended precision: equal to 1e-6 CNY)
        np.testing.assert_allclose(
            lines["absorbed by excess spread (residual holder)"],
            np.asarray(borne[f"excess spread (residual holder {deal.tranches[-1].holder})"],
                       dtype=np.float64), rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            lines["absorbed by the initial OC and the reserve (residual holder)"],
            np.asarray(borne[f"initial OC and reserve (residual holder "
                             f"{deal.tranches[-1].holder})"], dtype=np.float64),
            rtol=0, atol=1e-6)
        left = next(v for k, v in lines.items() if k.startswith("less the collateral left"))
        np.testing.assert_array_equal(left, -collateral_left(w))
        for name in deal.tranche_names:
            held = sum(v for k, v in lines.items() if k.startswith(f"tranche {name} held by"))
            np.testing.assert_allclose(held, np.asarray(borne[f"{name} principal loss"],
                                                        dtype=np.float64), rtol=0, atol=1e-6)
    # the pool line is the simulation's pool loss; the revolving purchases are the deal's
    np.testing.assert_array_equal(combined.lines[0].values, paths.loss)
    assert combined.lines[1].values.mean() > 0
    # securitisation alone: the platform bears Sub + what excess spread absorbed + after the call
    plat = alone.by_party()["platform"]
    np.testing.assert_allclose(plat, d.securitisations["securitisation"].losses_by_holder()["platform"],
                               rtol=0, atol=0.005)
    # the economic view of the investors: principal loss − coupons received (hand identity:
    # tranche A and B holdings of the retained deal), a profit (negative) on every path
    views = {v.party: v for v in economic_views(d)}
    w = retained
    names = list(w.tranche_names)
    want = sum(p.loss - p.share * w.interest_paid.sum(axis=2)[names.index(p.tranche)]
               for p in s.positions if p.holder == "investors")
    assert views["investors"].economic.el == pytest.approx(float(np.mean(want)), rel=1e-12)
    assert views["investors"].economic.el < 0
    # the residual holder earns the excess spread: its economic EL is below its credit EL
    assert views["platform"].economic.el < views["platform"].credit.el
    assert "residual cash (excess spread)" in views["platform"].lines


def test_dispersion_cli_sec_erba_from_a_ratings_file(cli, db, tmp_path):
    # a user's mapping table (illustrative numbers, not the CRE42 table): B rated "X" gets, as a
    # non-senior tranche at M_T = 1, 2.00 × (1 − min(0.04, 0.5)) = 1.92 = 192%
    f = tmp_path / "erba.toml"
    f.write_text('[ratings]\nA = "Y"\nB = "X"\n\n[mapping.X]\nsenior_1y = 1.0\nsenior_5y = 1.5\n'
                 'non_senior_1y = 2.0\nnon_senior_5y = 3.0\n\n[mapping.Y]\nsenior_1y = 0.2\n'
                 'senior_5y = 0.3\nnon_senior_1y = 0.4\nnon_senior_5y = 0.5\n', encoding="utf-8")
    base = ("dispersion", "--db", db, "--run", "1", "--allocation", "1", "--structure", DEAL)
    r = cli(*base, "--erba", f, "--approach", "SEC-ERBA")
    assert r.code == 0, r.err
    rows = [x.split() for x in r.out.splitlines() if x.strip().startswith(("B ", "A ", "Sub "))]
    b = next(x for x in rows if x[0] == "B")
    assert b[2] == "SEC-ERBA" and b[5] == "192.00%"
    a = next(x for x in rows if x[0] == "A")
    assert a[2] == "SEC-ERBA" and a[5] == "20.00%"
    sub = next(x for x in rows if x[0] == "Sub")
    assert sub[2] == "SEC-SA"  # unrated: SEC-SA
    # a rating without a mapping, and a weight out of bounds: exit 2 naming the field
    bad = tmp_path / "bad.toml"
    bad.write_text('[ratings]\nB = "Z"\n\n[mapping.X]\nsenior_1y = 1.0\nsenior_5y = 1.5\n'
                   'non_senior_1y = 2.0\nnon_senior_5y = 3.0\n', encoding="utf-8")
    r = cli(*base, "--erba", bad)
    assert r.code == 2 and "ratings.B" in r.err
    bad.write_text('[ratings]\nB = "X"\n\n[mapping.X]\nsenior_1y = 99.0\nsenior_5y = 1.5\n'
                   'non_senior_1y = 2.0\nnon_senior_5y = 3.0\n', encoding="utf-8")
    r = cli(*base, "--erba", bad)
    assert r.code == 2 and "mapping.X.senior_1y" in r.err
    r = cli(*base, "--approach", "SEC-ERBA")
    assert r.code == 2 and "--erba" in r.err


def _money_cells(line: str) -> list[float]:
    """The amounts of a printed row, after its party name (which may hold a space)."""
    cells = line.split()
    first = next(i for i, c in enumerate(cells) if c.replace(",", "").replace(".", "")
                 .lstrip("-").isdigit())
    return [float(c.replace(",", "")) for c in cells[first:]]


def _table(out: str, header: str) -> list[str]:
    """The rows under the first line starting with ``header``, up to the first blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("pool EL"):
            break
        rows.append(line)
    return rows


@pytest.mark.parametrize("with_deal", [False, True])
def test_dispersion_party_tables_show_their_total_and_close_to_it(cli, db, with_deal):
    # the party table splits the pool (exposure), the loss to be borne (EL) and the capital;
    # its total row holds the column sums, and the EL total is the pool's EL plus, with the
    # revolving deal, the loss on the loans the retained deal bought (the reconciliation's
    # "= loss to be borne" line)
    args = ["dispersion", "--db", db, "--run", "1", "--allocation", "1"]
    r = cli(*args, *(["--structure", DEAL] if with_deal else []))
    assert r.code == 0, r.err
    rows = _table(r.out, "party                   exposure")
    parties, total = rows[:-2], rows[-2]
    assert total.split()[0] == "total" and rows[-1].startswith("total: the parties' sums")
    cells = [_money_cells(line) for line in parties]
    exposure, el, capital = _money_cells(total)
    assert exposure == pytest.approx(sum(c[0] for c in cells), abs=0.02)
    assert el == pytest.approx(sum(c[1] for c in cells), abs=0.02)
    assert capital == pytest.approx(sum(c[6] for c in cells), abs=0.02)
    from partners.records import load_allocation

    with open_store(db, read_only=True) as store:
        balance = float(load_allocation(store, 1).balance.sum())
    assert exposure == pytest.approx(balance, abs=0.01)
    borne = next(line for line in r.out.splitlines() if "= loss to be borne" in line) \
        if with_deal else next(line for line in r.out.splitlines() if line.startswith("pool EL"))
    want = float(borne.split()[-1].replace(",", "")) if with_deal else \
        float(borne.split()[2].rstrip(",").replace(",", ""))
    assert el == pytest.approx(want, abs=0.01)
    assert "does NOT close" not in r.out
    if not with_deal:  # joint lending alone: the parties' capital is the baseline's
        base = next(line for line in r.out.splitlines() if line.startswith("pool EL"))
        baseline = float(base.split("other) ")[1].split(";")[0].replace(",", ""))
        assert capital == pytest.approx(baseline, abs=0.02)
    else:  # the economic table's total: the credit ELs add up to the same loss to be borne
        views = _table(r.out, "party                credit EL")
        assert views[-1].split()[0] == "total"
        assert _money_cells(views[-1])[0] == pytest.approx(el, abs=0.02)
        assert _money_cells(views[-1])[1] == pytest.approx(
            sum(_money_cells(v)[3] for v in views[:-1]), abs=0.02)


def test_printed_capital_figures_from_the_stored_allocation_by_hand(cli, db):
    """The capital `riskpool dispersion` prints, recomputed from the allocation's stored loans
    (balance, annual PD, LGD) with the Basel formulas written out and SciPy's normal
    distribution: CRE31.14 other retail — R = 0.03·f + 0.16·(1 − f), f = (1 − e^−35·PD) /
    (1 − e^−35); K = LGD·[N((G(PD) + √R·G(0.999)) / √(1 − R)) − PD], with the Basel III retail
    input floors (CRE32: PD ≥ 0.05%, unsecured LGD ≥ 30%); the baseline capital is
    Σ K·EAD; K_IRB = Σ (K + PD·LGD)·EAD / Σ EAD (CRE44.2); and class A's SEC-IRBA risk weight
    (CRE44.13-44.21: a = −1/(p·K_IRB), u = D − K_IRB, l = max(A − K_IRB, 0),
    K_SSFA = (e^(a·u) − e^(a·l)) / (a·(u − l)); a class straddling K_IRB weighs 1250% on its
    part below K_IRB and 12.5·K_SSFA above)."""
    from scipy.stats import norm

    from partners.records import load_allocation

    r = cli("dispersion", "--db", db, "--run", "1", "--allocation", "1", "--structure", DEAL)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
    ead = stored.balance
    pd_ = np.maximum(stored.risk.annual_pd, 0.0005)
    lgd = np.maximum(stored.risk.lgd, 0.30)
    assert (stored.risk.annual_pd < 1).all()
    f = (1 - np.exp(-35 * pd_)) / (1 - np.exp(-35))
    rho = 0.03 * f + 0.16 * (1 - f)
    k = lgd * (norm.cdf((norm.ppf(pd_) + np.sqrt(rho) * norm.ppf(0.999)) / np.sqrt(1 - rho))
               - pd_)
    baseline = float((k * ead).sum())
    line = next(x for x in r.out.splitlines() if x.startswith("pool EL"))
    printed = float(line.split("other) ")[1].split(";")[0].replace(",", ""))
    assert printed == pytest.approx(baseline, abs=0.01)

    k_irb = float(((k + pd_ * lgd) * ead).sum() / ead.sum())
    lines = r.out.splitlines()
    start = lines.index("  positions (securitisation):") + 2
    a_row = lines[start].split()  # tranche holder approach A D p K RW amount capital
    assert a_row[0] == "A" and a_row[2] == "SEC-IRBA"
    att, det, p, k_printed = (float(x) for x in a_row[3:7])
    assert k_printed == pytest.approx(k_irb, abs=5e-5)
    a = -1.0 / (p * k_irb)
    u, low = det - k_irb, max(att - k_irb, 0.0)
    k_ssfa = (np.exp(a * u) - np.exp(a * low)) / (a * (u - low))
    if att >= k_irb:
        rw = max(0.15, 12.5 * k_ssfa)
    elif det <= k_irb:
        rw = 12.5
    else:
        rw = 12.5 * ((k_irb - att) + (det - k_irb) * k_ssfa) / (det - att)
    assert float(a_row[7].rstrip("%")) / 100 == pytest.approx(rw, abs=5e-5)
    amount, capital = (float(x.replace(",", "")) for x in a_row[8:10])
    assert capital == pytest.approx(amount * rw * 0.08, rel=1e-4)  # 8% of the RWA


@pytest.mark.parametrize("a_coupon", [None, 0.9], ids=["example", "A at 90%"])
def test_economic_results_add_up_to_the_deals_cash_identity(db, a_coupon):
    """The economic view is cash out − cash in per party, so over the retained deal's parties
    (note holders, the residual holder, fee earners, the undertaking's provider, the servicer)
    it adds up to what the waterfall's cash identity (tranching.reconcile: pool cash in = cash
    out, every line) leaves outside them: the collateral at par at closing + the loans bought
    − pool interest − pool principal − recoveries − call proceeds + the tax, on average over
    the paths (+ the called loans' later net loss, the caller's line). With class A's coupon at 90% the excess spread cannot pay it: the originator's
    shortfall undertaking is drawn and must be a cash-out line of the platform (before, the
    investors' coupons counted it and nobody paid it)."""
    from partners.dispersion import disperse_paths, party_paths
    from partners.reconciliation import economic_views
    from partners.records import load_allocation, run_party_paths
    from tranching.deal import load_deal
    from tranching.reconcile import reconcile as deal_reconcile
    from tranching.revolving import run_replenishment
    from tranching.waterfall import run_waterfall

    deal = load_deal(DEAL)
    if a_coupon is not None:
        deal = dataclasses.replace(deal, tranches=(
            dataclasses.replace(deal.tranches[0], coupon=a_coupon), *deal.tranches[1:]))
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
        paths, _ = run_party_paths(store, 1, stored)
        profile = run_replenishment(store, 1, deal)
    d = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd,
                       stored.risk.lgd, deal, replenishment=profile)
    views = economic_views(d)
    joint = sum(funded - float(np.mean(collected)) for pid, (funded, collected)
                in d.joint_cash.items() if pid != "platform")
    deal_parties = sum(v.economic.el for v in views) - joint
    w = run_waterfall(deal, party_paths(paths, "platform"), replenishment=profile)
    rec = deal_reconcile(deal, w)
    outside = (w.pool_cash["balance_bop"][:, 0] + rec.cash_out["purchases of new loans"]
               + rec.cash_out["tax on interest income"] - rec.cash_in["pool interest"]
               - rec.cash_in["pool principal (scheduled + prepaid)"] - rec.cash_in["recoveries"]
               - rec.cash_in["clean-up call proceeds"])
    # the caller (the platform) paid the call proceeds for the called loans and is counted
    # their later net loss C (at par: their later principal and recoveries came back)
    called = float(np.mean(d.securitisations["both"].called_loss))
    assert deal_parties == pytest.approx(float(np.mean(outside.astype(np.float64))) + called,
                                         rel=1e-9, abs=1e-3)
    platform = next(v for v in views if v.party == "platform")
    drawn = float(np.mean(rec.cash_in["originator's shortfall undertaking"].astype(np.float64)))
    if a_coupon is None:
        assert drawn == 0 and "paid under the shortfall undertaking" not in platform.lines
    else:
        assert drawn > 0
        assert platform.lines["paid under the shortfall undertaking"] == pytest.approx(drawn)
