"""Validation of variant calls: the variants modality's summaries checked by GX.

Lives in the pipeline because it joins two sibling layers (modalities and validation),
which the import contracts keep from importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from resistomics.modalities import dataset_type
from resistomics.modalities.variants import (
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
