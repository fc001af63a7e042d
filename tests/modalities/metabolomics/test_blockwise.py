"""Block-wise processing and DA equal the in-memory functions (several blocks, NaNs)."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pandas as pd
import pytest

from resistomics.modalities.metabolomics._blockwise import (
    Processing,
    StoreRows,
    blockwise_limma,
    blockwise_welch,
    blockwise_wilcoxon,
    column_medians,
    plan_blocks,
    processed_blocks,
)
from resistomics.modalities.metabolomics._limma import (
    limma_moderated_t,
    welch_t,
    wilcoxon_rank_sum,
)
from resistomics.storage import DataRoot, FeatureBlock, open_feature_matrix, write_feature_matrix

N_FEATURES, N_SAMPLES = 700, 30
BLOCK = 128  # 6 blocks: the store's chunks are 100 features, so blocks cross chunks


def _sync(*args: object) -> object:
    return dask.compute(*args, scheduler="synchronous")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StoreRows, np.ndarray]:
    rng = np.random.default_rng(11)
    x = np.exp(rng.normal(5, 1, size=(N_FEATURES, 1)) + rng.normal(0, 0.4, (N_FEATURES, N_SAMPLES)))
    x *= rng.lognormal(0, 0.3, size=(1, N_SAMPLES))  # dilution per sample
    x[:, 15:] *= np.where(np.arange(N_FEATURES) < 40, 2.0, 1.0)[:, None]  # planted
    x[rng.random(x.shape) < 0.08] = np.nan
    x[5, :] = np.nan  # an all-missing feature: no fit, NaN statistics
    x[7, :-2] = np.nan  # two values: one residual df short of none
    x[:300, 3] = np.nan  # a sample missing in half the blocks
    root = DataRoot(str(tmp_path_factory.mktemp("blockwise") / "root"))
    samples = pd.DataFrame({"sample_id": [f"s{j}" for j in range(N_SAMPLES)]})
    path = root.path("m")
    write_feature_matrix(
        root,
        path,
        [
            FeatureBlock(
                pd.DataFrame({"feature_id": [f"f{i}" for i in range(s, e)]}), {"abundance": x[s:e]}
            )
            for s, e in plan_blocks(N_FEATURES, 250)
        ],
        samples=samples,
        arrays={"abundance": "float64"},
        features_per_chunk=100,
        samples_per_chunk=16,
    )
    return StoreRows(open_feature_matrix(root, path)), x


def test_column_medians_are_exact_with_ties_and_gaps() -> None:
    rng = np.random.default_rng(5)
    v = np.round(rng.normal(size=(1001, 9)), 1)  # many ties
    v[rng.random(v.shape) < 0.2] = np.nan
    v[:, 4] = np.nan  # an empty column
    v[:600, 5] = np.nan  # empty in the first blocks
    v[:, 6] = np.arange(1001.0)  # sorted: every block's values are outside the others'
    v[:, 7] = np.inf  # non-finite counts as missing
    v[0, 7] = 2.0
    for block in (40, 97, 1001):
        got = _sync(column_medians(lambda s, e: v[s:e], plan_blocks(1001, block)))[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # All-NaN slice
            want = np.nanmedian(np.where(np.isfinite(v), v, np.nan), axis=0)
        np.testing.assert_array_equal(got, want)
    full = np.round(rng.normal(size=(1001, 6)), 2)  # nothing missing: the selection path
    for block in (40, 1001):
        got = _sync(column_medians(lambda s, e: full[s:e], plan_blocks(1001, block)))[0]
        np.testing.assert_array_equal(got, np.median(full, axis=0))


@pytest.mark.parametrize(
    "processing",
    [
        Processing(impute="half-minimum", normalize="pqn", transform="log2", scale="pareto"),
        Processing(normalize="pqn", qc=(0, 4, 9, 20), transform="log10", scale="auto"),
        Processing(normalize="median", transform="log2", scale="range"),
        Processing(impute="half-minimum", normalize="sum"),
    ],
)
def test_processing_equals_in_memory(
    study: tuple[StoreRows, np.ndarray], processing: Processing
) -> None:
    rows, x = study
    x = rows(0, N_FEATURES)
    assert np.array_equal(x, study[1], equal_nan=True)
    if processing.impute != "none":  # half-minimum needs an observed value per feature
        x = x[np.isfinite(x).any(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-missing feature's NaN
        want = processing.in_memory(x)
        blocks = plan_blocks(len(x), BLOCK)
        got = np.vstack(_sync(*processed_blocks(lambda s, e: x[s:e], blocks, processing)))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.isfinite(want).mean() > 0.9


def test_limma_equals_in_memory(study: tuple[StoreRows, np.ndarray]) -> None:
    rows, x = study
    group = (np.arange(N_SAMPLES) >= 15).astype(float)
    subject = np.tile(np.eye(15), (2, 1))  # paired design ~ subject + group
    for design in (np.column_stack([np.ones(N_SAMPLES), group]), np.column_stack([subject, group])):
        proc = Processing(transform="log2")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the all-missing feature
            want = limma_moderated_t(np.log2(x).T, design, coef=design.shape[1] - 1)
            got = blockwise_limma(
                rows,
                N_FEATURES,
                design,
                coef=design.shape[1] - 1,
                processing=proc,
                features_per_block=BLOCK,
                compute=_sync,
            )
        for name in ("log_fc", "t", "p", "p_adj", "s2_post", "df_total", "df_residual"):
            np.testing.assert_allclose(
                getattr(got, name), getattr(want, name), rtol=1e-10, atol=1e-14, err_msg=name
            )
        assert got.df_prior == pytest.approx(want.df_prior, rel=1e-10)
        assert got.s2_prior == pytest.approx(want.s2_prior, rel=1e-10)
        assert np.isnan(got.t[5]) and np.isfinite(got.t[0])
        planted = set(range(40)) - {5, 7}  # 5 and 7 have (almost) no values
        assert len(set(np.argsort(got.p)[:40].tolist()) & planted) >= 35


def test_welch_and_wilcoxon_equal_in_memory(study: tuple[StoreRows, np.ndarray]) -> None:
    rows, x = study
    a, b = list(range(15)), list(range(15, N_SAMPLES))
    y = np.log2(x).T
    proc = Processing(transform="log2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-missing feature
        for ours, theirs in ((blockwise_welch, welch_t), (blockwise_wilcoxon, wilcoxon_rank_sum)):
            got = ours(
                rows, N_FEATURES, a, b, processing=proc, features_per_block=BLOCK, compute=_sync
            )
            want = theirs(y[a], y[b])
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)


def test_limma_runs_on_the_threaded_scheduler_with_normalisation(
    study: tuple[StoreRows, np.ndarray],
) -> None:
    x = study[1]
    kept = x[np.isfinite(x).any(axis=1)]
    design = np.column_stack([np.ones(N_SAMPLES), np.arange(N_SAMPLES) >= 15])
    proc = Processing(impute="half-minimum", normalize="pqn", transform="log2", scale="pareto")
    got = blockwise_limma(
        lambda s, e: kept[s:e], len(kept), design, coef=1, processing=proc, features_per_block=BLOCK
    )
    want = limma_moderated_t(proc.in_memory(kept).T, design, coef=1)
    np.testing.assert_allclose(got.t, want.t, rtol=1e-10)
    np.testing.assert_allclose(got.p_adj, want.p_adj, rtol=1e-10)


@pytest.mark.parametrize("method", ["limma", "welch", "wilcoxon"])
@pytest.mark.parametrize("paired", [False, True])
def test_da_table_over_blocks_equals_the_whole_matrix(method: str, paired: bool) -> None:
    """da_table_blockwise (blocks of 7 features, NaNs, one feature missing in an arm)
    gives da_table's table on the whole matrix: the limma prior is fitted on every
    block's variances, BH over all features."""
    import dask

    from resistomics.modalities.metabolomics._da import da_table, da_table_blockwise

    rng = np.random.default_rng(11)
    x = rng.normal(10, 1, size=(40, 16))
    x[:5, :8] += 1.5  # planted
    x[rng.random(x.shape) < 0.08] = np.nan
    x[6, :8] = np.nan  # all missing in arm A
    a, b = np.arange(8), np.arange(8, 16)
    pairs = np.array([f"s{i}" for i in range(8)]) if paired else None
    want = da_table(x, a, b, method=method, log_scale=True, pairs=pairs)  # type: ignore[arg-type]
    with dask.config.set(scheduler="threads"):
        got = da_table_blockwise(
            lambda s, e: x[s:e],
            len(x),
            a,
            b,
            method=method,
            log_scale=True,  # type: ignore[arg-type]
            pairs=pairs,
            features_per_block=7,
        )
    pd.testing.assert_frame_equal(got, want, rtol=1e-12, atol=0)
    assert got["p"].iloc[:5].max() < got["p"].iloc[10:].median()
