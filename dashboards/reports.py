"""Scheduled portfolio reports: a self-contained HTML file and an XLSX workbook.

``write_report(db, as_of, out_dir, partner=None)`` collects the sections through the same
data-access layer as the dashboard (so a partner report holds that partner's data only):

1. Book and delinquency  2. Vintages  3. Roll rates  4. Latest pool simulation
5. Tranches  6. Partners and rule checks  7. Dispersion

The HTML embeds every chart as a base64 PNG (matplotlib) and has no external reference, so
it opens offline. The XLSX has one sheet per table (``dashboards.xlsx.write_table``: header
row frozen with an autofilter, real dates, % formats for shares and rates, amounts with
separators, column widths, empty cells for missing values, human headers with units) and a
"Glossary" sheet defining the terms the headers use (WAL, CE, EL, VaR, …).

Cron-ready:
- Idempotent for an as-of date: the files are named by the as-of date (and partner) and
  overwritten; the same inputs give the same content apart from the generation timestamp
  (one line in the HTML, one cell on the ``about`` sheet; the workbook's document dates are
  fixed to the as-of date). ``content_sha256`` in the run record hashes the content without
  the timestamp, so two runs can be compared.
- A lock file ``.riskpool-report.lock`` in the output directory: a second run while the first
  holds it fails at once with ``ReportLocked`` (CLI exit code 3). The lock records hostname,
  pid, the process's start time and when it was taken (``portfolio.store.liveness``); a lock
  whose holder is gone — dead, replaced by an unrelated process with the same pid, older than
  six hours, or unreadable — is taken over.
- A ``runs`` row of kind ``report`` records inputs, files, hashes and timings.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import html
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xlsxwriter

from dashboards import access, charts
from dashboards.auth import Viewer
from dashboards.xlsx import GLOSSARY_SHEET, TEXT_AS_TEXT, write_glossary, write_table
from portfolio.errors import NotFound, RiskpoolError
from portfolio.store import liveness, open_store
from portfolio.store import reports as sql
from portfolio.store.records import ReportInputs
from portfolio.version import code_version

SECTIONS: tuple[tuple[str, str], ...] = (
    ("book", "Book and delinquency"),
    ("vintages", "Vintages"),
    ("roll_rates", "Roll rates"),
    ("simulation", "Latest pool simulation"),
    ("tranches", "Tranches"),
    ("partners", "Partners and rule checks"),
    ("dispersion", "Dispersion"),
)
LOCK_NAME = ".riskpool-report.lock"
REPORT_LOCK_MAX_AGE = 6 * 3600.0  # seconds: a report takes minutes; an older lock is stale
REPORT_DB_WAIT_S = 60.0  # seconds a report waits for a writer's short transaction to end
TIMESTAMP_MARK = "generated-at"


class ReportLocked(RiskpoolError):
    """Another report run holds the output directory's lock (CLI exit code 3)."""


@dataclass(frozen=True, slots=True, eq=False)
class Section:
    key: str
    title: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: tuple[tuple[str, bytes], ...] = ()  # (caption, PNG bytes)
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    run_id: int | None
    html_path: Path
    xlsx_path: Path
    content_sha256: str
    seconds: float
    target: ReportTarget | None = None


# --------------------------------------------------------------------------- sections


def _latest_run(db: str | Path, viewer: Viewer) -> int | None:
    """The latest run the viewer may see that kept its paths (a run recorded from summaries
    on Dask workers cannot give the dispersion or the tranche loss charts), else the latest."""
    listed = access.runs(db, viewer)
    if not len(listed):
        return None
    ids = sorted((int(x) for x in listed["run_id"]), reverse=True)
    return next((r for r in ids if access.paths_kept(db, viewer, r)), ids[0])


def _latest_allocation(db: str | Path, viewer: Viewer) -> int | None:
    listed = access.allocations(db, viewer)
    return int(listed["allocation_id"].max()) if len(listed) else None


@dataclass(frozen=True)
class ReportTarget:
    """The simulation run and allocation a report is on, and why: ``given`` (--run /
    --allocation), ``pinned`` (the ones the first report for this as-of date and audience
    used: a past report stays reproducible when newer runs are added) or ``latest``."""

    run_id: int | None
    allocation_id: int | None
    how: str


def _pinned(db: str | Path, as_of: dt.date, partner: str | None) -> tuple[int | None, int | None] | None:
    """The run and allocation of the earliest recorded report for ``as_of`` and ``partner``
    that names them (reports recorded before reports named them pin nothing)."""
    with open_store(db, read_only=True, wait=access.lock_wait()) as store:
        pins = sql.report_pins(store.con)
    for data in pins:
        if (data.get("as_of") == as_of.isoformat() and data.get("partner") == partner
                and ("run_id" in data or "allocation_id" in data)):
            return data.get("run_id"), data.get("allocation_id")
    return None


def report_target(db: str | Path, viewer: Viewer, as_of: dt.date, partner: str | None,
                  run_id: int | None = None, allocation_id: int | None = None) -> ReportTarget:
    """Which run and allocation the report for ``as_of`` uses (see :class:`ReportTarget`). A
    given id must be one the report's audience may see (a partner: a run carrying its party,
    an allocation giving it a position), else ``NotFound`` naming the flag."""
    visible_runs = set(access.runs(db, viewer)["run_id"].astype(int))
    visible_allocs = set(access.allocations(db, viewer)["allocation_id"].astype(int))
    for flag, value, visible in (("--run", run_id, visible_runs),
                                 ("--allocation", allocation_id, visible_allocs)):
        if value is not None and int(value) not in visible:
            who = "the treasury" if partner is None else f"partner {partner}"
            shown = ", ".join(str(v) for v in sorted(visible)) or "none"
            raise NotFound(f"`{flag}` must be one {who} may see ({shown}); got {value}")
    pinned = _pinned(db, as_of, partner)
    if run_id is not None or allocation_id is not None:
        pin_run, pin_alloc = pinned or (None, None)
        return ReportTarget(
            int(run_id) if run_id is not None else (pin_run or _latest_run(db, viewer)),
            int(allocation_id) if allocation_id is not None
            else (pin_alloc or _latest_allocation(db, viewer)), "given")
    if pinned is not None:
        return ReportTarget(pinned[0], pinned[1], "pinned")
    return ReportTarget(_latest_run(db, viewer), _latest_allocation(db, viewer), "latest")


def collect_sections(db: str | Path, viewer: Viewer, as_of: dt.date,
                     target: ReportTarget | None = None) -> list[Section]:
    """Every section's tables and charts for ``viewer`` at ``as_of`` (a month-end), on the
    target's run and allocation (default: the latest the viewer may see)."""
    bv = access.book(db, viewer, as_of)
    wide = bv.cumulative_default.drop(columns=["loans", "original_balance"], errors="ignore")
    dq_cols = [f"{b}_balance" for b in ("M1", "M2", "M3", "default")]
    out = [
        Section("book", "Book and delinquency",
                {"book_summary": bv.summary, "anchors": bv.anchors,
                 "delinquency": bv.delinquency, "delinquency_by_month": bv.delinquency_by_month,
                 "default_by_score_band": bv.default_by_score_band, "rates": bv.rates},
                (("Delinquent balance by bucket", charts.png_bytes(charts.lines(
                    bv.delinquency_by_month, "as_of", dq_cols, "Delinquent balance by bucket",
                    "CNY"))),
                 ("CDR / CPR", charts.png_bytes(charts.lines(
                     bv.rates, "as_of", ["cdr", "cpr"], "CDR and CPR", percent=True)))),
                note=book_note(bv)),
        Section("vintages", "Vintages", {"vintage_cumulative_default": bv.cumulative_default},
                (("Cumulative default by vintage",
                  charts.png_bytes(charts.vintage_curves(wide))),)),
        Section("roll_rates", "Roll rates", {"roll_rates": bv.roll_rates}),
    ]
    if target is None:
        target = ReportTarget(_latest_run(db, viewer), _latest_allocation(db, viewer), "latest")
    run_id = target.run_id
    if run_id is None:
        out.append(Section("simulation", "Latest pool simulation",
                           note="No simulation run is visible for this report."))
        out.append(Section("tranches", "Tranches", note="No simulation run, so no waterfall."))
    else:
        rv = access.run_view(db, viewer, run_id)
        out.append(Section(
            "simulation", "Latest pool simulation",
            {"loss_distribution": rv.stats, "balance_fan": rv.balance_fan,
             "loss_fan": rv.loss_fan},
            (("Loss distribution", charts.png_bytes(charts.loss_histogram(
                rv.loss, rv.el, rv.var, rv.es, f"Loss distribution, {rv.label}"))),
             ("Performing balance", charts.png_bytes(charts.fan_chart(
                 rv.balance_fan, "Performing balance")))),
            note=f"{rv.label}: {rv.n_paths:,} paths, initial balance "
                 f"{rv.initial_balance:,.2f} CNY." + (f" {rv.note}" if rv.note else "")))
        deal = access.stored_deal_toml(db, viewer, run_id)
        if deal is None:
            out.append(Section("tranches", "Tranches",
                               note=f"Run {run_id} has no deal stored with it."))
        else:
            tv = access.tranches(db, viewer, run_id, deal)
            if tv.table.empty:
                out.append(Section("tranches", "Tranches",
                                   note=f"{viewer.partner_id} holds no tranche of {tv.deal_name}."))
            else:
                out.append(Section(
                    "tranches", "Tranches",
                    {"tranches": tv.class_table(), **({"triggers": tv.triggers}
                                              if not tv.triggers.empty else {}),
                     **({"residual_holder": tv.residual} if not tv.residual.empty else {}),
                     **({"reconciliation": tv.reconciliation, "excess_spread": tv.excess_spread}
                        if not tv.reconciliation.empty else {})},
                    (("Tranche loss distributions", charts.png_bytes(charts.histograms(
                        tv.loss_shares, "Tranche losses", "loss / original balance"))),)
                    if tv.loss_shares else (),
                    note=f"{tv.deal_name} on run {run_id}." + (f" {tv.note}" if tv.note
                                                                 else "")))
    alloc_id = target.allocation_id
    if alloc_id is None:
        out.append(Section("partners", "Partners and rule checks",
                           note="No allocation is visible for this report."))
        out.append(Section("dispersion", "Dispersion", note="No allocation, so no dispersion."))
        return out
    av = access.allocation(db, viewer, alloc_id)
    tables = {"allocation_parties": av.party_table(), "rule_checks": av.checks}
    if not av.breaches.empty:
        tables["rule_breaches"] = av.breaches
    if not av.findings.empty:
        tables["loan_rule_findings"] = av.findings  # kept by the platform (R5, R6, R8, R9)
    out.append(Section(
        "partners", "Partners and rule checks", tables,
        (("Balance funded per party", charts.png_bytes(charts.bars(
            av.parties, "party_id", ["balance"], "Balance funded (CNY)"))),),
        note=f"Allocation {alloc_id} ({av.mode}, {av.objective}); "
             f"{'no breach' if av.breaches.empty else f'{len(av.breaches)} breach(es)'}."))
    if run_id is None:
        out.append(Section("dispersion", "Dispersion", note="No simulation run."))
        return out
    try:
        dv = access.dispersion(db, viewer, run_id, alloc_id, access.stored_deal_toml(db, viewer, run_id))
    except (RiskpoolError, ImportError) as exc:
        out.append(Section("dispersion", "Dispersion", note=f"Not available: {exc}"))
        return out
    dtables = {"dispersion_parties": dv.party_table()}
    figs = [("EL, VaR 99.9% and capital per party", charts.png_bytes(charts.bars(
        dv.parties, "party", ["el", "var_999", "capital"], "Risk per party (CNY)")))]
    if not dv.headlines.empty:
        dtables["dispersion_headline"] = dv.headlines
    if not dv.views.empty:
        dtables["dispersion_views"] = dv.views_table()
    if not dv.economic_lines.empty:
        dtables["dispersion_economic_lines"] = dv.economic_lines
    if not dv.reconciliation.empty:
        dtables["dispersion_reconciliation"] = dv.reconciliation
    if not dv.srt.empty:
        dtables["dispersion_srt"] = dv.srt
        dtables["dispersion_positions"] = dv.positions
    out.append(Section("dispersion", "Dispersion", dtables, tuple(figs),
                       note=f"Run {run_id} with allocation {alloc_id}."))
    return out


def book_note(bv: access.BookView) -> str:
    """The book section's note: at a month-end reported for part of the book, the CLI's note
    (``BookView.partial_note``); and the month-ends whose rates, delinquent balances and
    delinquency shares are blank for that reason."""
    note = bv.partial_note(choose="--as-of")
    parts = [f"{note}." if note else ""]
    if bv.incomplete:
        months = ", ".join(f"{m.isoformat()} ({k:,} of {n:,} loans reported)"
                           for m, n, k in bv.incomplete)
        parts.append("Blank, not 0 (MDR, CDR, SMM, CPR, MPR; delinquent balances and shares) "
                     f"at the month-ends reported for part of the book: {months}.")
    text = " ".join(p for p in parts if p)
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- HTML


def _fmt_number(x: float) -> str:
    """Amounts with thousands separators and cents; ratios and small numbers to 6 digits."""
    if pd.isna(x):
        return ""
    return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.6g}"


def _fmt_table(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(_fmt_number)
    return shown.to_html(index=False, border=0, classes="t", na_rep="", escape=True)


def render_html(sections: list[Section], title: str, generated_at: str) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table.t{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
        "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "table.t th{background:#eef}h2{border-bottom:2px solid #446;margin-top:1.5em}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='{TIMESTAMP_MARK}'>Generated at {html.escape(generated_at)}</p>",
        "<nav><ol>" + "".join(f"<li><a href='#{s.key}'>{html.escape(s.title)}</a></li>"
                              for s in sections) + "</ol></nav>",
    ]
    for s in sections:
        parts.append(f"<section id='{s.key}'><h2>{html.escape(s.title)}</h2>")
        if s.note:
            parts.append(f"<p>{html.escape(s.note)}</p>")
        for caption, png in s.figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' "
                         f"src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        for name, table in s.tables.items():
            parts.append(f"<h3>{html.escape(name)}</h3>{_fmt_table(table)}")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _strip_timestamp(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if TIMESTAMP_MARK not in line)


# --------------------------------------------------------------------------- XLSX


def _sheet_name(name: str, used: set[str]) -> str:
    base = name[:31]
    candidate, i = base, 2
    while candidate in used:
        suffix = f"_{i}"
        candidate, i = base[: 31 - len(suffix)] + suffix, i + 1
    used.add(candidate)
    return candidate


# Text cells stay text: a region such as '=HYPERLINK("http://…"&A1,"Click")' (or anything
# starting with = + - @) is never written as a live formula, and no string becomes a number or
# a link (xlsxwriter's Workbook options).
XLSX_TEXT_AS_TEXT = TEXT_AS_TEXT


def write_xlsx(sections: list[Section], path: Path, as_of: dt.date, generated_at: str) -> None:
    wb = xlsxwriter.Workbook(str(path), {"nan_inf_to_errors": True, **XLSX_TEXT_AS_TEXT})
    stamp = dt.datetime.combine(as_of, dt.time())
    wb.set_properties({"title": "riskpool report", "created": stamp, "author": "riskpool"})
    head = wb.add_format({"bold": True, "bg_color": "#DDE3F0", "border": 1, "text_wrap": True})
    used: set[str] = {GLOSSARY_SHEET.lower()}
    headers: list[str] = []
    about = wb.add_worksheet(_sheet_name("about", used))
    about.write(0, 0, "riskpool report", head)
    about.write(1, 0, "as of")
    about.write(1, 1, as_of.isoformat())
    about.write(2, 0, "generated at")
    about.write(2, 1, generated_at)
    about.write(4, 0, "sheet", head)
    about.write(4, 1, "section", head)
    row = 5
    for s in sections:
        if not s.tables:
            about.write(row, 0, "")
            about.write(row, 1, f"{s.title}: {s.note}")
            row += 1
        for name in s.tables:
            ws = wb.add_worksheet(_sheet_name(name, used))
            about.write(row, 0, ws.name)
            about.write(row, 1, s.title)
            row += 1
            headers += write_table(wb, ws, s.tables[name], header_format=head)
    about.write(row, 0, GLOSSARY_SHEET)
    about.write(row, 1, "the abbreviations in the column headers")
    write_glossary(wb, headers, header_format=head)
    about.set_column(0, 0, 28)
    about.set_column(1, 1, 60)
    wb.close()


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def report_lock(out_dir: Path, max_age: float = REPORT_LOCK_MAX_AGE) -> Iterator[None]:
    """Hold ``out_dir/.riskpool-report.lock`` for the block. The lock records this process
    (``portfolio.store.liveness.Holder``: hostname, pid, the process's start time, when it was
    taken). A lock left behind is taken over when its holder is gone: unreadable, older than
    ``max_age`` seconds, or on this host with its process dead or replaced by another one with
    the same id (another start time) — a live but unrelated pid does not block."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = out_dir / LOCK_NAME
    for _attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = liveness.read_holder(lock)
            if not liveness.stale(holder, max_age):
                assert holder is not None
                raise ReportLocked(
                    f"another report run (pid {holder.pid} on {holder.hostname}, since "
                    f"{dt.datetime.fromtimestamp(holder.created, dt.UTC):%Y-%m-%d %H:%M} UTC) "
                    f"is writing to {out_dir} (lock file {lock}); this run did nothing — try "
                    "again later") from None
            lock.unlink(missing_ok=True)  # stale: its holder is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(liveness.me().to_json())
        break
    else:
        raise ReportLocked(f"could not take the lock {lock}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def report_viewer(partner: str | None) -> Viewer:
    return Viewer("report", "treasury" if partner is None else f"partner:{partner}")


def write_report(db: str | Path, as_of: dt.date, out_dir: str | Path,
                 partner: str | None = None, record: bool = True,
                 now: dt.datetime | None = None, run_id: int | None = None,
                 allocation_id: int | None = None) -> ReportOutcome:
    """Write the HTML and XLSX report for ``as_of`` (and ``partner``) into ``out_dir``, on
    the simulation run and allocation of :func:`report_target` (given, pinned or latest);
    both are recorded with the report run. Every open of the database waits up to
    ``REPORT_DB_WAIT_S`` for a writer's short transaction (the dashboard recording a run) to
    end, then gives ``DataUpdating`` (CLI exit code 4)."""
    with access.waiting(REPORT_DB_WAIT_S):
        return _write_report(db, as_of, out_dir, partner, record, now, run_id, allocation_id)


def _write_report(db: str | Path, as_of: dt.date, out_dir: str | Path, partner: str | None,
                  record: bool, now: dt.datetime | None, run_id: int | None,
                  allocation_id: int | None) -> ReportOutcome:
    t0 = time.perf_counter()
    started = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    viewer = report_viewer(partner)
    out = Path(out_dir)
    if partner is not None:
        _check_partner(db, partner)
    target = report_target(db, viewer, as_of, partner, run_id, allocation_id)
    with report_lock(out), access.deterministic():
        sections = collect_sections(db, viewer, as_of, target)
        t_collect = time.perf_counter() - t0
        stem = f"riskpool_report_{as_of.isoformat()}" + (f"_{partner}" if partner else "")
        title = f"riskpool portfolio report — {as_of.isoformat()}" + (
            f" — partner {partner}" if partner else "")
        generated = started.isoformat() + "Z"
        page = render_html(sections, title, generated)
        html_path, xlsx_path = out / f"{stem}.html", out / f"{stem}.xlsx"
        tmp_html = html_path.with_suffix(".html.tmp")
        tmp_html.write_text(page, encoding="utf-8")
        tmp_xlsx = out / f"{stem}.tmp.xlsx"
        write_xlsx(sections, tmp_xlsx, as_of, generated)
        tmp_html.replace(html_path)
        tmp_xlsx.replace(xlsx_path)
        digest = content_digest(sections)
        seconds = time.perf_counter() - t0
        run_id = None
        if record:
            store = open_store(db, read_only=False, wait=access.lock_wait())
            try:
                with store.transaction() as con:
                    run_id = store.next_id("run_seq")
                    sql.insert_report_run(
                        con, run_id=run_id, status="ok",
                        inputs=ReportInputs(as_of, partner, str(out.resolve()),
                                            target.run_id, target.allocation_id),
                        code_version=code_version(), started_at=started,
                        finished_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                        timings={"collect_s": round(t_collect, 3), "total_s": round(seconds, 3)},
                        summary={"files": {html_path.name: str(html_path.resolve()),
                                           xlsx_path.name: str(xlsx_path.resolve())},
                                 "content_sha256": digest,
                                 "html_sha256_without_timestamp": hashlib.sha256(
                                     _strip_timestamp(page).encode()).hexdigest(),
                                 "sections": [s.key for s in sections]},
                        out_dir=str(out.resolve()))
            finally:
                store.close()
    return ReportOutcome(run_id, html_path, xlsx_path, digest, seconds, target)


def _check_partner(db: str | Path, partner: str) -> None:
    with open_store(db, read_only=True, wait=access.lock_wait()) as store:
        known = sql.allocated_parties(store.con)
    if partner not in known or partner == access.PLATFORM_ID:
        raise NotFound(f"`--partner` must be a partner with an allocation "
                       f"({', '.join(p for p in known if p != access.PLATFORM_ID) or 'none yet'}); "
                       f"got {partner!r}")


def content_digest(sections: list[Section]) -> str:
    """sha256 over every table (CSV) and chart (PNG) — equal for equal inputs."""
    h = hashlib.sha256()
    for s in sections:
        h.update(s.key.encode())
        h.update(s.note.encode())
        for name, table in s.tables.items():
            h.update(name.encode())
            h.update(table.to_csv(index=False).encode())
        for caption, png in s.figures:
            h.update(caption.encode())
            h.update(png)
    return h.hexdigest()


__all__ = [
    "SECTIONS", "ReportLocked", "ReportOutcome", "ReportTarget", "Section", "collect_sections",
    "content_digest", "render_html", "report_lock", "report_target", "write_report", "write_xlsx",
]
