"""Metabolomics processing steps as MetaboAnalyst defines them (Pang et al. 2021, *NAR* 49:W388).

Every function takes a features x samples float matrix (NaN = missing, as in the
``metabolomics.abundance`` store) and returns a new array; none modifies its input.
Order of use, as in MetaboAnalyst: filter missingness, impute, drift-correct, normalise
per sample, transform, scale per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from resistomics.errors import MethodInputError

__all__ = [
    "KnnDonors",
    "auto_scale",
    "correct_drift_qc_rlsc",
    "filter_missingness",
    "glog_transform",
    "impute_half_minimum",
    "impute_knn",
    "log_transform",
    "median_normalize",
    "pareto_scale",
    "pqn_normalize",
    "range_scale",
    "sum_normalize",
]

# Features whose distances to all others are computed in one block (block x features floats).
_KNN_BLOCK = 256


def _matrix(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise MethodInputError(f"expected a features x samples matrix, got {a.ndim} dimension(s)")
    return a


def filter_missingness(
    x: np.ndarray, *, max_fraction: float, groups: Sequence[str] | None = None
) -> np.ndarray:
    """Which features to keep: missing fraction at most ``max_fraction``.

    Without ``groups`` the bound applies over all samples (MetaboAnalyst
    ``RemoveMissingPercent``). With ``groups`` (one label per sample) a feature is kept when
    it meets the bound in at least one group, the "modified 80 % rule" (Bijlsma et al. 2006,
    *Anal Chem* 78:567), so a metabolite absent in one group only is not lost.

    Returns
    -------
    Boolean mask over features (True = keep).
    """
    a = _matrix(x)
    if not 0.0 <= max_fraction <= 1.0:
        raise MethodInputError(f"max_fraction must be within [0, 1], got {max_fraction}")
    missing = np.isnan(a)
    if groups is None:
        return np.asarray(missing.mean(axis=1) <= max_fraction)
    labels = np.asarray(groups)
    if labels.shape != (a.shape[1],):
        raise MethodInputError(f"{labels.size} group labels for {a.shape[1]} samples")
    keep = np.zeros(a.shape[0], dtype=bool)
    for g in np.unique(labels):
        keep |= missing[:, labels == g].mean(axis=1) <= max_fraction
    return keep


def impute_half_minimum(x: np.ndarray) -> np.ndarray:
    """Replace each feature's missing values by half its smallest observed value.

    MetaboAnalyst ``ImputeMissingVar(method = "min")`` (half of the minimum of each
    variable), the usual stand-in for values below the detection limit.

    Raises
    ------
    MethodInputError
        A feature has no observed value.
    """
    a = _matrix(x).copy()
    missing = np.isnan(a)
    empty = missing.all(axis=1)
    if empty.any():
        raise MethodInputError(
            f"feature {int(np.flatnonzero(empty)[0])} has no observed value: filter it first"
        )
    half_min = np.nanmin(a, axis=1) / 2.0
    rows, _ = np.nonzero(missing)
    a[missing] = half_min[rows]
    return a


def impute_knn(x: np.ndarray, *, k: int = 10, ids: np.ndarray | None = None) -> np.ndarray:
    """Impute each missing value from the ``k`` most similar features (feature-wise KNN).

    As ``impute::impute.knn`` (Troyanskaya et al. 2001, *Bioinformatics* 17:520), which
    MetaboAnalyst's ``ImputeMissingVar(method = "knn_var")`` calls: the distance between two
    features is the mean squared difference over the samples both observe; a missing value
    of feature *i* in sample *s* is the mean of sample *s* in the ``k`` features nearest to
    *i* among those observed in *s* (donor choice as scikit-learn's ``KNNImputer``).
    impute.knn's mean-imputation of rows with more than 50 % missing is not reproduced:
    filter such features first. ``ids`` (default the row numbers) name the features in
    errors.

    Raises
    ------
    MethodInputError
        ``k`` < 1, or a missing value has no donor feature sharing a sample with it.
    """
    a = _matrix(x)
    if k < 1:
        raise MethodInputError(f"k must be at least 1, got {k}")
    names = np.arange(a.shape[0]) if ids is None else np.asarray(ids)
    donors = KnnDonors(a, names, k=k)
    donors.update(a, names)
    return donors.imputed()


def _knn_distances(
    t_values: np.ndarray, t_obs: np.ndarray, d_values: np.ndarray, d_obs: np.ndarray
) -> np.ndarray:
    """Mean squared difference over the co-observed samples of each target and donor
    feature (``inf`` where they share none); values 0 where missing, ``obs`` 0 / 1."""
    # sum over co-observed samples of (x_i - x_j)^2, expanded into matrix products
    sq = (t_values**2) @ d_obs.T + t_obs @ (d_values**2).T - 2.0 * t_values @ d_values.T
    shared = t_obs @ d_obs.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(shared > 0, np.maximum(sq, 0.0) / shared, np.inf)


class KnnDonors:
    """The ``k`` nearest donors of every missing value of some target features, kept
    while donor features stream past in index order (:func:`impute_knn`'s search).

    ``target`` (features x samples, NaN missing) with ``ids``, the targets' positions in
    the whole matrix; :meth:`update` with each block of donor features (any features of
    the matrix, in increasing position, each once; a target is never its own donor) and
    :meth:`imputed` at the end. Per missing value the best ``k`` (distance, position)
    pairs are kept in order, so the donors and their sum are those of one stable sort
    over all features: streamed or not, the imputed values are the same.
    """

    def __init__(self, target: np.ndarray, ids: np.ndarray, *, k: int) -> None:
        self.target = _matrix(target)
        self.ids = np.asarray(ids)
        self.k = int(k)
        observed = ~np.isnan(self.target)
        self.rows = np.flatnonzero(~observed.all(axis=1))
        self.cols = [np.flatnonzero(~observed[i]) for i in self.rows]
        self.dist = [np.full((self.k, c.size), np.inf) for c in self.cols]
        self.value = [np.zeros((self.k, c.size)) for c in self.cols]

    def update(self, donors: np.ndarray, ids: np.ndarray) -> None:
        """Offer the donor features ``donors`` (rows at positions ``ids``)."""
        if self.rows.size == 0:
            return
        d = _matrix(donors)
        d_obs_mask = ~np.isnan(d)
        d_values = np.where(d_obs_mask, d, 0.0)
        d_obs = d_obs_mask.astype(np.float64)
        ids = np.asarray(ids)
        k = self.k
        for start in range(0, self.rows.size, _KNN_BLOCK):
            chunk = np.arange(start, min(start + _KNN_BLOCK, self.rows.size))
            t = self.target[self.rows[chunk]]
            t_obs = ~np.isnan(t)
            dist = _knn_distances(
                np.where(t_obs, t, 0.0), t_obs.astype(np.float64), d_values, d_obs
            )
            dist[self.ids[self.rows[chunk]][:, None] == ids[None, :]] = np.inf
            for r, j in enumerate(chunk):
                cols = self.cols[j]
                order = np.argsort(dist[r], kind="stable")
                order = order[np.isfinite(dist[r, order])]
                if order.size == 0:
                    continue
                seen = d_obs_mask[order][:, cols]
                rank = np.cumsum(seen, axis=0)
                ri, ci = np.nonzero(seen & (rank <= k))
                new_d = np.full((k, cols.size), np.inf)
                new_v = np.zeros((k, cols.size))
                pos = rank[ri, ci] - 1
                new_d[pos, ci] = dist[r, order[ri]]
                new_v[pos, ci] = d_values[order[ri], cols[ci]]
                # the kept donors come from earlier positions: first among equal distances
                both_d = np.vstack([self.dist[j], new_d])
                best = np.argsort(both_d, axis=0, kind="stable")[:k]
                self.dist[j] = np.take_along_axis(both_d, best, axis=0)
                self.value[j] = np.take_along_axis(np.vstack([self.value[j], new_v]), best, axis=0)

    def imputed(self) -> np.ndarray:
        """The target with each missing value the mean of its donors' values.

        Raises
        ------
        MethodInputError
            A missing value has no donor feature sharing a sample with it.
        """
        out = self.target.copy()
        for j, i in enumerate(self.rows):
            n = np.isfinite(self.dist[j]).sum(axis=0)
            if (n == 0).any():
                raise MethodInputError(
                    f"feature {int(self.ids[i])}: no donor feature for sample "
                    f"{int(self.cols[j][n == 0][0])}"
                )
            out[i, self.cols[j]] = self.value[j].sum(axis=0) / n
        return out


def sum_normalize(x: np.ndarray) -> np.ndarray:
    """Divide each sample by its total and multiply by 1000 (MetaboAnalyst ``SumNorm``)."""
    a = _matrix(x)
    return 1000.0 * a / np.nansum(a, axis=0, keepdims=True)


def median_normalize(x: np.ndarray) -> np.ndarray:
    """Divide each sample by its median observed value (MetaboAnalyst ``MedianNorm``)."""
    a = _matrix(x)
    return a / np.nanmedian(a, axis=0, keepdims=True)


def pqn_normalize(x: np.ndarray, *, qc: np.ndarray | None = None) -> np.ndarray:
    """Probabilistic quotient normalisation (Dieterle et al. 2006, *Anal Chem* 78:4281).

    The reference spectrum is the per-feature median of the pooled QC samples (``qc``, a
    boolean mask over samples) when given, else of all samples; each sample is divided by
    the median over features of its quotients to the reference (MetaboAnalyst
    ``ProbNorm``). Dieterle's optional integral pre-normalisation is left to the caller
    (:func:`sum_normalize`), as in MetaboAnalyst.
    """
    a = _matrix(x)
    ref_samples = a if qc is None else a[:, np.asarray(qc, dtype=bool)]
    if ref_samples.shape[1] == 0:
        raise MethodInputError("pqn: the QC mask selects no sample")
    with np.errstate(all="ignore"):
        reference = np.nanmedian(ref_samples, axis=1, keepdims=True)
        quotients = a / reference
    quotients[~np.isfinite(quotients) | (reference == 0)] = np.nan
    dilution = np.nanmedian(quotients, axis=0, keepdims=True)
    return a / dilution


def correct_drift_qc_rlsc(
    x: np.ndarray,
    *,
    injection_order: np.ndarray,
    qc: np.ndarray,
    batch: np.ndarray | None = None,
    frac: float = 0.75,
    min_qc: int = 4,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """QC-robust LOESS signal correction (QC-RLSC; Dunn et al. 2011, *Nat Protoc* 6:1060).

    Per feature and per batch, a LOESS curve (``statsmodels`` lowess, span ``frac``, robust
    iterations) is fitted to the QC values against injection order and evaluated at every
    sample of that batch (linear interpolation between QCs, constant beyond the first and
    last QC). Each value is divided by its curve and multiplied by the feature's median QC
    value over all batches, which removes the within-batch drift and aligns the batches.
    ``ids`` (default the row numbers) name the features in errors.

    Raises
    ------
    MethodInputError
        A batch has fewer than ``min_qc`` observed QC values for a feature, or a fitted
        curve is not positive.
    """
    from statsmodels.nonparametric.smoothers_lowess import lowess

    a = _matrix(x)
    order = np.asarray(injection_order, dtype=np.float64)
    is_qc = np.asarray(qc, dtype=bool)
    batches = np.zeros(a.shape[1]) if batch is None else np.asarray(batch)
    if order.shape != (a.shape[1],) or is_qc.shape != order.shape or batches.shape != order.shape:
        raise MethodInputError("injection_order, qc and batch need one entry per sample")
    names = np.arange(a.shape[0]) if ids is None else np.asarray(ids)
    out = np.full_like(a, np.nan)
    qc_values = np.where(is_qc, a, np.nan)
    target = np.full(a.shape[0], np.nan)
    # a feature without QC values is refused below, without nanmedian's warning first
    seen_qc = ~np.isnan(qc_values).all(axis=1)
    target[seen_qc] = np.nanmedian(qc_values[seen_qc], axis=1)
    for b in np.unique(batches):
        in_batch = batches == b
        qc_cols = np.flatnonzero(in_batch & is_qc)
        cols = np.flatnonzero(in_batch)
        for f in range(a.shape[0]):
            y = a[f, qc_cols]
            seen = ~np.isnan(y)
            if seen.sum() < min_qc:
                raise MethodInputError(
                    f"qc-rlsc: feature {int(names[f])} has {int(seen.sum())} observed QC values in batch "
                    f"{str(b)!r}, at least {min_qc} needed"
                )
            fit = lowess(y[seen], order[qc_cols][seen], frac=frac, it=3, return_sorted=True)
            curve = np.interp(order[cols], fit[:, 0], fit[:, 1])
            if not (np.isfinite(curve) & (curve > 0)).all():
                raise MethodInputError(
                    f"qc-rlsc: feature {int(names[f])} batch {str(b)!r}: LOESS curve <= 0"
                )
            out[f, cols] = a[f, cols] / curve * target[f]
    return out


def log_transform(x: np.ndarray, *, base: Literal[2, 10] = 2) -> np.ndarray:
    """Plain logarithm, base 2 or 10; values must be positive (impute zeros first)."""
    a = _matrix(x)
    if (a <= 0).any():
        raise MethodInputError("log transform of a value <= 0: impute or use glog_transform")
    return np.log2(a) if base == 2 else np.log10(a)


def glog_transform(x: np.ndarray, *, base: Literal[2, 10] = 10) -> np.ndarray:
    """Generalised log as MetaboAnalyst's ``LogNorm`` / ``Log2Norm``.

    ``log((x + sqrt(x^2 + c^2)) / 2)`` with ``c`` one tenth of the smallest non-zero
    absolute value in the matrix; defined at zero and for negative values, and equal to
    ``log(x)`` for ``x >> c`` (Durbin et al. 2002, *Bioinformatics* 18:S105).
    """
    a = _matrix(x)
    nonzero = np.abs(a[(a != 0) & ~np.isnan(a)])
    if nonzero.size == 0:
        raise MethodInputError("glog transform: the matrix has no non-zero value")
    c = nonzero.min() / 10.0
    g = (a + np.sqrt(a**2 + c**2)) / 2.0
    return np.log2(g) if base == 2 else np.log10(g)


def _centred(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a - np.nanmean(a, axis=1, keepdims=True), np.nanstd(a, axis=1, ddof=1, keepdims=True)


def auto_scale(x: np.ndarray) -> np.ndarray:
    """Mean-centre each feature and divide by its SD (MetaboAnalyst ``AutoNorm``).

    A constant feature (SD 0) becomes NaN, as in MetaboAnalyst, which filters such
    features beforehand.
    """
    centred, sd = _centred(_matrix(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / sd


def pareto_scale(x: np.ndarray) -> np.ndarray:
    """Mean-centre each feature and divide by the square root of its SD (``ParetoNorm``).

    A constant feature becomes NaN, as in :func:`auto_scale`.
    """
    centred, sd = _centred(_matrix(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / np.sqrt(sd)


def range_scale(x: np.ndarray) -> np.ndarray:
    """Mean-centre each feature and divide by its range (MetaboAnalyst ``RangeNorm``).

    A constant feature is returned unchanged, as in MetaboAnalyst.
    """
    a = _matrix(x)
    centred, _ = _centred(a)
    spread = np.nanmax(a, axis=1, keepdims=True) - np.nanmin(a, axis=1, keepdims=True)
    return np.where(spread == 0, a, centred / np.where(spread == 0, 1.0, spread))
