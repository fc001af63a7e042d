"""Differential abundance between two arms: one table per contrast.

Pure computation on features x samples values (NaN missing): limma's moderated t
(unpaired ``~ group``, paired ``~ group + subject``), Welch's t or Wilcoxon rank-sum, and
for paired designs the paired t-test or Wilcoxon signed-rank; fold changes on the scale
of the values.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from resistomics.modalities.metabolomics._limma import (
    benjamini_hochberg,
    limma_moderated_t,
    welch_t,
    wilcoxon_rank_sum,
)

__all__ = ["DA_COLUMNS", "DaMethod", "da_table", "log2_fold_change"]

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
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        if log_scale:
            if paired:
                return np.nanmean(a - b, axis=1)
            return np.nanmean(a, axis=1) - np.nanmean(b, axis=1)
        if paired:
            both = ~np.isnan(a) & ~np.isnan(b)
            a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
        return np.log2(np.nanmean(a, axis=1) / np.nanmean(b, axis=1))


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
    a, b = y[:, in_a], y[:, in_b]
    paired = pairs is not None
    fc = log2_fold_change(a, b, log_scale=log_scale, paired=paired)
    if paired:
        both = ~np.isnan(a) & ~np.isnan(b)
        n_a = n_b = both.sum(axis=1)
    else:
        n_a, n_b = (~np.isnan(a)).sum(axis=1), (~np.isnan(b)).sum(axis=1)
    with _quiet():
        if method == "limma":
            cols = np.concatenate([in_a, in_b])
            arm = np.r_[np.ones(len(in_a)), np.zeros(len(in_b))]
            design = [np.ones(len(cols)), arm]
            if paired:
                subject = np.r_[np.arange(len(in_a)), np.arange(len(in_b))]
                design += [(subject == s).astype(float) for s in range(1, len(in_a))]
            res = limma_moderated_t(y[:, cols].T, np.column_stack(design), coef=1)
            statistic, p = res.t, res.p
            if log_scale:
                fc = res.log_fc
        elif method == "welch":
            if paired:
                r = stats.ttest_rel(a, b, axis=1, nan_policy="omit")
                statistic, p = np.asarray(r.statistic, float), np.asarray(r.pvalue, float)
            else:
                statistic, p, _ = welch_t(b.T, a.T)
        else:
            if paired:
                statistic, p = _signed_rank(a - b)
            else:
                statistic, p, _ = wilcoxon_rank_sum(b.T, a.T)
    statistic = np.asarray(statistic, dtype=float)
    p = np.asarray(p, dtype=float)
    return pd.DataFrame(
        {
            "log2fc": fc,
            "statistic": statistic,
            "p": p,
            "p_adj": benjamini_hochberg(p),
            "method": _method_name(method, paired),
            "n_a": n_a.astype(np.int64),
            "n_b": n_b.astype(np.int64),
        }
    )


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
