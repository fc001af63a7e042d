"""Processing and differential abundance over feature blocks of a ``feature-matrix@1`` store.

The in-memory functions (:mod:`._processing`, :mod:`._limma`) need the whole features x
samples matrix; these run the same computations one block of features (all samples) per
Dask task, so a cohort larger than one worker's memory streams through the cluster. All
passes of one call are one graph and one ``compute``; every pass re-reads its block
(``read_rows`` inside the task), so no block is held between passes.

* Per-feature steps (half-minimum imputation, log, auto / Pareto / range scaling) need
  nothing beyond the block.
* Per-sample normalisation needs one global statistic per sample: the total
  (``sum``: block sums added), the median over all features (``median``) or the median
  over features of the quotients to a per-feature reference (``pqn``). The medians are
  exact, by selection in two passes (:func:`column_medians`): each block sends a few
  order statistics per sample, from which a bracket around the median rank follows;
  then each block sends its count below the bracket and its values inside it.
* limma (Smyth 2004): pass 1 fits each block (``lmFit``: coefficient, residual
  variance, residual df, unscaled SD); the prior (``fitFDist`` / ``squeezeVar``) is fitted
  on all features' variances; then each block's moderated t and p; BH over all p.
* Welch and Wilcoxon are per feature: one pass, BH over all p.

The results equal the in-memory functions' to rounding (``tests/modalities/metabolomics/
test_blockwise.py``: within 1e-10, with NaNs and several blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask
import numpy as np

from resistomics.errors import MethodInputError
from resistomics.modalities.metabolomics import _processing as proc
from resistomics.modalities.metabolomics._limma import (
    LimmaResult,
    _fit_f_dist,
    benjamini_hochberg,
    lm_fit,
    moderate,
    welch_t,
    wilcoxon_rank_sum,
)
from resistomics.storage import FeatureMatrix

__all__ = [
    "Processing",
    "StoreRows",
    "blockwise_limma",
    "blockwise_welch",
    "blockwise_wilcoxon",
    "column_medians",
    "plan_blocks",
    "processed_blocks",
    "sample_factors",
]

#: Order statistics per sample and block sent by the first median pass.
_PIVOTS = 33

ReadRows = Callable[[int, int], np.ndarray]
Blocks = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class StoreRows:
    """``read_rows(start, stop)`` of one array of a feature-matrix store (picklable)."""

    store: FeatureMatrix
    array: str = "abundance"

    def __call__(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.store.read_rows((self.array,), start, stop)[self.array], float)


@dataclass(frozen=True)
class Processing:
    """The MetaboAnalyst chain (:mod:`._processing`), in its order of use.

    ``impute`` (half-minimum per feature), ``normalize`` per sample (``sum``, ``median``,
    ``pqn`` with the reference from the QC samples ``qc`` when given), ``transform``
    (``log2`` / ``log10``) and ``scale`` per feature (``auto``, ``pareto``, ``range``).
    """

    impute: Literal["none", "half-minimum"] = "none"
    normalize: Literal["none", "sum", "median", "pqn"] = "none"
    qc: tuple[int, ...] | None = None
    transform: Literal["none", "log2", "log10"] = "none"
    scale: Literal["none", "auto", "pareto", "range"] = "none"

    def in_memory(self, x: np.ndarray) -> np.ndarray:
        """The same chain on a whole features x samples matrix (the reference)."""
        a = np.asarray(x, dtype=float)
        if self.impute == "half-minimum":
            a = proc.impute_half_minimum(a)
        if self.normalize == "sum":
            a = proc.sum_normalize(a)
        elif self.normalize == "median":
            a = proc.median_normalize(a)
        elif self.normalize == "pqn":
            a = proc.pqn_normalize(a, qc=self._qc_mask(a.shape[1]))
        return self._after(a)

    def _qc_mask(self, n_samples: int) -> np.ndarray | None:
        if self.qc is None:
            return None
        mask = np.zeros(n_samples, dtype=bool)
        mask[list(self.qc)] = True
        return mask

    def _after(self, a: np.ndarray) -> np.ndarray:
        if self.scale in ("auto", "pareto") and not np.isnan(a).any():
            return self._after_complete(a)
        if self.transform != "none":
            a = proc.log_transform(a, base=2 if self.transform == "log2" else 10)
        if self.scale == "auto":
            a = proc.auto_scale(a)
        elif self.scale == "pareto":
            a = proc.pareto_scale(a)
        elif self.scale == "range":
            a = proc.range_scale(a)
        return a

    def _after_complete(self, a: np.ndarray) -> np.ndarray:
        """:meth:`_after` without missing values: the same, without NaN-aware reductions."""
        if self.transform != "none":
            if (a <= 0).any():
                proc.log_transform(a)  # raises its error
            a = np.log2(a) if self.transform == "log2" else np.log10(a)
        centred = a - a.mean(axis=1, keepdims=True)
        sd = np.sqrt((centred**2).sum(axis=1, keepdims=True) / (a.shape[1] - 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return centred / (sd if self.scale == "auto" else np.sqrt(sd))

    def _reference(self, x: np.ndarray) -> np.ndarray:
        """PQN's reference: each feature's median over the (QC) samples."""
        ref_cols = x if self.qc is None else x[:, list(self.qc)]
        # numpy's nanmedian loops over rows in Python: np.median when nothing is missing
        missing = np.isnan(ref_cols)
        if not missing.any():
            return np.asarray(np.median(ref_cols, axis=1))
        # an all-missing feature's reference is NaN, without nanmedian's warning (the
        # warnings filters are process-wide, not safe to change in threaded tasks)
        out = np.full(len(ref_cols), np.nan)
        seen = ~missing.all(axis=1)
        out[seen] = np.nanmedian(ref_cols[seen], axis=1)
        return out

    @staticmethod
    def _quotients(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            quotients = x / reference
        quotients[~np.isfinite(quotients) | (reference == 0)] = np.nan
        return quotients


def plan_blocks(n_features: int, features_per_block: int) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` of consecutive blocks of ``features_per_block`` features."""
    if features_per_block < 1:
        raise MethodInputError(f"features_per_block must be positive, got {features_per_block}")
    step = int(features_per_block)
    return tuple((s, min(s + step, n_features)) for s in range(0, n_features, step))


# ------------------------------------------------------------------ exact column medians
def _pivots(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: finite count, and the values at ``_PIVOTS`` evenly spaced ranks.

    A column with no finite value gets pivots ``+inf`` at rank 0 (it bounds nothing).
    """
    finite = np.isfinite(v)
    n = finite.sum(axis=0)
    levels = np.linspace(0.0, 1.0, _PIVOTS)[:, None]
    ranks = np.floor(levels * np.maximum(n - 1, 0)[None, :]).astype(np.int64)
    # sorted along contiguous rows (one per column of v): ~2x faster than along axis 0
    s = np.sort(np.where(finite, v, np.nan).T, axis=1).T  # NaN last
    piv = np.take_along_axis(s, ranks, axis=0)
    ranks[:, n == 0] = 0
    piv[:, n == 0] = np.inf
    return n, ranks, piv


def _bracket(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per column, ``lo <= hi`` with #(values < lo) <= rank_lo and #(values <= hi) > rank_hi.

    For a value ``v`` and a block, the pivots bound its count: every value ranked at or
    after the first pivot ``>= v`` is ``>= v`` (so #(< v) <= that pivot's rank), and every
    value ranked at or before the last pivot ``<= v`` is ``<= v``. ``lo`` is the largest
    pivot whose upper bound on #(< lo) over all blocks is at most the lower median rank,
    ``hi`` the smallest whose lower bound on #(<= hi) exceeds the upper median rank.
    """
    n = np.sum([p[0] for p in parts], axis=0)
    r_lo, r_hi = (n - 1) // 2, n // 2
    k = _PIVOTS
    piv = np.concatenate([p[2] for p in parts], axis=0)  # (B*K, S)
    block = np.repeat(np.arange(len(parts)), k)
    order = np.argsort(piv, axis=0, kind="stable")
    w = np.take_along_axis(piv, order, axis=0)
    bid = block[order]
    c = np.arange(w.shape[0])[:, None]
    new = np.ones(w.shape, dtype=bool)
    new[1:] = w[1:] != w[:-1]
    first = np.maximum.accumulate(np.where(new, c, 0), axis=0)  # first position of w's value
    last_new = np.ones(w.shape, dtype=bool)
    last_new[:-1] = w[:-1] != w[1:]
    rev = np.where(last_new, c, w.shape[0])[::-1]
    last = np.minimum.accumulate(rev, axis=0)[::-1]  # last position of w's value
    upper = np.zeros(w.shape, dtype=np.int64)  # bound on #(< w)
    lower = np.zeros(w.shape, dtype=np.int64)  # bound on #(<= w)
    cols = np.arange(w.shape[1])[None, :]
    for b, (nb, ranks, _) in enumerate(parts):
        mine = np.cumsum(bid == b, axis=0)  # block b's pivots at positions <= c
        below = np.where(first > 0, mine[np.maximum(first - 1, 0), cols], 0)  # pivots < w
        upto = mine[last, cols]  # pivots <= w
        rank_at = np.vstack([ranks, nb[None, :]])  # rank of pivot i; n_b past the last
        upper += np.take_along_axis(rank_at, below, axis=0)
        lower += np.where(
            upto > 0, np.take_along_axis(ranks, np.maximum(upto - 1, 0), axis=0) + 1, 0
        )
    finite = np.isfinite(w)
    lo_ok = finite & (upper <= r_lo[None, :])
    hi_ok = finite & (lower >= r_hi[None, :] + 1)
    lo = np.where(lo_ok, w, -np.inf).max(axis=0)
    hi = np.where(hi_ok, w, np.inf).min(axis=0)
    return {"n": n, "lo": lo, "hi": hi}


def _inside(v: np.ndarray, bracket: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    v = np.where(np.isfinite(v), v, np.nan)
    lo, hi = bracket["lo"][None, :], bracket["hi"][None, :]
    with np.errstate(invalid="ignore"):
        below = (v < lo).sum(axis=0)
        keep = (v >= lo) & (v <= hi)
    rows, cols = np.nonzero(keep)
    return {"below": below, "column": cols, "value": v[rows, cols]}


def _select(parts: Sequence[dict[str, np.ndarray]], bracket: dict[str, np.ndarray]) -> np.ndarray:
    n = bracket["n"]
    below = np.sum([p["below"] for p in parts], axis=0)
    col = np.concatenate([p["column"] for p in parts])
    val = np.concatenate([p["value"] for p in parts])
    order = np.lexsort((val, col))
    col, val = col[order], val[order]
    count = np.bincount(col, minlength=n.size)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    out = np.full(n.size, np.nan)
    has = n > 0
    i_lo = (n - 1) // 2 - below
    i_hi = n // 2 - below
    if ((i_lo < 0) | (i_hi >= count))[has].any():  # cannot happen: the bracket is a bound
        raise AssertionError("column median: the bracket misses the median rank")
    if not has.any():  # no value in any column (e.g. no feature left): all NaN
        return out
    a = val[np.where(has, start + i_lo, 0)]
    b = val[np.where(has, start + i_hi, 0)]
    out[has] = ((a + b) / 2.0)[has]
    return out


def column_medians(values: Callable[[int, int], Any], blocks: Blocks) -> Any:
    """Lazy exact ``nanmedian`` over all rows of each column, from row blocks.

    ``values(start, stop)`` (a delayed-compatible callable) gives the rows of one block,
    all columns; non-finite values are ignored, an all-missing column gives NaN. Two
    passes (see :func:`_bracket`); returns a ``dask.delayed`` array of one median per
    column, equal to ``np.nanmedian(matrix, axis=0)``.
    """
    delayed = dask.delayed
    # each task reads its block itself, so no block is kept between the passes
    first = [delayed(_of_block, pure=True)(_pivots, values, s, e) for s, e in blocks]
    bracket = delayed(_bracket, pure=True)(first)
    second = [delayed(_of_block, pure=True)(_inside, values, s, e, bracket) for s, e in blocks]
    return delayed(_select, pure=True)(second, bracket)


def _of_block(fn: Callable[..., Any], values: Callable[[int, int], Any], start: int, stop: int,
              *args: Any) -> Any:  # fmt: skip
    return fn(values(start, stop), *args)


# --------------------------------------------------------------------- processed blocks
Profile = dict[str, np.ndarray]  # per-feature vectors of a block: half-minimum, PQN reference


@dataclass(frozen=True)
class _Prepared:
    read_rows: ReadRows
    processing: Processing

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.read_rows(start, stop), dtype=float)

    def profile(self, x: np.ndarray) -> tuple[Profile, np.ndarray]:
        """The block's per-feature vectors (first pass) and its imputed values."""
        prof: Profile = {}
        if self.processing.impute == "half-minimum":
            imputed = proc.impute_half_minimum(x)  # raises on a feature with no value
            with np.errstate(all="ignore"):
                prof["half"] = np.nanmin(x, axis=1) / 2.0
            x = imputed
        if self.processing.normalize == "pqn":
            prof["reference"] = self.processing._reference(x)
        return prof, x

    def imputed(self, start: int, stop: int, prof: Profile | None) -> np.ndarray:
        """The block read again, imputed with the first pass's half-minima."""
        x = self.read(start, stop)
        if prof is None:
            return self.profile(x)[1]
        if "half" in prof:
            x = np.where(np.isnan(x), prof["half"][:, None], x)
        return x

    def statistic(self, x: np.ndarray, prof: Profile) -> np.ndarray:
        """What the per-sample median is taken of: the values, or PQN's quotients."""
        if self.processing.normalize == "median":
            return x
        return self.processing._quotients(x, prof["reference"][:, None])

    def block(
        self, start: int, stop: int, factors: np.ndarray | None, prof: Profile | None
    ) -> np.ndarray:
        a = self.imputed(start, stop, prof)
        if factors is not None:
            a = a / factors[None, :]
        return self.processing._after(a)


def _first_pass(prep: _Prepared, start: int, stop: int) -> tuple[Profile, Any]:
    prof, x = prep.profile(prep.read(start, stop))
    if prep.processing.normalize == "sum":
        return prof, np.nansum(x, axis=0)
    return prof, _pivots(prep.statistic(x, prof))


def _second_pass(
    prep: _Prepared, start: int, stop: int, prof: Profile, bracket: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    return _inside(prep.statistic(prep.imputed(start, stop, prof), prof), bracket)


def _sum_factors(sums: Sequence[np.ndarray]) -> np.ndarray:
    return np.sum(sums, axis=0) / 1000.0


def _plan(
    read_rows: ReadRows, blocks: Blocks, processing: Processing
) -> tuple[_Prepared, Any, list[Any]]:
    """Lazy per-sample divisors of ``processing.normalize`` and each block's profile.

    ``sum``: total / 1000 (MetaboAnalyst ``SumNorm``; one pass); ``median``: the
    sample's median; ``pqn``: the median of its quotients to the per-feature (QC)
    median reference (Dieterle et al. 2006); both exact by selection (two passes, see
    :func:`_bracket`). Computed from the imputed values, as in :mod:`._processing`. The
    first pass also keeps each block's half-minima and reference (``None`` without
    normalisation), so the later passes recompute neither.
    """  # fmt: skip
    prep = _Prepared(read_rows, processing)
    delayed = dask.delayed
    if processing.normalize == "none":
        return prep, None, [None] * len(blocks)
    first = [delayed(_first_pass, pure=True, nout=2)(prep, s, e) for s, e in blocks]
    profiles = [f[0] for f in first]
    if processing.normalize == "sum":
        return prep, delayed(_sum_factors, pure=True)([f[1] for f in first]), profiles
    bracket = delayed(_bracket, pure=True)([f[1] for f in first])
    second = [
        delayed(_second_pass, pure=True)(prep, s, e, prof, bracket)
        for (s, e), prof in zip(blocks, profiles, strict=True)
    ]
    return prep, delayed(_select, pure=True)(second, bracket), profiles


def sample_factors(read_rows: ReadRows, blocks: Blocks, processing: Processing) -> Any:
    """Lazy per-sample divisors of ``processing.normalize`` (None for ``none``); see
    :func:`_plan`."""
    return _plan(read_rows, blocks, processing)[1]


def processed_blocks(read_rows: ReadRows, blocks: Blocks, processing: Processing) -> list[Any]:
    """Lazy processed blocks (features x samples), one ``dask.delayed`` per block."""
    prep, factors, profiles = _plan(read_rows, blocks, processing)
    return [
        dask.delayed(prep.block, pure=True)(s, e, factors, prof)
        for (s, e), prof in zip(blocks, profiles, strict=True)
    ]


# ------------------------------------------------------------------ differential abundance
def _fit_block(
    prep: _Prepared, start: int, stop: int, factors: Any, prof: Any, design: np.ndarray, coef: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return lm_fit(prep.block(start, stop, factors, prof).T, design, coef=coef)


def _prior(fits: Sequence[tuple[np.ndarray, ...]]) -> tuple[float, float, float]:
    s2 = np.concatenate([f[1] for f in fits])
    df = np.concatenate([f[2] for f in fits])
    s2_prior, df_prior = _fit_f_dist(s2, df)
    return s2_prior, float(df_prior), float(df.sum())


def _moderate_block(
    fit: tuple[np.ndarray, ...], prior: tuple[float, float, float]
) -> dict[str, np.ndarray]:
    log_fc, s2, df_res, unscaled = fit
    t, p, s2_post, df_total = moderate(
        log_fc, s2, df_res, unscaled, s2_prior=prior[0], df_prior=prior[1], df_pooled=prior[2]
    )
    return {"log_fc": log_fc, "t": t, "p": p, "s2_post": s2_post, "df_total": df_total,
            "df_residual": df_res}  # fmt: skip


def _p_values(parts: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    return benjamini_hochberg(np.concatenate([p["p"] for p in parts]))


def _compute(compute: Callable[..., Any] | None, *args: Any) -> Any:
    return (compute or dask.compute)(*args)


def blockwise_limma(
    read_rows: ReadRows,
    n_features: int,
    design: np.ndarray,
    *,
    coef: int,
    processing: Processing = Processing(),
    features_per_block: int = 4096,
    compute: Callable[..., Any] | None = None,
) -> LimmaResult:
    """limma ``lmFit`` + ``eBayes`` (:func:`._limma.limma_moderated_t`) over feature blocks.

    Smyth, *Stat. Appl. Genet. Mol. Biol.* 3:3 (2004); limma 3.54.1. The values are
    ``processing`` of the rows ``read_rows(start, stop)`` (features x samples, NaN missing;
    e.g. :class:`StoreRows`); ``design`` is samples x coefficients and ``coef`` the tested
    column. One ``compute`` (``dask.compute`` or a client's) runs every pass.
    """
    x = np.asarray(design, dtype=float)
    if x.ndim != 2 or not 0 <= coef < x.shape[1]:
        raise MethodInputError(f"coef {coef} is not a column of the {x.shape} design")
    blocks = plan_blocks(n_features, features_per_block)
    prep, factors, profiles = _plan(read_rows, blocks, processing)
    delayed = dask.delayed
    fits = [
        delayed(_fit_block, pure=True)(prep, s, e, factors, prof, x, coef)
        for (s, e), prof in zip(blocks, profiles, strict=True)
    ]
    prior = delayed(_prior, pure=True)(fits)
    parts = [delayed(_moderate_block, pure=True)(f, prior) for f in fits]
    got, (s2_prior, df_prior, _), p_adj = _compute(compute, parts, prior, delayed(_p_values)(parts))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([p[name] for p in got])

    return LimmaResult(
        log_fc=cat("log_fc"),
        t=cat("t"),
        p=cat("p"),
        p_adj=p_adj,
        s2_post=cat("s2_post"),
        df_total=cat("df_total"),
        df_residual=cat("df_residual"),
        df_prior=df_prior,
        s2_prior=s2_prior,
    )


def _two_group(
    test: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    prep: _Prepared,
    start: int,
    stop: int,
    factors: Any,
    prof: Any,
    a: Sequence[int],
    b: Sequence[int],
) -> dict[str, np.ndarray]:
    y = prep.block(start, stop, factors, prof).T
    stat, p, _ = test(y[list(a)], y[list(b)])
    return {"statistic": stat, "p": p}


def _blockwise_two_group(
    test: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    read_rows: ReadRows,
    n_features: int,
    a: Sequence[int],
    b: Sequence[int],
    processing: Processing,
    features_per_block: int,
    compute: Callable[..., Any] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = tuple(int(i) for i in a), tuple(int(i) for i in b)
    if not a or not b or set(a) & set(b):
        raise MethodInputError("the two groups must be non-empty and disjoint")
    blocks = plan_blocks(n_features, features_per_block)
    prep, factors, profiles = _plan(read_rows, blocks, processing)
    delayed = dask.delayed
    parts = [
        delayed(_two_group, pure=True)(test, prep, s, e, factors, prof, a, b)
        for (s, e), prof in zip(blocks, profiles, strict=True)
    ]
    got, p_adj = _compute(compute, parts, delayed(_p_values)(parts))
    stat = np.concatenate([g["statistic"] for g in got])
    return stat, np.concatenate([g["p"] for g in got]), p_adj


def blockwise_welch(
    read_rows: ReadRows,
    n_features: int,
    a: Sequence[int],
    b: Sequence[int],
    *,
    processing: Processing = Processing(),
    features_per_block: int = 4096,
    compute: Callable[..., Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch's t of samples ``b`` against ``a`` (:func:`._limma.welch_t`) over feature blocks.

    Welch, *Biometrika* 34:28 (1947); returns ``(t, p, p_adj)``, BH over all features.
    """
    return _blockwise_two_group(
        welch_t, read_rows, n_features, a, b, processing, features_per_block, compute
    )


def blockwise_wilcoxon(
    read_rows: ReadRows,
    n_features: int,
    a: Sequence[int],
    b: Sequence[int],
    *,
    processing: Processing = Processing(),
    features_per_block: int = 4096,
    compute: Callable[..., Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilcoxon rank-sum of ``b`` against ``a`` (:func:`._limma.wilcoxon_rank_sum`) by blocks.

    Mann & Whitney, *Ann. Math. Stat.* 18:50 (1947); returns ``(U, p, p_adj)``.
    """
    return _blockwise_two_group(
        wilcoxon_rank_sum, read_rows, n_features, a, b, processing, features_per_block, compute
    )
