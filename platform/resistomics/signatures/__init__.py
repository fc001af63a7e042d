"""Resistance-signature computations on dask collections.

Pure computation: functions take dask arrays (and small pandas metadata) and return lazy
results; they never read or write storage, never import Prefect and never call
``.compute()``. A flow task builds the graph with these functions and computes once.

Layouts (both ``(n_cells, n_genes)``):

* cell-major, chunked by rows, CSR or dense blocks: :func:`log_normalize`,
  :func:`library_sizes`, :func:`gene_means`, :func:`score_genes`, :func:`singscore`,
  :func:`marker_labels` (cell types from marker scoring), :func:`pseudobulk`;
* gene-major, chunked by columns, CSC or dense blocks: :func:`rank_genes_two_groups`
  (and :func:`log_normalize`, :func:`library_sizes`, :func:`gene_means`).

Eager on small tables: :func:`deseq2_test` (bulk samples x genes),
:func:`resistant_fraction_shift` (one score per cell) and :func:`recurrent_genes`
(cohort-level mutated genes).

Variant tables (pandas, or dask partitioned by subject, lazy out):
:func:`variant_changes` (per-variant change from baseline) and :func:`cluster_clones`
(clones from prevalence trajectories).
"""

from resistomics.signatures._clonal import (
    ClonalStructure,
    cancer_cell_fraction,
    cluster_clones,
    recurrent_genes,
    variant_changes,
)
from resistomics.signatures._de import (
    FOLD_CHANGE_RULES,
    DifferentialExpression,
    Pseudobulk,
    ValueScale,
    benjamini_hochberg,
    deseq2_test,
    detect_scale,
    pseudobulk,
    rank_genes_two_groups,
    value_range,
)
from resistomics.signatures._fraction import FractionShift, resistant_fraction_shift
from resistomics.signatures._marker_labels import UNASSIGNED, MarkerLabels, marker_labels
from resistomics.signatures._normalize import library_sizes, log_normalize
from resistomics.signatures._scoring import GeneSetScores, gene_means, score_genes, singscore

__all__ = [
    "FOLD_CHANGE_RULES",
    "UNASSIGNED",
    "ClonalStructure",
    "DifferentialExpression",
    "FractionShift",
    "GeneSetScores",
    "MarkerLabels",
    "Pseudobulk",
    "ValueScale",
    "benjamini_hochberg",
    "cancer_cell_fraction",
    "cluster_clones",
    "deseq2_test",
    "detect_scale",
    "gene_means",
    "library_sizes",
    "log_normalize",
    "marker_labels",
    "pseudobulk",
    "rank_genes_two_groups",
    "recurrent_genes",
    "resistant_fraction_shift",
    "score_genes",
    "singscore",
    "value_range",
    "variant_changes",
]
