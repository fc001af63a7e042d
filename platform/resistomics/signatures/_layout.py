"""Orientation checks and block plumbing shared by the signature computations.

A matrix reaches this package in one of two layouts, both of shape ``(n_cells, n_genes)``:

* **cell-major**: chunked along cells only (one chunk spans all genes); blocks are CSR or
  dense. Cell-wise computations (library size, scoring, pseudobulk) stream these blocks.
* **gene-major**: chunked along genes only (one chunk spans all cells); blocks are CSC or
  dense. Gene-wise computations (differential expression) stream these blocks.

The helpers here never compute anything: they only shape dask graphs.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from scipy import sparse

from resistomics.errors import MethodInputError


def require_cell_major(X: da.Array, *, what: str) -> None:
    """Raise unless ``X`` has a single chunk along genes (axis 1)."""
    require_matrix(X, what=what)
    if X.numblocks[1] != 1:
        raise MethodInputError(
            f"{what} needs the cell-major matrix (chunked along cells only, one chunk "
            f"spanning all {X.shape[1]} genes); got chunks of {X.chunksize}. "
            "Open the cell-major copy of the dataset or rechunk with X.rechunk({1: -1})."
        )


def require_gene_major(X: da.Array, *, what: str) -> None:
    """Raise unless ``X`` has a single chunk along cells (axis 0)."""
    require_matrix(X, what=what)
    if X.numblocks[0] != 1:
        raise MethodInputError(
            f"{what} needs the gene-major matrix (chunked along genes only, one chunk "
            f"spanning all {X.shape[0]} cells); got chunks of {X.chunksize}. "
            "Open the gene-major copy of the dataset or rechunk with X.rechunk({0: -1})."
        )


def require_matrix(X: Any, *, what: str) -> None:
    """Raise unless ``X`` is a 2-d dask array."""
    if not isinstance(X, da.Array):
        raise MethodInputError(f"{what} takes a dask array; got {type(X).__name__}")
    if X.ndim != 2:
        raise MethodInputError(f"{what} takes a 2-d (cells x genes) matrix; got {X.ndim}-d")


def meta_like(X: da.Array, dtype: np.dtype) -> Any:
    """An empty block of the same kind (format) as ``X``'s blocks, with ``dtype``."""
    if sparse.issparse(X._meta):
        return X._meta.astype(dtype)
    return np.empty((0, 0), dtype=dtype)


def cell_vector(values: np.ndarray | da.Array, X: da.Array, *, name: str) -> da.Array:
    """A per-cell vector as a dask array chunked like the rows of ``X``."""
    if values.shape != (X.shape[0],):
        raise MethodInputError(
            f"{name} must have one value per cell ({X.shape[0]}); got shape {values.shape}"
        )
    if isinstance(values, da.Array):
        return values.rechunk((X.chunks[0],))
    return da.from_array(np.asarray(values), chunks=(X.chunks[0],))


def sum_over_row_blocks(
    X: da.Array,
    block_fn: Any,
    *args: Any,
    n_out: int,
    dtype: Any = np.float64,
    **kwargs: Any,
) -> da.Array:
    """Apply ``block_fn`` to every block and sum the results over the row blocks.

    ``block_fn(block, *arg_blocks, **kwargs)`` must return a dense array of shape
    ``(n_out, block.shape[1])``. Each extra positional argument is a per-cell dask vector
    (see :func:`cell_vector`) whose matching piece is passed alongside the block. The
    result is a lazy ``(n_out, n_genes)`` array chunked like the columns of ``X``.
    """
    pairs: list[Any] = [X, "ij"]
    for a in args:
        pairs += [a, "i"]
    partial = da.blockwise(
        block_fn,
        "ij",
        *pairs,
        adjust_chunks={"i": lambda _: n_out},
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
        **kwargs,
    )
    n_row_blocks = X.numblocks[0]
    stacked = partial.reshape((n_row_blocks, n_out, X.shape[1]), merge_chunks=False)
    return stacked.sum(axis=0, dtype=dtype)
