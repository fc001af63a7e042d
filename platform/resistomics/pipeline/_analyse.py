"""Analyse: run a modality's analyses on a published source dataset.

The one analyse template: the dataset's modality comes from the catalog, its analyses
from the registry; nothing here names a modality. Each analysis publishes its result
(idempotent: the same input, parameters and code find the published result).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast
from resistomics.errors import MethodInputError
from resistomics.modalities import Analysis, Modality, modality
from resistomics.publishing import ResultOutcome, Workspace

__all__ = [
    "AnalysisPlan",
    "AnalysisRun",
    "AnalysisStep",
    "analyse",
    "analysis_plan",
    "default_analyses",
    "run_step",
    "source_version",
]


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


@dataclass(frozen=True)
class AnalysisStep:
    """One run of one analysis in a plan: on the source dataset, for one registered
    contrast (``contrast``, its catalog name) and/or on the result of an earlier step
    (``consumes``, that step's :attr:`key`)."""

    analysis: str
    contrast: str | None = None
    consumes: str | None = None

    @property
    def key(self) -> str:
        """``dml`` or ``dml [case:SLE vs HC]``: unique within a plan."""
        return self.analysis + (f" [{self.contrast}]" if self.contrast else "")


@dataclass(frozen=True)
class AnalysisPlan:
    """The steps the ``analyse`` deployment runs on a source dataset, in order, and why a
    declared analysis has no step (``notes``, one line each)."""

    version: VersionInfo
    steps: list[AnalysisStep]
    notes: list[str] = field(default_factory=list)


def analysis_plan(
    ws: Workspace, ref: str, *, study: str | None = None, names: Sequence[str] | None = None
) -> AnalysisPlan:
    """Expand the modality's default analyses (or ``names``) into steps.

    An analysis declared :attr:`~resistomics.modalities.Analysis.per_contrast` gets one
    step per contrast registered for the study (none, and a note, without contrasts); one
    that :attr:`~resistomics.modalities.Analysis.consumes` another gets one step after
    each step of that analysis, on its result (none, and a note, when that one has no
    step). Order: the modality's declaration order, a consumer after its input.

    Raises
    ------
    UnknownNameError
        A name the modality has no analysis of (did-you-mean).
    MethodInputError
        ``ref`` is a result, not source data.
    """
    version = source_version(ws, ref, study=study)
    plugin = modality(version.modality)
    chosen = [plugin.analysis(n) for n in names] if names is not None else plugin.default_analyses()
    contrasts = [c.name for c in ws.catalog.contrasts(version.study)]
    steps: list[AnalysisStep] = []
    notes: list[str] = []
    for a in chosen:
        if a.consumes is not None:
            inputs = [s for s in steps if s.analysis == a.consumes]
            if not inputs:
                notes.append(
                    f"{a.name} not run: it takes the result of {a.consumes}, which did not run"
                )
            steps += [AnalysisStep(a.name, s.contrast, consumes=s.key) for s in inputs]
        elif a.per_contrast:
            if not contrasts:
                notes.append(
                    f"{a.name} not run: study {version.study} has no registered contrast "
                    f"(register one: resistomics study contrast 'COLUMN:A vs B' --study "
                    f"{version.study})"
                )
            steps += [AnalysisStep(a.name, c) for c in contrasts]
        else:
            steps.append(AnalysisStep(a.name))
    return AnalysisPlan(version, steps, notes)


def run_step(
    ws: Workspace,
    ref: str,
    step: AnalysisStep,
    *,
    input_ref: str | None = None,
    study: str | None = None,
    run_id: str | None = None,
) -> AnalysisRun:
    """Run one step of :func:`analysis_plan` with the analysis's deployment parameters.

    ``input_ref`` is the result of the step it consumes (required then); a per-contrast
    analysis gets its step's contrast from the catalog as ``contrast=`` (a consumer's
    step carries its input's contrast as a label only).

    Raises
    ------
    MethodInputError, InputError
        When the data cannot be analysed this way (the same input fails again: no retry).
    """
    version, plugin, a = _lookup(ws, ref, study, step.analysis)
    kwargs: dict[str, Any] = dict(a.deployment_parameters)
    if a.per_contrast and step.contrast is not None:
        (c,) = [c for c in ws.catalog.contrasts(version.study) if c.name == step.contrast]
        kwargs["contrast"] = Contrast(c.column, c.group_a, c.group_b, dict(c.where or {}))
    if step.consumes is not None:
        if input_ref is None:
            raise MethodInputError(
                f"needs the result of {step.consumes}", place=step.key, rule="input"
            )
        target = input_ref
    else:
        target = version.ref
    outcome = a.run(ws, target, study=version.study, run_id=run_id, **kwargs)
    return AnalysisRun(plugin.name, a.name, a.result_type, outcome)
