"""Library-size normalisation and log transform, lazily and in either layout."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from scipy import sparse

from resistomics.errors import MethodInputError
from resistomics.signatures._layout import (
    cell_vector,
    meta_like,
    require_matrix,
)

__all__ = ["library_sizes", "log_normalize"]


def library_sizes(X: da.Array) -> da.Array:
    """Total counts per cell, lazily.

    Works for the cell-major matrix (one task per row block, no communication) and for the
    gene-major matrix (each gene block contributes partial sums that are added up).

    Parameters
    ----------
    X
        ``(n_cells, n_genes)`` dask array of counts; blocks are scipy sparse or dense.

    Returns
    -------
    dask.array.Array
        ``(n_cells,)`` float64 library sizes, chunked like the rows of ``X``.
    """
    require_matrix(X, what="library_sizes")
    # Row sums of each block, as a column; summing the columns over the gene blocks
    # gives the library size in either layout.
    partial = da.map_blocks(
        _block_row_sums,
        X,
        chunks=(X.chunks[0], (1,) * X.numblocks[1]),
        dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
    )
    return partial.sum(axis=1, dtype=np.float64)


def _block_row_sums(block: Any) -> np.ndarray:
    if sparse.issparse(block):
        return np.asarray(block.sum(axis=1, dtype=np.float64)).reshape(-1, 1)
    return np.asarray(block).sum(axis=1, dtype=np.float64).reshape(-1, 1)


def log_normalize(
    X: da.Array,
    *,
    target_sum: float = 1e4,
    size_factors: np.ndarray | da.Array | None = None,
) -> da.Array:
    """Scale every cell to ``target_sum`` total counts and apply ``log1p``, lazily.

    This is scanpy's ``sc.pp.normalize_total(adata, target_sum=target_sum)`` followed by
    ``sc.pp.log1p(adata)`` (counts-per-``target_sum`` then natural log; the shifted
    logarithm reviewed by Ahlmann-Eltze & Huber, *Nat. Methods* 20:665, 2023), done block
    by block in the layout the matrix arrives in:

    ``x_norm[c, g] = log1p(x[c, g] / (L[c] / target_sum))``

    where ``L[c]`` is the library size of cell ``c``. Cells with zero counts are left at
    zero (scanpy divides them by one). The arithmetic follows scanpy's order and dtype:
    integer and float32 input gives float32 output, float64 input gives float64, so the
    result equals scanpy's to float rounding (tested within 1e-6).

    Parameters
    ----------
    X
        ``(n_cells, n_genes)`` dask array of raw counts. Either layout: cell-major
        (chunked by rows; CSR or dense blocks) or gene-major (chunked by columns; CSC or
        dense blocks). Sparsity is preserved.
    target_sum
        Total counts every cell is scaled to.
    size_factors
        Per-cell library sizes ``L`` (total counts per cell, the divisor before scaling
        to ``target_sum``), as a numpy array or a lazy dask array such as
        :func:`library_sizes` of the cell-major copy. When omitted they are computed
        lazily from ``X`` itself; for a gene-major ``X`` that means an extra reduction
        across all gene blocks, so pass the sizes when the cell-major copy is at hand.

    Returns
    -------
    dask.array.Array
        Lazy matrix of the same shape, chunks and block kind as ``X``.

    Raises
    ------
    resistomics.errors.MethodInputError
        If ``X`` is not a 2-d dask array, ``target_sum`` is not positive, or
        ``size_factors`` has the wrong length.
    """
    require_matrix(X, what="log_normalize")
    if not target_sum > 0:
        raise MethodInputError(f"target_sum must be positive; got {target_sum}")
    out_dtype = np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)
    sizes = library_sizes(X) if size_factors is None else size_factors
    sizes_da = cell_vector(sizes, X, name="size_factors")
    return da.blockwise(
        _normalize_block,
        "ij",
        X,
        "ij",
        sizes_da,
        "i",
        dtype=out_dtype,
        meta=meta_like(X, out_dtype),
        target_sum=float(target_sum),
        out_dtype=out_dtype,
    )


def _normalize_block(
    block: Any, sizes: np.ndarray, *, target_sum: float, out_dtype: np.dtype
) -> Any:
    # Same operations, order and precision as scanpy's normalize_total: the library size
    # is cast to the output dtype, divided by target_sum, zeros replaced by one, and the
    # counts divided by it; then log1p.
    scale = np.asarray(sizes).astype(out_dtype) / target_sum
    scale = scale + (scale == 0)
    if sparse.issparse(block):
        if block.format == "csr":
            data = block.data.astype(out_dtype) / np.repeat(scale, np.diff(block.indptr))
            return sparse.csr_matrix(
                (np.log1p(data), block.indices, block.indptr), shape=block.shape
            )
        block = block.tocsc()
        data = block.data.astype(out_dtype) / scale[block.indices]
        return sparse.csc_matrix((np.log1p(data), block.indices, block.indptr), shape=block.shape)
    dense = np.asarray(block).astype(out_dtype) / scale[:, None]
    return np.log1p(dense)
