"""portfolio.settings: the one place for default paths and environment variables."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portfolio import settings
from portfolio.errors import ValidationError

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "portfolio" / "settings.py"
# the code the settings serve (tests may set and read their own variables)
CODE_DIRS = ("portfolio", "tranching", "partners", "dashboards", "riskpool", "benchmarks",
             "examples")


def _code_files() -> list[Path]:
    files = sorted(f for d in CODE_DIRS for f in (ROOT / d).rglob("*.py"))
    assert SETTINGS in files
    return files


def test_the_default_database_path_is_written_once() -> None:
    where = [f"{f.relative_to(ROOT)}:{n}"
             for f in [*_code_files(), ROOT / "Makefile"]
             for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
             if "riskpool.duckdb" in line and f != SETTINGS]
    assert where == []
    assert 'Path("data/riskpool.duckdb")' in SETTINGS.read_text(encoding="utf-8")


def _env_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """os.environ / environ / getenv / putenv / unsetenv, and envvar="LITERAL" keywords."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "environb", "getenv",
                                                            "putenv", "unsetenv"}:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Name) and node.id in {"environ", "getenv"}:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in {"environ", "getenv", "putenv", "unsetenv"} for a in node.names):
            found.append((node.lineno, "from os import"))
        elif (isinstance(node, ast.keyword) and node.arg == "envvar"
              and isinstance(node.value, ast.Constant)):
            found.append((node.value.lineno, f"envvar={node.value.value!r}"))
    return found


def test_only_settings_reads_the_environment() -> None:
    offenders = [f"{f.relative_to(ROOT)}:{line} {what}"
                 for f in _code_files() if f != SETTINGS
                 for line, what in _env_uses(ast.parse(f.read_text(encoding="utf-8")))]
    assert offenders == []
    # the check itself finds what it looks for
    assert len(_env_uses(ast.parse(SETTINGS.read_text(encoding="utf-8")))) >= 5
    assert _env_uses(ast.parse('import os\nx = os.getenv("A")\nf(envvar="B")')) == [
        (2, "getenv"), (3, "envvar='B'")]


def test_settings_imports_nothing_heavy() -> None:
    # programs call before_numpy_import() first; numpy reads its variable at its own import
    code = "import sys, portfolio.settings; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "False"


def test_before_numpy_import_sets_numpys_switch_and_keeps_a_given_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.NUMPY_HUGEPAGE_ENV, raising=False)
    settings.before_numpy_import()
    assert os.environ[settings.NUMPY_HUGEPAGE_ENV] == "0"
    monkeypatch.setenv(settings.NUMPY_HUGEPAGE_ENV, "1")
    settings.before_numpy_import()
    assert os.environ[settings.NUMPY_HUGEPAGE_ENV] == "1"


def test_database_and_users_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(settings.DB_ENV, raising=False)
    monkeypatch.delenv(settings.USERS_ENV, raising=False)
    assert settings.db_path() == Path("data") / "riskpool.duckdb" == settings.DEFAULT_DB
    assert settings.DATA_DIR == Path("data")
    monkeypatch.setenv(settings.DB_ENV, "")  # empty is unset
    assert settings.db_path() == settings.DEFAULT_DB
    db = tmp_path / "x" / "book.duckdb"
    monkeypatch.setenv(settings.DB_ENV, str(db))
    assert settings.db_path() == db
    assert settings.users_path(db) == tmp_path / "x" / "users.toml"
    assert settings.runs_dir(db) == (tmp_path / "x").resolve() / "runs"
    assert settings.reports_dir(db) == tmp_path / "x" / "reports"
    monkeypatch.setenv(settings.USERS_ENV, str(tmp_path / "u.toml"))
    assert settings.users_path(db) == tmp_path / "u.toml"


def test_dashboard_files_are_published_to_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(settings.DB_ENV, raising=False)
    monkeypatch.delenv(settings.USERS_ENV, raising=False)
    settings.use_dashboard_files(tmp_path / "b.duckdb", None)
    assert settings.db_path() == (tmp_path / "b.duckdb").resolve()
    assert settings.users_path(settings.db_path()) == tmp_path.resolve() / "users.toml"
    settings.use_dashboard_files(tmp_path / "b.duckdb", tmp_path / "people.toml")
    assert settings.users_path(settings.db_path()) == (tmp_path / "people.toml").resolve()


def test_the_dashboards_dask_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.SCHEDULER_ENV, raising=False)
    assert settings.dask_scheduler() is None
    monkeypatch.setenv(settings.SCHEDULER_ENV, "  ")  # blank is unset
    assert settings.dask_scheduler() is None
    monkeypatch.setenv(settings.SCHEDULER_ENV, " tcp://10.0.0.5:8786 ")
    assert settings.dask_scheduler() == "tcp://10.0.0.5:8786"
    settings.use_dashboard_scheduler("tcp://127.0.0.1:8786")
    assert os.environ[settings.SCHEDULER_ENV] == "tcp://127.0.0.1:8786"
    assert settings.dask_scheduler() == "tcp://127.0.0.1:8786"


def test_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.THREADS_ENV, raising=False)
    assert settings.threads() == (os.cpu_count() or 1)
    monkeypatch.setenv(settings.THREADS_ENV, "3")
    assert settings.threads() == 3
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(settings.THREADS_ENV, bad)
        with pytest.raises(ValidationError) as err:
            settings.threads()
        assert str(err.value) == ("`RISKPOOL_THREADS` must be a whole number >= 1 (an "
                                  f"environment variable); got {bad!r}")


def test_bench_quick_and_ingest_pause(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(settings.BENCH_QUICK_ENV, raising=False)
    assert settings.bench_quick() is False
    monkeypatch.setenv(settings.BENCH_QUICK_ENV, "1")
    assert settings.bench_quick() is True
    monkeypatch.setenv(settings.BENCH_QUICK_ENV, "0")
    assert settings.bench_quick() is False
    monkeypatch.delenv(settings.PAUSE_ENV, raising=False)
    assert settings.ingest_pause() is None
    monkeypatch.setenv(settings.PAUSE_ENV, "2.5")
    monkeypatch.delenv(settings.PAUSE_MARKER_ENV, raising=False)
    assert settings.ingest_pause() == (2.5, None)
    monkeypatch.setenv(settings.PAUSE_MARKER_ENV, str(tmp_path / "m"))
    assert settings.ingest_pause() == (2.5, tmp_path / "m")


# ------------------------------------------------------------------------------------------
# Program starts set numpy's huge-page switch before numpy is imported (numpy reads it once)

_SPY = '''
import os, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not seen:
            seen.append(os.environ.get("NUMPY_MADVISE_HUGEPAGE"))
        return None
sys.meta_path.insert(0, Spy())
'''


def test_the_cli_sets_numpys_switch_before_numpy_is_imported() -> None:
    code = _SPY + '''
from riskpool.cli import main
try:
    main(["pool", "--help"])
except SystemExit:
    pass
print(seen, "numpy" in sys.modules)
'''
    env = {k: v for k, v in os.environ.items() if k != settings.NUMPY_HUGEPAGE_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True, env={**env, "PYTHONPATH": str(ROOT)}).stdout
    assert out.splitlines()[-1] == "['0'] True"


def _before_numpy_line(tree: ast.Module) -> int | None:
    for node in tree.body:
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and ast.unparse(node.value.func) == "settings.before_numpy_import"):
            return node.lineno
    return None


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_benchmark_scripts_set_numpys_switch_before_any_other_import(script: str) -> None:
    tree = ast.parse((ROOT / "benchmarks" / script).read_text(encoding="utf-8"))
    call = _before_numpy_line(tree)
    assert call is not None, f"{script}: no settings.before_numpy_import() at module level"
    stdlib = set(sys.stdlib_module_names)
    first_other = min((node.lineno for node in tree.body
                       if isinstance(node, ast.Import | ast.ImportFrom)
                       and not (isinstance(node, ast.ImportFrom) and node.module == "portfolio"
                                and [a.name for a in node.names] == ["settings"])
                       and (node.module if isinstance(node, ast.ImportFrom)
                            else node.names[0].name).split(".")[0] not in stdlib | {"__future__"}),
                      default=None)
    assert first_other is None or call < first_other, script
