"""Cell-type labels from marker scoring: a planted oracle.

Cells of five types each express their type's markers (Poisson) over a low background;
cells without any marker signal express only background genes. The labels must recover
the planted type, leave the signal-less cells unassigned, skip a type with too few panel
genes, agree with the argmax of score_genes computed directly, and stay lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import sparse

from resistomics.errors import MethodInputError
from resistomics.signatures import (
    UNASSIGNED,
    gene_means,
    log_normalize,
    marker_labels,
    score_genes,
)

TYPES = ["tumour", "fibroblast", "macrophage", "T_cell", "endothelial"]
N_MARKERS = 6
N_BACKGROUND = 40
PER_TYPE = 60
N_NONE = 30


def _planted(
    seed: int = 3,
) -> tuple[sparse.csr_matrix, list[str], dict[str, list[str]], np.ndarray]:
    rng = np.random.default_rng(seed)
    markers = {t: [f"{t}_m{i}" for i in range(N_MARKERS)] for t in TYPES}
    genes = [g for t in TYPES for g in markers[t]] + [f"bg{i}" for i in range(N_BACKGROUND)]
    n_markers = len(TYPES) * N_MARKERS
    truth = np.array([t for t in TYPES for _ in range(PER_TYPE)] + ["none"] * N_NONE)
    n_cells = len(truth)
    rate = np.zeros((n_cells, len(genes)))
    rate[:, n_markers:] = rng.uniform(1.0, 4.0, N_BACKGROUND)  # background genes, everyone
    typed = truth != "none"
    rate[np.ix_(typed, np.arange(n_markers))] = 0.2  # leak of every marker in typed cells
    for k, t in enumerate(TYPES):
        rate[np.ix_(truth == t, np.arange(k * N_MARKERS, (k + 1) * N_MARKERS))] = 2.0
    counts = rng.poisson(rate * rng.lognormal(0.0, 0.3, (n_cells, 1))).astype(np.float32)
    return sparse.csr_matrix(counts), genes, markers, truth


def _lognorm(counts: sparse.csr_matrix) -> da.Array:
    x = da.from_array(counts, chunks=(100, counts.shape[1]), asarray=False)
    return log_normalize(x, target_sum=1e4)


def test_planted_types_are_recovered_and_signal_less_cells_unassigned() -> None:
    counts, genes, markers, truth = _planted()
    x = _lognorm(counts)
    (means,) = dask.compute(gene_means(x))
    # a sixth type whose markers are (but for two) not in the panel: never scored
    markers = {**markers, "mast": ["tumour_m0", "bg1", "TPSAB1", "CPA3", "KIT"]}
    result = marker_labels(x, genes, markers, gene_means=np.asarray(means), n_bins=10)
    codes, best = dask.compute(result.codes, result.best)
    labels = np.asarray(result.labels(codes).astype(str))
    assert result.categories == (*TYPES, UNASSIGNED)
    assert dict(result.skipped) == {"mast": ("tumour_m0", "bg1")}
    typed = truth != "none"
    accuracy = (labels[typed] == truth[typed]).mean()
    assert accuracy >= 0.9, accuracy
    for t in TYPES:  # every type, not only the overall rate
        assert (labels[truth == t] == t).mean() >= 0.9, t
    assert (labels[~typed] == UNASSIGNED).all()
    assert (best[~typed] <= 0).all() and (best[typed] > 0).mean() >= 0.9

    # the labels are the argmax of score_genes computed directly, unassigned at <= 0
    scored = {t: markers[t] for t in TYPES}
    direct = score_genes(x, genes, scored, gene_means=np.asarray(means), n_bins=10)
    (scores,) = dask.compute(direct.scores)
    np.testing.assert_allclose(best, scores.max(axis=1), rtol=1e-12)
    expected = np.where(scores.max(axis=1) > 0, np.array(TYPES)[scores.argmax(axis=1)], UNASSIGNED)
    assert (labels == expected).all()


def test_min_score_and_laziness(
    raise_if_dask_computes: Callable[[], AbstractContextManager[None]],
) -> None:
    counts, genes, markers, _ = _planted()
    x = _lognorm(counts)
    (means,) = dask.compute(gene_means(x))
    with raise_if_dask_computes():
        result = marker_labels(x, genes, markers, gene_means=np.asarray(means), min_score=50.0)
    (codes,) = dask.compute(result.codes)
    assert (np.asarray(result.labels(codes)) == UNASSIGNED).all()  # no score reaches 50


def test_refusals() -> None:
    counts, genes, markers, _ = _planted()
    x = _lognorm(counts)
    means = np.asarray(dask.compute(gene_means(x))[0])
    with pytest.raises(MethodInputError, match="no marker set has 3 of its genes"):
        marker_labels(x, genes, {"a": ["X1", "X2"], "b": ["tumour_m0"]}, gene_means=means)
    with pytest.raises(MethodInputError, match="label of unassigned cells"):
        marker_labels(x, genes, {**markers, UNASSIGNED: genes[:5]}, gene_means=means)
    with pytest.raises(MethodInputError, match="min_genes"):
        marker_labels(x, genes, markers, gene_means=means, min_genes=0)
