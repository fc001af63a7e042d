"""log_normalize and library_sizes against scanpy's normalize_total + log1p."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
import scanpy as sc
from scipy import sparse

from resistomics.errors import MethodInputError
from resistomics.signatures import library_sizes, log_normalize

TOL = 1e-6


def _scanpy_reference(counts: sparse.csr_matrix, target_sum: float) -> np.ndarray:
    adata = ad.AnnData(counts.copy())
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    return adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)


def _dense(x: object) -> np.ndarray:
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


@pytest.mark.parametrize("row_chunk", [480, 97, 50])
@pytest.mark.parametrize("kind", ["csr", "dense"])
@pytest.mark.parametrize("target_sum", [1e4, 1e6])
def test_cell_major_matches_scanpy(planted, kind, row_chunk, target_sum):
    counts = planted.counts
    block = counts if kind == "csr" else counts.toarray()
    X = da.from_array(block, chunks=(row_chunk, -1), asarray=False)
    expected = _scanpy_reference(counts if kind == "csr" else counts.toarray(), target_sum)
    result = log_normalize(X, target_sum=target_sum).compute(scheduler="sync")
    assert sparse.issparse(result) == (kind == "csr")
    assert result.dtype == np.float32
    np.testing.assert_allclose(_dense(result), expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("gene_chunk", [300, 64])
@pytest.mark.parametrize("kind", ["csc", "dense"])
@pytest.mark.parametrize("sizes_from", ["self", "cell_major", "numpy"])
def test_gene_major_matches_scanpy(planted, kind, gene_chunk, sizes_from):
    counts = planted.counts
    block = counts.tocsc() if kind == "csc" else counts.toarray()
    Xg = da.from_array(block, chunks=(-1, gene_chunk), asarray=False)
    sizes = {
        "self": None,
        "cell_major": library_sizes(da.from_array(counts, chunks=(100, -1), asarray=False)),
        "numpy": np.asarray(counts.sum(axis=1)).ravel(),
    }[sizes_from]
    result = log_normalize(Xg, size_factors=sizes).compute(scheduler="sync")
    assert sparse.issparse(result) == (kind == "csc")
    np.testing.assert_allclose(_dense(result), _scanpy_reference(counts, 1e4), rtol=0, atol=TOL)


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_dtypes_follow_scanpy(planted, dtype):
    counts = planted.counts.astype(dtype)
    X = da.from_array(counts, chunks=(120, -1), asarray=False)
    result = log_normalize(X).compute(scheduler="sync")
    expected = _scanpy_reference(counts, 1e4)
    assert result.dtype == (np.float64 if dtype == np.float64 else np.float32)
    np.testing.assert_allclose(result.toarray(), expected, rtol=0, atol=TOL)


def test_cells_without_counts_stay_zero(planted):
    counts = planted.counts.tolil()
    counts[[3, 17], :] = 0
    counts = counts.tocsr()
    counts.eliminate_zeros()
    X = da.from_array(counts, chunks=(100, -1), asarray=False)
    result = log_normalize(X).compute(scheduler="sync").toarray()
    assert not np.isnan(result).any()
    assert (result[[3, 17]] == 0).all()
    with pytest.warns(UserWarning, match="zero counts"):
        expected = _scanpy_reference(counts, 1e4)
    np.testing.assert_allclose(result, expected, rtol=0, atol=TOL)


def test_library_sizes_both_layouts(planted):
    counts = planted.counts
    expected = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    cell_major = da.from_array(counts, chunks=(77, -1), asarray=False)
    gene_major = da.from_array(counts.tocsc(), chunks=(-1, 40), asarray=False)
    np.testing.assert_allclose(library_sizes(cell_major).compute(scheduler="sync"), expected)
    np.testing.assert_allclose(library_sizes(gene_major).compute(scheduler="sync"), expected)


def test_stays_lazy(planted, raise_if_dask_computes):
    X = da.from_array(planted.counts, chunks=(100, -1), asarray=False)
    Xg = da.from_array(planted.counts.tocsc(), chunks=(-1, 50), asarray=False)
    with raise_if_dask_computes():
        lazy = [log_normalize(X), log_normalize(Xg, size_factors=library_sizes(X))]
    assert all(isinstance(x, da.Array) for x in lazy)


def test_rejects_bad_input(planted):
    X = da.from_array(planted.counts, chunks=(100, -1), asarray=False)
    with pytest.raises(MethodInputError, match="one value per cell"):
        log_normalize(X, size_factors=np.ones(3))
    with pytest.raises(MethodInputError, match="target_sum"):
        log_normalize(X, target_sum=0)
    with pytest.raises(MethodInputError, match="dask array"):
        log_normalize(planted.counts)  # type: ignore[arg-type]
