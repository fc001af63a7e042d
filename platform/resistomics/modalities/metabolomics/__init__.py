"""Metabolomics modality: metabolite abundance tables as ``metabolomics.abundance``.

Readers (MetaboAnalyst-style tables, MS-DIAL / MZmine / XCMS feature tables, mzTab-M 2.0,
Metabolomics Workbench mwTab text and JSON), the validation summaries, normalisation and
differential abundance are imported on first use (numpy, pandas), as in the other
modalities.
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
    "NormalizationSteps",
    "da_table",
    "differential_abundance",
    "metabolomics_params",
    "normalize_abundance",
    "read_feature_table",
    "read_metaboanalyst",
    "read_mwtab",
    "read_mztab_m",
    "sample_types",
    "summarize_metabolomics",
]

__getattr__ = lazy_exports(__name__, _LAZY)
