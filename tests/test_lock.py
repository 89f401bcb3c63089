"""requirements.lock: every dependency of pyproject.toml is pinned there (with hashes), and the
environment the tests run in is the locked one — so no figure moves because a library version
changed. `make lock` refreshes the file (docs/architecture.md, "Dependencies and the lock file")."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
EXTRAS = ("dev", "distributed")


def _locked() -> dict[str, tuple[str, Marker | None, int]]:
    """name -> (version, marker, number of hashes) from the lock file."""
    out: dict[str, tuple[str, Marker | None, int]] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text(encoding="utf-8"))
    for entry in entries:
        head = entry.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        req = Requirement(head)
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1, f"requirements.lock: {head!r} is not pinned with =="
        out[canonicalize_name(req.name)] = (pins[0].version, req.marker,
                                            entry.count("--hash=sha256:"))
    return out


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_every_declared_dependency_is_pinned_within_its_bounds() -> None:
    locked = _locked()
    problems = []
    for req in _declared():
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req} is not in requirements.lock (run `make lock`)")
        elif not req.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{req}: requirements.lock pins {locked[name][0]} (run `make lock`)")
    assert problems == []


def test_every_pin_carries_its_hashes() -> None:
    unhashed = [name for name, (_, _, n_hashes) in _locked().items() if n_hashes == 0]
    assert unhashed == []


def test_the_installed_environment_is_the_locked_one() -> None:
    differs = []
    for name, (version, marker, _) in _locked().items():
        if marker is not None and not marker.evaluate():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            differs.append(f"{name}: locked {version}, installed {installed}")
    assert differs == []
