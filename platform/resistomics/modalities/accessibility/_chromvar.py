"""Peak-set accessibility deviations, as chromVAR (Schep et al., *Nat. Methods* 14:975, 2017).

For a peak x cell count matrix ``X`` (``x[p, c]``) and a peak x set annotation ``A``
(0/1; a peak can be in several sets), following chromVAR 1.x (``computeExpectations``,
``getBackgroundPeaks``, ``computeDeviations``, ``computeVariability``):

* expectation: ``e[p] = sum_c x[p, c] / sum_{p, c} x[p, c]`` (each peak's fraction of
  all counts; ``computeExpectations(norm = FALSE)``); it is a global quantity, computed
  once from the whole matrix.
* expected counts: ``E[s, c] = (sum_{p in s} e[p]) * N[c]`` with ``N[c]`` the cell's
  total counts over the peaks.
* raw deviation: ``(O[s, c] - E[s, c]) / E[s, c]`` with ``O[s, c] = sum_{p in s} x[p, c]``.
* background sets: ``B`` (peaks x iterations) gives, for iteration ``i``, the peak
  ``B[p, i]`` that stands in for peak ``p``; the background set of ``s`` is
  ``{B[p, i] : p in s}`` (a peak drawn twice counts twice, as chromVAR's
  ``sparseMatrix`` sums duplicates) and its raw deviation is computed as above.
* bias-corrected deviation: raw minus the mean over the iterations of the background
  raw deviations; z-score: that divided by their standard deviation (``ddof = 1``, R's
  ``sd``).
* variability of a set: the standard deviation of its z-scores over cells (``ddof =
  1``), with chromVAR's p-value ``P(chi2_{n-1} > (n - 1) variability^2)``,
  Benjamini-Hochberg adjustment and chromVAR's bootstrap confidence interval: the
  ``(0.025, 0.975)`` quantiles of that sd over ``bootstrap_samples`` (1000) resamplings
  of the cells with replacement (``computeVariability(bootstrap_error = TRUE)``;
  quantiles of R's default type 7, numpy's ``linear``).

Background peaks (:func:`background_peaks`, chromVAR's ``getBackgroundPeaks`` with
``w = 0.1``, ``bs = 50``): each peak is a point (``log10`` total counts, GC fraction);
the points are whitened by the Cholesky factor of their covariance (so Euclidean
distance is the Mahalanobis distance), a ``bs x bs`` grid spans their range, each peak
belongs to its nearest grid point, and a background peak for a peak in bin ``i`` is
drawn by choosing bin ``j`` with probability proportional to
``dnorm(|g_i - g_j|, 0, w) * [bin j not empty]`` and then a peak of bin ``j`` uniformly
(so each peak of bin ``j`` has weight ``dnorm(...) / n_j``, chromVAR's
``bg_sample_helper``). Without a GC array the same is done in one dimension
(``log10`` counts only, ``bs`` bins) and every result says "GC not matched".

Deviations are computed block by block over cells (:func:`deviations_block`): each block
needs only its columns, the global expectation and the background indices, so blocks are
independent (one Dask task each; :func:`compute_deviations` builds the graph and computes
it once). Memory per block: ``sets x iterations x block cells x 8`` bytes for the
background deviations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from scipy.linalg import solve_triangular

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._tiles import Intervals, interval_hits

__all__ = [
    "GC_NOT_MATCHED",
    "BackgroundPeaks",
    "Deviations",
    "annotation_matrix",
    "background_peaks",
    "compute_deviations",
    "deviations_block",
    "peak_expectation",
    "peak_sets_from_intervals",
    "variability",
]

GC_NOT_MATCHED = "GC not matched: background peaks matched on mean accessibility only"
GC_MATCHED = "background peaks matched on mean accessibility and GC content"
#: Budget for one block's background deviations (sets x iterations x cells x 8 bytes).
BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class BackgroundPeaks:
    """Background peak indices ``(n_peaks, n_iterations)`` and how they were matched."""

    indices: np.ndarray
    gc_matched: bool

    @property
    def note(self) -> str:
        return GC_MATCHED if self.gc_matched else GC_NOT_MATCHED


@dataclass(frozen=True)
class Deviations:
    """chromVAR deviations, sets x cells: ``raw``, bias-corrected ``deviations`` (chromVAR's
    ``deviations`` assay) and ``z`` (its ``z`` assay)."""

    sets: tuple[str, ...]
    raw: np.ndarray
    deviations: np.ndarray
    z: np.ndarray
    gc_matched: bool

    @property
    def note(self) -> str:
        return GC_MATCHED if self.gc_matched else GC_NOT_MATCHED


def _as_csc(counts: Any) -> sp.csc_matrix:
    matrix = sp.csc_matrix(counts, dtype=np.float64)
    if matrix.nnz and matrix.data.min() < 0:
        raise MethodInputError("counts must be non-negative", place="counts", rule="counts")
    return matrix


def peak_expectation(counts: Any) -> np.ndarray:
    """Each peak's fraction of all counts of a peak x cell matrix (chromVAR's
    ``computeExpectations`` without normalisation)."""
    matrix = _as_csc(counts)
    per_peak = np.asarray(matrix.sum(axis=1)).ravel()
    total = per_peak.sum()
    if total <= 0:
        raise MethodInputError("the count matrix is all zero", place="counts", rule="counts")
    return np.asarray(per_peak / total)


def annotation_matrix(
    n_peaks: int, sets: dict[str, np.ndarray]
) -> tuple[sp.csc_matrix, tuple[str, ...]]:
    """A peak x set 0/1 matrix from ``{set name: peak indices}`` (indices into the rows)."""
    names = tuple(sets)
    rows = [np.unique(np.asarray(sets[name], dtype=np.int64)) for name in names]
    for name, idx in zip(names, rows, strict=True):
        if idx.size and (idx.min() < 0 or idx.max() >= n_peaks):
            raise MethodInputError(
                f"set {name!r} has peak indices outside [0, {n_peaks})",
                place="peak sets",
                rule="peak-index",
            )
    cols = np.repeat(np.arange(len(names)), [r.size for r in rows])
    data = np.ones(cols.shape[0], dtype=np.float64)
    matrix = sp.csc_matrix(
        (data, (np.concatenate(rows) if rows else np.zeros(0, np.int64), cols)),
        shape=(n_peaks, len(names)),
    )
    return matrix, names


def peak_sets_from_intervals(peaks: Intervals, regions: Intervals) -> dict[str, np.ndarray]:
    """Peak sets from named regions (a BED with a name column, motif hits): for each
    distinct ``regions.name``, the sorted indices of the peaks that overlap one of its
    regions by >= 1 bp.

    Raises
    ------
    MethodInputError
        ``regions`` has no names.
    """
    if regions.name is None:
        raise MethodInputError(
            "peak-set regions need a name column", place="peak sets", rule="columns"
        )
    names = np.asarray(regions.name).astype(str)
    region_contig = np.asarray(regions.contig).astype(str)
    peak_contig = np.asarray(peaks.contig).astype(str)
    members: dict[str, list[np.ndarray]] = {name: [] for name in dict.fromkeys(names.tolist())}
    for contig in np.unique(region_contig):
        rows = np.flatnonzero(region_contig == contig)
        here = np.flatnonzero(peak_contig == contig)
        if here.size == 0:
            continue
        order = here[np.argsort(np.asarray(peaks.start)[here], kind="stable")]
        owner, hit = interval_hits(
            np.asarray(regions.start, dtype=np.int64)[rows],
            np.asarray(regions.end, dtype=np.int64)[rows],
            np.asarray(peaks.start, dtype=np.int64)[order],
            np.asarray(peaks.end, dtype=np.int64)[order],
        )
        frame = pd.DataFrame({"set": names[rows][owner], "peak": order[hit]})
        for name, group in frame.groupby("set", sort=False):
            members[str(name)].append(group["peak"].to_numpy())
    return {
        name: np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        for name, parts in members.items()
    }


def background_peaks(
    counts: Any,
    *,
    gc: np.ndarray | None = None,
    n_iterations: int = 50,
    w: float = 0.1,
    bins: int = 50,
    seed: int = 0,
) -> BackgroundPeaks:
    """Background peaks matched on mean accessibility (and GC), chromVAR's
    ``getBackgroundPeaks`` (see the module docstring for the exact sampling).

    Parameters
    ----------
    counts
        Peak x cell counts (sparse or dense); every peak needs at least one count.
    gc
        GC fraction of each peak (e.g. from the genome FASTA); ``None``: matched on
        accessibility only (the result's ``note`` says "GC not matched").
    n_iterations, w, bins
        chromVAR's ``niterations`` (50), ``w`` (0.1, the kernel's sd in whitened
        units) and ``bs`` (50 grid points per dimension).
    seed
        Seed of the random generator (reproducible backgrounds).

    Raises
    ------
    MethodInputError
        A peak has no counts (chromVAR's rule; filter such peaks first) or ``gc`` has
        the wrong length or non-finite values.
    """
    matrix = _as_csc(counts)
    per_peak = np.asarray(matrix.sum(axis=1)).ravel()
    if (per_peak <= 0).any():
        raise MethodInputError(
            f"{int((per_peak <= 0).sum())} peaks have no counts; all peaks need at least "
            "one fragment (filter them first, as chromVAR's filterPeaks)",
            place="counts",
            rule="peaks-with-counts",
        )
    points = np.log10(per_peak)[:, None]
    if gc is not None:
        gc = np.asarray(gc, dtype=np.float64)
        if gc.shape != per_peak.shape or not np.isfinite(gc).all():
            raise MethodInputError(
                f"gc must hold one finite value per peak ({per_peak.shape[0]})",
                place="gc",
                rule="gc",
            )
        points = np.column_stack([points[:, 0], gc])
    cov = np.atleast_2d(np.cov(points, rowvar=False))
    try:
        lower = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        lower = None
    if lower is None or not np.isfinite(lower).all() or (np.diag(lower) <= 0).any():
        raise MethodInputError(
            "accessibility (and GC) do not vary across peaks (or are collinear): "
            "no background to match on",
            place="counts",
            rule="background",
        )
    white = solve_triangular(lower, points.T, lower=True).T
    lo = white.min(axis=0)
    step = (white.max(axis=0) - lo) / (bins - 1)
    step = np.where(step > 0, step, 1.0)
    coord = np.clip(np.rint((white - lo) / step).astype(np.int64), 0, bins - 1)
    dims = coord.shape[1]
    bin_of = np.ravel_multi_index(tuple(coord.T), (bins,) * dims)
    occupied, member = np.unique(bin_of, return_inverse=True)
    density = np.bincount(member)
    centres = lo + step * np.column_stack(np.unravel_index(occupied, (bins,) * dims))
    dist = np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    prob = stats.norm.pdf(dist, 0.0, w)
    prob = prob / prob.sum(axis=1, keepdims=True)
    cum = np.cumsum(prob, axis=1)
    cum[:, -1] = 1.0
    n_bins = occupied.shape[0]
    shifted = (cum + np.arange(n_bins)[:, None]).ravel()
    rng = np.random.default_rng(seed)
    n_peaks = per_peak.shape[0]
    u = rng.random((n_peaks, n_iterations))
    row = member[:, None]
    target = np.searchsorted(shifted, row + u, side="right") - row * n_bins
    target = np.clip(target, 0, n_bins - 1)
    order = np.argsort(member, kind="stable")
    first = np.cumsum(density) - density
    within = np.minimum(
        (rng.random((n_peaks, n_iterations)) * density[target]).astype(np.int64),
        density[target] - 1,
    )
    indices = order[first[target] + within]
    return BackgroundPeaks(indices=indices.astype(np.int64), gc_matched=gc is not None)


def _raw(observed: np.ndarray, expected_fraction: np.ndarray, depth: np.ndarray) -> np.ndarray:
    expected = expected_fraction[:, None] * depth[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((observed - expected) / expected)


def _background_annotation(annotation: sp.csc_matrix, background: np.ndarray) -> sp.csc_matrix:
    """Peak x (iteration, set) matrix: column ``i * n_sets + s`` is set ``s`` with each
    peak ``p`` replaced by ``background[p, i]`` (duplicates summed)."""
    coo = annotation.tocoo()
    n_iter = background.shape[1]
    n_sets = annotation.shape[1]
    rows = background[coo.row].T.ravel()
    cols = (np.arange(n_iter)[:, None] * n_sets + coo.col[None, :]).ravel()
    data = np.tile(coo.data, n_iter)
    return sp.csc_matrix((data, (rows, cols)), shape=(annotation.shape[0], n_iter * n_sets))


def deviations_block(
    counts_block: Any,
    annotation: sp.csc_matrix,
    expectation: np.ndarray,
    background: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw, bias-corrected and z deviations (sets x cells) of one block of cells.

    ``counts_block`` is the peak x cell counts of these cells; ``expectation``
    (:func:`peak_expectation` of the whole matrix) and ``background``
    (:attr:`BackgroundPeaks.indices`) are global, so blocks are independent.
    """
    block = _as_csc(counts_block)
    n_sets = annotation.shape[1]
    n_iter = background.shape[1]
    depth = np.asarray(block.sum(axis=0)).ravel()
    observed = np.asarray((annotation.T @ block).todense())
    raw = _raw(observed, np.asarray(annotation.T @ expectation).ravel(), depth)
    bg = _background_annotation(annotation, background)
    bg_observed = np.asarray((bg.T @ block).todense())
    bg_raw = _raw(bg_observed, np.asarray(bg.T @ expectation).ravel(), depth)
    bg_raw = bg_raw.reshape(n_iter, n_sets, depth.shape[0])
    mean = bg_raw.mean(axis=0)
    sd = bg_raw.std(axis=0, ddof=1)
    corrected = raw - mean
    with np.errstate(invalid="ignore", divide="ignore"):
        z = corrected / sd
    return raw, corrected, z


def _block_cells(n_sets: int, n_iterations: int) -> int:
    return max(1, int(BLOCK_BYTES // (8 * max(1, n_sets) * max(1, n_iterations + 1))))


def compute_deviations(
    counts: Any,
    annotation: sp.csc_matrix | np.ndarray,
    background: BackgroundPeaks,
    *,
    set_names: tuple[str, ...] | None = None,
    block_cells: int | None = None,
    scheduler: str | None = None,
) -> Deviations:
    """chromVAR deviations of every peak set in every cell.

    Parameters
    ----------
    counts
        Peak x cell counts (scipy.sparse or dense).
    annotation
        Peak x set 0/1 matrix (:func:`annotation_matrix`).
    background
        :func:`background_peaks` of the same matrix.
    block_cells
        Cells per block (default: as many as fit :data:`BLOCK_BYTES`); results do not
        depend on it.
    scheduler
        Dask scheduler for the blocks (default: Dask's current one).

    Returns
    -------
    Deviations
        ``raw``, ``deviations`` and ``z`` (sets x cells); NaN for a cell without counts.
    """
    matrix = _as_csc(counts)
    ann = sp.csc_matrix(annotation, dtype=np.float64)
    if ann.shape[0] != matrix.shape[0] or background.indices.shape[0] != matrix.shape[0]:
        raise MethodInputError(
            f"counts have {matrix.shape[0]} peaks, the annotation {ann.shape[0]} and the "
            f"background {background.indices.shape[0]}",
            place="peak sets",
            rule="shape",
        )
    names = set_names if set_names is not None else tuple(str(i) for i in range(ann.shape[1]))
    expectation = peak_expectation(matrix)
    size = block_cells or _block_cells(ann.shape[1], background.indices.shape[1])
    parts = [
        dask.delayed(deviations_block)(
            matrix[:, lo : lo + size], ann, expectation, background.indices
        )
        for lo in range(0, matrix.shape[1], size)
    ]
    results = dask.compute(*parts, scheduler=scheduler) if scheduler else dask.compute(*parts)
    raw = np.concatenate([r[0] for r in results], axis=1)
    corrected = np.concatenate([r[1] for r in results], axis=1)
    z = np.concatenate([r[2] for r in results], axis=1)
    return Deviations(
        sets=names, raw=raw, deviations=corrected, z=z, gc_matched=background.gc_matched
    )


def _bootstrap_sds(z: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """sd over cells (``ddof = 1``, NaN left out) of ``z`` (sets x cells) for
    ``n_bootstrap`` resamplings of the cells with replacement: sets x n_bootstrap.
    Resamplings are drawn in groups that keep ``sets x group x cells`` under
    :data:`BLOCK_BYTES`; the draws (``rng.integers(0, n_cells, (group, n_cells))``,
    group after group) do not depend on the grouping."""
    n_sets, n_cells = z.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_sets, n_bootstrap))
    step = max(1, int(BLOCK_BYTES // (8 * max(1, n_sets) * max(1, n_cells))))
    for lo in range(0, n_bootstrap, step):
        k = min(step, n_bootstrap - lo)
        idx = rng.integers(0, n_cells, size=(k, n_cells))
        with warnings.catch_warnings():
            # a set NaN in all or all but one resampled cell has no sd: NaN, as in R
            warnings.simplefilter("ignore", RuntimeWarning)
            out[:, lo : lo + k] = np.nanstd(z[:, idx], axis=2, ddof=1)
    return out


def variability(
    deviations: Deviations,
    *,
    bootstrap_samples: int = 1000,
    quantiles: tuple[float, float] = (0.025, 0.975),
    seed: int = 0,
) -> pd.DataFrame:
    """chromVAR's ``computeVariability`` (Schep et al. 2017): per set, the sd of its
    z-scores over cells (``ddof = 1``, NaN cells left out), ``p_value = P(chi2_{n-1} >
    (n-1) sd^2)`` and its Benjamini-Hochberg ``p_adj``; ``note`` says whether GC was
    matched.

    The confidence interval (``bootstrap_lower_bound``, ``bootstrap_upper_bound``) is
    chromVAR's: the ``quantiles`` of the sd over ``bootstrap_samples`` resamplings of the
    cells with replacement (``bootstrap_error = TRUE``, 1000 samples, ``c(0.025,
    0.975)``); ``bootstrap_samples = 0`` leaves them NaN. ``seed`` fixes the
    resamplings (chromVAR uses R's global generator).
    """
    z = deviations.z
    n = np.isfinite(z).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(z, axis=1, ddof=1)
    p = stats.chi2.sf((n - 1) * sd**2, df=n - 1)
    order = np.argsort(p)
    ranked = p[order] * p.shape[0] / np.arange(1, p.shape[0] + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    p_adj = np.empty_like(p)
    p_adj[order] = np.minimum(adjusted, 1.0)
    lower = np.full(sd.shape, np.nan)
    upper = np.full(sd.shape, np.nan)
    if bootstrap_samples > 0 and z.shape[1] > 1 and z.shape[0] > 0:
        boot = _bootstrap_sds(z, bootstrap_samples, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lower, upper = np.nanquantile(boot, list(quantiles), axis=1)
    return pd.DataFrame(
        {
            "set": list(deviations.sets),
            "variability": sd,
            "bootstrap_lower_bound": lower,
            "bootstrap_upper_bound": upper,
            "p_value": p,
            "p_adj": p_adj,
            "note": deviations.note,
        }
    )
