"""Per-cell gene-set scores: Seurat/scanpy control-gene scoring and singscore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask.array as da
import numba
import numpy as np
import pandas as pd
from scipy import sparse, stats

from resistomics.errors import MethodInputError
from resistomics.signatures._layout import require_cell_major, require_matrix, sum_over_row_blocks

__all__ = ["GeneSetScores", "gene_means", "score_genes", "singscore"]


@dataclass(frozen=True)
class GeneSetScores:
    """Lazy per-cell scores for several gene sets, with the genes that went into them.

    Attributes
    ----------
    method
        ``"score_genes"`` or ``"singscore"``.
    set_names
        Names of the gene sets, in the column order of :attr:`scores`.
    genes
        For each set, the genes that were found in ``var_names`` and scored.
    missing
        For each set, the genes that were not in ``var_names`` and were ignored.
    control_genes
        For each set, the expression-matched control genes (``score_genes`` only; empty
        tuples for ``singscore``).
    scores
        Lazy ``(n_cells, n_sets)`` float64 dask array, chunked like the rows of ``X``.
    """

    method: str
    set_names: tuple[str, ...]
    genes: Mapping[str, tuple[str, ...]]
    missing: Mapping[str, tuple[str, ...]]
    control_genes: Mapping[str, tuple[str, ...]]
    scores: da.Array


# --------------------------------------------------------------------------------------
# gene means
# --------------------------------------------------------------------------------------


def gene_means(X: da.Array) -> da.Array:
    """Mean of every gene over all cells, ignoring NaNs, lazily.

    Equals scanpy's ``_nan_means(X, axis=0)`` (the per-gene average used to bin genes
    in ``sc.tl.score_genes``): sums are accumulated in float64 and NaN entries are left
    out of both the sum and the count.

    Parameters
    ----------
    X
        ``(n_cells, n_genes)`` dask array in either layout; blocks scipy sparse or dense.

    Returns
    -------
    dask.array.Array
        ``(n_genes,)`` float64.
    """
    require_matrix(X, what="gene_means")
    sums_nans = sum_over_row_blocks(X, _block_column_sums_and_nans, n_out=2)
    return sums_nans[0] / (X.shape[0] - sums_nans[1])


def _block_column_sums_and_nans(block: Any) -> np.ndarray:
    if sparse.issparse(block):
        coo = block.tocoo()
        nan = np.isnan(coo.data)
        if not nan.any():
            sums = np.asarray(block.sum(axis=0, dtype=np.float64)).ravel()
            return np.vstack([sums, np.zeros_like(sums)])
        data = np.where(nan, 0.0, coo.data.astype(np.float64))
        sums = np.bincount(coo.col, weights=data, minlength=block.shape[1])
        nans = np.bincount(coo.col, weights=nan.astype(np.float64), minlength=block.shape[1])
        return np.vstack([sums, nans])
    dense = np.asarray(block)
    return np.vstack(
        [np.nansum(dense, axis=0, dtype=np.float64), np.isnan(dense).sum(axis=0, dtype=np.float64)]
    )


# --------------------------------------------------------------------------------------
# score_genes (Tirosh et al. 2016 / Seurat AddModuleScore / scanpy sc.tl.score_genes)
# --------------------------------------------------------------------------------------


def score_genes(
    X: da.Array,
    var_names: Sequence[str] | np.ndarray | pd.Index,
    gene_sets: Mapping[str, Sequence[str]],
    *,
    gene_means: np.ndarray,
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int | None = 0,
) -> GeneSetScores:
    """Score gene sets per cell against expression-matched control genes.

    The method of Tirosh et al. (*Science* 352:189, 2016; "MITF and AXL expression
    programs and cell scores" in the methods), as implemented by Seurat's
    ``AddModuleScore`` and by scanpy's ``sc.tl.score_genes``. All genes are ranked by
    mean expression and cut into about ``n_bins`` bins of equal size; for each bin that holds a
    gene of the set, ``ctrl_size`` genes are drawn at random from that bin, and the
    set's own genes are removed from the draw. The score of a cell is

    ``mean(x[c, set genes]) - mean(x[c, control genes])``

    (NaN entries left out of each mean).

    This reproduces scanpy 1.12.4's ``sc.tl.score_genes(adata, genes, ctrl_size=...,
    n_bins=..., random_state=...)`` called once per set with the default
    ``ctrl_as_ref=True`` and ``gene_pool=None``: the same binning (``rank(method="min")
    // round(n_genes / (n_bins - 1))``), the same random draws (a legacy
    ``RandomState(random_state)`` per set, consumed bin by bin as pandas'
    ``Series.sample`` does after scanpy seeds numpy's global generator), and the same
    handling of genes absent from ``var_names`` (ignored, and listed in
    :attr:`GeneSetScores.missing`). Unlike scanpy, the global numpy random state is
    left untouched. One caveat: for a *dense float32* matrix scanpy bins genes by
    float32 means, while :func:`gene_means` gives float64 ones, so two genes whose means
    agree to float32 precision and straddle a bin edge could be binned differently
    (sparse matrices use float64 means in both).

    Control genes are chosen here, eagerly, from the concrete ``gene_means`` (small
    metadata); the scores for all sets are then one lazy pass over ``X``: one sparse
    matrix product per row block with a ``genes x sets`` weight matrix.

    Parameters
    ----------
    X
        Cell-major ``(n_cells, n_genes)`` dask array of log-normalised expression (CSR
        or dense blocks, one chunk along genes).
    var_names
        Gene names, one per column of ``X``; must be unique.
    gene_sets
        Set name -> gene names.
    gene_means
        Concrete per-gene means of ``X`` (:func:`gene_means`, computed in an earlier
        step), used to bin genes by expression.
    ctrl_size
        Number of control genes drawn per expression bin.
    n_bins
        Number of expression bins.
    random_state
        Seed of the control-gene draw (each set is drawn with a fresh generator seeded
        with it, as separate scanpy calls would be). ``None`` draws unseeded.

    Returns
    -------
    GeneSetScores
        Set names, genes used, control genes and the lazy ``(n_cells, n_sets)`` scores.

    Raises
    ------
    resistomics.errors.MethodInputError
        If ``X`` is not cell-major, names or means do not match ``X``, a set has no gene
        in ``var_names``, a set gene has a non-finite mean, or no control gene is found.
    """
    require_cell_major(X, what="score_genes")
    names = _var_index(var_names, X)
    means = np.asarray(gene_means, dtype=np.float64)
    if means.shape != (X.shape[1],):
        raise MethodInputError(
            f"gene_means must have one value per gene ({X.shape[1]}); got shape {means.shape}"
        )
    if n_bins < 2 or ctrl_size < 1:
        raise MethodInputError(f"need n_bins >= 2 and ctrl_size >= 1; got {n_bins}, {ctrl_size}")

    # Expression bins over the whole gene pool, as scanpy builds them (index of dtype
    # "string", non-finite means dropped). They do not depend on the set.
    obs_avg = pd.Series(means, index=names.astype("string"))
    obs_avg = obs_avg[np.isfinite(obs_avg)]
    n_items = int(np.round(len(obs_avg) / (n_bins - 1)))
    if n_items == 0:
        raise MethodInputError(
            f"{len(obs_avg)} genes are too few for {n_bins} expression bins; lower n_bins"
        )
    obs_cut = obs_avg.rank(method="min") // n_items

    set_names = tuple(str(s) for s in gene_sets)
    used: dict[str, tuple[str, ...]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    controls: dict[str, tuple[str, ...]] = {}
    set_counts = np.zeros((X.shape[1], len(set_names)))
    ctrl_counts = np.zeros((X.shape[1], len(set_names)))
    for k, set_name in enumerate(set_names):
        genes = gene_sets[set_name]
        gene_list = pd.Index([genes] if isinstance(genes, str) else list(genes))
        missing[set_name] = tuple(str(g) for g in gene_list.difference(names, sort=False))
        gene_list = gene_list.intersection(names)
        if len(gene_list) == 0:
            raise MethodInputError(f"gene set {set_name!r}: none of its genes is in var_names")
        not_binned = gene_list.difference(obs_cut.index, sort=False)
        if len(not_binned) > 0:
            raise MethodInputError(
                f"gene set {set_name!r}: genes with a non-finite mean cannot be scored: "
                f"{list(not_binned)[:10]}"
            )
        control = _draw_control_genes(
            gene_list, obs_cut, ctrl_size=ctrl_size, random_state=random_state
        )
        if len(control) == 0:
            raise MethodInputError(f"gene set {set_name!r}: no control genes found in any bin")
        used[set_name] = tuple(str(g) for g in gene_list)
        controls[set_name] = tuple(str(g) for g in control)
        # Multiplicities (np.add.at) so that repeated columns weigh as in scanpy's
        # column subset.
        np.add.at(set_counts[:, k], names.get_indexer(gene_list), 1.0)
        np.add.at(ctrl_counts[:, k], names.get_indexer(control), 1.0)

    n_set = set_counts.sum(axis=0)
    n_ctrl = ctrl_counts.sum(axis=0)
    weights = set_counts / n_set - ctrl_counts / n_ctrl
    # The weight matrices enter the graph once, as single-chunk dask arrays.
    gene_chunks = (X.chunks[1], (len(set_names),))
    scores = da.blockwise(
        _score_block,
        "ik",
        X,
        "ij",
        da.from_array(weights, chunks=gene_chunks),
        "jk",
        da.from_array(set_counts, chunks=gene_chunks),
        "jk",
        da.from_array(ctrl_counts, chunks=gene_chunks),
        "jk",
        concatenate=False,
        dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
        n_set=n_set,
        n_ctrl=n_ctrl,
    )
    return GeneSetScores(
        method="score_genes",
        set_names=set_names,
        genes=used,
        missing=missing,
        control_genes=controls,
        scores=scores,
    )


def _var_index(var_names: Sequence[str] | np.ndarray | pd.Index, X: da.Array) -> pd.Index:
    names = pd.Index(np.asarray(var_names).astype(str))
    if len(names) != X.shape[1]:
        raise MethodInputError(
            f"var_names has {len(names)} names but the matrix has {X.shape[1]} genes"
        )
    if not names.is_unique:
        dup = names[names.duplicated()].unique()[:10].tolist()
        raise MethodInputError(f"var_names must be unique; repeated: {dup}")
    return names


def _draw_control_genes(
    gene_list: pd.Index,
    obs_cut: pd.Series,
    *,
    ctrl_size: int,
    random_state: int | None,
) -> pd.Index:
    """scanpy's ``_score_genes_bins`` with ``ctrl_as_ref=True``, on a private generator."""
    rng = np.random.RandomState(random_state)
    control = pd.Index([], dtype="string")
    for cut in np.unique(obs_cut.loc[gene_list]):
        r_genes = obs_cut[obs_cut == cut].index
        if ctrl_size < len(r_genes):
            r_genes = r_genes.to_series().sample(ctrl_size, random_state=rng).index
        r_genes = r_genes.difference(gene_list)
        control = control.union(r_genes)
    return control


def _joined(parts: Any, axis: int) -> Any:
    """The blocks blockwise hands over along a contracted axis, as one block.

    Cell-major matrices have one chunk along genes, so this is nearly always a list of
    one block, returned as is: ``concatenate=True`` would copy every CSR block through
    ``sparse.hstack`` even then, which costs as much as the product itself.
    """
    if not isinstance(parts, list):
        return parts
    if len(parts) == 1:
        return parts[0]
    if sparse.issparse(parts[0]):
        return (sparse.hstack if axis == 1 else sparse.vstack)(parts, format="csr")
    return np.concatenate([np.asarray(p) for p in parts], axis=axis)


def _score_block(
    block: Any,
    weights: np.ndarray,
    set_counts: np.ndarray,
    ctrl_counts: np.ndarray,
    *,
    n_set: np.ndarray,
    n_ctrl: np.ndarray,
) -> np.ndarray:
    block = _joined(block, 1)
    weights, set_counts, ctrl_counts = (_joined(w, 0) for w in (weights, set_counts, ctrl_counts))
    values = block.data if sparse.issparse(block) else np.asarray(block)
    if not np.isnan(values).any():
        return np.asarray(block @ weights, dtype=np.float64)
    # NaN-aware path (scanpy takes nanmeans): leave NaNs out of sums and counts.
    if sparse.issparse(block):
        nan = block.copy()
        nan.data = np.isnan(block.data).astype(np.float64)
        clean = block.copy()
        clean.data = np.where(np.isnan(block.data), 0.0, block.data)
    else:
        nan = np.isnan(values).astype(np.float64)
        clean = np.where(np.isnan(values), 0.0, values)
    set_mean = np.asarray(clean @ set_counts) / (n_set - np.asarray(nan @ set_counts))
    ctrl_mean = np.asarray(clean @ ctrl_counts) / (n_ctrl - np.asarray(nan @ ctrl_counts))
    return set_mean - ctrl_mean


# --------------------------------------------------------------------------------------
# singscore (Foroutan et al. 2018)
# --------------------------------------------------------------------------------------


def singscore(
    X: da.Array,
    var_names: Sequence[str] | np.ndarray | pd.Index,
    gene_sets: Mapping[str, Sequence[str]],
    *,
    ties: Literal["average", "min"] = "average",
    center: bool = True,
) -> GeneSetScores:
    """Rank-based single-sample score of each gene set in each cell (singscore).

    Foroutan et al., "Single sample scoring of molecular phenotypes", *BMC
    Bioinformatics* 19:404 (2018), unidirectional form (an up-regulated set only).
    Within each cell all ``N`` genes are ranked by expression, ascending, so the most
    expressed gene has rank ``N``. For a set of ``s`` genes found in ``var_names`` with
    mean rank ``R`` in the cell, the score is

    ``S = (R - (s + 1) / 2) / (N - s) - 0.5``  (``- 0.5`` only when ``center``)

    i.e. the mean rank rescaled by its theoretical minimum ``(s + 1) / 2`` and maximum
    ``(2N - s + 1) / 2`` to [0, 1] and then centred to [-0.5, 0.5], as the singscore R
    package's ``simpleScore(..., centerScore = TRUE)`` does. Two deliberate differences
    from the R package: ties are averaged by default (its ``rankGenes`` defaults to
    ``"min"``; pass ``ties="min"`` for that), and ``s`` counts only the genes present in
    ``var_names`` (the R package takes the bounds from the set size before dropping
    missing genes).

    With sparse rows the unstored zeros of a cell form one tie block, so only its stored
    non-zeros are sorted (a cell's ``nnz``, not ``N``, sets the cost); negative values,
    if any, rank below that block. The score needs one sparse product per row block.

    Parameters
    ----------
    X
        Cell-major ``(n_cells, n_genes)`` dask array (CSR or dense blocks); counts or
        log-normalised values (ranks are the same).
    var_names
        Gene names, one per column of ``X``; must be unique.
    gene_sets
        Set name -> gene names. Repeated genes count once; absent ones are ignored and
        listed in :attr:`GeneSetScores.missing`.
    ties
        How tied expression values are ranked: ``"average"`` or ``"min"``.
    center
        Subtract 0.5 so that scores lie in [-0.5, 0.5].

    Returns
    -------
    GeneSetScores
        With the lazy ``(n_cells, n_sets)`` scores.

    Raises
    ------
    resistomics.errors.MethodInputError
        If ``X`` is not cell-major, names do not match, a set has no gene in
        ``var_names``, or a set covers every gene (the score is undefined).
    """
    require_cell_major(X, what="singscore")
    if ties not in ("average", "min"):
        raise MethodInputError(f"ties must be 'average' or 'min'; got {ties!r}")
    names = _var_index(var_names, X)
    n_genes = X.shape[1]
    set_names = tuple(str(s) for s in gene_sets)
    used: dict[str, tuple[str, ...]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    membership = np.zeros((n_genes, len(set_names)))
    for k, set_name in enumerate(set_names):
        genes = gene_sets[set_name]
        unique_genes = list(dict.fromkeys([genes] if isinstance(genes, str) else genes))
        pos = names.get_indexer(pd.Index(unique_genes))
        missing[set_name] = tuple(str(g) for g, p in zip(unique_genes, pos, strict=True) if p < 0)
        present = pos[pos >= 0]
        if len(present) == 0:
            raise MethodInputError(f"gene set {set_name!r}: none of its genes is in var_names")
        if len(present) >= n_genes:
            raise MethodInputError(f"gene set {set_name!r} covers every gene; nothing to rank")
        used[set_name] = tuple(str(names[p]) for p in present)
        membership[present, k] = 1.0
    set_sizes = membership.sum(axis=0)
    scores = da.blockwise(
        _singscore_block,
        "ik",
        X,
        "ij",
        da.from_array(membership, chunks=(X.chunks[1], (len(set_names),))),
        "jk",
        concatenate=False,
        dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
        set_sizes=set_sizes,
        use_min=ties == "min",
        center=center,
    )
    return GeneSetScores(
        method="singscore",
        set_names=set_names,
        genes=used,
        missing=missing,
        control_genes={name: () for name in set_names},
        scores=scores,
    )


def _singscore_block(
    block: Any, membership: np.ndarray, *, set_sizes: np.ndarray, use_min: bool, center: bool
) -> np.ndarray:
    block = _joined(block, 1)
    membership = _joined(membership, 0)
    n_genes = block.shape[1]
    if sparse.issparse(block):
        csr = block.tocsr()
        delta, zero_rank = _csr_row_ranks(csr.data, csr.indptr, n_genes, use_min)
        # rank = zero_rank for unstored entries; stored ones carry (rank - zero_rank).
        shifted = sparse.csr_matrix((delta, csr.indices, csr.indptr), shape=csr.shape)
        rank_sums = np.asarray(shifted @ membership) + zero_rank[:, None] * set_sizes[None, :]
    else:
        ranks = stats.rankdata(np.asarray(block), method="min" if use_min else "average", axis=1)
        # rankdata keeps float32 for float32 input; sum the (exact) ranks in float64.
        rank_sums = ranks.astype(np.float64) @ membership
    mean_rank = rank_sums / set_sizes
    score = (mean_rank - (set_sizes + 1) / 2) / (n_genes - set_sizes)
    return score - 0.5 if center else score


@numba.njit(nogil=True, cache=True)
def _csr_row_ranks(
    data: np.ndarray, indptr: np.ndarray, n_cols: int, use_min: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Within-row ranks of a CSR matrix's stored values, relative to the zero block.

    Returns ``delta`` (aligned with ``data``: rank minus the rank of a zero in that row;
    0 for stored zeros) and ``zero_rank`` (per row). Zeros, stored or not, are one tie
    block placed between the negative and the positive values.
    """
    n_rows = indptr.shape[0] - 1
    delta = np.zeros(data.shape[0], dtype=np.float64)
    zero_rank = np.empty(n_rows, dtype=np.float64)
    for i in range(n_rows):
        start = indptr[i]
        end = indptr[i + 1]
        vals = data[start:end]
        order = np.argsort(vals)
        n_neg = 0
        n_nonzero = 0
        for k in range(end - start):
            v = vals[k]
            if v != 0:
                n_nonzero += 1
                if v < 0:
                    n_neg += 1
        n_zero = n_cols - n_nonzero
        zr = n_neg + 1.0 if use_min else n_neg + (n_zero + 1.0) / 2.0
        zero_rank[i] = zr
        placed = 0  # non-zero values already ranked (in ascending order)
        k = 0
        m = end - start
        while k < m:
            v = vals[order[k]]
            if v == 0:
                k += 1
                continue
            t = 1
            while k + t < m and vals[order[k + t]] == v:
                t += 1
            first = placed + 1.0 + (n_zero if v > 0 else 0)
            rank = first if use_min else first + (t - 1) / 2.0
            for q in range(k, k + t):
                delta[start + order[q]] = rank - zr
            placed += t
            k += t
    return delta, zero_rank
