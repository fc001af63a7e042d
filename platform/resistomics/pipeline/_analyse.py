"""Analyse: run a modality's analyses on a published source dataset.

The one analyse template: the dataset's modality comes from the catalog, its analyses
from the registry; nothing here names a modality. Each analysis publishes its result
(idempotent: the same input, parameters and code find the published result).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resistomics.catalog import VersionInfo
from resistomics.errors import MethodInputError
from resistomics.modalities import Analysis, Modality, modality
from resistomics.publishing import ResultOutcome, Workspace

__all__ = ["AnalysisRun", "analyse", "default_analyses", "source_version"]


@dataclass(frozen=True)
class AnalysisRun:
    """One analysis of one dataset and what it published."""

    modality: str
    analysis: str
    result_type: str
    outcome: ResultOutcome


def source_version(ws: Workspace, ref: str, *, study: str | None = None) -> VersionInfo:
    """The source (landed, not computed) version ``ref`` names.

    Raises
    ------
    MethodInputError
        When ``ref`` is a result: analyses run on source datasets.
    """
    version = ws.catalog.resolve(ref, study=study)
    if version.kind != "source":
        raise MethodInputError(
            f"is a result ({version.dataset_type}), not source data",
            place=version.ref,
            rule="dataset-kind",
        )
    return version


def default_analyses(ws: Workspace, ref: str, *, study: str | None = None) -> list[str]:
    """The names of the analyses the ``analyse`` deployment runs on this dataset."""
    version = source_version(ws, ref, study=study)
    return [a.name for a in modality(version.modality).default_analyses()]


def _lookup(
    ws: Workspace, ref: str, study: str | None, name: str
) -> tuple[VersionInfo, Modality, Analysis]:
    version = source_version(ws, ref, study=study)
    plugin = modality(version.modality)
    return version, plugin, plugin.analysis(name)


def analyse(
    ws: Workspace,
    ref: str,
    analysis: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> AnalysisRun:
    """Run the analysis ``analysis`` of the dataset's modality and publish its result.

    Raises
    ------
    UnknownNameError
        When the modality has no analysis by that name (did-you-mean).
    MethodInputError, InputError
        When the data cannot be analysed this way (the same input fails again: no retry).
    """
    version, plugin, a = _lookup(ws, ref, study, analysis)
    outcome = a.run(ws, version.ref, study=version.study, run_id=run_id, **dict(parameters or {}))
    return AnalysisRun(plugin.name, a.name, a.result_type, outcome)
