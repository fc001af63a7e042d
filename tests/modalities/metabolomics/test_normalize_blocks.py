"""``normalize`` over stored feature blocks equals the in-memory pipeline, and the client
never holds the matrix.

Oracle: :func:`normalize_matrix` on the whole matrix (itself tested against MetaboAnalyst's
definitions and planted signal in ``test_processing.py``), for every imputation,
normalisation, transform and scaling, with drift correction per batch, NaNs, features
the filter drops, and exact ties between KNN donors in different blocks.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from resistomics.errors import MethodInputError
from resistomics.modalities.metabolomics._blockwise import StoreRows, plan_blocks
from resistomics.modalities.metabolomics._normalization import (
    NormalizationSteps,
    normalize_matrix,
)
from resistomics.modalities.metabolomics._normalize_blocks import normalize_blockwise
from resistomics.storage import DataRoot, FeatureBlock, open_feature_matrix, write_feature_matrix

N_FEATURES, N_SAMPLES = 230, 44  # 9 QCs: 5 and 4 in the two batches
BLOCK = 48  # 5 blocks
TOL = {"rtol": 1e-12, "atol": 1e-12}


@dataclass(frozen=True)
class Rows:
    """``read_rows`` of a matrix in memory (counts the rows read)."""

    x: np.ndarray

    def __call__(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop].copy()


@dataclass(frozen=True)
class Design:
    x: np.ndarray  # features x stored samples (one blank last)
    used: np.ndarray
    study: np.ndarray
    qc: np.ndarray
    order: np.ndarray
    batch: np.ndarray
    group: np.ndarray


def _design(n_features: int, n_samples: int, seed: int) -> Design:
    """Two batches along injection order with drift, pooled QCs every 5th injection, a
    blank, dilution per sample, values missing below a detection limit and at random."""
    rng = np.random.default_rng(seed)
    types = np.array(["study"] * n_samples, dtype=object)
    types[::5] = "qc"
    types[-1] = "blank"
    order = np.arange(n_samples, dtype=float)
    batch = np.where(order < n_samples / 2, "b1", "b2")
    level = rng.lognormal(8, 1, (n_features, 1))
    drift = 1 + rng.uniform(-0.6, 0.6, (n_features, 1)) * order[None, :] / n_samples
    x = level * rng.lognormal(0, 0.2, (n_features, n_samples)) * drift
    x *= rng.lognormal(0, 0.2, (1, n_samples))
    x[:, types == "qc"] = (level * drift)[:, types == "qc"] * rng.lognormal(0, 0.05, (1, 1))
    x[x < np.quantile(x, 0.05)] = np.nan  # below detection
    study = np.flatnonzero(types == "study")
    x[rng.random(x.shape) < 0.06] = np.nan
    x[:, types == "qc"] = np.where(np.isnan(x[:, types == "qc"]), level, x[:, types == "qc"])
    x[3] = np.nan  # never observed: dropped
    x[4, study[3:]] = np.nan  # mostly missing: dropped
    x[n_features - 1] = x[1]  # exact duplicates in other blocks: tied KNN donors
    x[n_features // 2] = x[1]
    used = np.flatnonzero(types != "blank")
    group = np.where(np.arange(n_samples) % 2 == 0, "a", "b")
    return Design(x, used, study, types[used] == "qc", order[used], batch[used], group[used])


@pytest.fixture(scope="module")
def design() -> Design:
    return _design(N_FEATURES, N_SAMPLES, seed=7)


def _blockwise(d: Design, steps: NormalizationSteps, read: object = None, block: int = BLOCK):
    fig, blocks = normalize_blockwise(
        read or Rows(d.x),  # type: ignore[arg-type]
        d.x.shape[0],
        steps,
        n_samples=d.x.shape[1],
        used=d.used,
        study=d.study,
        qc=d.qc,
        injection_order=d.order,
        batch=d.batch,
        groups=d.group if steps.missing_by else None,
        features_per_block=block,
    )
    return fig, list(blocks)


def _assert_equal(d: Design, steps: NormalizationSteps, fig, blocks) -> None:  # type: ignore[no-untyped-def]
    ref = normalize_matrix(
        d.x[:, d.used],
        steps,
        qc=d.qc,
        injection_order=d.order,
        batch=d.batch,
        groups=d.group if steps.missing_by else None,
    )
    np.testing.assert_array_equal(fig.keep, ref.keep)
    np.testing.assert_array_equal(
        np.concatenate([b.features for b in blocks]), np.flatnonzero(ref.keep)
    )
    np.testing.assert_allclose(np.vstack([b.values for b in blocks]), ref.values, **TOL)
    if ref.scaled is None:
        assert all(b.scaled is None for b in blocks)
    else:
        np.testing.assert_allclose(np.vstack([b.scaled for b in blocks]), ref.scaled, **TOL)
    for name in ("sample_missing", "rsd_before", "rsd_after", "dilution"):
        np.testing.assert_allclose(getattr(fig, name), getattr(ref, name), **TOL, err_msg=name)
    assert fig.drift_corrected == ref.drift_corrected and fig.value_kind == ref.value_kind
    raw = np.isnan(d.x)
    np.testing.assert_array_equal(fig.feature_missing, raw[:, d.study].mean(axis=1))
    np.testing.assert_array_equal(fig.sample_missing_raw, raw.mean(axis=0))


@pytest.mark.parametrize(
    ("impute", "method"),
    list(itertools.product(("half-min", "knn"), ("sum", "median", "pqn", "none"))),
)
def test_every_imputation_and_normalisation_with_drift(
    design: Design, impute: str, method: str
) -> None:
    steps = NormalizationSteps(
        impute=impute,  # type: ignore[arg-type]
        knn_k=4,
        method=method,  # type: ignore[arg-type]
        drift="qc-rlsc",
        transform="log",
        scale="pareto",
    )
    with dask.config.set(scheduler="synchronous"):
        fig, blocks = _blockwise(design, steps)
    assert fig.drift_corrected
    _assert_equal(design, steps, fig, blocks)


@pytest.mark.parametrize(
    ("impute", "method", "transform", "scale", "missing_by"),
    [
        ("none", "pqn", "log", "auto", None),  # NaNs kept through every step
        ("none", "median", "glog", "range", "group"),
        ("knn", "pqn", "glog", "auto", "group"),
        ("knn", "sum", "none", "range", None),
        ("half-min", "pqn", "none", "none", None),
        ("knn", "none", "log", "none", None),
    ],
)
def test_transforms_scalings_and_group_filter(
    design: Design, impute: str, method: str, transform: str, scale: str, missing_by: str | None
) -> None:
    steps = NormalizationSteps(
        max_missing=0.3,
        missing_by=missing_by,
        impute=impute,  # type: ignore[arg-type]
        knn_k=7,
        method=method,  # type: ignore[arg-type]
        drift="none",
        transform=transform,  # type: ignore[arg-type]
        scale=scale,  # type: ignore[arg-type]
    )
    with dask.config.set(scheduler="synchronous"):
        fig, blocks = _blockwise(design, steps)
    _assert_equal(design, steps, fig, blocks)


def test_one_block_and_blocks_of_one_feature_agree(design: Design) -> None:
    """Block size is no parameter of the result: KNN's donor order, the exact medians."""
    steps = NormalizationSteps(impute="knn", knn_k=3, method="pqn", drift="none", scale="auto")
    with dask.config.set(scheduler="synchronous"):
        whole = _blockwise(design, steps, block=N_FEATURES)[1]
        single = _blockwise(design, steps, block=7)[1]
    np.testing.assert_allclose(
        np.vstack([b.values for b in single]), np.vstack([b.values for b in whole]), **TOL
    )


def test_a_block_the_filter_empties(design: Design) -> None:
    x = design.x.copy()
    x[BLOCK : 2 * BLOCK, design.study[2:]] = np.nan  # the whole second block dropped
    d = Design(x, design.used, design.study, design.qc, design.order, design.batch, design.group)
    for method in ("pqn", "sum"):
        steps = NormalizationSteps(impute="knn", method=method, drift="auto", transform="glog")  # type: ignore[arg-type]
        with dask.config.set(scheduler="synchronous"):
            fig, blocks = _blockwise(d, steps)
        assert len(blocks[1].features) == 0 and not fig.keep[BLOCK : 2 * BLOCK].any()
        _assert_equal(d, steps, fig, blocks)


def test_the_in_memory_refusals(design: Design) -> None:
    """The same one-line errors as the in-memory pipeline."""
    x = design.x.copy()
    x[10, design.qc.nonzero()[0]] = np.nan  # no QC value for QC-RLSC
    d = Design(x, design.used, design.study, design.qc, design.order, design.batch, design.group)
    steps = NormalizationSteps(impute="none", method="pqn", drift="qc-rlsc")
    with pytest.raises(MethodInputError, match="qc-rlsc: feature 10 has 0 observed QC values"):
        normalize_matrix(x[:, d.used], steps, qc=d.qc, injection_order=d.order, batch=d.batch)
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(MethodInputError, match="qc-rlsc: feature 10 has 0 observed QC values"),
    ):
        _blockwise(d, steps)
    x = design.x.copy()
    x[:, design.study[0]] = np.nan  # every feature misses a study sample
    d = Design(x, design.used, design.study, design.qc, design.order, design.batch, design.group)
    none_kept = NormalizationSteps(max_missing=0.0, drift="none")
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(
            MethodInputError,
            match=r"\[missingness-filter\] no feature is observed in at least 100%",
        ),
    ):
        _blockwise(d, none_kept)
    no_order = NormalizationSteps(drift="qc-rlsc")
    with pytest.raises(MethodInputError, match=r"\[drift-correction\]"):
        normalize_blockwise(
            Rows(design.x), N_FEATURES, no_order, n_samples=N_SAMPLES, used=design.used,
            study=design.study, qc=design.qc,
        )  # fmt: skip


# -- on a real cluster, from a store ---------------------------------------------------


def _store(root: DataRoot, name: str, d: Design, chunk: int) -> StoreRows:
    path = root.path(name)
    write_feature_matrix(
        root,
        path,
        (
            FeatureBlock(
                pd.DataFrame({"feature_id": [f"f{i}" for i in range(s, e)]}),
                {"abundance": d.x[s:e]},
            )
            for s, e in plan_blocks(d.x.shape[0], chunk)
        ),
        samples=pd.DataFrame({"sample_id": [f"s{j}" for j in range(d.x.shape[1])]}),
        arrays={"abundance": "float64"},
        feature_id="feature_id",
        features_per_chunk=chunk,
        samples_per_chunk=64,
    )
    return StoreRows(open_feature_matrix(root, path))


def test_on_worker_processes_knn_and_drift(design: Design, tmp_path: Path, dask_client) -> None:  # type: ignore[no-untyped-def]
    rows = _store(DataRoot(str(tmp_path / "root")), "m", design, BLOCK)
    steps = NormalizationSteps(impute="knn", knn_k=5, method="pqn", drift="auto", scale="pareto")
    fig, blocks = _blockwise(design, steps, read=rows)
    assert fig.drift_corrected
    _assert_equal(design, steps, fig, blocks)


def _big_store(root: DataRoot, n_blocks: int) -> tuple[StoreRows, int, Design]:
    """``n_blocks`` blocks of 500 features x 400 samples (1.6 MB of float64 each), written
    block by block: one design, its features repeated with noise."""
    block, n_samples = 500, 400
    small = _design(block, n_samples, seed=3)
    rng = np.random.default_rng(5)

    def parts() -> Iterator[FeatureBlock]:
        for s, e in plan_blocks(n_blocks * block, block):
            x = small.x * rng.lognormal(0, 0.1, small.x.shape)
            yield FeatureBlock(
                pd.DataFrame({"feature_id": [f"f{i}" for i in range(s, e)]}), {"abundance": x}
            )

    path = root.path(f"big{n_blocks}")
    write_feature_matrix(
        root,
        path,
        parts(),
        samples=pd.DataFrame({"sample_id": [f"s{j}" for j in range(n_samples)]}),
        arrays={"abundance": "float64"},
        feature_id="feature_id",
        features_per_chunk=block,
        samples_per_chunk=128,
    )
    return StoreRows(open_feature_matrix(root, path)), n_blocks * block * n_samples * 8, small


def _client_peak(rows: StoreRows, d: Design) -> int:
    """tracemalloc's peak in this process (numpy reports its buffers to it) over one
    ``normalize_blockwise``, its blocks consumed as the writer does."""
    steps = NormalizationSteps(
        impute="half-min", method="pqn", drift="none", transform="log", scale="pareto"
    )
    tracemalloc.start()
    try:
        fig, blocks = normalize_blockwise(
            rows, rows.store.n_features, steps, n_samples=rows.store.n_samples, used=d.used,
            study=d.study, qc=d.qc, features_per_block=rows.store.chunks[0],
        )  # fmt: skip
        n = 0
        for b in blocks:
            n += len(b.features)
            assert np.isfinite(b.values).all()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == int(fig.keep.sum()) > 0.9 * rows.store.n_features
    return int(peak)


def test_the_client_never_holds_the_matrix(tmp_path: Path, dask_client) -> None:  # type: ignore[no-untyped-def]
    """Three times the matrix (12 -> 36 blocks, 19 -> 58 MB) adds to the client's peak
    the scheduler's bookkeeping of the tasks (the session cluster's scheduler runs in
    this process), not the matrix: a few blocks in hand at most, whatever the size."""
    root = DataRoot(str(tmp_path / "root"))
    small_rows, small_bytes, d = _big_store(root, 12)
    big_rows, big_bytes, _ = _big_store(root, 36)
    small_peak = _client_peak(small_rows, d)
    big_peak = _client_peak(big_rows, d)
    block_bytes = small_bytes // 12
    assert big_peak < big_bytes / 4, (big_peak, big_bytes)
    assert big_peak - small_peak < 0.15 * (big_bytes - small_bytes), (small_peak, big_peak)
    assert small_peak < 8 * block_bytes, (small_peak, block_bytes)
