"""Validation: Dask-computed summaries checked by Great Expectations suites."""

from resistomics.validation._gx import ExpectationOutcome, ValidationReport, run_expectations
from resistomics.validation._parts import PART_EXPECTATIONS, summarize_parts
from resistomics.validation._summaries import MatrixSummaries, summarize_matrix

__all__ = [
    "PART_EXPECTATIONS",
    "ExpectationOutcome",
    "MatrixSummaries",
    "ValidationReport",
    "run_expectations",
    "summarize_matrix",
    "summarize_parts",
]
