"""Orchestration-free pipeline steps: ingest, validate, publish, compute.

Flows (``flows/``) and the CLI call these; they hold no Prefect code.
"""

from resistomics.pipeline._ingest import IngestOutcome, dataset_name_for, ingest, validate_version
from resistomics.pipeline._workspace import Workspace

__all__ = ["IngestOutcome", "Workspace", "dataset_name_for", "ingest", "validate_version"]
