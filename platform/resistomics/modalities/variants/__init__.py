"""Variants modality: somatic variant calls from VCF and MAF as ``variants.calls`` tables.

The analyses (:func:`clonal_evolution`, :func:`recurrent_mutations`) are imported on first
use, as in the expression modality.
"""

from typing import Any

from resistomics.modalities.variants._modality import VariantsModality
from resistomics.modalities.variants._readers import read_maf, read_vcf
from resistomics.modalities.variants._source import (
    CANONICAL_COLUMNS,
    VariantReadContext,
    VariantSource,
)
from resistomics.modalities.variants._summaries import (
    DEFAULT_CONTIGS,
    DEFAULT_VAF_TOLERANCE,
    summarize_variant_batches,
    variant_params,
    variant_suites,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "DEFAULT_CONTIGS",
    "DEFAULT_VAF_TOLERANCE",
    "VariantReadContext",
    "VariantSource",
    "VariantsModality",
    "clonal_evolution",
    "read_maf",
    "read_vcf",
    "recurrent_mutations",
    "summarize_variant_batches",
    "validate_variant_batches",
    "variant_params",
    "variant_suites",
]


def __getattr__(name: str) -> Any:
    if name == "validate_variant_batches":
        from resistomics.modalities.variants import _validation

        return _validation.validate_variant_batches
    if name in ("clonal_evolution", "recurrent_mutations"):
        from resistomics.modalities.variants import _analyses

        return getattr(_analyses, name)
    raise AttributeError(name)
