"""Differential abundance between two arms: one table per contrast.

Pure computation on features x samples values (NaN missing): limma's moderated t
(unpaired ``~ group``, paired ``~ group + subject``), Welch's t or Wilcoxon rank-sum, and
for paired designs the paired t-test or Wilcoxon signed-rank; fold changes on the scale
of the values.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from resistomics.modalities.metabolomics._limma import (
    _fit_f_dist,
    benjamini_hochberg,
    lm_fit,
    moderate,
    welch_t,
    wilcoxon_rank_sum,
)

__all__ = ["DA_COLUMNS", "DaMethod", "da_table", "da_table_blockwise", "log2_fold_change"]

DaMethod = Literal["limma", "welch", "wilcoxon"]

#: Statistic columns of a ``metabolomics.da`` table, after the feature index columns.
DA_COLUMNS = ("log2fc", "statistic", "p", "p_adj", "method", "n_a", "n_b")


def log2_fold_change(
    a: np.ndarray, b: np.ndarray, *, log_scale: bool, paired: bool = False
) -> np.ndarray:
    """log2 fold change of arm A over arm B per feature (rows), NaN omitted.

    On log2-scaled values the difference of the arms' means (of the pairs' differences
    when ``paired``); on raw abundances the log2 of the ratio of the arms' means (the
    fold change MetaboAnalyst reports on unlogged data).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if log_scale:
            if paired:
                return _nanmean(a - b)
            return _nanmean(a) - _nanmean(b)
        if paired:
            both = ~np.isnan(a) & ~np.isnan(b)
            a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
        return np.log2(_nanmean(a) / _nanmean(b))


def _nanmean(x: np.ndarray) -> np.ndarray:
    """``np.nanmean(x, axis=1)`` (NaN for a row without values) without its warning, so
    it is safe in threaded Dask tasks (warning filters are process-wide)."""
    seen = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen, x, 0.0).sum(axis=1) / seen.sum(axis=1)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'Mean of empty slice' for features missing in a whole arm."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def da_table(
    values: np.ndarray,
    in_a: np.ndarray,
    in_b: np.ndarray,
    *,
    method: DaMethod,
    log_scale: bool,
    pairs: np.ndarray | None = None,
) -> pd.DataFrame:
    """Test every feature (row of ``values``) between the samples ``in_a`` and ``in_b``.

    Parameters
    ----------
    values
        Features x samples, NaN missing.
    in_a, in_b
        Column indices of arm A and arm B. With ``pairs`` they are aligned: ``in_a[i]``
        and ``in_b[i]`` are the same subject.
    method
        ``limma``: ``lmFit`` + ``eBayes`` moderated t of the arm coefficient (Smyth 2004;
        :func:`._limma.limma_moderated_t`), design ``~ arm`` or, paired, ``~ arm +
        subject`` (limma user's guide 9.4, paired samples). ``welch``: Welch's t
        (unpaired) or the paired t-test (``scipy.stats.ttest_rel``; Student 1908).
        ``wilcoxon``: rank-sum / Mann-Whitney U (unpaired) or the signed-rank test of
        the pairs' differences (``scipy.stats.wilcoxon``; Wilcoxon 1945).
    log_scale
        The values are log2: fold changes are differences (see :func:`log2_fold_change`).
    pairs
        Subject labels of the pairs (one per pair) for a paired design.

    Returns
    -------
    One row per feature: :data:`DA_COLUMNS` (``statistic`` is t, or U / the signed-rank
    V for Wilcoxon; positive t: higher in A); ``p_adj`` Benjamini-Hochberg over the
    features with a p-value.
    """
    y = np.asarray(values, dtype=float)
    part = _block_part(y, np.asarray(in_a), np.asarray(in_b), method, log_scale, pairs is not None)
    if method == "limma":
        part = _moderated(part, _limma_prior([part]), log_scale)
    return _assemble([part], method, pairs is not None)


def _limma_design(n_a: int, n_b: int, paired: bool) -> np.ndarray:
    """``~ arm`` (intercept, arm A indicator) or, paired, ``~ arm + subject``: samples in
    the order arm A then arm B, pair ``i`` the ``i``-th of each arm."""
    arm = np.r_[np.ones(n_a), np.zeros(n_b)]
    design = [np.ones(n_a + n_b), arm]
    if paired:
        subject = np.r_[np.arange(n_a), np.arange(n_b)]
        design += [(subject == s).astype(float) for s in range(1, n_a)]
    return np.column_stack(design)


def _block_part(
    y: np.ndarray,
    in_a: np.ndarray,
    in_b: np.ndarray,
    method: DaMethod,
    log_scale: bool,
    paired: bool,
) -> dict[str, np.ndarray]:
    """The per-feature work on one block of features (rows of ``y``): fold change, counts
    and, for Welch / Wilcoxon, the test; for limma the ``lmFit`` pieces (the prior needs
    every block's variances, so the moderated t comes after, :func:`_moderated`)."""
    a, b = y[:, in_a], y[:, in_b]
    fc = log2_fold_change(a, b, log_scale=log_scale, paired=paired)
    if paired:
        both = ~np.isnan(a) & ~np.isnan(b)
        n_a = n_b = both.sum(axis=1)
    else:
        n_a, n_b = (~np.isnan(a)).sum(axis=1), (~np.isnan(b)).sum(axis=1)
    part: dict[str, np.ndarray] = {"log2fc": fc, "n_a": n_a, "n_b": n_b}
    with _quiet():
        if method == "limma":
            cols = np.concatenate([in_a, in_b])
            design = _limma_design(len(in_a), len(in_b), paired)
            log_fc, s2, df_res, unscaled = lm_fit(y[:, cols].T, design, coef=1)
            part.update(coef=log_fc, s2=s2, df_res=df_res, unscaled=unscaled)
            return part
        if method == "welch":
            if paired:
                statistic, p = _paired_t(a - b)
            else:
                statistic, p, _ = welch_t(b.T, a.T)
        elif paired:
            statistic, p = _signed_rank(a - b)
        else:
            statistic, p, _ = wilcoxon_rank_sum(b.T, a.T)
    part.update(statistic=np.asarray(statistic, dtype=float), p=np.asarray(p, dtype=float))
    return part


def _limma_prior(parts: Sequence[dict[str, np.ndarray]]) -> tuple[float, float, float]:
    """``fitFDist`` on every feature's residual variance: ``(s2_prior, df_prior, df_pooled)``."""
    s2 = np.concatenate([q["s2"] for q in parts])
    df = np.concatenate([q["df_res"] for q in parts])
    with np.errstate(invalid="ignore", divide="ignore"):
        s2_prior, df_prior = _fit_f_dist(s2, df)
    return s2_prior, float(df_prior), float(df.sum())


def _moderated(
    part: dict[str, np.ndarray], prior: tuple[float, float, float], log_scale: bool
) -> dict[str, np.ndarray]:
    """One block's moderated t and p from the common prior (``eBayes``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t, p, _, _ = moderate(
            part["coef"],
            part["s2"],
            part["df_res"],
            part["unscaled"],
            s2_prior=prior[0],
            df_prior=prior[1],
            df_pooled=prior[2],
        )
    out = {k: part[k] for k in ("log2fc", "n_a", "n_b")}
    if log_scale:
        out["log2fc"] = part["coef"]
    out.update(statistic=np.asarray(t, dtype=float), p=np.asarray(p, dtype=float))
    return out


def _assemble(
    parts: Sequence[dict[str, np.ndarray]], method: DaMethod, paired: bool
) -> pd.DataFrame:
    def cat(name: str) -> np.ndarray:
        return np.concatenate([q[name] for q in parts])

    p = cat("p")
    return pd.DataFrame(
        {
            "log2fc": cat("log2fc"),
            "statistic": cat("statistic"),
            "p": p,
            "p_adj": benjamini_hochberg(p),
            "method": _method_name(method, paired),
            "n_a": cat("n_a").astype(np.int64),
            "n_b": cat("n_b").astype(np.int64),
        }
    )


def _read_part(
    read_rows: Callable[[int, int], np.ndarray],
    start: int,
    stop: int,
    in_a: np.ndarray,
    in_b: np.ndarray,
    method: DaMethod,
    log_scale: bool,
    paired: bool,
) -> dict[str, np.ndarray]:
    y = np.asarray(read_rows(start, stop), dtype=float)
    return _block_part(y, in_a, in_b, method, log_scale, paired)


def da_table_blockwise(
    read_rows: Callable[[int, int], np.ndarray],
    n_features: int,
    in_a: np.ndarray,
    in_b: np.ndarray,
    *,
    method: DaMethod,
    log_scale: bool,
    pairs: np.ndarray | None = None,
    features_per_block: int = 4096,
    compute: Callable[..., Any] | None = None,
) -> pd.DataFrame:
    """:func:`da_table` over blocks of features, one Dask task per block.

    ``read_rows(start, stop)`` gives the features ``start:stop`` x all samples (read inside
    the task, e.g. :class:`._blockwise.StoreRows`), so no worker holds more than a block.
    Welch and Wilcoxon are per feature (one pass); limma fits every block (``lmFit``),
    fits the prior on all features' variances (``fitFDist``), then moderates each block;
    Benjamini-Hochberg over all features' p. The table equals :func:`da_table` on the
    whole matrix (tested to 1e-12).
    """
    import dask

    a, b = np.asarray(in_a), np.asarray(in_b)
    paired = pairs is not None
    step = max(1, int(features_per_block))
    blocks = [(s, min(s + step, n_features)) for s in range(0, n_features, step)]
    delayed = dask.delayed
    parts = [
        delayed(_read_part, pure=True)(read_rows, s, e, a, b, method, log_scale, paired)
        for s, e in blocks
    ]
    if method == "limma":
        prior = delayed(_limma_prior, pure=True)(parts)
        parts = [delayed(_moderated, pure=True)(q, prior, log_scale) for q in parts]
    (got,) = (compute or dask.compute)(parts)
    return _assemble(list(got), method, paired)


def _method_name(method: DaMethod, paired: bool) -> str:
    names = {
        ("limma", False): "limma moderated t",
        ("limma", True): "limma moderated t, subject blocked",
        ("welch", False): "Welch t",
        ("welch", True): "paired t",
        ("wilcoxon", False): "Wilcoxon rank-sum",
        ("wilcoxon", True): "Wilcoxon signed-rank",
    }
    return names[(method, paired)]


def _paired_t(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paired t-test (Student 1908) of each row of differences, NaN omitted: what
    ``scipy.stats.ttest_rel(a, b, axis=1, nan_policy="omit")`` gives (t = mean / (sd /
    sqrt(n)), two-sided p on n - 1 df; +-inf and p 0 for a constant non-zero difference,
    NaN for fewer than two pairs or all-zero differences), computed without scipy's
    small-sample warnings so it is safe in threaded Dask tasks."""
    seen = ~np.isnan(d)
    n = seen.sum(axis=1).astype(float)
    x = np.where(seen, d, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=1) / n
        var = (np.where(seen, d - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
        t = mean / np.sqrt(var / n)
    t = np.where(n >= 2, t, np.nan)
    p = np.full(len(t), np.nan)
    ok = np.isfinite(t)
    p[ok] = 2.0 * stats.t.sf(np.abs(t[ok]), n[ok] - 1)
    p[np.isinf(t)] = 0.0
    return t, p


def _signed_rank(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Wilcoxon signed-rank test of each row of differences, NaN omitted
    (``scipy.stats.wilcoxon``: exact for small samples without ties or zeros, else the
    normal approximation); NaN where fewer than two pairs differ."""
    v = np.full(d.shape[0], np.nan)
    p = np.full(d.shape[0], np.nan)
    for i, row in enumerate(d):
        x = row[~np.isnan(row)]
        if np.count_nonzero(x) < 2:
            continue
        r = stats.wilcoxon(x)
        v[i], p[i] = float(r.statistic), float(r.pvalue)
    return v, p
