"""Orchestration-free pipeline steps: the one ingest and analyse template, housekeeping.

Flows (``flows/``) and the CLI call these; they hold no Prefect code and name no
modality: every modality-specific step comes from the registry
(:mod:`resistomics.modalities`).
"""

from resistomics.contrasts import Contrast, parse_contrast
from resistomics.pipeline._analyse import (
    AnalysisPlan,
    AnalysisRun,
    AnalysisStep,
    analyse,
    analysis_plan,
    default_analyses,
    run_step,
)
from resistomics.pipeline._housekeeping import (
    Finding,
    IntegrityCheck,
    check_integrity,
    collect_garbage,
)
from resistomics.pipeline._ingest import (
    IngestOutcome,
    dataset_name_for,
    ingest,
    ingest_timeout_error,
    modality_of_landed,
    published_by_run,
    quarantine_unread,
    validate_version,
)
from resistomics.pipeline._landing import in_flight, land, land_remote, release_abandoned_claims
from resistomics.publishing import ResultOutcome, Workspace

__all__ = [
    "AnalysisPlan",
    "AnalysisRun",
    "AnalysisStep",
    "Contrast",
    "Finding",
    "IngestOutcome",
    "IntegrityCheck",
    "ResultOutcome",
    "Workspace",
    "analyse",
    "analysis_plan",
    "check_integrity",
    "collect_garbage",
    "dataset_name_for",
    "default_analyses",
    "in_flight",
    "ingest",
    "ingest_timeout_error",
    "land",
    "land_remote",
    "modality_of_landed",
    "parse_contrast",
    "published_by_run",
    "quarantine_unread",
    "release_abandoned_claims",
    "run_step",
    "validate_version",
]
