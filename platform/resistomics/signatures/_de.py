"""Differential expression between two arms: Welch's t-test, Wilcoxon rank-sum, DESeq2."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import dask
import dask.array as da
import numba
import numpy as np
import pandas as pd
from numba.extending import overload
from scipy import sparse, stats

from resistomics.errors import MethodInputError
from resistomics.signatures._layout import (
    cell_vector,
    require_gene_major,
    require_matrix,
    sum_over_row_blocks,
)

__all__ = [
    "FOLD_CHANGE_RULES",
    "DifferentialExpression",
    "Pseudobulk",
    "ValueScale",
    "benjamini_hochberg",
    "deseq2_test",
    "detect_scale",
    "pseudobulk",
    "rank_genes_two_groups",
    "value_range",
]

type DEMethod = Literal["t-test", "wilcoxon"]

#: The scale the tested values are on: ``log1p`` (natural log1p of normalised counts,
#: what the platform makes of counts and what scanpy writes), ``log2`` (log2
#: intensities or log2(CPM + 1)), ``log`` (a log scale of another or unknown base),
#: ``linear`` (unlogged intensities) or ``zscore`` (per-gene standardised values).
type ValueScale = Literal["log1p", "log2", "log", "linear", "zscore"]

#: Per scale, the name of the fold-change rule (recorded with every DE result) and the
#: table column it fills: a log2 fold change where the scale allows one, else a
#: difference of means on the stored scale.
FOLD_CHANGE_RULES: dict[str, tuple[str, str]] = {
    "log1p": ("log2-ratio-of-expm1-means", "log2_fold_change"),
    "log2": ("difference-of-log2-means", "log2_fold_change"),
    "linear": ("log2-ratio-of-means", "log2_fold_change"),
    "log": ("difference-of-means", "mean_difference"),
    "zscore": ("difference-of-means", "mean_difference"),
}

# Columns of the per-block statistics, before the adjusted p-value is added.
_RAW = ("score", "logfoldchange", "pval", "mean_a", "mean_b", "pct_nz_a", "pct_nz_b")


@dataclass(frozen=True)
class DifferentialExpression:
    """Lazy per-gene result of a two-arm comparison.

    Attributes
    ----------
    method
        ``"t-test"`` (Welch) or ``"wilcoxon"``.
    group_a, group_b
        The arm tested and the reference arm.
    n_a, n_b
        Number of cells (or samples) in each arm.
    tie_correct
        Whether the Wilcoxon variance was tie-corrected.
    scale
        The scale of the tested values, which decides the fold-change rule.
    gene_names
        Gene names, or ``None`` when not given.
    table
        Lazy ``(n_genes, 8)`` float64 dask array with the columns :attr:`columns`,
        chunked like the genes of the input.
    """

    columns: ClassVar[tuple[str, ...]] = (
        "score",
        "logfoldchange",
        "pval",
        "pval_adj",
        "mean_a",
        "mean_b",
        "pct_nz_a",
        "pct_nz_b",
    )

    method: str
    group_a: str
    group_b: str
    n_a: int
    n_b: int
    tie_correct: bool
    scale: str
    gene_names: np.ndarray | None
    table: da.Array

    @property
    def fold_change_rule(self) -> str:
        """How ``logfoldchange`` was computed (see :data:`FOLD_CHANGE_RULES`)."""
        return FOLD_CHANGE_RULES[self.scale][0]

    @property
    def fold_change_column(self) -> str:
        """What ``logfoldchange`` is: ``log2_fold_change`` or ``mean_difference``."""
        return FOLD_CHANGE_RULES[self.scale][1]

    def column(self, name: str) -> da.Array:
        """One column of :attr:`table` as a lazy ``(n_genes,)`` array."""
        return self.table[:, self.columns.index(name)]

    def to_dask_dataframe(self) -> Any:
        """The table as a lazy dask DataFrame, one partition per gene chunk, indexed by
        gene name (or by position when names were not given)."""
        names = (
            np.asarray(self.gene_names).astype(str)
            if self.gene_names is not None
            else np.arange(self.table.shape[0])
        )
        bounds = np.cumsum((0, *self.table.chunks[0]))
        parts = [
            dask.delayed(_frame)(block, names[lo:hi], self.columns)
            for block, lo, hi in zip(
                self.table.to_delayed().ravel(), bounds[:-1], bounds[1:], strict=True
            )
        ]
        meta = _frame(np.empty((0, len(self.columns))), names[:0], self.columns)
        import dask.dataframe as dd  # ~80 MB per process: only when asked for

        return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _frame(block: np.ndarray, names: np.ndarray, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(block), columns=list(columns), index=pd.Index(names))
    frame.index.name = "gene"
    return frame


# --------------------------------------------------------------------------------------
# rank_genes_two_groups
# --------------------------------------------------------------------------------------


def rank_genes_two_groups(
    Xg: da.Array,
    labels: pd.Series | np.ndarray | Sequence[Any],
    *,
    group_a: str,
    group_b: str,
    method: DEMethod = "t-test",
    tie_correct: bool = False,
    scale: ValueScale = "log1p",
    var_names: Sequence[str] | np.ndarray | None = None,
) -> DifferentialExpression:
    """Test every gene for a difference between arm A and arm B, lazily.

    Cells labelled neither ``group_a`` nor ``group_b`` are ignored. The statistics equal
    scanpy 1.12.4's ``sc.tl.rank_genes_groups(adata, groupby, groups=[group_a],
    reference=group_b, method=method, tie_correct=tie_correct)`` (scores, p-values,
    adjusted p-values, log fold changes), computed in one pass over the gene-major
    blocks:

    * ``"t-test"``: Welch's unequal-variance t-test (Welch, *Biometrika* 34:28, 1947) on
      the per-arm means and sample variances (``ddof=1``) of the log-normalised values,
      through :func:`scipy.stats.ttest_ind_from_stats`. A NaN statistic (equal means,
      zero variances) becomes 0 and a NaN p-value 1, as in scanpy.
    * ``"wilcoxon"``: the Wilcoxon rank-sum / Mann-Whitney U test (Wilcoxon,
      *Biometrics Bull.* 1:80, 1945; Mann & Whitney, *Ann. Math. Stat.* 18:50, 1947) in
      its normal approximation without continuity correction:
      ``z = (R_A - n_A (n + 1) / 2) / sqrt(tc n_A n_B (n + 1) / 12)``, where ``R_A`` is
      the rank sum of arm A among the ``n = n_A + n_B`` cells (ties averaged) and
      ``tc = 1 - sum(t^3 - t) / (n^3 - n)`` over tie groups of size ``t`` when
      ``tie_correct`` (else 1); ``p = 2 * (1 - Phi(|z|))``. As in presto (Korsunsky et
      al., bioRxiv 653253, 2019) only the stored non-zeros of a gene are sorted: its
      zeros are one tie block whose rank is known from the counts. Negative values are
      allowed (they rank below the zero block), so no full-ranking fall-back is needed.
    * ``logfoldchange`` follows the ``scale`` of the values (:data:`FOLD_CHANGE_RULES`):

      - ``log1p``: ``log2((expm1(mean_a) + 1e-9) / (expm1(mean_b) + 1e-9))``, scanpy's
        approximation from the means of natural-log1p data (the fold change of the
        arms' mean normalised counts);
      - ``log2``: ``mean_a - mean_b``, the log2 fold change of the geometric means
        (limma's logFC; Smyth, *Stat. Appl. Genet. Mol. Biol.* 3:3, 2004);
      - ``log`` and ``zscore``: ``mean_a - mean_b`` on the stored scale, which is not a
        log2 fold change (reported as ``mean_difference``);
      - ``linear``: ``log2((mean_a + 1e-9) / (mean_b + 1e-9))``, NaN where a mean is
        negative.

      Applying the log1p rule to other scales is wrong: on z-scores it is NaN where
      one arm's mean is negative and can have the wrong sign where both are, and on
      log2 values it inflates the fold change about 1.44-fold.
    * ``pval_adj``: Benjamini-Hochberg over all genes (see :func:`benjamini_hochberg`),
      a finishing step over the whole p-value vector.
    * ``pct_nz_a``, ``pct_nz_b``: fraction of the arm's cells with a non-zero value.

    Parameters
    ----------
    Xg
        Gene-major ``(n_cells, n_genes)`` dask array of log-normalised values (CSC or
        dense blocks, one chunk along cells). NaNs are not supported.
    labels
        Arm of every cell (length ``n_cells``); any other value, or NaN, excludes the cell.
    group_a, group_b
        The arm tested and the reference arm.
    method
        ``"t-test"`` or ``"wilcoxon"``.
    tie_correct
        Tie-correct the Wilcoxon variance.
    scale
        The scale of the values in ``Xg``; see :data:`ValueScale` and
        :func:`detect_scale`.
    var_names
        Gene names for :meth:`DifferentialExpression.to_dask_dataframe`.

    Returns
    -------
    DifferentialExpression
        Lazy per-gene table (score, logfoldchange, pval, pval_adj, mean_a, mean_b,
        pct_nz_a, pct_nz_b).

    Raises
    ------
    resistomics.errors.MethodInputError
        If ``Xg`` is not gene-major, labels do not match, the arms are equal, either arm
        has fewer than two cells, or ``method`` is unknown.
    """
    require_gene_major(Xg, what="rank_genes_two_groups")
    if method not in ("t-test", "wilcoxon"):
        raise MethodInputError(f"method must be 't-test' or 'wilcoxon'; got {method!r}")
    if scale not in FOLD_CHANGE_RULES:
        raise MethodInputError(
            f"scale must be one of {', '.join(FOLD_CHANGE_RULES)}; got {scale!r}"
        )
    if str(group_a) == str(group_b):
        raise MethodInputError(f"group_a and group_b are the same arm ({group_a!r})")
    codes = _arm_codes(labels, Xg.shape[0], group_a=group_a, group_b=group_b)
    n_a = int((codes == 0).sum())
    n_b = int((codes == 1).sum())
    for name, n in ((group_a, n_a), (group_b, n_b)):
        if n < 2:
            raise MethodInputError(
                f"arm {name!r} has {n} cell(s); at least two are needed for a test"
            )
    if var_names is not None and len(var_names) != Xg.shape[1]:
        raise MethodInputError(
            f"var_names has {len(var_names)} names but the matrix has {Xg.shape[1]} genes"
        )
    codes_da = da.from_array(codes, chunks=(Xg.chunks[0],))
    raw = da.blockwise(
        _two_arm_block,
        "ij",
        Xg,
        "ij",
        codes_da,
        "i",
        adjust_chunks={"i": lambda _: len(_RAW)},
        dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
        n_a=n_a,
        n_b=n_b,
        method=method,
        tie_correct=tie_correct,
        scale=scale,
    )
    # One row per statistic from the blocks; one row per gene from here on.
    raw = raw.T
    pvals = raw[:, _RAW.index("pval")]
    pval_adj = pvals.rechunk(-1).map_blocks(benjamini_hochberg, dtype=np.float64)
    table = da.map_blocks(
        _insert_pval_adj,
        raw,
        pval_adj.rechunk((raw.chunks[0],))[:, None],
        dtype=np.float64,
        chunks=(raw.chunks[0], (len(DifferentialExpression.columns),)),
        meta=np.empty((0, 0), dtype=np.float64),
    )
    return DifferentialExpression(
        method=method,
        group_a=str(group_a),
        group_b=str(group_b),
        n_a=n_a,
        n_b=n_b,
        tie_correct=bool(tie_correct) and method == "wilcoxon",
        scale=scale,
        gene_names=None if var_names is None else np.asarray(var_names),
        table=table,
    )


def _arm_codes(labels: Any, n_cells: int, *, group_a: Any, group_b: Any) -> np.ndarray:
    values = pd.Series(np.asarray(labels, dtype=object))
    if len(values) != n_cells:
        raise MethodInputError(
            f"labels has {len(values)} entries but the matrix has {n_cells} cells"
        )
    as_str = values.where(values.notna(), None).map(lambda v: None if v is None else str(v))
    codes = np.full(n_cells, -1, dtype=np.int8)
    codes[(as_str == str(group_a)).to_numpy()] = 0
    codes[(as_str == str(group_b)).to_numpy()] = 1
    return codes


def _insert_pval_adj(raw: np.ndarray, pval_adj: np.ndarray) -> np.ndarray:
    at = _RAW.index("pval") + 1
    return np.concatenate([raw[:, :at], pval_adj, raw[:, at:]], axis=1)


def _two_arm_block(
    block: Any,
    codes: np.ndarray,
    *,
    n_a: int,
    n_b: int,
    method: str,
    tie_correct: bool,
    scale: str,
) -> np.ndarray:
    # Blocks are read, never modified: they may be shared (persisted) dask data.
    csc = block.tocsc() if sparse.issparse(block) else sparse.csc_matrix(np.asarray(block))
    want_ranks = method == "wilcoxon"
    keys, zero_key = _sort_keys_for(csc.data, needed=want_ranks)
    sum_a, sum_b, m2_a, m2_b, nnz_a, nnz_b, rank_sum_a, tie_sum = _two_arm_kernel(
        csc.data, keys, zero_key, csc.indices, csc.indptr, codes, n_a, n_b, want_ranks
    )
    mean_a = sum_a / n_a
    mean_b = sum_b / n_b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "t-test":
            score, pval = stats.ttest_ind_from_stats(
                mean1=mean_a,
                std1=np.sqrt(m2_a / (n_a - 1)),
                nobs1=n_a,
                mean2=mean_b,
                std2=np.sqrt(m2_b / (n_b - 1)),
                nobs2=n_b,
                equal_var=False,
            )
            score = np.asarray(score, dtype=np.float64)
            pval = np.asarray(pval, dtype=np.float64)
        else:
            n = float(n_a + n_b)
            tc = 1.0 - tie_sum / (n**3 - n) if tie_correct else 1.0
            std = np.sqrt(tc * n_a * n_b * (n + 1) / 12.0)
            score = (rank_sum_a - n_a * ((n + 1) / 2.0)) / std
        score[np.isnan(score)] = 0.0
        if method == "wilcoxon":
            pval = 2 * stats.norm.sf(np.abs(score))
        pval[np.isnan(pval)] = 1.0
        lfc = _fold_change(mean_a, mean_b, scale=scale)
    return np.vstack([score, lfc, pval, mean_a, mean_b, nnz_a / n_a, nnz_b / n_b])


def _fold_change(mean_a: np.ndarray, mean_b: np.ndarray, *, scale: str) -> np.ndarray:
    """The per-gene fold change of :data:`FOLD_CHANGE_RULES` for values on ``scale``."""
    if scale == "log1p":
        return np.log2((np.expm1(mean_a) + 1e-9) / (np.expm1(mean_b) + 1e-9))
    if scale == "linear":
        return np.log2((mean_a + 1e-9) / (mean_b + 1e-9))
    return mean_a - mean_b


def value_range(X: da.Array) -> da.Array:
    """The smallest and largest value of a matrix, lazily, as a ``(2,)`` array.

    Sparse blocks count their implicit zeros. Used to tell the scale of normalised
    values (:func:`detect_scale`).
    """
    require_matrix(X, what="value_range")
    parts = [dask.delayed(_block_range)(b) for b in X.to_delayed().ravel()]
    stacked = da.stack([da.from_delayed(p, shape=(2,), dtype=np.float64) for p in parts])
    return da.stack([stacked[:, 0].min(), stacked[:, 1].max()])


def _block_range(block: Any) -> np.ndarray:
    if sparse.issparse(block):
        data = block.data
        implicit_zeros = block.nnz < block.shape[0] * block.shape[1]
    else:
        data = np.asarray(block).ravel()
        implicit_zeros = False
    lo = float(data.min()) if data.size else 0.0
    hi = float(data.max()) if data.size else 0.0
    if implicit_zeros:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return np.array([lo, hi])


def detect_scale(lowest: float, highest: float, *, target_sum: float = 1e4) -> ValueScale:
    """Guess the scale of normalised expression values from their range.

    A heuristic, used only when the scale was neither given nor recorded:

    * a negative value: ``zscore`` (standardised or centred values; the fold change
      becomes a difference of means on the stored scale);
    * a largest value above 100: ``linear`` (no log scale of expression reaches 100);
    * a largest value up to ``log1p(target_sum)`` (9.21 for 10,000 counts per cell):
      ``log1p``, what ``scanpy.pp.normalize_total`` + ``log1p`` writes;
    * otherwise (non-negative, up to 100): ``log2`` (log2 intensities, log2(CPM + 1)).

    Parameters
    ----------
    lowest, highest
        The matrix's smallest and largest value (:func:`value_range`).
    target_sum
        The counts per cell that log1p-normalised data is assumed to be scaled to.

    Returns
    -------
    str
        One of ``zscore``, ``linear``, ``log1p``, ``log2``.
    """
    if lowest < 0:
        return "zscore"
    if highest > 100:
        return "linear"
    if highest <= np.log1p(target_sum) + 1e-6:
        return "log1p"
    return "log2"


def _sort_keys_for(data: np.ndarray, *, needed: bool) -> tuple[np.ndarray, Any]:
    """Sort keys for a block's stored values, and the key of zero.

    float32 values map to uint32 keys that order like the floats (sign bit flipped for
    positives, all bits flipped for negatives), which the kernel radix-sorts; other
    dtypes are sorted as they are. When the keys are not ``needed`` (t-test) an empty
    array of the same type is returned, so both tests share one compiled kernel.
    """
    if data.dtype == np.float32:
        zero = np.uint32(0x80000000)
        if not needed:
            return np.empty(0, dtype=np.uint32), zero
        return _float32_sort_keys(data.view(np.uint32)), zero
    return (data if needed else data[:0]), data.dtype.type(0)


@numba.njit(nogil=True, cache=True)
def _float32_sort_keys(bits: np.ndarray) -> np.ndarray:
    keys = np.empty_like(bits)
    for i in range(bits.shape[0]):
        u = bits[i]
        keys[i] = ~u if u >> 31 else u | 0x80000000
    return keys


@numba.njit(nogil=True, cache=True)
def _two_arm_kernel(
    data: np.ndarray,
    keys: np.ndarray,
    zero_key: Any,
    indices: np.ndarray,
    indptr: np.ndarray,
    codes: np.ndarray,
    n_a: int,
    n_b: int,
    want_ranks: bool,
) -> tuple[np.ndarray, ...]:
    """Per-gene two-arm moments and Wilcoxon rank sums over a CSC block.

    For each column: arm sums, non-zero counts, and either the centred second moments
    (two-pass, zeros included; for the t-test) or the rank sum of arm A and the tie
    term ``sum(t^3 - t)`` among the cells of both arms (for the Wilcoxon test). Only
    non-zeros are sorted (each arm on its own, by their order-preserving ``keys``, then
    merged); the zeros are one tie block between the negatives and the positives.
    """
    n_genes = indptr.shape[0] - 1
    sum_a = np.zeros(n_genes)
    sum_b = np.zeros(n_genes)
    m2_a = np.zeros(n_genes)
    m2_b = np.zeros(n_genes)
    nnz_a = np.zeros(n_genes)
    nnz_b = np.zeros(n_genes)
    rank_sum_a = np.zeros(n_genes)
    tie_sum = np.zeros(n_genes)
    buf_a = np.empty(n_a if want_ranks else 0, dtype=keys.dtype)
    buf_b = np.empty(n_b if want_ranks else 0, dtype=keys.dtype)
    tmp = np.empty(max(n_a, n_b) if want_ranks else 0, dtype=keys.dtype)
    hist = np.zeros((4, 256), dtype=np.int64)
    for j in range(n_genes):
        ka = 0
        kb = 0
        sa = 0.0
        sb = 0.0
        for k in range(indptr[j], indptr[j + 1]):
            v = data[k]
            if v == 0:
                continue
            c = codes[indices[k]]
            if c == 0:
                if want_ranks:
                    buf_a[ka] = keys[k]
                ka += 1
                sa += v
            elif c == 1:
                if want_ranks:
                    buf_b[kb] = keys[k]
                kb += 1
                sb += v
        sum_a[j] = sa
        sum_b[j] = sb
        nnz_a[j] = ka
        nnz_b[j] = kb
        mean_a = sa / n_a
        mean_b = sb / n_b
        if not want_ranks:
            qa = (n_a - ka) * mean_a * mean_a
            qb = (n_b - kb) * mean_b * mean_b
            for k in range(indptr[j], indptr[j + 1]):
                v = data[k]
                if v == 0:
                    continue
                c = codes[indices[k]]
                if c == 0:
                    d = v - mean_a
                    qa += d * d
                elif c == 1:
                    d = v - mean_b
                    qb += d * d
            m2_a[j] = qa
            m2_b[j] = qb
            continue
        a = buf_a[:ka]
        b = buf_b[:kb]
        _sort_keys(a, tmp[:ka], hist)
        _sort_keys(b, tmp[:kb], hist)
        rank_sum_a[j], tie_sum[j] = _merged_rank_sum(a, b, n_a - ka, n_b - kb, zero_key)
    return sum_a, sum_b, m2_a, m2_b, nnz_a, nnz_b, rank_sum_a, tie_sum


@numba.njit(nogil=True, cache=True)
def _merged_rank_sum(
    a: np.ndarray, b: np.ndarray, zeros_a: int, zeros_b: int, zero_key: Any
) -> tuple[float, float]:
    """Rank sum of ``a`` and the tie term, ranking sorted ``a`` and ``b`` (the non-zero
    keys of the two arms) together with ``zeros_a + zeros_b`` zeros (key ``zero_key``),
    ties averaged."""
    ka = a.shape[0]
    kb = b.shape[0]
    zeros_t = zeros_a + zeros_b
    placed = 0.0  # values ranked so far
    zeros_done = zeros_t == 0
    rank_sum = 0.0
    ties = 0.0
    i = 0
    q = 0
    while i < ka or q < kb:
        v = a[i] if i < ka and (q >= kb or a[i] <= b[q]) else b[q]
        if not zeros_done and v > zero_key:
            t = float(zeros_t)
            rank_sum += zeros_a * (placed + (t + 1.0) / 2.0)
            ties += t * t * t - t
            placed += t
            zeros_done = True
        ta = 0
        while i < ka and a[i] == v:
            ta += 1
            i += 1
        tb = 0
        while q < kb and b[q] == v:
            tb += 1
            q += 1
        t = float(ta + tb)
        rank_sum += ta * (placed + (t + 1.0) / 2.0)
        ties += t * t * t - t
        placed += t
    if not zeros_done:
        t = float(zeros_t)
        rank_sum += zeros_a * (placed + (t + 1.0) / 2.0)
        ties += t * t * t - t
    return rank_sum, ties


def _sort_keys(keys, tmp, hist):  # type: ignore[no-untyped-def]
    """Sort ``keys`` in place (jitted: see the overload below).

    Unannotated on purpose: numba requires the overload's signature to match its
    implementations exactly, annotations included.
    """
    keys.sort()


@overload(_sort_keys, jit_options={"nogil": True})
def _sort_keys_impl(keys, tmp, hist):  # type: ignore[no-untyped-def]
    if keys.dtype == numba.types.uint32:
        return lambda keys, tmp, hist: _radix_sort_u32(keys, tmp, hist)
    return lambda keys, tmp, hist: keys.sort()


@numba.njit(nogil=True, cache=True)
def _radix_sort_u32(keys: np.ndarray, tmp: np.ndarray, hist: np.ndarray) -> None:
    """LSD radix sort of uint32 keys in place, four 8-bit digits, skipping digits that
    are the same for every key; short arrays use the comparison sort."""
    n = keys.shape[0]
    if n < 256:
        keys.sort()
        return
    hist[:, :] = 0
    for i in range(n):
        k = keys[i]
        hist[0, k & 0xFF] += 1
        hist[1, (k >> 8) & 0xFF] += 1
        hist[2, (k >> 16) & 0xFF] += 1
        hist[3, (k >> 24) & 0xFF] += 1
    in_tmp = False
    for p in range(4):
        shift = 8 * p
        constant = False
        total = 0
        for d in range(256):
            c = hist[p, d]
            if c == n:
                constant = True
            hist[p, d] = total
            total += c
        if constant:
            continue
        src = tmp if in_tmp else keys
        dst = keys if in_tmp else tmp
        for i in range(n):
            k = src[i]
            d = (k >> shift) & 0xFF
            dst[hist[p, d]] = k
            hist[p, d] += 1
        in_tmp = not in_tmp
    if in_tmp:
        keys[:] = tmp[:n]


def benjamini_hochberg(pvals: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate).

    Benjamini & Hochberg, *J. R. Stat. Soc. B* 57:289 (1995): with ``p_(1) <= ... <=
    p_(m)``, ``q_(i) = min_{k >= i} min(1, m p_(k) / k)``. Equals statsmodels'
    ``multipletests(pvals, method="fdr_bh")[1]``; NaN p-values are treated as 1, as in
    scanpy.

    Parameters
    ----------
    pvals
        1-d array of p-values.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order as ``pvals``.
    """
    p = np.where(np.isnan(pvals), 1.0, np.asarray(pvals, dtype=np.float64))
    m = p.shape[0]
    if m == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out


# --------------------------------------------------------------------------------------
# pseudobulk and DESeq2
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pseudobulk:
    """Lazy per-sample sums of single-cell counts.

    Attributes
    ----------
    sample_ids
        Sample identifiers, in the row order of :attr:`counts` (sorted).
    n_cells
        Number of cells summed into each sample.
    counts
        Lazy ``(n_samples, n_genes)`` float64 dask array of summed counts (one chunk
        along samples, chunked like the genes of the input).
    """

    sample_ids: np.ndarray
    n_cells: np.ndarray
    counts: da.Array


def pseudobulk(
    X_counts: da.Array, sample_labels: pd.Series | np.ndarray | Sequence[Any]
) -> Pseudobulk:
    """Sum single-cell counts per sample, lazily, for count-based bulk tests.

    Aggregating cells to their biological replicate before testing keeps the test's
    unit of replication the sample, not the cell (Squair et al., *Nat. Commun.*
    12:5692, 2021; Crowell et al., *Nat. Commun.* 11:6077, 2020). Each row block
    contributes one ``samples x genes`` partial sum (an indicator-matrix product).

    Parameters
    ----------
    X_counts
        ``(n_cells, n_genes)`` dask array of raw integer counts; cell-major layout
        preferred (any chunking works). Blocks scipy sparse or dense.
    sample_labels
        Sample of every cell (length ``n_cells``); NaN excludes the cell.

    Returns
    -------
    Pseudobulk
        Sample IDs, cells per sample and the lazy summed counts.

    Raises
    ------
    resistomics.errors.MethodInputError
        At once if the labels do not match the matrix or name no sample; when computed,
        if a block holds negative or non-integer values.
    """
    require_matrix(X_counts, what="pseudobulk")
    values = pd.Series(np.asarray(sample_labels, dtype=object))
    if len(values) != X_counts.shape[0]:
        raise MethodInputError(
            f"sample_labels has {len(values)} entries but the matrix has {X_counts.shape[0]} cells"
        )
    present = values.notna().to_numpy()
    as_str = values[present].map(str)
    sample_ids = np.array(sorted(as_str.unique()), dtype=object)
    if len(sample_ids) == 0:
        raise MethodInputError("sample_labels names no sample")
    codes = np.full(len(values), -1, dtype=np.int64)
    codes[present] = pd.Index(sample_ids).get_indexer(as_str.to_numpy())
    n_cells = np.bincount(codes[present], minlength=len(sample_ids))
    counts = sum_over_row_blocks(
        X_counts,
        _pseudobulk_block,
        cell_vector(codes, X_counts, name="sample_labels"),
        n_out=len(sample_ids),
        n_samples=len(sample_ids),
    )
    return Pseudobulk(sample_ids=sample_ids, n_cells=n_cells, counts=counts)


def _pseudobulk_block(block: Any, codes: np.ndarray, *, n_samples: int) -> np.ndarray:
    values = block.data if sparse.issparse(block) else np.asarray(block)
    if values.size and ((values < 0).any() or not np.array_equal(values, np.floor(values))):
        raise MethodInputError(
            "pseudobulk needs raw counts (non-negative integers); this block holds "
            "negative, fractional or missing values. Pass the counts layer, not "
            "normalised values."
        )
    keep = np.flatnonzero(codes >= 0)
    indicator = sparse.csr_matrix(
        (np.ones(keep.size), (codes[keep], keep)), shape=(n_samples, block.shape[0])
    )
    if sparse.issparse(block):
        return np.asarray((indicator @ block.tocsr()).toarray(), dtype=np.float64)
    return np.asarray(indicator @ np.asarray(block, dtype=np.float64))


def deseq2_test(
    counts: pd.DataFrame,
    design: pd.DataFrame,
    *,
    column: str,
    group_a: str,
    group_b: str,
    covariates: Sequence[str] = (),
    n_cpus: int = 1,
) -> pd.DataFrame:
    """Negative-binomial Wald test of arm A against arm B on bulk (or pseudobulk) counts.

    DESeq2 (Love, Huber & Anders, *Genome Biol.* 15:550, 2014) through PyDESeq2 (Muzellec
    et al., *Bioinformatics* 39:btad547, 2023): median-of-ratios size factors,
    dispersion shrinkage towards a fitted trend, a Wald test of the ``column`` contrast
    ``group_a`` vs ``group_b`` with Cook's-distance outlier handling and independent
    filtering, and Benjamini-Hochberg ``padj``. Samples in neither arm are left out.
    This runs eagerly: bulk matrices (samples x genes) are small.

    Parameters
    ----------
    counts
        Samples x genes raw counts (non-negative integers), indexed by sample ID.
    design
        Sample metadata indexed by sample ID, holding ``column`` and any ``covariates``.
    column
        The design column that names the arms.
    group_a, group_b
        The arm tested and the reference arm; ``log2FoldChange`` is A over B.
    covariates
        Further design columns to adjust for (e.g. ``["subject_id"]`` for a paired
        design, or ``["batch"]``).
    n_cpus
        Processes PyDESeq2 may use.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene: ``baseMean``, ``log2FoldChange``, ``lfcSE``, ``stat``,
        ``pvalue``, ``padj``.

    Raises
    ------
    resistomics.errors.MethodInputError
        If ``counts`` holds non-integer, negative or missing values, the design lacks a
        column or samples, or an arm has no sample.
    """
    # Imported here: it is heavy, and importing it switches FutureWarnings off for the
    # whole process (warnings.simplefilter at import); catch_warnings undoes that.
    with warnings.catch_warnings():
        from pydeseq2.dds import DeseqDataSet
        from pydeseq2.default_inference import DefaultInference
        from pydeseq2.ds import DeseqStats

    counts, metadata = _deseq2_inputs(
        counts, design, column=column, group_a=group_a, group_b=group_b, covariates=covariates
    )
    terms = [*(f"C({name})" for name in _COVARIATE_NAMES[: len(covariates)]), "arm"]
    formula = "~" + " + ".join(terms)
    inference = DefaultInference(n_cpus=n_cpus)
    dds = DeseqDataSet(
        counts=counts, metadata=metadata, design=formula, inference=inference, quiet=True
    )
    dds.deseq2()
    result = DeseqStats(dds, contrast=["arm", "A", "B"], inference=inference, quiet=True)
    result.summary()
    table = result.results_df.copy()
    table.index.name = "gene"
    return table


_COVARIATE_NAMES = tuple(f"covariate{i}" for i in range(64))


def _deseq2_inputs(
    counts: pd.DataFrame,
    design: pd.DataFrame,
    *,
    column: str,
    group_a: str,
    group_b: str,
    covariates: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check the counts and design, keep the samples of the two arms and give the
    design columns formula-safe names (``arm`` with levels ``A``/``B``, ``covariateN``)."""
    if not isinstance(counts, pd.DataFrame) or not isinstance(design, pd.DataFrame):
        raise MethodInputError("deseq2_test takes pandas DataFrames for counts and design")
    for name in (column, *covariates):
        if name not in design.columns:
            raise MethodInputError(
                f"design has no column {name!r}; columns are {list(design.columns)}"
            )
    if len(covariates) > len(_COVARIATE_NAMES):
        raise MethodInputError(f"at most {len(_COVARIATE_NAMES)} covariates are supported")
    missing = counts.index.difference(design.index)
    if len(missing) > 0:
        raise MethodInputError(f"design has no row for samples {list(missing[:10])}")
    values = counts.to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        raise MethodInputError("deseq2_test needs numeric counts; got non-numeric columns")
    bad = np.isnan(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise MethodInputError(
            "deseq2_test needs raw counts (non-negative integers); sample "
            f"{counts.index[row]!r}, gene {counts.columns[col]!r} holds {values[row, col]!r}. "
            "Pass unnormalised counts (or pseudobulk sums of them)."
        )
    arm = (
        design.loc[counts.index, column]
        .astype(object)
        .map(lambda v: "A" if str(v) == str(group_a) else ("B" if str(v) == str(group_b) else None))
    )
    keep = arm.notna().to_numpy()
    for label, name in (("A", group_a), ("B", group_b)):
        if not (arm == label).any():
            raise MethodInputError(f"no sample has {column} == {name!r}")
    metadata = pd.DataFrame(
        {"arm": pd.Categorical(arm[keep].to_numpy(), categories=["B", "A"])},
        index=counts.index[keep].astype(str),
    )
    for safe, name in zip(_COVARIATE_NAMES, covariates, strict=False):
        metadata[safe] = design.loc[counts.index[keep], name].astype(str).to_numpy()
    kept = pd.DataFrame(
        values[keep].astype(np.int64),
        index=metadata.index,
        columns=counts.columns.astype(str),
    )
    return kept, metadata
