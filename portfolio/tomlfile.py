"""Reading the people-facing TOML files (criteria, assumptions, pricing, deals, partners,
rating tables, users) with one kind of message for a missing file and for bad TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from portfolio.errors import ValidationError


def parse_toml(text: str, source: str,
               error: type[ValidationError] = ValidationError) -> dict[str, Any]:
    """``text`` as a TOML document; ``error("SOURCE: not valid TOML: …")`` if it is not one."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None


def read_toml(path: str | Path, what: str,
              error: type[ValidationError] = ValidationError) -> dict[str, Any]:
    """The TOML document in ``path``; ``error("WHAT PATH does not exist")`` for a missing file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise error(f"{what} {p} does not exist") from None
    return parse_toml(text, str(p), error)
