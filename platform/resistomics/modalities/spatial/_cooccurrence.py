"""Co-occurrence of cell types as a function of distance (squidpy ``co_occurrence``).

For thresholds ``d_1 < ... < d_L`` (the interval without its first value), the counts
``N[a, b, r]`` are the ordered pairs of distinct cells ``(i, j)`` with types ``a, b`` and
``|x_i - x_j| <= d_r`` (cumulative disks, not annuli). With ``R[b, r] = sum_a N[a, b, r]``
and ``P[b, r] = R[b, r] / sum_b R[b, r]``, the co-occurrence ratio is

    ratio[a, c, r] = (N[c, a, r] / R[c, r]) / P[a, r]        (0 where undefined)

i.e. p(type a | a cell of type c is near) / p(type a): above 1, ``a`` gathers around ``c``
at that distance.

Arithmetic follows squidpy 1.8 where it decides a pair: coordinates are cast to float32,
and the squared distance of the float32 differences, rounded once to float32, is
compared with the squared float32 thresholds, so that pairs on a threshold fall on the
same side. The default interval
(``interval=50``) is squidpy's: ``linspace(t_min, t_max, 50)`` with ``t_min`` the distance
between the two cells of smallest ``x + y`` and ``t_max`` half the distance from the first of
them to the cell of largest ``x + y``.

Pairs farther apart than the largest threshold count in no bin, so they are never
visited: the cells are bucketed into a square grid whose side is the largest threshold
(a cell list, Allen & Tildesley 1987), and each cell is compared only with the cells of
its own and the four "forward" neighbouring grid squares (each unordered pair once). With
the default interval (which spans half the section) that is still all pairs, O(n^2);
with a local interval (co-occurrence within, say, 200 um, the scale of a niche) it is
O(n m), m the mean number of cells within the largest threshold. Each visited pair costs
a binary search for its first threshold (squidpy tests every threshold for every ordered
pair of all n^2); memory O(n + k^2 L); a compiled loop (numba, releases the GIL so
sections run in parallel threads). The result is the same as the all-pairs count, bit
for bit (tested), because the pair decision is the same float32 comparison.

References
----------
Palla G. et al. (2022) Squidpy: a scalable framework for spatial omics analysis.
Nat Methods 19:171-178 (``squidpy.gr.co_occurrence``; source ``squidpy/gr/_ppatterns.py``,
1.8.3). Tosti L. et al. (2021) Single-nucleus and in situ RNA-sequencing reveal cell
topographies in the human pancreas. Gastroenterology 160:1330-1344 (the co-occurrence
score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd

from resistomics.errors import InputError
from resistomics.modalities.spatial._graph import check_coordinates
from resistomics.modalities.spatial._labels import label_codes

__all__ = ["CoOccurrence", "co_occurrence", "default_interval"]


@dataclass(frozen=True)
class CoOccurrence:
    """Co-occurrence ratios by distance.

    Attributes
    ----------
    categories
        Cell types.
    interval
        ``(L + 1,)`` float32 distances; ratios are for the thresholds ``interval[1:]``.
    ratio
        ``(k, k, L)`` float64, ``ratio[a, c, r]`` = p(a | near c) / p(a) within
        ``interval[r + 1]``.
    counts
        ``(k, k, L)`` int64 ordered pair counts ``N[a, b, r]``.
    """

    categories: tuple[str, ...]
    interval: np.ndarray
    ratio: np.ndarray
    counts: np.ndarray


def default_interval(coords: npt.ArrayLike, n: int = 50, *, section: str = "section") -> np.ndarray:
    """squidpy's default distance interval (``_find_min_max`` then float32 ``linspace``)."""
    xy = check_coordinates(coords, section=section).astype(np.float32)
    total = np.sum(xy, axis=1)
    lo, lo2 = np.argpartition(total, 2)[:2]
    hi = int(np.argmax(total))

    def dist(a: int, b: int) -> np.float32:
        # scikit-learn's float32 euclidean_distances: float64 |x|^2 - 2 x.y + |y|^2,
        # cast to float32, clipped at 0, float32 sqrt
        p, q = xy[a].astype(np.float64), xy[b].astype(np.float64)
        d2 = np.float32(-2.0 * np.dot(p, q) + np.dot(p, p) + np.dot(q, q))
        return np.sqrt(np.maximum(d2, np.float32(0.0)))

    t_max = np.float32(dist(int(lo), hi) / np.float32(2.0))
    t_min = dist(int(lo), int(lo2))
    return np.linspace(t_min, t_max, num=n, dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def _pair_histogram(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray, thresholds2: np.ndarray, hist: np.ndarray
) -> None:  # pragma: no cover - compiled
    # hist[a, b, r] += pairs i < j of types (a, b) whose first threshold is r (n_bins: none).
    # float32 differences, their squares summed exactly and rounded once to float32 (what
    # squidpy's fastmath kernel computes with a fused multiply-add); no fastmath here, so
    # the compiler cannot reassociate it.
    n = x.shape[0]
    n_bins = thresholds2.shape[0]
    for i in range(n):
        xi, yi, ci = x[i], y[i], codes[i]
        for j in range(i + 1, n):
            dx = np.float64(xi - x[j])
            dy = np.float64(yi - y[j])
            d2 = np.float32(dx * dx + dy * dy)
            # first r with d2 <= thresholds2[r] (searchsorted, left), branch-free: the
            # loop length depends on n_bins only, the comparison becomes a conditional move
            base, size = 0, n_bins
            while size > 1:
                half = size // 2
                if thresholds2[base + half - 1] < d2:
                    base += half
                size -= half
            if thresholds2[base] < d2:  # n_bins >= 1, and base <= n_bins - 1 here
                base += 1
            hist[ci, codes[j], base] += 1  # (i, j); (j, i) is added by the caller's transpose


@numba.njit(cache=True, nogil=True)
def _bin_of(d2: np.float32, thresholds2: np.ndarray) -> int:  # pragma: no cover - compiled
    # first r with d2 <= thresholds2[r] (searchsorted, left); n_bins when none
    n_bins = thresholds2.shape[0]
    base, size = 0, n_bins
    while size > 1:
        half = size // 2
        if thresholds2[base + half - 1] < d2:
            base += half
        size -= half
    if thresholds2[base] < d2:
        base += 1
    return base


@numba.njit(cache=True, nogil=True)
def _grid_pair_histogram(
    x: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    thresholds2: np.ndarray,
    starts: np.ndarray,
    nx: int,
    ny: int,
    hist: np.ndarray,
) -> None:  # pragma: no cover - compiled
    # x, y, codes are sorted by grid square (square index gx * ny + gy); starts[s] is the
    # first point of square s (starts has nx * ny + 1 entries). Each unordered pair within
    # the largest threshold once: same square (j > i), then the forward squares
    # (gx, gy + 1), (gx + 1, gy - 1), (gx + 1, gy), (gx + 1, gy + 1).
    last = thresholds2[thresholds2.shape[0] - 1]
    for gx in range(nx):
        for gy in range(ny):
            s = gx * ny + gy
            for i in range(starts[s], starts[s + 1]):
                xi, yi, ci = x[i], y[i], codes[i]
                for j in range(i + 1, starts[s + 1]):
                    dx = np.float64(xi - x[j])
                    dy = np.float64(yi - y[j])
                    d2 = np.float32(dx * dx + dy * dy)
                    if d2 <= last:
                        hist[ci, codes[j], _bin_of(d2, thresholds2)] += 1
                for step in range(4):
                    if step == 0:
                        ox, oy = gx, gy + 1
                    else:
                        ox, oy = gx + 1, gy + step - 2
                    if ox >= nx or oy < 0 or oy >= ny:
                        continue
                    t = ox * ny + oy
                    for j in range(starts[t], starts[t + 1]):
                        dx = np.float64(xi - x[j])
                        dy = np.float64(yi - y[j])
                        d2 = np.float32(dx * dx + dy * dy)
                        if d2 <= last:
                            hist[ci, codes[j], _bin_of(d2, thresholds2)] += 1


def _grid_histogram(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray, thresholds2: np.ndarray, hist: np.ndarray
) -> None:
    """Fill ``hist`` as :func:`_pair_histogram` does, visiting only pairs within the
    largest threshold (pairs beyond it go to no kept bin)."""
    reach = float(np.sqrt(np.float64(thresholds2[-1])))
    # a little wider than the largest threshold, so that float32 rounding of a pair's
    # distance can never put a counted pair two squares apart
    side = max(reach * (1.0 + 1e-5), 1e-12)
    x0, y0 = float(x.min()), float(y.min())
    gx = np.floor((x.astype(np.float64) - x0) / side).astype(np.int64)
    gy = np.floor((y.astype(np.float64) - y0) / side).astype(np.int64)
    nx, ny = int(gx.max()) + 1, int(gy.max()) + 1
    if nx * ny > 4 * x.shape[0] + 16:  # sparse grid (tiny threshold): squares of many cells
        side = max(side, float(max(np.ptp(x), np.ptp(y))) / np.sqrt(x.shape[0]) + 1e-12)
        gx = np.floor((x.astype(np.float64) - x0) / side).astype(np.int64)
        gy = np.floor((y.astype(np.float64) - y0) / side).astype(np.int64)
        nx, ny = int(gx.max()) + 1, int(gy.max()) + 1
    square = gx * ny + gy
    order = np.argsort(square, kind="stable")
    starts = np.searchsorted(square[order], np.arange(nx * ny + 1)).astype(np.int64)
    _grid_pair_histogram(x[order], y[order], codes[order], thresholds2, starts, nx, ny, hist)


def co_occurrence(
    coords: npt.ArrayLike,
    labels: pd.Categorical | pd.Series | Sequence[str] | np.ndarray,
    *,
    interval: int | npt.ArrayLike = 50,
    section: str = "section",
) -> CoOccurrence:
    """Co-occurrence ratio of cell types over distance thresholds in one section.

    Parameters
    ----------
    coords
        ``(n_cells, 2)`` x, y.
    labels
        One cell type per cell.
    interval
        Number of evenly spaced distances (squidpy's default interval, see
        :func:`default_interval`) or the distances themselves (sorted, as squidpy does).
    section
        Name used in error messages.

    Raises
    ------
    InputError
        Bad coordinates or labels, or fewer than two distances (``interval``).

    References
    ----------
    Palla et al. (2022) Nat Methods 19:171-178; Tosti et al. (2021) Gastroenterology
    160:1330-1344.
    """
    xy = check_coordinates(coords, section=section)
    n = xy.shape[0]
    codes, categories = label_codes(labels, n_cells=n, section=section)
    k = len(categories)
    if isinstance(interval, int | np.integer):
        edges = default_interval(xy, int(interval), section=section)
    else:
        edges = np.array(sorted(np.asarray(interval, dtype=np.float64).ravel()), dtype=np.float32)
    if len(edges) < 2 or not np.isfinite(edges).all():
        raise InputError(
            section, "interval", f"need at least 2 finite distances; got {edges.tolist()}"
        )
    thresholds2 = edges[1:] ** 2  # float32, as squidpy
    n_bins = len(thresholds2)

    hist = np.zeros((k, k, n_bins + 1), dtype=np.int64)
    _grid_histogram(
        xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32), codes, thresholds2, hist
    )
    hist += hist.transpose(1, 0, 2).copy()  # ordered pairs: (i, j) and (j, i)
    counts = np.cumsum(hist[:, :, :n_bins], axis=2)

    row_sums = counts.sum(axis=0).astype(np.float64)  # R[b, r]
    totals = row_sums.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = row_sums / totals  # P[b, r]
        ratio = (counts.transpose(1, 0, 2) / row_sums[None, :, :]) / probs[:, None, :]
    defined = (probs[:, None, :] != 0) & (row_sums[None, :, :] != 0)
    ratio = np.where(defined, ratio, 0.0)
    return CoOccurrence(categories=categories, interval=edges, ratio=ratio, counts=counts)
