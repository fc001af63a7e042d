"""Neighbourhood enrichment: how often cell types neighbour each other, against chance.

The observed count ``C[a, b]`` is the number of graph edges from a cell of type ``a`` to a
cell of type ``b`` (edges of the connectivity *pattern*; weights are ignored, as in
squidpy). The null distribution permutes the labels over the cells of the section
``n_perms`` times; the z-score is ``(C - mean_perm) / std_perm`` (population standard
deviation), as squidpy ``nhood_enrichment`` computes it.

The permutation stream is squidpy's (``n_jobs=1``): one ``numpy.random.RandomState(seed)``
shuffling the label vector in place, each permutation continuing from the previous one.
With the same seed, the same graph and the same labels the null counts, and so the
z-scores, are identical to squidpy's. The observed counts are one sparse product
``X.T @ A @ X`` (``X`` the one-hot label matrix, ``A`` the edge pattern); the permuted ones
are drawn in batches (``batch_cells`` labels at a time bound the memory) and counted by a
compiled pass over the CSR pattern (numba, releases the GIL), checked in the tests against
the sparse product and a numpy ``bincount`` over edge codes.

References
----------
Palla G. et al. (2022) Squidpy: a scalable framework for spatial omics analysis.
Nat Methods 19:171-178 (``squidpy.gr.nhood_enrichment``; source ``squidpy/gr/_nhood.py``,
1.8.3). Schapiro D. et al. (2017) histoCAT: analysis of cell phenotypes and interactions in
multiplex image cytometry data. Nat Methods 14:873-876 (the permutation test of
neighbourhoods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics.errors import InputError
from resistomics.modalities.spatial._labels import label_codes

__all__ = ["NeighbourhoodEnrichment", "neighbour_counts", "nhood_enrichment"]


@dataclass(frozen=True)
class NeighbourhoodEnrichment:
    """Observed neighbour counts between cell types and their permutation z-scores.

    Attributes
    ----------
    categories
        Cell types, in the order of the rows and columns.
    counts
        ``(k, k)`` int64: edges from a cell of the row type to one of the column type.
    zscore
        ``(k, k)`` float64, ``(counts - perm_mean) / perm_std``; NaN where the null has
        no spread (a type absent from the section).
    perm_mean, perm_std
        ``(k, k)`` mean and population standard deviation of the permuted counts.
    n_perms, seed
        The permutations drawn and the seed of their stream.
    """

    categories: tuple[str, ...]
    counts: np.ndarray
    zscore: np.ndarray
    perm_mean: np.ndarray
    perm_std: np.ndarray
    n_perms: int
    seed: int

    def frame(self) -> pd.DataFrame:
        """Long table: one row per (type, neighbour type) with count and z-score."""
        k = len(self.categories)
        return pd.DataFrame(
            {
                "cell_type": np.repeat(self.categories, k),
                "neighbour_type": np.tile(self.categories, k),
                "count": self.counts.ravel(),
                "zscore": self.zscore.ravel(),
                "perm_mean": self.perm_mean.ravel(),
                "perm_std": self.perm_std.ravel(),
            }
        )


def _pattern(adjacency: sp.spmatrix | sp.sparray, n_cells: int, section: str) -> sp.csr_matrix:
    adj = sp.csr_matrix(adjacency)
    if adj.shape != (n_cells, n_cells):
        raise InputError(
            section,
            "adjacency-shape",
            f"adjacency is {adj.shape[0]} x {adj.shape[1]} but there are {n_cells} cells",
        )
    adj.eliminate_zeros()
    return sp.csr_matrix(
        (np.ones(adj.nnz, dtype=np.float64), adj.indices, adj.indptr), shape=adj.shape
    )


def neighbour_counts(
    adjacency: sp.spmatrix | sp.sparray,
    labels: pd.Categorical | pd.Series | Sequence[str] | np.ndarray,
    *,
    section: str = "section",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Observed neighbour counts ``X.T @ A @ X`` between cell types, with the categories."""
    n = adjacency.shape[0]
    codes, categories = label_codes(labels, n_cells=n, section=section)
    return _observed(_pattern(adjacency, n, section), codes, len(categories)), categories


def _observed(pattern: sp.csr_matrix, codes: np.ndarray, k: int) -> np.ndarray:
    n = len(codes)
    onehot = sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, k))
    counts = (onehot.T @ pattern @ onehot).toarray()
    return np.rint(counts).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _permuted_counts(
    perms: np.ndarray, indptr: np.ndarray, indices: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    # out[b, a, c] += edges from a cell labelled a to one labelled c under labelling b;
    # one pass over the CSR pattern per labelling, no temporary the size of the edges
    for b in range(perms.shape[0]):
        lab = perms[b]
        for i in range(perms.shape[1]):
            a = lab[i]
            for p in range(indptr[i], indptr[i + 1]):
                out[b, a, lab[indices[p]]] += 1.0


def nhood_enrichment(
    adjacency: sp.spmatrix | sp.sparray,
    labels: pd.Categorical | pd.Series | Sequence[str] | np.ndarray,
    *,
    n_perms: int = 1000,
    seed: int = 0,
    batch_cells: int = 1 << 22,
    section: str = "section",
) -> NeighbourhoodEnrichment:
    """Neighbourhood enrichment z-scores of cell types in one section (squidpy parity).

    Parameters
    ----------
    adjacency
        ``(n_cells, n_cells)`` sparse connectivities (e.g.
        :attr:`SpatialGraph.connectivities`); only the pattern of non-zeros counts.
    labels
        One cell type per cell (see :func:`label_codes` for the category order).
    n_perms
        Label permutations for the null (squidpy's default 1000).
    seed
        Seed of the permutation stream; the same seed reproduces squidpy
        ``nhood_enrichment(seed=seed, n_jobs=1)``.
    batch_cells
        Permuted labels held at once (permutations x cells, 8 bytes each).
    section
        Name used in error messages.

    Returns
    -------
    NeighbourhoodEnrichment

    Raises
    ------
    InputError
        Labels not one per cell, NaN labels, fewer than two types, an adjacency of the
        wrong shape, or ``n_perms < 1`` (``n-perms``).

    References
    ----------
    Palla et al. (2022) Nat Methods 19:171-178; Schapiro et al. (2017) Nat Methods
    14:873-876.
    """
    if n_perms < 1:
        raise InputError(section, "n-perms", f"n_perms must be >= 1; got {n_perms}")
    n = adjacency.shape[0]
    codes, categories = label_codes(labels, n_cells=n, section=section)
    k = len(categories)
    pattern = _pattern(adjacency, n, section)
    counts = _observed(pattern, codes, k)

    indptr = pattern.indptr.astype(np.int64)
    indices = pattern.indices.astype(np.int64)
    per_batch = max(1, min(n_perms, batch_cells // max(1, n)))
    rs = np.random.RandomState(seed)
    current = codes.copy()
    null = np.zeros((n_perms, k, k), dtype=np.float64)
    batch = np.empty((per_batch, n), dtype=np.int64)
    for start in range(0, n_perms, per_batch):
        size = min(per_batch, n_perms - start)
        for b in range(size):
            rs.shuffle(current)  # cumulative, as squidpy's helper shuffles in place
            batch[b] = current
        _permuted_counts(batch[:size], indptr, indices, null[start : start + size])

    mean = null.mean(axis=0)
    std = null.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = (counts - mean) / std
    return NeighbourhoodEnrichment(
        categories=categories,
        counts=counts,
        zscore=zscore,
        perm_mean=mean,
        perm_std=std,
        n_perms=n_perms,
        seed=seed,
    )
