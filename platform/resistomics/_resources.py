"""Where the versioned definitions in ``schemas/`` live (repo checkout or installed wheel)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["schemas_dir"]


def schemas_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_schemas", here.parents[1] / "schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the schemas/ folder was not found next to the package")
