"""Gene-set scoring: scanpy agreement, singscore against a rankdata oracle, planted signal."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse, stats

from resistomics.errors import MethodInputError
from resistomics.signatures import gene_means, log_normalize, score_genes, singscore

TOL = 1e-6


@pytest.fixture
def lognorm(planted) -> sparse.csr_matrix:
    """The planted counts, log-normalised (scanpy-equivalent, computed eagerly here)."""
    X = da.from_array(planted.counts, chunks=(-1, -1), asarray=False)
    return log_normalize(X).compute(scheduler="sync")


def _gene_sets(planted, rng_seed: int = 3) -> dict[str, list[str]]:
    rng = np.random.default_rng(rng_seed)
    names = planted.var_names
    return {
        "resistance_program": list(names[planted.program_genes]),
        "random_small": [*names[rng.choice(len(names), 5, replace=False)], "NOT_A_GENE"],
        "random_large": list(names[rng.choice(len(names), 60, replace=False)]),
    }


def _as_dask(matrix: sparse.csr_matrix, kind: str, row_chunk: int) -> da.Array:
    block = matrix if kind == "csr" else matrix.toarray()
    return da.from_array(block, chunks=(row_chunk, -1), asarray=False)


def _scanpy_scores(matrix, var_names, gene_sets, **kwargs) -> np.ndarray:
    adata = ad.AnnData(matrix.copy(), var=pd.DataFrame(index=var_names))
    for name, genes in gene_sets.items():
        sc.tl.score_genes(adata, genes, score_name=name, **kwargs)
    return adata.obs[list(gene_sets)].to_numpy()


@pytest.mark.parametrize("row_chunk", [480, 100, 33])
@pytest.mark.parametrize("kind", ["csr", "dense"])
def test_score_genes_matches_scanpy(planted, lognorm, kind, row_chunk):
    X = _as_dask(lognorm, kind, row_chunk)
    sets = _gene_sets(planted)
    means = gene_means(X).compute(scheduler="sync")
    result = score_genes(X, planted.var_names, sets, gene_means=means)
    scores = result.scores.compute(scheduler="sync")
    reference = lognorm if kind == "csr" else lognorm.toarray()
    expected = _scanpy_scores(reference, planted.var_names, sets)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOL)
    assert result.set_names == tuple(sets)
    assert result.missing["random_small"] == ("NOT_A_GENE",)
    assert len(result.genes["random_small"]) == 5
    assert not set(result.control_genes["resistance_program"]) & set(sets["resistance_program"])


@pytest.mark.parametrize(
    ("ctrl_size", "n_bins", "random_state"), [(10, 10, 1), (50, 25, 0), (100, 5, 42)]
)
def test_score_genes_options_match_scanpy(planted, lognorm, ctrl_size, n_bins, random_state):
    X = _as_dask(lognorm, "csr", 120)
    sets = _gene_sets(planted, rng_seed=11)
    result = score_genes(
        X,
        planted.var_names,
        sets,
        gene_means=gene_means(X).compute(scheduler="sync"),
        ctrl_size=ctrl_size,
        n_bins=n_bins,
        random_state=random_state,
    )
    expected = _scanpy_scores(
        lognorm,
        planted.var_names,
        sets,
        ctrl_size=ctrl_size,
        n_bins=n_bins,
        random_state=random_state,
    )
    np.testing.assert_allclose(result.scores.compute(scheduler="sync"), expected, atol=TOL)


def test_score_genes_ignores_nans_like_scanpy(planted, lognorm):
    dense = lognorm.toarray()
    dense[5, planted.program_genes[0]] = np.nan
    dense[9, 3] = np.nan
    X = da.from_array(dense, chunks=(100, -1))
    sets = _gene_sets(planted)
    means = gene_means(X).compute(scheduler="sync")
    np.testing.assert_allclose(means, np.nanmean(dense, axis=0, dtype=np.float64), rtol=1e-12)
    scores = score_genes(X, planted.var_names, sets, gene_means=means).scores
    expected = _scanpy_scores(dense, planted.var_names, sets)
    np.testing.assert_allclose(scores.compute(scheduler="sync"), expected, atol=TOL)


def test_gene_means_both_layouts(lognorm):
    expected = np.asarray(lognorm.astype(np.float64).mean(axis=0)).ravel()
    cell_major = da.from_array(lognorm, chunks=(70, -1), asarray=False)
    gene_major = da.from_array(lognorm.tocsc(), chunks=(-1, 64), asarray=False)
    np.testing.assert_allclose(gene_means(cell_major).compute(scheduler="sync"), expected)
    np.testing.assert_allclose(gene_means(gene_major).compute(scheduler="sync"), expected)


def _singscore_oracle(dense: np.ndarray, columns: list[int], ties: str) -> np.ndarray:
    """singscore straight from the definition, ranking every gene with scipy."""
    n_genes = dense.shape[1]
    ranks = stats.rankdata(dense, axis=1, method=ties).astype(np.float64)
    s = len(columns)
    mean_rank = ranks[:, columns].mean(axis=1)
    return (mean_rank - (s + 1) / 2) / (n_genes - s) - 0.5


@pytest.mark.parametrize("ties", ["average", "min"])
@pytest.mark.parametrize("kind", ["csr", "dense"])
@pytest.mark.parametrize("row_chunk", [480, 61])
def test_singscore_matches_rankdata_oracle(planted, lognorm, ties, kind, row_chunk):
    sets = _gene_sets(planted)
    result = singscore(_as_dask(lognorm, kind, row_chunk), planted.var_names, sets, ties=ties)
    scores = result.scores.compute(scheduler="sync")
    dense = lognorm.toarray()
    index = {g: i for i, g in enumerate(planted.var_names)}
    for k, name in enumerate(sets):
        columns = [index[g] for g in result.genes[name]]
        np.testing.assert_allclose(
            scores[:, k], _singscore_oracle(dense, columns, ties), rtol=0, atol=1e-9
        )
    assert result.missing["random_small"] == ("NOT_A_GENE",)


@pytest.mark.parametrize("ties", ["average", "min"])
def test_singscore_negative_values_and_explicit_zeros(ties):
    # z-scored data: negatives rank below the zero block; stored zeros join the block.
    rng = np.random.default_rng(5)
    dense = np.round(rng.normal(size=(40, 30)), 1)
    dense[rng.random(dense.shape) < 0.5] = 0.0
    matrix = sparse.csr_matrix(dense)
    matrix.data[::7] = 0.0  # explicit zeros
    names = np.array([f"g{i}" for i in range(30)])
    sets = {"a": list(names[:6]), "b": list(names[10:25])}
    X = da.from_array(matrix, chunks=(13, -1), asarray=False)
    scores = singscore(X, names, sets, ties=ties, center=False).scores.compute(scheduler="sync")
    for k, columns in enumerate([list(range(6)), list(range(10, 25))]):
        oracle = _singscore_oracle(matrix.toarray(), columns, ties) + 0.5
        np.testing.assert_allclose(scores[:, k], oracle, rtol=0, atol=1e-9)


def test_planted_program_scores_highest(planted, lognorm):
    X = _as_dask(lognorm, "csr", 100)
    sets = _gene_sets(planted)
    means = gene_means(X).compute(scheduler="sync")
    by_method = {
        "score_genes": score_genes(X, planted.var_names, sets, gene_means=means),
        "singscore": singscore(X, planted.var_names, sets),
    }
    program = list(sets).index("resistance_program")
    for method, result in by_method.items():
        scores = result.scores.compute(scheduler="sync")
        in_cells = scores[planted.program_cells]
        # In the program cells the planted set is the top-scoring set...
        assert (in_cells.argmax(axis=1) == program).mean() > 0.95, method
        # ...and it separates those cells from the rest.
        auc = stats.mannwhitneyu(
            in_cells[:, program], scores[~planted.program_cells, program]
        ).statistic / (planted.program_cells.sum() * (~planted.program_cells).sum())
        assert auc > 0.95, method


def test_scoring_stays_lazy(planted, lognorm, raise_if_dask_computes):
    X = _as_dask(lognorm, "csr", 100)
    means = np.asarray(lognorm.mean(axis=0)).ravel()
    with raise_if_dask_computes():
        lazy = [
            gene_means(X),
            score_genes(X, planted.var_names, _gene_sets(planted), gene_means=means).scores,
            singscore(X, planted.var_names, _gene_sets(planted)).scores,
        ]
    assert all(isinstance(x, da.Array) for x in lazy)
    assert lazy[1].shape == (X.shape[0], 3)


def test_scoring_rejects_bad_input(planted, lognorm):
    X = _as_dask(lognorm, "csr", 100)
    means = np.asarray(lognorm.mean(axis=0)).ravel()
    with pytest.raises(MethodInputError, match="none of its genes"):
        score_genes(X, planted.var_names, {"x": ["nope"]}, gene_means=means)
    with pytest.raises(MethodInputError, match="none of its genes"):
        singscore(X, planted.var_names, {"x": ["nope"]})
    with pytest.raises(MethodInputError, match="one value per gene"):
        score_genes(X, planted.var_names, {"x": ["gene1"]}, gene_means=means[:5])
    with pytest.raises(MethodInputError, match="cell-major"):
        singscore(
            da.from_array(lognorm.tocsc(), chunks=(-1, 50), asarray=False),
            planted.var_names,
            {"x": ["gene1"]},
        )
    names = planted.var_names.copy()
    names[1] = names[0]
    with pytest.raises(MethodInputError, match="unique"):
        singscore(X, names, {"x": ["gene1"]})
