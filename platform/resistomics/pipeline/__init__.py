"""Orchestration-free pipeline steps: ingest, validate, publish, compute.

Flows (``flows/``) and the CLI call these; they hold no Prefect code.
"""

from resistomics.pipeline._clonal import clonal_evolution, recurrent_mutations
from resistomics.pipeline._housekeeping import (
    Finding,
    IntegrityCheck,
    check_integrity,
    collect_garbage,
)
from resistomics.pipeline._ingest import IngestOutcome, dataset_name_for, ingest, validate_version
from resistomics.pipeline._landing import in_flight, land, release_abandoned_claims
from resistomics.pipeline._results import ResultOutcome
from resistomics.pipeline._signatures import (
    Contrast,
    differential_expression,
    parse_contrast,
    score_signatures,
)
from resistomics.pipeline._variants import validate_variant_batches
from resistomics.pipeline._workspace import Workspace

__all__ = [
    "Contrast",
    "Finding",
    "IngestOutcome",
    "IntegrityCheck",
    "ResultOutcome",
    "Workspace",
    "check_integrity",
    "clonal_evolution",
    "collect_garbage",
    "dataset_name_for",
    "differential_expression",
    "in_flight",
    "ingest",
    "land",
    "parse_contrast",
    "recurrent_mutations",
    "release_abandoned_claims",
    "score_signatures",
    "validate_variant_batches",
    "validate_version",
]
