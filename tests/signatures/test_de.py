"""Two-arm differential expression: scanpy agreement, planted genes, pseudobulk, DESeq2."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from distributed import Client, LocalCluster
from scipy import sparse
from statsmodels.stats.multitest import multipletests

from resistomics.errors import MethodInputError
from resistomics.signatures import (
    benjamini_hochberg,
    deseq2_test,
    log_normalize,
    pseudobulk,
    rank_genes_two_groups,
)

# scanpy stores scores and log fold changes as float32: compare relative to the value.
TOL = 1e-6
SCANPY_COLUMNS = {
    "score": "scores",
    "pval": "pvals",
    "pval_adj": "pvals_adj",
    "logfoldchange": "logfoldchanges",
}
CASES = [("t-test", False), ("wilcoxon", False), ("wilcoxon", True)]


@pytest.fixture
def lognorm(planted) -> sparse.csc_matrix:
    X = da.from_array(planted.counts, chunks=(-1, -1), asarray=False)
    return log_normalize(X).compute(scheduler="sync").tocsc()


def _scanpy_table(matrix, obs, var_names, method, tie_correct) -> pd.DataFrame:
    adata = ad.AnnData(matrix, obs=obs.copy(), var=pd.DataFrame(index=var_names))
    # scanpy divides 0 by 0 for genes without variation (and then maps NaN to 0 / 1).
    with np.errstate(divide="ignore", invalid="ignore"):
        sc.tl.rank_genes_groups(
            adata,
            "arm",
            groups=["resistant"],
            reference="sensitive",
            method=method,
            tie_correct=tie_correct,
        )
    table = sc.get.rank_genes_groups_df(adata, group="resistant").set_index("names")
    return table.loc[list(var_names)]


def _assert_matches_scanpy(result, expected: pd.DataFrame) -> None:
    table = result.table.compute(scheduler="sync")
    for ours, theirs in SCANPY_COLUMNS.items():
        np.testing.assert_allclose(
            table[:, result.columns.index(ours)],
            expected[theirs].to_numpy(dtype=np.float64),
            rtol=TOL,
            atol=TOL,
            err_msg=ours,
        )


@pytest.mark.parametrize(("method", "tie_correct"), CASES)
@pytest.mark.parametrize("gene_chunk", [300, 64, 7])
def test_sparse_matches_scanpy(planted, obs_frame, lognorm, method, tie_correct, gene_chunk):
    Xg = da.from_array(lognorm, chunks=(-1, gene_chunk), asarray=False)
    result = rank_genes_two_groups(
        Xg,
        obs_frame["arm"],
        group_a="resistant",
        group_b="sensitive",
        method=method,
        tie_correct=tie_correct,
    )
    expected = _scanpy_table(lognorm.tocsr(), obs_frame, planted.var_names, method, tie_correct)
    _assert_matches_scanpy(result, expected)


@pytest.mark.parametrize(("method", "tie_correct"), CASES)
def test_dense_matches_scanpy(planted, obs_frame, lognorm, method, tie_correct):
    dense = lognorm.toarray()
    Xg = da.from_array(dense, chunks=(-1, 50))
    result = rank_genes_two_groups(
        Xg,
        planted.arm,
        group_a="resistant",
        group_b="sensitive",
        method=method,
        tie_correct=tie_correct,
    )
    _assert_matches_scanpy(
        result, _scanpy_table(dense, obs_frame, planted.var_names, method, tie_correct)
    )


@pytest.mark.parametrize(("method", "tie_correct"), CASES)
def test_negative_values_and_explicit_zeros(method, tie_correct):
    # Scaled data (negatives) with stored zeros and heavy ties: compare with scanpy's
    # dense full ranking.
    rng = np.random.default_rng(9)
    dense = np.round(rng.normal(size=(90, 25)), 1).astype(np.float32)
    dense[rng.random(dense.shape) < 0.4] = 0
    dense[:, 3] = 0  # a gene with no signal at all: score 0, p = 1
    matrix = sparse.csc_matrix(dense)
    matrix.data[::5] = 0  # explicit zeros
    arm = rng.choice(["resistant", "sensitive", "other"], size=90)
    obs = pd.DataFrame({"arm": pd.Categorical(arm)}, index=[f"c{i}" for i in range(90)])
    names = np.array([f"g{i}" for i in range(25)])
    result = rank_genes_two_groups(
        da.from_array(matrix, chunks=(-1, 10), asarray=False),
        arm,
        group_a="resistant",
        group_b="sensitive",
        method=method,
        tie_correct=tie_correct,
    )
    expected = _scanpy_table(matrix.toarray(), obs, names, method, tie_correct)
    _assert_matches_scanpy(result, expected)
    table = result.table.compute(scheduler="sync")
    assert table[3, result.columns.index("score")] == 0
    assert table[3, result.columns.index("pval")] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("method", "tie_correct"), CASES[1:])
def test_wilcoxon_long_columns(dtype, method, tie_correct):
    # Arms with >= 256 non-zeros per gene take the radix-sort path; negatives included.
    rng = np.random.default_rng(12)
    dense = rng.normal(size=(1500, 12)).astype(dtype)
    dense[:, :6] = np.round(dense[:, :6], 2)  # ties among the non-zeros
    dense[rng.random(dense.shape) < 0.3] = 0
    dense[:, 7] = np.abs(dense[:, 7])  # a non-negative gene
    arm = rng.choice(["resistant", "sensitive", "other"], size=1500, p=[0.45, 0.45, 0.1])
    obs = pd.DataFrame({"arm": pd.Categorical(arm)}, index=[f"c{i}" for i in range(1500)])
    names = np.array([f"g{i}" for i in range(12)])
    Xg = da.from_array(sparse.csc_matrix(dense), chunks=(-1, 5), asarray=False)
    result = rank_genes_two_groups(
        Xg, arm, group_a="resistant", group_b="sensitive", method=method, tie_correct=tie_correct
    )
    _assert_matches_scanpy(result, _scanpy_table(dense, obs, names, method, tie_correct))


def test_means_fractions_and_dataframe(planted, lognorm):
    Xg = da.from_array(lognorm, chunks=(-1, 64), asarray=False)
    result = rank_genes_two_groups(
        Xg,
        planted.arm,
        group_a="resistant",
        group_b="sensitive",
        method="wilcoxon",
        var_names=planted.var_names,
    )
    frame = result.to_dask_dataframe().compute(scheduler="sync")
    assert list(frame.columns) == list(result.columns)
    assert list(frame.index) == list(planted.var_names)
    dense = lognorm.toarray()
    in_a = planted.arm == "resistant"
    in_b = planted.arm == "sensitive"
    np.testing.assert_allclose(frame["mean_a"], dense[in_a].mean(axis=0, dtype=np.float64))
    np.testing.assert_allclose(frame["mean_b"], dense[in_b].mean(axis=0, dtype=np.float64))
    np.testing.assert_allclose(frame["pct_nz_a"], (dense[in_a] != 0).mean(axis=0))
    np.testing.assert_allclose(frame["pct_nz_b"], (dense[in_b] != 0).mean(axis=0))
    assert (result.n_a, result.n_b) == (in_a.sum(), in_b.sum())


def test_planted_genes_top_the_list(planted, lognorm):
    Xg = da.from_array(lognorm, chunks=(-1, 64), asarray=False)
    n_program = len(planted.program_genes)
    for method in ("t-test", "wilcoxon"):
        result = rank_genes_two_groups(
            Xg, planted.arm, group_a="resistant", group_b="sensitive", method=method
        )
        table = result.table.compute(scheduler="sync")
        top = np.argsort(-table[:, result.columns.index("score")])[:n_program]
        assert set(top) == set(planted.program_genes), method
        assert (table[planted.program_genes, result.columns.index("pval_adj")] < 1e-6).all()
        assert (table[planted.program_genes, result.columns.index("logfoldchange")] > 1.5).all()


def test_benjamini_hochberg_matches_statsmodels():
    rng = np.random.default_rng(2)
    pvals = np.concatenate([rng.random(500), rng.random(50) * 1e-4, [np.nan, 1.0, 0.0]])
    pvals[[3, 4]] = pvals[5]  # ties
    clean = np.where(np.isnan(pvals), 1.0, pvals)
    expected = multipletests(clean, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(pvals), expected, rtol=1e-12, atol=0)


def test_de_stays_lazy(planted, lognorm, raise_if_dask_computes):
    Xg = da.from_array(lognorm, chunks=(-1, 64), asarray=False)
    X = da.from_array(planted.counts, chunks=(100, -1), asarray=False)
    with raise_if_dask_computes():
        result = rank_genes_two_groups(
            Xg,
            planted.arm,
            group_a="resistant",
            group_b="sensitive",
            method="wilcoxon",
            var_names=planted.var_names,
        )
        frame = result.to_dask_dataframe()
        bulk = pseudobulk(X, planted.arm)
    assert result.table.shape == (lognorm.shape[1], len(result.columns))
    assert list(frame.columns) == list(result.columns)
    assert bulk.counts.shape == (3, lognorm.shape[1])


def test_de_rejects_bad_input(planted, lognorm):
    Xg = da.from_array(lognorm, chunks=(-1, 64), asarray=False)
    arms = dict(group_a="resistant", group_b="sensitive")
    with pytest.raises(MethodInputError, match="gene-major"):
        rank_genes_two_groups(
            da.from_array(lognorm.tocsr(), chunks=(100, -1), asarray=False), planted.arm, **arms
        )
    with pytest.raises(MethodInputError, match="at least two"):
        rank_genes_two_groups(Xg, planted.arm, group_a="resistant", group_b="nobody")
    with pytest.raises(MethodInputError, match="entries"):
        rank_genes_two_groups(Xg, planted.arm[:10], **arms)
    with pytest.raises(MethodInputError, match="method"):
        rank_genes_two_groups(Xg, planted.arm, method="logreg", **arms)  # type: ignore[arg-type]


def test_labels_with_missing_values_are_ignored(planted, lognorm):
    labels = pd.Series(planted.arm, dtype=object)
    labels[labels == "other"] = np.nan
    Xg = da.from_array(lognorm, chunks=(-1, 100), asarray=False)
    with_nan = rank_genes_two_groups(Xg, labels, group_a="resistant", group_b="sensitive")
    with_other = rank_genes_two_groups(Xg, planted.arm, group_a="resistant", group_b="sensitive")
    np.testing.assert_array_equal(
        with_nan.table.compute(scheduler="sync"), with_other.table.compute(scheduler="sync")
    )


def test_on_a_distributed_cluster(planted, lognorm):
    # The numba kernels and the MethodInputError raised inside a task travel to workers.
    Xg = da.from_array(lognorm, chunks=(-1, 64), asarray=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        result = rank_genes_two_groups(
            Xg, planted.arm, group_a="resistant", group_b="sensitive", method="wilcoxon"
        )
        distributed_table = result.table.compute()
        with pytest.raises(MethodInputError, match="raw counts"):
            pseudobulk(
                da.from_array(lognorm.tocsr(), chunks=(100, -1), asarray=False), planted.arm
            ).counts.compute()
    np.testing.assert_array_equal(distributed_table, result.table.compute(scheduler="sync"))


# --------------------------------------------------------------------------------------
# pseudobulk + DESeq2
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csr", "dense"])
def test_pseudobulk_sums_counts_per_sample(planted, kind):
    rng = np.random.default_rng(4)
    samples = rng.choice(["S3", "S1", "S2"], size=planted.counts.shape[0]).astype(object)
    samples[:5] = None
    block = planted.counts if kind == "csr" else planted.counts.toarray()
    X = da.from_array(block, chunks=(70, -1), asarray=False)
    bulk = pseudobulk(X, samples)
    assert list(bulk.sample_ids) == ["S1", "S2", "S3"]
    counts = bulk.counts.compute(scheduler="sync")
    dense = planted.counts.toarray()
    for i, sample in enumerate(bulk.sample_ids):
        np.testing.assert_array_equal(counts[i], dense[samples == sample].sum(axis=0))
        assert bulk.n_cells[i] == (samples == sample).sum()


def test_pseudobulk_refuses_normalised_values(planted, lognorm):
    X = da.from_array(lognorm.tocsr(), chunks=(100, -1), asarray=False)
    with pytest.raises(MethodInputError, match="raw counts"):
        pseudobulk(X, planted.arm).counts.compute(scheduler="sync")


def _planted_bulk(n_per_arm: int = 5, n_genes: int = 120, n_up: int = 15, seed: int = 0):
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(mean=5.0, sigma=1.0, size=n_genes)
    fold = np.ones(n_genes)
    fold[:n_up] = 4.0
    arms = np.array(["drug"] * n_per_arm + ["vehicle"] * n_per_arm)
    size = rng.uniform(0.7, 1.3, size=arms.size)
    mu = size[:, None] * mean[None, :] * np.where(arms[:, None] == "drug", fold, 1.0)
    alpha = 0.05 + 1.0 / mu  # DESeq2-like mean-dispersion trend
    counts = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu))
    samples = [f"S{i}" for i in range(arms.size)]
    frame = pd.DataFrame(counts, index=samples, columns=[f"g{i}" for i in range(n_genes)])
    design = pd.DataFrame({"treatment": arms, "batch": ["b1", "b2"] * n_per_arm}, index=samples)
    return frame, design, n_up


def test_deseq2_recovers_up_regulated_genes():
    counts, design, n_up = _planted_bulk()
    # A sample of a third arm is left out of the comparison.
    counts.loc["extra"] = counts.iloc[0]
    design.loc["extra"] = ["washout", "b1"]
    result = deseq2_test(counts, design, column="treatment", group_a="drug", group_b="vehicle")
    assert {"baseMean", "log2FoldChange", "pvalue", "padj"} <= set(result.columns)
    up = result.index[:n_up]
    assert (result.loc[up, "padj"] < 0.05).all()
    assert (result.loc[up, "log2FoldChange"] > 1).all()
    assert (result.drop(index=up)["padj"] < 0.05).mean() < 0.1
    adjusted = deseq2_test(
        counts,
        design,
        column="treatment",
        group_a="drug",
        group_b="vehicle",
        covariates=["batch"],
    )
    assert (adjusted.loc[up, "padj"] < 0.05).all()


def test_deseq2_refuses_non_integer_counts():
    counts, design, _ = _planted_bulk(n_genes=20)
    with pytest.raises(MethodInputError, match="non-negative integers"):
        deseq2_test(counts * 0.5, design, column="treatment", group_a="drug", group_b="vehicle")
    with pytest.raises(MethodInputError, match="non-negative integers"):
        deseq2_test(-counts, design, column="treatment", group_a="drug", group_b="vehicle")
    with pytest.raises(MethodInputError, match="no column"):
        deseq2_test(counts, design, column="arm", group_a="drug", group_b="vehicle")
    with pytest.raises(MethodInputError, match="no sample"):
        deseq2_test(counts, design, column="treatment", group_a="drug", group_b="placebo")


# --------------------------------------------------------------------------------------
# fold change by value scale
# --------------------------------------------------------------------------------------


def _planted_log2(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log2 intensities (samples x genes) with planted log2 fold changes in arm A."""
    rng = np.random.default_rng(seed)
    n_a, n_b, n_genes = 12, 12, 40
    base = rng.uniform(4, 14, n_genes)
    planted = np.zeros(n_genes)
    planted[:10] = rng.choice([-3.0, -1.5, 1.5, 3.0], 10)
    values = base + rng.normal(0, 0.05, (n_a + n_b, n_genes))
    values[:n_a] += planted
    arms = np.array(["A"] * n_a + ["B"] * n_b)
    return values, arms, planted


@pytest.mark.parametrize("method", ["t-test", "wilcoxon"])
def test_log2_values_give_the_planted_log2_fold_change(method):
    values, arms, planted = _planted_log2()
    result = rank_genes_two_groups(
        da.from_array(values, chunks=(-1, 16)),
        arms,
        group_a="A",
        group_b="B",
        method=method,
        scale="log2",
    )
    lfc = result.column("logfoldchange").compute(scheduler="sync")
    np.testing.assert_allclose(lfc, planted, atol=0.06)
    assert result.fold_change_rule == "difference-of-log2-means"
    assert result.fold_change_column == "log2_fold_change"
    # scanpy's log1p rule on the same values inflates the planted change ~1.44-fold
    wrong = rank_genes_two_groups(
        da.from_array(values, chunks=(-1, 16)), arms, group_a="A", group_b="B", method=method
    )
    up = planted > 2
    ratio = wrong.column("logfoldchange").compute(scheduler="sync")[up] / planted[up]
    assert np.all(ratio > 1.3)


def test_zscores_never_give_nan_and_keep_the_sign():
    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, (30, 200))
    values[:15, :50] += 1.0  # arm A higher on the first 50 genes
    values = (values - values.mean(axis=0)) / values.std(axis=0)
    arms = np.array(["A"] * 15 + ["B"] * 15)
    Xg = da.from_array(values, chunks=(-1, 64))
    result = rank_genes_two_groups(Xg, arms, group_a="A", group_b="B", scale="zscore")
    diff = result.column("logfoldchange").compute(scheduler="sync")
    assert np.isfinite(diff).all()
    np.testing.assert_allclose(diff, values[:15].mean(0) - values[15:].mean(0), atol=1e-12)
    assert result.fold_change_column == "mean_difference"
    # the log1p rule gives NaN (and wrong signs) on the same z-scores
    with np.errstate(invalid="ignore"):
        wrong = rank_genes_two_groups(Xg, arms, group_a="A", group_b="B").column("logfoldchange")
        assert np.isnan(wrong.compute(scheduler="sync")).any()


def test_log1p_rule_is_still_scanpys(planted, obs_frame, lognorm):
    Xg = da.from_array(lognorm, chunks=(-1, 64), asarray=False)
    result = rank_genes_two_groups(
        Xg, obs_frame["arm"], group_a="resistant", group_b="sensitive", scale="log1p"
    )
    expected = _scanpy_table(lognorm.tocsr(), obs_frame, planted.var_names, "t-test", False)
    _assert_matches_scanpy(result, expected)
    assert result.fold_change_rule == "log2-ratio-of-expm1-means"


def test_scale_is_detected_from_the_value_range(lognorm):
    from resistomics.signatures import detect_scale, value_range

    lo, hi = value_range(da.from_array(lognorm, chunks=(-1, 64), asarray=False)).compute(
        scheduler="sync"
    )
    assert lo == 0 and 0 < hi <= np.log1p(1e4)
    assert detect_scale(lo, hi) == "log1p"
    values, _, _ = _planted_log2()
    assert detect_scale(*value_range(da.from_array(values, chunks=(5, 16))).compute()) == "log2"
    assert detect_scale(-1.2, 3.0) == "zscore"
    assert detect_scale(0.0, 5000.0) == "linear"
    with pytest.raises(MethodInputError, match="scale"):
        rank_genes_two_groups(
            da.from_array(values, chunks=(-1, 16)),
            np.array(["A"] * 12 + ["B"] * 12),
            group_a="A",
            group_b="B",
            scale="log10",  # type: ignore[arg-type]
        )
