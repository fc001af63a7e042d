"""Validation of call batches: the ``variants.calls`` summaries checked by GX."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from resistomics.dataset_types import dataset_type
from resistomics.modalities.variants._summaries import (
    DEFAULT_CONTIGS,
    DEFAULT_VAF_TOLERANCE,
    summarize_variant_batches,
    variant_params,
    variant_suites,
)
from resistomics.validation import ValidationReport, run_expectations

__all__ = ["validate_variant_batches"]


def validate_variant_batches(
    batches: Iterable[pd.DataFrame],
    *,
    registered_samples: Iterable[str],
    contigs: Iterable[str] = DEFAULT_CONTIGS,
    vaf_tolerance: float = DEFAULT_VAF_TOLERANCE,
) -> ValidationReport:
    """Summarise call batches (streamed once) and check them with the ``variants.calls``
    Great Expectations suites from ``schemas/variants``."""
    kind = dataset_type("variants.calls")
    return run_expectations(
        dataset_type=kind.name,
        dataset_type_version=kind.version,
        suites=variant_suites(),
        tables=summarize_variant_batches(batches, vaf_tolerance=vaf_tolerance),
        params=variant_params(registered_samples=registered_samples, contigs=contigs),
    )
