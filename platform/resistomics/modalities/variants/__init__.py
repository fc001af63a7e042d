"""Variants modality: somatic variant calls from VCF and MAF as ``variants.calls`` tables.

The readers, summaries and analyses (:func:`clonal_evolution`,
:func:`recurrent_mutations`) are imported on first use (pandas, pyarrow, cyvcf2, scipy),
as in the expression modality.
"""

from resistomics.modalities._plugin import lazy_exports
from resistomics.modalities.variants._modality import VariantsModality

_LAZY = {
    "read_maf": "_readers",
    "read_vcf": "_readers",
    "CANONICAL_COLUMNS": "_source",
    "VariantReadContext": "_source",
    "VariantSource": "_source",
    "DEFAULT_CONTIGS": "_summaries",
    "DEFAULT_VAF_TOLERANCE": "_summaries",
    "summarize_variant_batches": "_summaries",
    "variant_params": "_summaries",
    "variant_suites": "_summaries",
    "validate_variant_batches": "_validation",
    "clonal_evolution": "_analyses",
    "recurrent_mutations": "_analyses",
}

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


__getattr__ = lazy_exports(__name__, _LAZY)
