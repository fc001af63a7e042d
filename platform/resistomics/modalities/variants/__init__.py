"""Variants modality: somatic variant calls from VCF and MAF as ``variants.calls`` tables."""

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
    "read_maf",
    "read_vcf",
    "summarize_variant_batches",
    "variant_params",
    "variant_suites",
]
