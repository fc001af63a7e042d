"""A published expression store is a working AnnData store for scanpy."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from resistomics.storage import DataRoot, SparseMatrixWriter


def test_read_zarr_then_scanpy_preprocessing(tmp_path: Path) -> None:
    root = DataRoot(str(tmp_path))
    X = sp.random(400, 120, density=0.1, format="csr", random_state=1)
    X.data = np.round(X.data * 20) + 1
    var = pd.DataFrame(index=[f"g{i}" for i in range(120)])
    w = SparseMatrixWriter(
        root, root.path("v"), orientation="cells", var=var, value_kind="counts", genes_per_block=50
    )
    w.add(X, pd.DataFrame({"sample_id": "s1"}, index=[f"c{i}" for i in range(400)]))
    w.close()
    adata = ad.read_zarr(tmp_path / "v" / "expression.zarr")
    # scipy/scanpy refuse CSR matrices whose indices and indptr dtypes differ
    assert adata.X.indices.dtype == adata.X.indptr.dtype
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    expected = np.log1p(X.toarray() / X.sum(axis=1).A * 1e4)
    np.testing.assert_allclose(adata.X.toarray(), expected, rtol=1e-5, atol=1e-6)
    assert list(adata.obs["sample_id"].unique()) == ["s1"]


def test_stored_lognorm_gene_means_equal_the_lazy_computation(tmp_path: Path) -> None:
    from resistomics.signatures import gene_means, log_normalize
    from resistomics.storage import open_sparse_matrix

    root = DataRoot(str(tmp_path))
    X = sp.random(700, 90, density=0.2, format="csr", random_state=2)
    X.data = np.round(X.data * 30) + 1
    w = SparseMatrixWriter(
        root,
        root.path("v"),
        orientation="cells",
        var=pd.DataFrame(index=[f"g{i}" for i in range(90)]),
        value_kind="counts",
        genes_per_block=32,
        lognorm_target_sum=1e4,
    )
    for s in range(0, 700, 300):
        w.add(
            X[s : s + 300],
            pd.DataFrame({"sample_id": "s"}, index=[f"c{i}" for i in range(s, min(s + 300, 700))]),
        )
    w.close()
    store = open_sparse_matrix(root, root.path("v"))
    lazy = gene_means(
        log_normalize(
            store.cells(), target_sum=1e4, size_factors=store.obs["total_counts"].to_numpy()
        )
    ).compute()
    np.testing.assert_allclose(store.var["mean_lognorm"].to_numpy(), lazy, rtol=1e-12)
    assert float(store.metadata["lognorm_target_sum"]) == 1e4
