"""Registry of dataset types, declared once in ``schemas/`` and looked up by name.

A dataset type says what a dataset holds (modality, layout, value kind) and which
expectations it must meet. Adding a modality means adding a YAML type in ``schemas/``,
a reader registered with :func:`register_reader`, and its suite: no chain of ``if``s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml

from resistomics._resources import schemas_dir

__all__ = ["DatasetType", "dataset_type", "dataset_types", "reader_for", "register_reader"]


@dataclass(frozen=True)
class DatasetType:
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
    for path in sorted(schemas_dir().rglob("*.yaml")):
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


def dataset_type(name: str) -> DatasetType:
    try:
        return dataset_types()[name]
    except KeyError:
        known = ", ".join(sorted(dataset_types()))
        raise KeyError(f"unknown dataset type {name!r} (known: {known})") from None


_READERS: dict[tuple[str, str], Callable[..., Any]] = {}
_DETECTORS: list[tuple[str, str, Callable[[str], bool]]] = []


def register_reader(
    modality: str, fmt: str, detect: Callable[[str], bool]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a reader of format ``fmt`` for ``modality``; ``detect(path)`` recognises it."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _READERS[(modality, fmt)] = fn
        _DETECTORS.append((modality, fmt, detect))
        return fn

    return wrap


def reader_for(modality: str, path: str, fmt: str | None = None) -> tuple[str, Callable[..., Any]]:
    """The reader for ``path`` (by explicit format, else by detection)."""
    if fmt is not None:
        if (modality, fmt) not in _READERS:
            known = ", ".join(f for m, f in _READERS if m == modality)
            raise KeyError(f"no {modality} reader for format {fmt!r} (known: {known})")
        return fmt, _READERS[(modality, fmt)]
    for m, f, detect in _DETECTORS:
        if m == modality and detect(path):
            return f, _READERS[(m, f)]
    known = ", ".join(f for m, f in _READERS if m == modality) or "none"
    raise KeyError(f"no {modality} reader recognises {path} (formats: {known})")


def known_modalities() -> list[str]:
    return sorted({m for m, _ in _READERS})
