"""The README's tour of the command line runs verbatim, in order, against a scratch database.

Every command of the tour's ``sh`` block is taken from README.md as written (continuation lines
joined, comments dropped) and run in a scratch directory that holds the project's ``examples``
and ``tapes`` (the tour's relative paths), exactly as a reader would from the project's root.
Each must exit 0. ``riskpool dashboard`` is started as a real server on a free port (the only
change to the text) and must answer Streamlit's health check; then it is stopped.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tour_commands(readme: str) -> list[str]:
    """The tour's commands: the first ``sh`` block after "A tour of the command line", with
    backslash continuations joined and ``#`` comments (whole lines and trailing) dropped."""
    section = readme.split("## A tour of the command line", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    current = ""
    for raw in block.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        line = raw.split("  #", 1)[0].strip()
        continued = line.endswith("\\")
        line = line.rstrip("\\").strip()
        current = f"{current} {line}".strip()
        if not continued and current:
            commands.append(current)
            current = ""
    assert not current, f"a continuation line ends the block: {current!r}"
    return commands


def test_the_parser_reads_the_tour() -> None:
    commands = tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert all(c.startswith("riskpool ") for c in commands), commands
    assert len(commands) >= 40
    assert not any("..." in c or "…" in c for c in commands), "every command must be complete"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_dashboard(argv: list[str], cwd: Path) -> None:
    port = _free_port()
    argv = [str(port) if a == "8501" else a for a in argv]
    proc = subprocess.Popen([sys.executable, "-m", "riskpool", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the dashboard did not answer within 120 s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_every_tour_command_runs_in_order(tmp_path: Path, cli, monkeypatch) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "tapes").symlink_to(ROOT / "tapes")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RISKPOOL_DB", raising=False)
    monkeypatch.delenv("RISKPOOL_USERS", raising=False)
    commands = tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    for i, command in enumerate(commands, 1):
        argv = shlex.split(command)[1:]
        if argv[0] == "dashboard":
            _serve_dashboard(argv, tmp_path)
            continue
        r = cli(*argv)
        assert r.code == 0, f"tour command {i} failed (exit {r.code}): {command}\n{r.err[-2000:]}"
    # what the tour says it made
    for made in ("book.duckdb", "delinquency.xlsx", "vintages_cumulative_default.csv",
                 "vintages_net_loss.csv", "strats.xlsx",
                 "assumptions.toml", "tranches.xlsx", "tape.csv", "bank_east.parquet"):
        assert (tmp_path / made).exists(), made
    assert any((tmp_path / "reports").iterdir())
