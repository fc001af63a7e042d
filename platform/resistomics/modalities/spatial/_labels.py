"""Cell-type labels of a section: integer codes over ordered categories, and labels
from marker scoring at ingest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics.errors import InputError

__all__ = ["label_codes", "section_marker_labels"]


def label_codes(
    labels: pd.Categorical | pd.Series | Sequence[str] | np.ndarray,
    *,
    n_cells: int,
    section: str = "section",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(codes, categories)``: int64 codes ``0..k-1`` per cell and the category names.

    A categorical keeps its categories and their order (unused ones too, as squidpy's
    ``clust_map`` does); anything else becomes a categorical with sorted categories.

    Raises
    ------
    InputError
        ``labels-length`` (not one label per cell), ``missing-label`` (a NaN label) or
        ``two-labels`` (fewer than two categories).
    """
    if isinstance(labels, pd.Series):
        labels = labels.array
    cat = labels if isinstance(labels, pd.Categorical) else pd.Categorical(labels)
    if len(cat) != n_cells:
        raise InputError(
            section, "labels-length", f"{len(cat)} labels for {n_cells} cells; give one per cell"
        )
    codes = np.asarray(cat.codes, dtype=np.int64)
    if (codes < 0).any():
        bad = int(np.flatnonzero(codes < 0)[0])
        raise InputError(section, "missing-label", f"cell {bad} has no label (NaN)", row=str(bad))
    categories = tuple(str(c) for c in cat.categories)
    if len(categories) < 2:
        raise InputError(
            section, "two-labels", f"need at least 2 cell types; got {list(categories)}"
        )
    return codes, categories


def section_marker_labels(
    counts: sp.csr_matrix,
    var_names: Sequence[str],
    markers: Mapping[str, Sequence[str]],
    *,
    target_sum: float,
    min_score: float = 0.0,
    min_genes: int = 3,
    rows_per_block: int = 8192,
) -> tuple[pd.Categorical, np.ndarray]:
    """Marker-scoring labels of one section's cells, from its counts in memory.

    The counts are log-normalised (log1p(counts / total x ``target_sum``), as every
    spatial analysis reads the table) and each cell takes its best-scoring marker set
    (:func:`resistomics.signatures.marker_labels`: Tirosh et al. 2016 control-gene
    scores per type, ``unassigned`` at or below ``min_score``); the control-gene bins
    come from the section's own gene means, as scanpy's ``score_genes`` on the
    section's table would.
    Computed in this process (the section is already in memory), not on a cluster.

    Returns
    -------
    tuple
        The labels (a categorical over the scored types and ``unassigned``) and each
        cell's best score.

    Raises
    ------
    resistomics.errors.MethodInputError
        As :func:`~resistomics.signatures.marker_labels`.
    """
    import dask
    import dask.array as da

    from resistomics.signatures import gene_means, log_normalize, marker_labels

    n_genes = counts.shape[1]
    x = log_normalize(
        da.from_array(counts, chunks=(max(1, rows_per_block), n_genes), asarray=False),
        target_sum=target_sum,
    )
    (means,) = dask.compute(gene_means(x), scheduler="sync")
    result = marker_labels(
        x,
        list(var_names),
        markers,
        gene_means=np.asarray(means),
        min_score=min_score,
        min_genes=min_genes,
    )
    codes, best = dask.compute(result.codes, result.best, scheduler="sync")
    return result.labels(codes), np.asarray(best, dtype=np.float64)
