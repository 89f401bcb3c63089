"""The CLI's lazy command loading: `riskpool --help` lists every command from
riskpool.cli.COMMANDS without importing any command module (nor numpy), and each listed line
is the command's own help."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import typer
import typer.main
from typer.core import TyperGroup

from riskpool.cli import COMMANDS, load_command

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_is_listed_with_its_own_help() -> None:
    registered: dict[str, str] = {}
    for module in sorted({m for m, _ in COMMANDS.values()}):
        area = typer.Typer(add_completion=False, rich_markup_mode=None)
        importlib.import_module(module).register(area)
        built = typer.main.get_command(area)
        names = list(built.commands) if isinstance(built, TyperGroup) else [built.name]
        registered |= {str(n): module for n in names}
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}
    for name, (_, short) in COMMANDS.items():
        assert load_command(name).get_short_help_str(limit=1000) == short, name


def test_help_lists_the_commands(cli) -> None:  # noqa: ANN001 (fixture)
    res = cli("--help")
    assert res.code == 0
    listed = [line.split()[0] for line in res.out.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == ["version", *COMMANDS]
    assert cli("no-such-command").code == 2


def test_help_and_version_load_no_command_module() -> None:
    code = """
import sys
from riskpool.cli import main
for args in (["--help"], ["version"]):
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               {"numpy", "pandas", "duckdb", "pyarrow", "numba", "scipy", "streamlit",
                "matplotlib", "QuantLib", "dask", "distributed"}
               or m.startswith(("riskpool.commands", "dashboards", "tranching", "partners")))
print(heavy)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True).stdout
    assert out.splitlines()[-1] == "[]"
