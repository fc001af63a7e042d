"""Registry of dataset types, declared once in ``schemas/`` and looked up by name.

A dataset type says what a dataset holds (modality, layout, value kind) and which
expectations it must meet. Adding one means adding a YAML file under
``schemas/<modality>/``: no code. A modality installed as a plugin ships its own folder
of YAML files (``Modality.schemas``), which the modality registry adds with
:func:`add_schema_dir` when it loads the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from resistomics._resources import schemas_dir
from resistomics.errors import UnknownNameError

__all__ = ["DatasetType", "add_schema_dir", "dataset_type", "dataset_types"]

_EXTRA_DIRS: list[Path] = []


@dataclass(frozen=True)
class DatasetType:
    """One dataset type: ``layout`` names the storage layout spec (``sparse-matrix@1``)."""

    name: str
    version: str
    modality: str
    layout: str
    value_kind: str | None
    description: str
    expectations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@cache
def dataset_types() -> dict[str, DatasetType]:
    """Every dataset type declared under ``schemas/`` (by name)."""
    out: dict[str, DatasetType] = {}
    paths = sorted(schemas_dir().rglob("*.yaml"))
    paths += [p for d in _EXTRA_DIRS for p in sorted(d.rglob("*.yaml"))]
    for path in paths:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "layout" not in doc:
            continue
        out[doc["name"]] = DatasetType(
            name=doc["name"],
            version=str(doc["version"]),
            modality=doc["modality"],
            layout=doc["layout"],
            value_kind=doc.get("value_kind"),
            description=" ".join(str(doc.get("description", "")).split()),
            expectations=doc.get("expectations", {}) or {},
        )
    return out


def add_schema_dir(path: Path) -> None:
    """Also read dataset types from ``path`` (a plugin modality's schemas folder)."""
    path = Path(path).resolve()
    if path not in _EXTRA_DIRS:
        _EXTRA_DIRS.append(path)
        dataset_types.cache_clear()


def dataset_type(name: str) -> DatasetType:
    """The dataset type called ``name``.

    Raises
    ------
    UnknownNameError
        (also a ``KeyError``) naming the closest known type.
    """
    try:
        return dataset_types()[name]
    except KeyError:
        raise UnknownNameError("dataset type", name, dataset_types()) from None
