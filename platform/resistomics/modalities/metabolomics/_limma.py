"""Differential abundance per feature: limma's moderated t, Welch's t and Wilcoxon rank-sum.

All three work on a samples x features matrix (NaN for missing) and are vectorised over
features: the limma fit solves one stack of normal equations, never a Python loop per feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = [
    "LimmaResult",
    "benjamini_hochberg",
    "limma_moderated_t",
    "lm_fit",
    "moderate",
    "trigamma_inverse",
    "welch_t",
    "wilcoxon_rank_sum",
]


@dataclass(frozen=True)
class LimmaResult:
    """One coefficient of limma's ``lmFit`` + ``eBayes``, per feature (``topTable`` columns)."""

    log_fc: np.ndarray
    t: np.ndarray
    p: np.ndarray
    p_adj: np.ndarray
    s2_post: np.ndarray
    df_total: np.ndarray
    df_residual: np.ndarray
    df_prior: float
    s2_prior: float


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """R's ``p.adjust(p, "BH")`` (Benjamini & Hochberg, *J. R. Stat. Soc. B* 57:289, 1995).

    NaN p-values stay NaN and do not count towards the number of tests, as in R.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    n = int(ok.sum())
    if n == 0:
        return out
    q = p[ok]
    order = np.argsort(q, kind="stable")
    scaled = q[order] * n / np.arange(1, n + 1)
    adj = np.empty(n)
    adj[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out[ok] = adj
    return out


def trigamma_inverse(x: float) -> float:
    """Solve ``trigamma(y) = x`` by Newton's method, as limma's ``trigammaInverse``.

    Smyth, *Stat. Appl. Genet. Mol. Biol.* 3:3 (2004), appendix; limma's starting value
    ``0.5 + 1/x`` and its asymptotes for very small and very large ``x``.
    """
    if x > 1e7:
        return 1.0 / np.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        dif = tri * (1.0 - tri / x) / float(special.polygamma(2, y))
        y += dif
        if -dif / y < 1e-8:
            break
    return y


def _fit_f_dist(var: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """limma's ``fitFDist`` without covariate: moment estimates of ``(s2_prior, df_prior)``.

    Smyth (2004), section 6.2: ``log s^2`` has mean ``log s0^2 + digamma(d/2) - log(d/2)``
    and variance ``trigamma(d/2) + trigamma(d0/2)``.
    """
    ok = np.isfinite(var) & np.isfinite(df) & (var > -1e-15) & (df > 1e-15)
    x = np.maximum(var[ok], 0.0)
    d = df[ok]
    m = float(np.median(x))
    if m == 0:
        m = 1.0
    x = np.maximum(x, m * 1e-5)
    e = np.log(x) - special.digamma(d / 2) + np.log(d / 2)
    e_mean = float(e.mean())
    e_var = float(np.sum((e - e_mean) ** 2) / (len(e) - 1)) - float(
        special.polygamma(1, d / 2).mean()
    )
    if e_var > 0:
        df_prior = 2 * trigamma_inverse(e_var)
        s2_prior = float(np.exp(e_mean + special.digamma(df_prior / 2) - np.log(df_prior / 2)))
    else:
        df_prior = np.inf
        s2_prior = float(np.exp(e_mean))
    return s2_prior, df_prior


def limma_moderated_t(values: np.ndarray, design: np.ndarray, *, coef: int) -> LimmaResult:
    """limma's ``lmFit`` + ``eBayes`` + ``topTable(coef=coef)``, vectorised over features.

    Each feature is fitted by least squares on its non-missing samples (its own residual
    degrees of freedom, as ``lmFit`` does with NaN), the residual variances are shrunk
    towards a common prior fitted by ``fitFDist`` (``squeezeVar``), and the moderated t
    is tested on ``df_residual + df_prior`` degrees of freedom, capped at the pooled
    residual df as ``eBayes`` does. Smyth, *Stat. Appl. Genet. Mol. Biol.* 3:3 (2004);
    limma 3.54.1.

    Parameters
    ----------
    values
        Samples x features, log scale, NaN for missing.
    design
        Samples x coefficients design matrix, e.g. ``[1, group]`` or subject indicators
        plus group for a paired design (``~ subject + group``).
    coef
        Column of ``design`` whose coefficient is tested (0-based).
    """
    log_fc, s2, df_res, unscaled = lm_fit(values, design, coef=coef)
    s2_prior, df_prior = _fit_f_dist(s2, df_res)
    t, p, s2_post, df_total = moderate(
        log_fc,
        s2,
        df_res,
        unscaled,
        s2_prior=s2_prior,
        df_prior=df_prior,
        df_pooled=float(df_res.sum()),
    )
    return LimmaResult(
        log_fc=log_fc,
        t=t,
        p=p,
        p_adj=benjamini_hochberg(p),
        s2_post=s2_post,
        df_total=df_total,
        df_residual=df_res,
        df_prior=float(df_prior),
        s2_prior=s2_prior,
    )


def lm_fit(
    values: np.ndarray, design: np.ndarray, *, coef: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """limma's ``lmFit`` for one coefficient: ``(coefficient, s2, df_residual, unscaled SD)``.

    Each feature (column of ``values``, samples x features, NaN missing) is fitted on its
    observed samples; ``s2`` is NaN where no residual df is left. Per feature only, so a
    block of features is fitted on its own (:mod:`._blockwise`).
    """
    y = np.asarray(values, dtype=float)
    x = np.asarray(design, dtype=float)
    observed = np.isfinite(y)
    if observed.all():  # one design for every feature: no masks, one solve
        xtx1 = x.T @ x
        rank1 = int(np.linalg.matrix_rank(xtx1))
        inv1 = np.linalg.pinv(xtx1, hermitian=True)
        beta = (y.T @ x) @ inv1
        df_res = np.full(y.shape[1], float(y.shape[0] - rank1))
        with np.errstate(invalid="ignore", divide="ignore"):
            s2 = np.where(df_res > 0, np.sum((y - x @ beta.T) ** 2, axis=0) / df_res, np.nan)
        return beta[:, coef], s2, df_res, np.full(y.shape[1], np.sqrt(inv1[coef, coef]))
    y0 = np.where(observed, y, 0.0)
    w = observed.T.astype(float)  # features x samples
    # X'WX and X'Wy per feature as matrix products (BLAS), not per-feature loops
    n_coef = x.shape[1]
    xtx = (w @ (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)).reshape(-1, n_coef, n_coef)
    xty = (w * y0.T) @ x
    rank = np.linalg.matrix_rank(xtx)
    xtx_inv = np.linalg.pinv(xtx, hermitian=True)
    beta = np.einsum("fab,fb->fa", xtx_inv, xty)
    resid = (y0 - x @ beta.T) * observed
    df_res = (observed.sum(axis=0) - rank).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(df_res > 0, np.sum(resid**2, axis=0) / df_res, np.nan)
    return beta[:, coef], s2, df_res, np.sqrt(xtx_inv[:, coef, coef])


def moderate(
    log_fc: np.ndarray,
    s2: np.ndarray,
    df_res: np.ndarray,
    unscaled: np.ndarray,
    *,
    s2_prior: float,
    df_prior: float,
    df_pooled: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """limma's ``squeezeVar`` posterior and ``eBayes`` moderated t: ``(t, p, s2_post, df_total)``.

    ``df_total`` is capped at ``df_pooled``, the residual df summed over all features
    (Smyth 2004; limma 3.54.1 ``eBayes``).
    """
    s2_obs = np.where(df_res > 0, s2, 0.0)
    if np.isfinite(df_prior):
        s2_post = (df_res * s2_obs + df_prior * s2_prior) / (df_res + df_prior)
    else:
        s2_post = np.full(s2.shape, s2_prior)
    df_total = np.minimum(df_res + df_prior, df_pooled)
    t = log_fc / (unscaled * np.sqrt(s2_post))
    p = 2 * stats.t.sf(np.abs(t), df_total)
    return t, p, s2_post, df_total


def welch_t(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch's unequal-variance t-test per feature (columns), NaN omitted; ``(t, p, p_adj)``.

    ``t`` is ``mean(b) - mean(a)`` over its standard error (Welch, *Biometrika* 34:28, 1947),
    via ``scipy.stats.ttest_ind(equal_var=False)``; p adjusted by Benjamini-Hochberg.
    """
    res = stats.ttest_ind(b, a, axis=0, equal_var=False, nan_policy="omit")
    t = np.asarray(res.statistic, dtype=float)
    p = np.asarray(res.pvalue, dtype=float)
    return t, p, benjamini_hochberg(p)


def wilcoxon_rank_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilcoxon rank-sum (Mann-Whitney U of ``b`` against ``a``) per feature, NaN omitted.

    Two-sided, ``scipy.stats.mannwhitneyu`` (exact for small tie-free samples, else normal
    approximation with tie and continuity correction, as R's ``wilcox.test``); returns
    ``(U, p, p_adj)`` with Benjamini-Hochberg adjustment.
    """
    res = stats.mannwhitneyu(b, a, axis=0, alternative="two-sided", nan_policy="omit")
    u = np.asarray(res.statistic, dtype=float)
    p = np.asarray(res.pvalue, dtype=float)
    return u, p, benjamini_hochberg(p)
