"""Differentially methylated regions (DMRs) from a DML table, as DSS's ``callDMR``.

:func:`call_dmrs` reproduces ``DSS:::callDMR`` of DSS 2.46 (and the ``findBumps`` /
``findRegion`` it calls) on a per-CpG DML table, the output of a two-group ``DMLtest``
(columns ``mu1``, ``mu2``, ``diff``, ``diff.se``, ``stat``, ``pval``) or of
``DMLtest.multiFactor`` (``stat``, ``pvals``, ``fdrs`` only). The method (Feng, Conneely &
Wu, *Nucleic Acids Res.* 42:e69, 2014; Wu et al., *Nucleic Acids Res.* 43:e141, 2015):

1. a CpG is significant when its score is below ``p_threshold``; the score is its p-value,
   or with ``delta > 0`` (two-group only) one minus the posterior probability that the
   true difference exceeds ``delta`` in magnitude,
   ``1 - [Phi((diff - delta) / se) + 1 - Phi((diff + delta) / se)]``;
2. the CpGs fall into blocks wherever two neighbours are more than 5000 bp apart;
   blocks of ``min_cpg`` CpGs or fewer are skipped;
3. in a block, each run of consecutive significant CpGs is a bump; bumps whose gap (from
   the last CpG of one to the first of the next) is at most ``dis_merge`` bp are merged
   (``dis_merge`` is capped at ``min_len``, as DSS does);
4. a merged bump is kept when more than ``pct_sig`` of its CpGs are significant, and
   then when it is longer than ``min_len`` bp (``end - start + 1``) *and* has more than
   ``min_cpg`` CpGs (both strict, as in DSS: the defaults keep regions of >= 4 CpGs);
5. per region: the mean of ``mu1`` and of ``mu2`` over its CpGs, their difference, and
   ``areaStat``, the sum of the CpGs' Wald statistics; regions are sorted by
   ``|areaStat|``, largest first (ties in table order).

Output columns and the DSS names they stand for (:data:`DSS_COLUMNS`):
``contig`` (chr), ``start``, ``end``, ``length``, ``n_cpg`` (nCG), ``mean_methylation_1``
(meanMethy1), ``mean_methylation_2`` (meanMethy2), ``diff_methylation`` (diff.Methy),
``area_stat`` (areaStat); a multi-factor table gives no methylation columns, as in DSS.

Where this differs from DSS: blocks are also cut where the contig changes (DSS's
``findRegion`` looks at ``|diff(pos)|`` only, so the last CpGs of one contig and the first
of the next form one block whenever their positions are within 5000 bp — a DMR could
then span two contigs); positions must be sorted within a contig (DSS takes the absolute
difference of unsorted positions without complaint); a CpG whose p-value is missing but
whose statistic is not counts as not significant (DSS stops with an error in its
``if (mean(pp) > pct.sig)``). With no region found DSS returns ``NULL`` with a warning;
here the table is empty.

Scale: every step is vectorised over a contig (run boundaries from shifted boolean
arrays, sums over regions with ``np.add.reduceat``), so one contig of n CpGs needs its
five or six input columns (~48 bytes per CpG) and a few boolean and integer arrays of n.
A Parquet path is read one contig at a time (a pyarrow filter on the contig column, so a
file written sorted by contig reads only the row groups that hold that contig), one
task per contig in one Dask graph computed once (on the active Dask client, if any); the
contigs are listed first by streaming the contig column a batch at a time. Peak memory
is the largest contig's columns (plus its row groups' overhang) times the tasks running
at once (chr1 of a 28 M-CpG WGBS table, ~2.3 M CpGs: ~110 MB), never the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError

__all__ = ["DMR_COLUMNS", "DSS_COLUMNS", "DmrParameters", "call_dmrs", "call_dmrs_contig"]

#: DSS's ``callDMR`` column names -> ours.
DSS_COLUMNS = {
    "chr": "contig",
    "start": "start",
    "end": "end",
    "length": "length",
    "nCG": "n_cpg",
    "meanMethy1": "mean_methylation_1",
    "meanMethy2": "mean_methylation_2",
    "diff.Methy": "diff_methylation",
    "areaStat": "area_stat",
}
DMR_COLUMNS = tuple(DSS_COLUMNS.values())
_METHYLATION_COLUMNS = ("mean_methylation_1", "mean_methylation_2", "diff_methylation")
_MULTIFACTOR_COLUMNS = tuple(c for c in DMR_COLUMNS if c not in _METHYLATION_COLUMNS)

_CODE = "__contig_code"  # the streamed rows' contig, as a code (faster than its name)

# findBumps(..., sep = 5000): CpGs further apart than this never share a region.
BLOCK_GAP = 5000

# Accepted spellings of the DML table's columns (ours, then DSS's).
_ALIASES = {
    "contig": ("contig", "chr"),
    "position": ("position", "pos"),
    "stat": ("stat",),
    "pval": ("pval", "pvals"),
    "mu1": ("mu1",),
    "mu2": ("mu2",),
    "diff": ("diff",),
    "diff_se": ("diff_se", "diff.se"),
}


@dataclass(frozen=True)
class DmrParameters:
    """``callDMR``'s arguments (see :func:`call_dmrs`)."""

    delta: float = 0.0
    p_threshold: float = 1e-5
    min_len: int = 50
    min_cpg: int = 3
    dis_merge: int = 100
    pct_sig: float = 0.5

    def __post_init__(self) -> None:
        if not self.delta >= 0:
            raise MethodInputError(f"delta must be >= 0 (got {self.delta})")
        if not 0 < self.p_threshold <= 1:
            raise MethodInputError(f"p_threshold must be in (0, 1] (got {self.p_threshold})")
        if self.min_len < 0 or self.min_cpg < 0 or self.dis_merge < 0:
            raise MethodInputError("min_len, min_cpg and dis_merge must be >= 0")
        if not 0 <= self.pct_sig < 1:
            raise MethodInputError(f"pct_sig must be in [0, 1) (got {self.pct_sig})")


def _column(columns: Sequence[str], key: str, *, required: bool = True) -> str | None:
    for name in _ALIASES[key]:
        if name in columns:
            return name
    if required:
        raise MethodInputError(
            f"DML table has no {' / '.join(_ALIASES[key])} column (columns: {', '.join(columns)})"
        )
    return None


def _scores(table: pd.DataFrame, params: DmrParameters, two_group: bool) -> np.ndarray:
    if params.delta > 0:
        if not two_group:
            raise MethodInputError(
                "the DML table comes from a multi-factor design: delta is not supported "
                "(as in DSS); use delta=0"
            )
        from scipy.special import ndtr

        diff_column = _column(list(table.columns), "diff")
        se_column = _column(list(table.columns), "diff_se")
        diff = table[diff_column].to_numpy(dtype=float)
        se = table[se_column].to_numpy(dtype=float)
        # pnorm(diff - delta, sd = se) + pnorm(diff + delta, sd = se, lower.tail = FALSE)
        with np.errstate(divide="ignore", invalid="ignore"):
            post = ndtr((diff - params.delta) / se) + ndtr(-(diff + params.delta) / se)
        return np.asarray(1.0 - post, dtype=float)
    pval_column = _column(list(table.columns), "pval")
    return table[pval_column].to_numpy(dtype=float)


def call_dmrs_contig(
    contig: str,
    table: pd.DataFrame,
    params: DmrParameters,
    *,
    two_group: bool | None = None,
    core: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """The DMRs of one contig's DML rows (sorted by position), unsorted by ``area_stat``.

    The per-contig step of :func:`call_dmrs`: the same columns, in region order. With
    ``core = (lo, hi)`` (row indices of ``table``, whose ``stat`` must then have no
    missing value) only the regions whose first CpG is one of rows ``lo:hi`` are kept:
    the other rows are a halo that gives the core's rows their blocks (see
    :func:`_stream_parquet`).
    """
    columns = list(table.columns)
    position_column = _column(columns, "position")
    stat_column = _column(columns, "stat")
    if two_group is None:
        two_group = "mu1" in columns and "mu2" in columns
    out_columns = DMR_COLUMNS if two_group else _MULTIFACTOR_COLUMNS
    stat = table[stat_column].to_numpy(dtype=float)
    keep = ~np.isnan(stat)
    if not keep.all():
        table = table.loc[keep]
        stat = stat[keep]
    position = table[position_column].to_numpy(dtype=np.int64)
    n = len(position)
    empty = _empty(out_columns)
    if n == 0:
        return empty
    gaps = np.diff(position)
    if (gaps < 0).any():
        at = int(np.flatnonzero(gaps < 0)[0])
        raise MethodInputError(
            f"DML table positions are not sorted within contig {contig} "
            f"({position[at]} before {position[at + 1]})"
        )
    score = _scores(table, params, two_group)
    with np.errstate(invalid="ignore"):
        significant = score < params.p_threshold  # NaN -> False
    if not significant.any():
        return empty
    # Blocks: cut where neighbours are > BLOCK_GAP apart; skip blocks of <= min_cpg CpGs.
    cut = np.flatnonzero(gaps > BLOCK_GAP) + 1
    block_start = np.concatenate(([0], cut))
    block_end = np.concatenate((cut, [n]))  # exclusive
    block_size = block_end - block_start
    block = np.repeat(np.arange(len(block_start)), block_size)
    flag = significant & (block_size[block] > params.min_cpg)
    # Runs of significant CpGs within a block.
    first_in_block = np.zeros(n, dtype=bool)
    first_in_block[block_start] = True
    last_in_block = np.zeros(n, dtype=bool)
    last_in_block[block_end - 1] = True
    previous = np.concatenate(([False], flag[:-1])) & ~first_in_block
    following = np.concatenate((flag[1:], [False])) & ~last_in_block
    run_start = np.flatnonzero(flag & ~previous)
    run_end = np.flatnonzero(flag & ~following)
    if run_start.size == 0:
        return empty
    # Merge runs of one block whose gap is at most dis_merge bp (capped at min_len).
    dis_merge = min(params.dis_merge, params.min_len)
    new_bump = np.ones(run_start.size, dtype=bool)
    new_bump[1:] = (block[run_start[1:]] != block[run_end[:-1]]) | (
        position[run_start[1:]] > position[run_end[:-1]] + dis_merge
    )
    bump_start = run_start[new_bump]
    bump_end = run_end[np.concatenate((new_bump[1:], [True]))]
    n_cpg = bump_end - bump_start + 1
    n_significant = _sums(significant.astype(np.int64), bump_start, bump_end)
    length = position[bump_end] - position[bump_start] + 1
    good = (
        (n_significant / n_cpg > params.pct_sig)
        & (length > params.min_len)
        & (n_cpg > params.min_cpg)
    )
    if core is not None:
        good &= (bump_start >= core[0]) & (bump_start < core[1])
    bump_start, bump_end = bump_start[good], bump_end[good]
    if bump_start.size == 0:
        return empty
    n_cpg = bump_end - bump_start + 1
    out: dict[str, object] = {
        "contig": np.full(bump_start.size, contig, dtype=object),
        "start": position[bump_start],
        "end": position[bump_end],
        "length": length[good],
        "n_cpg": n_cpg,
    }
    if two_group:
        means = [
            _sums(table[c].to_numpy(dtype=float), bump_start, bump_end) / n_cpg
            for c in ("mu1", "mu2")
        ]
        out["mean_methylation_1"], out["mean_methylation_2"] = means
        out["diff_methylation"] = means[0] - means[1]
    out["area_stat"] = _sums(stat, bump_start, bump_end)
    return pd.DataFrame(out, columns=list(out_columns))


def _sums(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sum of ``values[start[k] : end[k] + 1]`` for non-overlapping, ordered slices."""
    padded = np.concatenate((values, np.zeros(1, dtype=values.dtype)))
    bounds = np.empty(2 * start.size, dtype=np.int64)
    bounds[0::2] = start
    bounds[1::2] = end + 1
    return np.add.reduceat(padded, bounds)[0::2]


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    dtypes = {"contig": object, "start": np.int64, "end": np.int64, "length": np.int64}
    dtypes["n_cpg"] = np.int64
    return pd.DataFrame(
        {c: pd.Series(dtype=dtypes.get(c, np.float64)) for c in columns}, columns=list(columns)
    )


def _sorted(parts: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty(columns)
    result = pd.concat(parts, ignore_index=True)
    # sort(abs(areaStat), decreasing = TRUE, index.return = TRUE): R's radix sort, stable.
    order = np.argsort(-np.abs(result["area_stat"].to_numpy()), kind="stable")
    return result.iloc[order].reset_index(drop=True)


def call_dmrs(
    dml_table: pd.DataFrame | str | Path,
    *,
    delta: float = 0.0,
    p_threshold: float = 1e-5,
    min_len: int = 50,
    min_cpg: int = 3,
    dis_merge: int = 100,
    pct_sig: float = 0.5,
    contigs: Sequence[str] | None = None,
    filesystem: Any = None,
) -> pd.DataFrame:
    """Call DMRs from a DML table as ``DSS::callDMR`` (DSS 2.46) does.

    Parameters
    ----------
    dml_table
        Per-CpG DML test results, sorted by position within each contig (each contig one
        run of rows): a DataFrame, or the path of a Parquet file (read one contig at a
        time). Columns: ``contig`` or ``chr``, ``position`` or ``pos``, ``stat``,
        ``pval`` or ``pvals``; a two-group table also has ``mu1`` and ``mu2`` (and
        ``diff`` and ``diff_se`` / ``diff.se`` for ``delta > 0``). Rows whose ``stat`` is
        missing are dropped, as in DSS.
    delta
        Minimum magnitude of the methylation difference; with ``delta > 0`` a CpG's score
        is ``1 - P(|true diff| > delta)`` under the normal approximation instead of its
        p-value (two-group tables only).
    p_threshold
        A CpG is significant when its score is below this.
    min_len
        Regions must be longer than this many bp (``end - start + 1 > min_len``).
    min_cpg
        Regions must have more than this many CpGs.
    dis_merge
        Significant runs at most this many bp apart are merged (capped at ``min_len``).
    pct_sig
        Regions must have more than this fraction of significant CpGs.
    contigs
        Only these contigs (default: every contig of the table, in table order).
    filesystem
        The filesystem of a Parquet ``dml_table`` path (pyarrow or fsspec; default local).

    Returns
    -------
    pandas.DataFrame
        One row per DMR, sorted by ``|area_stat|`` largest first: ``contig``, ``start``,
        ``end`` (1-based, inclusive: the first and last CpG), ``length``, ``n_cpg``,
        ``mean_methylation_1``, ``mean_methylation_2``, ``diff_methylation``,
        ``area_stat`` (the methylation columns only for a two-group table). See
        :data:`DSS_COLUMNS` for DSS's names.

    Raises
    ------
    MethodInputError
        A required column is missing, positions are unsorted within a contig, a contig's
        rows are not one run, ``delta > 0`` on a multi-factor table, or a parameter is out
        of range.

    References
    ----------
    Feng H, Conneely KN, Wu H. A Bayesian hierarchical model to detect differentially
    methylated loci from single nucleotide resolution sequencing data. *Nucleic Acids
    Res.* 42:e69 (2014). Wu H, Xu T, Feng H, et al. Detection of differentially methylated
    regions from whole-genome bisulfite sequencing data without replicates. *Nucleic
    Acids Res.* 43:e141 (2015).
    """
    params = DmrParameters(
        delta=delta,
        p_threshold=p_threshold,
        min_len=min_len,
        min_cpg=min_cpg,
        dis_merge=dis_merge,
        pct_sig=pct_sig,
    )
    if isinstance(dml_table, str | Path):
        return _stream_parquet(str(dml_table), params, contigs, filesystem)
    columns = list(dml_table.columns)
    contig_column = _column(columns, "contig")
    assert contig_column is not None
    two_group = "mu1" in columns and "mu2" in columns
    out_columns = DMR_COLUMNS if two_group else _MULTIFACTOR_COLUMNS
    labels = dml_table[contig_column].astype(str).to_numpy()
    if len(labels) == 0:
        return _empty(out_columns)
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(labels)]))
    names = labels[starts]
    if len(set(names)) != len(names):
        repeated = next(c for c in names if (names == c).sum() > 1)
        raise MethodInputError(
            f"DML table rows of contig {repeated} are not one run: sort the table by "
            "contig and position"
        )
    wanted = None if contigs is None else set(contigs)
    parts = [
        call_dmrs_contig(str(name), dml_table.iloc[s:e], params, two_group=two_group)
        for name, s, e in zip(names, starts, ends, strict=True)
        if wanted is None or name in wanted
    ]
    return _sorted(parts, out_columns)


def _parquet_files(path: str, filesystem: Any) -> list[str]:
    """A Parquet file, or the parts of a parted table (``part-*.parquet``) in table order."""
    import pyarrow.fs as pafs

    if filesystem is None:
        filesystem = pafs.LocalFileSystem()
    if isinstance(filesystem, pafs.FileSystem):
        info = filesystem.get_file_info(path)
        if info.type != pafs.FileType.Directory:
            return [path]
        found = filesystem.get_file_info(pafs.FileSelector(path))
        names = [f.path for f in found if f.is_file]
    else:
        if not filesystem.isdir(path):
            return [path]
        names = [str(p) for p in filesystem.ls(path, detail=False)]
    return sorted(p for p in names if p.endswith(".parquet") and "/." not in p)


def _open(path: str, filesystem: Any) -> Any:
    import pyarrow.fs as pafs

    if filesystem is None or isinstance(filesystem, pafs.FileSystem):
        return (filesystem or pafs.LocalFileSystem()).open_input_file(path)
    return filesystem.open(path, "rb")


def _safe_cut(
    labels: np.ndarray, position: np.ndarray, significant: np.ndarray, halo: int, merge: int
) -> int:
    """The last row boundary ``b`` (``0 < b <= n - halo``) no region can cross, or 0.

    A region is a run of consecutive significant CpGs, or runs at most ``merge`` bp
    apart, in one contig: it cannot cross ``b`` when the contig changes there, or when
    CpGs ``b - 1`` and ``b`` are not both significant and the nearest significant CpGs
    either side are more than ``merge`` bp apart (rows after the buffer are at or after
    its last position, so a side with none in the buffer counts from there).
    """
    n = len(labels)
    if n - halo < 1:
        return 0
    idx = np.arange(n)
    last_sig = np.maximum.accumulate(np.where(significant, idx, -1))
    next_sig = np.minimum.accumulate(np.where(significant, idx, n)[::-1])[::-1]
    b = np.arange(1, n - halo + 1)
    j, k = last_sig[b - 1], next_sig[b]
    jj, kk = np.maximum(j, 0), np.minimum(k, n - 1)
    far = np.where(
        k < n,
        (labels[kk] != labels[jj]) | (position[kk] - position[jj] > merge),
        (labels[n - 1] != labels[jj]) | (position[n - 1] - position[jj] > merge),
    )
    safe = (labels[b] != labels[b - 1]) | (~(significant[b - 1] & significant[b]) & ((j < 0) | far))
    where = np.flatnonzero(safe)
    return int(b[where[-1]]) if where.size else 0


def _core_regions(
    frame: pd.DataFrame,
    lo: int,
    hi: int,
    names: Sequence[str],
    params: DmrParameters,
    two_group: bool,
) -> list[pd.DataFrame]:
    """The regions starting in rows ``lo:hi`` of ``frame`` (the rest a halo), by contig
    (column :data:`_CODE`, an index into ``names``)."""
    labels = frame[_CODE].to_numpy()
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(labels)]))
    out = []
    for s, e in zip(starts, ends, strict=True):
        a, b = max(lo, int(s)), min(hi, int(e))
        if a >= b:
            continue
        out.append(
            call_dmrs_contig(
                names[int(labels[s])],
                frame.iloc[s:e],
                params,
                two_group=two_group,
                core=(a - int(s), b - int(s)),
            )
        )
    return out


def _stream_parquet(
    path: str, params: DmrParameters, contigs: Sequence[str] | None, filesystem: Any
) -> pd.DataFrame:
    """:func:`call_dmrs` on a Parquet table read a batch at a time, parts in order.

    The rows are buffered until a boundary no region can cross (:func:`_safe_cut`);
    the rows before it are called with a halo of ``min_cpg + 1`` rows either side, so
    every core CpG sees whether its block (CpGs at most 5000 bp apart) has more than
    ``min_cpg`` CpGs: a block that reaches past a halo has more than that. Memory is a
    batch and the rows since the last safe boundary, never the table; the regions are
    those of the whole table (tested against the in-memory call on cut points
    everywhere).
    """
    import pyarrow.parquet as pq

    files = _parquet_files(path, filesystem)
    if not files:
        raise MethodInputError(f"{path}: no Parquet files in the DML table")
    with _open(files[0], filesystem) as f:
        columns = list(pq.read_schema(f).names)
    contig_column = _column(columns, "contig")
    assert contig_column is not None
    stat_column = _column(columns, "stat")
    position_column = _column(columns, "position")
    two_group = "mu1" in columns and "mu2" in columns
    out_columns = DMR_COLUMNS if two_group else _MULTIFACTOR_COLUMNS
    wanted = [
        c
        for c in (_column(columns, k, required=False) for k in _ALIASES)
        if c is not None and (two_group or c not in ("mu1", "mu2"))
    ]
    keep = None if contigs is None else {str(c) for c in contigs}
    halo = params.min_cpg + 1
    merge = min(params.dis_merge, params.min_len)
    regions: list[pd.DataFrame] = []
    left = pd.DataFrame()
    buffer = pd.DataFrame()
    finished: set[str] = set()
    current: str | None = None

    def batches() -> Any:
        for file in files:
            with _open(file, filesystem) as f:
                yield from pq.ParquetFile(f, read_dictionary=[contig_column]).iter_batches(
                    columns=wanted, batch_size=1 << 17
                )

    def emit(core: pd.DataFrame, right: pd.DataFrame) -> None:
        nonlocal left
        frame = pd.concat([left, core, right], ignore_index=True)
        regions.extend(
            _core_regions(frame, len(left), len(left) + len(core), names, params, two_group)
        )
        left = pd.concat([left, core], ignore_index=True).iloc[-halo:]

    names: list[str] = []  # contig code -> name, in table order
    code_of: dict[str, int] = {}
    for batch in batches():
        frame = batch.to_pandas()
        column = frame.pop(contig_column)
        labels = (
            column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
        )
        for name in labels.cat.categories:
            if str(name) not in code_of:
                code_of[str(name)] = len(names)
                names.append(str(name))
        to_code = np.asarray([code_of[str(c)] for c in labels.cat.categories], dtype=np.int64)
        codes = to_code[labels.cat.codes.to_numpy()]
        frame[_CODE] = codes
        # each contig one run of rows, across batches and parts as within them
        for code in (
            codes[np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]] if len(codes) else []
        ):
            label = names[int(code)]
            if label == current:
                continue
            if label in finished:
                raise MethodInputError(
                    f"DML table rows of contig {label} are not one run: sort the table by "
                    "contig and position"
                )
            if current is not None:
                finished.add(current)
            current = label
        if keep is not None:
            frame = frame[np.isin(codes, [code_of[c] for c in keep if c in code_of])]
        frame = frame[frame[stat_column].notna()]
        if not len(frame):
            continue
        buffer = (
            pd.concat([buffer, frame], ignore_index=True)
            if len(buffer)
            else frame.reset_index(drop=True)
        )
        with np.errstate(invalid="ignore"):
            significant = _scores(buffer, params, two_group) < params.p_threshold
        cut = _safe_cut(
            buffer[_CODE].to_numpy(),
            buffer[position_column].to_numpy(dtype=np.int64),
            significant,
            halo,
            merge,
        )
        if cut:
            emit(buffer.iloc[:cut], buffer.iloc[cut : cut + halo])
            buffer = buffer.iloc[cut:].reset_index(drop=True)
    if len(buffer):
        emit(buffer, buffer.iloc[:0])
    return _sorted(regions, out_columns)
