"""Methylation modality: per-sample CpG methylation calls as ``methylation.counts``.

Readers (Bismark coverage and reports, modkit bedMethyl, MethylDackel bedGraph, DSS
text), the streaming k-way merge into ``feature-matrix@1``, the validation summaries
and DMR calling (``call_dmrs``) are imported on first use (numpy, pandas), as in the
other modalities.
"""

from resistomics.modalities._plugin import lazy_exports
from resistomics.modalities.methylation._modality import (
    MethylationModality,
    MethylationOptions,
    MethylationSettings,
)

_LAZY = {
    "FORMATS": "_readers",
    "MethylationReadContext": "_readers",
    "read_methylation": "_readers",
    "sample_name": "_readers",
    "merge_sites": "_merge",
    "contig_rank": "_merge",
    "DEFAULT_CONTIGS": "_summaries",
    "summarize_methylation": "_summaries",
    "read_chrom_sizes": "_summaries",
    "methylation_params": "_summaries",
    "simulate_methylation_cohort": "_simulate",
    "RegionCounts": "_regions",
    "RegionSet": "_regions",
    "read_bed": "_regions",
    "region_counts": "_regions",
    "welch_region_test": "_regions",
    "marker_calls": "_markers",
    "marker_changes": "_markers",
    "methylation_markers": "_analyses",
    "methylation_regions": "_analyses",
    "MultiFactorDesign": "_multifactor",
    "MultiFactorFit": "_multifactor",
    "design_matrix": "_multifactor",
    "dml_fit_multifactor": "_multifactor",
    "dml_test_multifactor": "_multifactor",
    "call_dmrs": "_dmr",
    "DSS_COLUMNS": "_dmr",
}

__all__ = [
    "DEFAULT_CONTIGS",
    "DSS_COLUMNS",
    "FORMATS",
    "MethylationModality",
    "MethylationOptions",
    "MethylationReadContext",
    "MethylationSettings",
    "MultiFactorDesign",
    "MultiFactorFit",
    "RegionCounts",
    "RegionSet",
    "call_dmrs",
    "contig_rank",
    "design_matrix",
    "dml_fit_multifactor",
    "dml_test_multifactor",
    "marker_calls",
    "marker_changes",
    "merge_sites",
    "methylation_markers",
    "methylation_params",
    "methylation_regions",
    "read_bed",
    "read_chrom_sizes",
    "read_methylation",
    "region_counts",
    "sample_name",
    "simulate_methylation_cohort",
    "summarize_methylation",
    "welch_region_test",
]


__getattr__ = lazy_exports(__name__, _LAZY)
