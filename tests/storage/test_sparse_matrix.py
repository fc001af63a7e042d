"""Round trips of the sparse-matrix store writer: both orientations, many block shapes.

The oracle is the input matrix itself: both layouts (cell-major ``X`` and the gene-major
copy), read lazily through :class:`SparseMatrixStore` and eagerly through
``anndata.read_zarr``, must give back the same values, bit for bit (SHA-256 of the dense
matrix), whatever the reader's block size, the tile sizes and the Zarr chunk length.
"""

from __future__ import annotations

import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from resistomics.storage import (
    DataRoot,
    SparseMatrixWriter,
    _sparse_matrix,
    open_sparse_matrix,
)

N_CELLS, N_GENES = 157, 83


def sha256(matrix: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float64).tobytes()).hexdigest()


def _matrix(dtype: str) -> np.ndarray:
    """Sparse-ish counts with empty rows and columns (the edge cases of CSR/CSC offsets)."""
    rng = np.random.default_rng(11)
    x = rng.poisson(0.6, (N_CELLS, N_GENES)).astype(np.float64)
    x[[0, 40, 41, 156], :] = 0  # empty cells, including the first and the last
    x[:, [0, 17, 82]] = 0  # empty genes, including the first and the last
    if dtype == "float64":  # values float32 cannot hold: the store must keep float64
        x[x > 0] += 0.1
    return x


def _write(tmp_path, x, *, orientation, block, rows_per_block, genes_per_block):  # type: ignore[no-untyped-def]
    root = DataRoot(str(tmp_path / "root"))
    path = root.path("datasets", "st", "m", "v-1")
    obs = pd.DataFrame(
        {"sample_id": [f"S{i % 3}" for i in range(N_CELLS)]},
        index=pd.Index([f"cell{i}" for i in range(N_CELLS)]),
    )
    var = pd.DataFrame(
        {"gene_symbol": [f"SYM{j}" for j in range(N_GENES)]},
        index=pd.Index([f"gene{j}" for j in range(N_GENES)]),
    )
    writer = SparseMatrixWriter(
        root,
        path,
        orientation=orientation,
        obs=obs if orientation == "genes" else None,
        var=var if orientation == "cells" else None,
        value_kind="counts",
        rows_per_block=rows_per_block,
        genes_per_block=genes_per_block,
        scratch=tmp_path,
    )
    if orientation == "cells":  # blocks of cells (10x, h5ad); alternate sparse and dense
        for k, a in enumerate(range(0, N_CELLS, block)):
            rows = x[a : a + block]
            writer.add(sp.csr_matrix(rows) if k % 2 == 0 else rows, obs.iloc[a : a + block])
    else:  # blocks of genes, genes x samples as a count table holds them
        for k, a in enumerate(range(0, N_GENES, block)):
            cols = x[:, a : a + block].T
            writer.add(cols if k % 2 == 0 else sp.csc_matrix(cols), var.iloc[a : a + block])
    summary = writer.close()
    return root, path, obs, var, summary


@pytest.mark.parametrize("orientation", ["cells", "genes"])
@pytest.mark.parametrize(
    ("block", "rows_per_block", "genes_per_block", "nnz_per_chunk", "dtype"),
    [
        (1, 16, 40, 200, "float32"),  # one row/gene per block, small Zarr chunks
        (10, 16, 7, 64, "float64"),
        (64, 50, 30, 1000, "float32"),
        (1000, 8192, 1024, 1 << 20, "float64"),  # one block holds everything (the defaults)
    ],
)
def test_writer_round_trip(
    tmp_path, monkeypatch, orientation, block, rows_per_block, genes_per_block, nnz_per_chunk, dtype
):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(_sparse_matrix, "NNZ_PER_CHUNK", nnz_per_chunk)
    x = _matrix(dtype)
    root, path, obs, var, summary = _write(
        tmp_path,
        x,
        orientation=orientation,
        block=block,
        rows_per_block=rows_per_block,
        genes_per_block=genes_per_block,
    )

    assert (summary.n_obs, summary.n_vars, summary.nnz) == (N_CELLS, N_GENES, np.count_nonzero(x))
    assert summary.dtype == dtype
    store = open_sparse_matrix(root, path)
    assert store.shape == x.shape
    assert store.dtype == np.dtype(dtype)
    assert list(store.obs.index) == list(obs.index)
    assert list(store.var.index) == list(var.index)
    assert list(store.var["gene_symbol"]) == list(var["gene_symbol"])
    np.testing.assert_allclose(store.obs["total_counts"], x.sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(store.var["n_cells_by_counts"], (x != 0).sum(axis=0))

    # small target_nnz: several dask blocks, including blocks of empty rows / columns
    cells = store.cells(target_nnz=400)
    genes = store.genes(target_nnz=400)
    assert cells.numblocks[0] > 3 and genes.numblocks[1] > 3
    cells_dense = cells.compute().toarray()
    genes_dense = genes.compute().toarray()
    np.testing.assert_array_equal(cells_dense, x)
    np.testing.assert_array_equal(genes_dense, x)
    blocks = list(store.iter_row_blocks(target_nnz=400))
    np.testing.assert_array_equal(sp.vstack(blocks).toarray(), x)

    adata = ad.read_zarr(f"{path}/expression.zarr")
    assert isinstance(adata.X, sp.csr_matrix)
    assert list(adata.obs_names) == list(obs.index)
    assert list(adata.var_names) == list(var.index)
    assert adata.uns["resistomics"]["value_kind"] == "counts"
    np.testing.assert_array_equal(adata.X.toarray(), x)

    want = sha256(x)
    assert sha256(cells_dense) == want
    assert sha256(genes_dense) == want
    assert sha256(adata.X.toarray()) == want


def test_writer_refuses_a_block_of_the_wrong_width(tmp_path):  # type: ignore[no-untyped-def]
    root = DataRoot(str(tmp_path / "root"))
    var = pd.DataFrame(index=pd.Index(["g1", "g2", "g3"]))
    writer = SparseMatrixWriter(
        root, root.path("v"), orientation="cells", var=var, value_kind="counts", scratch=tmp_path
    )
    with pytest.raises(ValueError, match=r"block shape \(2, 2\) != \(2, 3\)"):
        writer.add(np.ones((2, 2)), pd.DataFrame(index=pd.Index(["c1", "c2"])))
    writer.abort_scratch()
