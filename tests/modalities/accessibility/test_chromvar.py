"""chromVAR deviations: an independent dense implementation, planted and null peak sets,
and the GM12878 / H1 example of chromVAR itself."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._chromvar import (
    GC_NOT_MATCHED,
    BackgroundPeaks,
    Deviations,
    annotation_matrix,
    background_peaks,
    compute_deviations,
    deviations_block,
    peak_expectation,
    peak_sets_from_intervals,
    variability,
)
from shared_data import SHARED_DATA

EXAMPLE = SHARED_DATA / "atac_chromvar_example"


def _dense_chromvar(
    x: np.ndarray, sets: list[np.ndarray], bg: np.ndarray
) -> tuple[np.ndarray, ...]:
    """chromVAR's computeDeviations written out per set and cell (dense, loops)."""
    e = x.sum(axis=1) / x.sum()
    depth = x.sum(axis=0)
    n_sets, n_cells, n_iter = len(sets), x.shape[1], bg.shape[1]
    raw = np.zeros((n_sets, n_cells))
    dev = np.zeros((n_sets, n_cells))
    z = np.zeros((n_sets, n_cells))
    for s, peaks in enumerate(sets):
        for c in range(n_cells):
            exp = e[peaks].sum() * depth[c]
            raw[s, c] = (x[peaks, c].sum() - exp) / exp
            sampled = []
            for i in range(n_iter):
                b = bg[peaks, i]
                exp_b = e[b].sum() * depth[c]
                sampled.append((x[b, c].sum() - exp_b) / exp_b)
            dev[s, c] = raw[s, c] - np.mean(sampled)
            z[s, c] = dev[s, c] / np.std(sampled, ddof=1)
    return raw, dev, z


def _simulated(seed: int, n_peaks: int = 1500, n_cells: int = 120, planted: int = 60):
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(-2.5, 0.8, n_peaks)
    depth = rng.lognormal(0.0, 0.3, n_cells)
    mean = rate[:, None] * depth[None, :] * 8
    open_cells = np.arange(n_cells) < n_cells // 2
    mean[:planted, :] *= np.where(open_cells, 3.0, 0.5)[None, :]
    x = rng.poisson(mean).astype(np.float64)
    x[x.sum(axis=1) == 0, 0] = 1.0
    gc = np.clip(rng.normal(0.5, 0.08, n_peaks), 0.2, 0.8)
    return x, gc, open_cells


def test_deviations_equal_dense_reimplementation() -> None:
    x, gc, _ = _simulated(1, n_peaks=300, n_cells=17, planted=20)
    rng = np.random.default_rng(2)
    sets = [np.arange(20), rng.choice(300, 15, replace=False), np.array([5, 7, 250])]
    ann, names = annotation_matrix(300, {f"s{i}": s for i, s in enumerate(sets)})
    bg = background_peaks(sp.csr_matrix(x), gc=gc, n_iterations=12, seed=4)
    got = compute_deviations(sp.csr_matrix(x), ann, bg, set_names=names, block_cells=5)
    raw, dev, z = _dense_chromvar(x, sets, bg.indices)
    np.testing.assert_allclose(got.raw, raw, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.deviations, dev, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.z, z, rtol=0, atol=1e-10)
    assert got.gc_matched and got.sets == names
    # one block or many: the same numbers
    whole = deviations_block(x, ann, peak_expectation(x), bg.indices)
    np.testing.assert_allclose(whole[2], got.z, rtol=0, atol=1e-12)


def test_background_peaks_match_accessibility_and_gc() -> None:
    x, gc, _ = _simulated(3)
    log_counts = np.log10(x.sum(axis=1))
    bg = background_peaks(x, gc=gc, n_iterations=50, seed=1)
    assert bg.indices.shape == (x.shape[0], 50) and bg.note != GC_NOT_MATCHED
    rng = np.random.default_rng(0)
    random = rng.integers(0, x.shape[0], bg.indices.shape)
    diff_bg = np.abs(log_counts[bg.indices] - log_counts[:, None]).mean()
    diff_random = np.abs(log_counts[random] - log_counts[:, None]).mean()
    assert diff_bg < 0.35 * diff_random
    assert (
        np.abs(gc[bg.indices] - gc[:, None]).mean() < 0.35 * np.abs(gc[random] - gc[:, None]).mean()
    )
    # mostly other peaks: with 1,500 peaks on a 50 x 50 grid many bins hold one peak and
    # the kernel (w = 0.1) keeps most draws in the own bin, as in chromVAR
    assert (bg.indices != np.arange(x.shape[0])[:, None]).mean() > 0.7
    no_gc = background_peaks(x, n_iterations=10)
    assert not no_gc.gc_matched and no_gc.note == GC_NOT_MATCHED
    assert np.abs(log_counts[no_gc.indices] - log_counts[:, None]).mean() < 0.35 * diff_random
    # reproducible from the seed
    np.testing.assert_array_equal(background_peaks(x, gc=gc, seed=1).indices, bg.indices)


def test_background_peaks_refuse_empty_peaks_and_bad_gc() -> None:
    x = np.ones((5, 3))
    x[2] = 0
    with pytest.raises(MethodInputError, match="peaks-with-counts"):
        background_peaks(x)
    with pytest.raises(MethodInputError, match="gc"):
        background_peaks(np.ones((5, 3)), gc=np.ones(4))
    with pytest.raises(MethodInputError, match="background"):
        background_peaks(np.ones((5, 3)))  # every peak has the same accessibility


def test_planted_set_high_z_and_variability_null_sets_standard_normal() -> None:
    x, gc, open_cells = _simulated(5)
    rng = np.random.default_rng(6)
    sets = {"planted": np.arange(60)}
    for k in range(30):
        sets[f"null{k}"] = rng.choice(np.arange(60, x.shape[0]), 60, replace=False)
    ann, names = annotation_matrix(x.shape[0], sets)
    bg = background_peaks(x, gc=gc, seed=7)
    result = compute_deviations(sp.csc_matrix(x), ann, bg, set_names=names)
    planted = result.z[0]
    assert planted[open_cells].mean() > 3 and planted[~open_cells].mean() < -3
    null = result.z[1:]
    assert abs(null.mean()) < 0.15
    assert 0.85 < null.std() < 1.2
    table = variability(result)
    assert table["set"].iloc[0] == "planted"
    assert table["variability"].iloc[0] > 3
    assert table["p_adj"].iloc[0] < 1e-10
    assert table["variability"].iloc[1:].between(0.6, 1.5).all()
    assert (table["note"] == result.note).all()


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = score[positive], score[~positive]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@pytest.mark.skipif(not EXAMPLE.is_dir(), reason=f"no {EXAMPLE}")
def test_gm_and_h1_peak_sets_separate_the_cell_types() -> None:
    """chromVAR's own example (GM12878 vs H1): deviations of the peaks called in each
    cell type separate the two cell types (known biology, ../shared/data README)."""
    with gzip.open(EXAMPLE / "matrix.mtx.gz", "rb") as handle:
        counts = sp.csr_matrix(scipy.io.mmread(handle))
    peaks = pd.read_csv(
        EXAMPLE / "peaks.bed", sep="\t", header=None, names=["chrom", "start", "end", "name"]
    )
    cells = pd.read_csv(EXAMPLE / "cells.tsv", sep="\t")
    assert counts.shape == (len(peaks), len(cells)) == (29_269, 50)
    keep = np.asarray(counts.sum(axis=1)).ravel() > 0
    counts = counts[keep]
    names = peaks["name"].to_numpy()[keep]
    sets = {
        "GM peaks": np.flatnonzero(pd.Series(names).str.startswith("GM_peak_")),
        "H1 peaks": np.flatnonzero(pd.Series(names).str.startswith("H1_peak_")),
    }
    ann, set_names = annotation_matrix(counts.shape[0], sets)
    bg = background_peaks(counts, seed=2017)
    result = compute_deviations(counts, ann, bg, set_names=set_names)
    assert result.note == GC_NOT_MATCHED
    gm = (cells["Cell_Type"] == "GM").to_numpy()
    assert _auc(result.z[0], gm) > 0.98
    assert _auc(result.z[1], ~gm) > 0.98
    assert _auc(result.deviations[0] - result.deviations[1], gm) > 0.98
    table = variability(result)
    assert (table["variability"] > 2).all()


def test_deviations_refuse_mismatched_shapes() -> None:
    x = np.ones((4, 3))
    ann, _ = annotation_matrix(5, {"a": np.array([0, 1])})
    with pytest.raises(MethodInputError, match="shape"):
        compute_deviations(x, ann, BackgroundPeaks(np.zeros((4, 2), dtype=np.int64), False))
    with pytest.raises(MethodInputError, match="peak-index"):
        annotation_matrix(3, {"a": np.array([3])})


def test_peak_sets_from_intervals_equal_brute_force() -> None:
    from resistomics.modalities.accessibility._tiles import Intervals

    rng = np.random.default_rng(9)
    ps = rng.integers(0, 100_000, 200)
    peaks = Intervals(rng.choice(["chr1", "chr2"], 200), ps, ps + 500)
    rs = rng.integers(0, 100_000, 60)
    regions = Intervals(
        rng.choice(["chr1", "chr2", "chrX"], 60),
        rs,
        rs + rng.integers(1, 3000, 60),
        name=rng.choice(["AP1", "TEAD", "none"], 60),
    )
    got = peak_sets_from_intervals(peaks, regions)
    assert set(got) == set(regions.name.tolist())  # type: ignore[union-attr]
    for name, idx in got.items():
        expected = [
            p
            for p in range(200)
            if any(
                regions.name[r] == name  # type: ignore[index]
                and regions.contig[r] == peaks.contig[p]
                and regions.start[r] < peaks.end[p]
                and regions.end[r] > peaks.start[p]
                for r in range(60)
            )
        ]
        np.testing.assert_array_equal(idx, expected)
    with pytest.raises(MethodInputError, match="columns"):
        peak_sets_from_intervals(peaks, Intervals(peaks.contig, peaks.start, peaks.end))


def _deviations_of(z: np.ndarray) -> Deviations:
    names = tuple(f"s{i}" for i in range(z.shape[0]))
    return Deviations(sets=names, raw=z, deviations=z, z=z, gc_matched=False)


def test_variability_bootstrap_ci_equals_a_direct_loop() -> None:
    """chromVAR's computeVariability CI written out: per resampling, the cells drawn with
    replacement, the sd of each set's z; the 2.5 / 97.5 % quantiles (R type 7)."""
    rng = np.random.default_rng(5)
    z = rng.normal(0, [[1.0], [2.0], [0.5]], size=(3, 40))
    z[1, 3] = np.nan
    table = variability(_deviations_of(z), bootstrap_samples=200, seed=9)
    draws = np.random.default_rng(9).integers(0, 40, size=(200, 40))
    for s in range(3):
        sds = [np.nanstd(z[s, d], ddof=1) for d in draws]
        lo, hi = np.quantile(sds, [0.025, 0.975])
        assert table["bootstrap_lower_bound"].iloc[s] == pytest.approx(lo, abs=1e-12)
        assert table["bootstrap_upper_bound"].iloc[s] == pytest.approx(hi, abs=1e-12)
    assert (table["bootstrap_lower_bound"] < table["variability"]).all()
    assert (table["variability"] < table["bootstrap_upper_bound"]).all()
    none = variability(_deviations_of(z), bootstrap_samples=0)
    assert none["bootstrap_lower_bound"].isna().all()


def test_variability_bootstrap_ci_covers_the_planted_sd() -> None:
    """Planted: 400 sets of 150 cells with z ~ N(0, sigma^2), sigma known per set. The
    95 % percentile-bootstrap interval of the sd covers sigma in about 95 % of sets
    (percentile intervals of an sd slightly under-cover at this n: accept 0.89-0.99)."""
    rng = np.random.default_rng(11)
    sigma = rng.uniform(0.8, 4.0, 400)
    z = rng.normal(0.0, sigma[:, None], size=(400, 150))
    table = variability(_deviations_of(z), bootstrap_samples=500, seed=1)
    lo = table["bootstrap_lower_bound"].to_numpy()
    hi = table["bootstrap_upper_bound"].to_numpy()
    coverage = float(((lo <= sigma) & (sigma <= hi)).mean())
    assert 0.89 <= coverage <= 0.99, coverage
    # and the interval is informative: about 2 x 1.96 x sigma / sqrt(2 (n - 1)) wide
    width = np.median((hi - lo) / sigma)
    assert width == pytest.approx(2 * 1.96 / np.sqrt(2 * 149), rel=0.25)
