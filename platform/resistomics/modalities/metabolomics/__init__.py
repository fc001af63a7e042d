"""Metabolomics modality: metabolite abundance tables as ``metabolomics.abundance``.

Readers (MetaboAnalyst-style tables, MS-DIAL / MZmine / XCMS feature tables, mzTab-M 2.0,
Metabolomics Workbench mwTab text and JSON), the validation summaries, normalisation,
differential abundance, metabolite-set enrichment, program scores and the name matcher
are imported on first use (numpy, pandas), as in the other modalities.
"""

from resistomics.modalities._plugin import lazy_exports
from resistomics.modalities.metabolomics._modality import (
    MetabolomicsModality,
    MetabolomicsOptions,
    MetabolomicsSettings,
)

_LAZY = {
    "FEATURE_COLUMNS": "_readers",
    "MetaboliteReadContext": "_readers",
    "MetaboliteTable": "_readers",
    "NameMap": "_names",
    "NameMatch": "_names",
    "match_names": "_names",
    "fry": "_enrichment",
    "over_representation": "_enrichment",
    "program_scores": "_scores",
    "rank_set_test": "_enrichment",
    "read_name_map": "_names",
    "read_metaboanalyst": "_readers",
    "read_feature_table": "_readers",
    "read_mztab_m": "_mztab",
    "read_mwtab": "_mwtab",
    "MISSING_REASONS": "_readers",
    "sample_types": "_readers",
    "summarize_metabolomics": "_summaries",
    "metabolomics_params": "_summaries",
    "normalize_abundance": "_analyses",
    "differential_abundance": "_analyses",
    "NormalizationSteps": "_normalization",
    "DEFAULT_PIPELINE": "_normalization",
    "da_table": "_da",
}

__all__ = [
    "DEFAULT_PIPELINE",
    "FEATURE_COLUMNS",
    "MISSING_REASONS",
    "MetaboliteReadContext",
    "MetaboliteTable",
    "MetabolomicsModality",
    "MetabolomicsOptions",
    "MetabolomicsSettings",
    "NameMap",
    "NameMatch",
    "NormalizationSteps",
    "da_table",
    "differential_abundance",
    "fry",
    "match_names",
    "metabolomics_params",
    "normalize_abundance",
    "over_representation",
    "program_scores",
    "rank_set_test",
    "read_feature_table",
    "read_metaboanalyst",
    "read_mwtab",
    "read_mztab_m",
    "read_name_map",
    "sample_types",
    "summarize_metabolomics",
]

__getattr__ = lazy_exports(__name__, _LAZY)
