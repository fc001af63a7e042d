"""Accessibility modality (ATAC-seq): fragments, peaks and their statistics.

Readers of peak matrices, peak tables, fragments and peak sets (``_readers``,
``_fragments``); per-cell QC (``_qc``), tile and peak counts (``_tiles``), gene
activity (``_gene_activity``) and chromVAR-style deviations (``_chromvar``).

The readers are imported on first use (they pull in pandas, scipy and pysam, which the
registry and the CLI's argument checks must not wait for).
"""

from resistomics.modalities._plugin import lazy_exports
from resistomics.modalities.accessibility._modality import (
    AccessibilityModality,
    AccessibilityOptions,
    AccessibilitySettings,
)

_LAZY = {
    "read_peak_matrix": "_readers",
    "read_peak_table": "_readers",
    "read_narrowpeak": "_readers",
    "read_fragments": "_fragments",
    "AccessibilityReadContext": "_source",
    "PeakMatrixSource": "_source",
    "Genome": "_peaks",
    "read_peak_bed": "_peaks",
    "summarize_counts": "_summaries",
}

__all__ = [
    "AccessibilityModality",
    "AccessibilityOptions",
    "AccessibilityReadContext",
    "AccessibilitySettings",
    "Genome",
    "PeakMatrixSource",
    "read_fragments",
    "read_narrowpeak",
    "read_peak_bed",
    "read_peak_matrix",
    "read_peak_table",
    "summarize_counts",
]


__getattr__ = lazy_exports(__name__, _LAZY)
