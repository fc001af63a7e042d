"""Region summaries of a ``methylation.counts`` store and a two-arm test per region.

Regions: promoters (RefSeq TSS +- ``flank`` bp, 2 kb by default), CpG islands, gene
bodies (hg19, from the annotation folder ``modalities.methylation.annotation_dir``: the
ChromHMM ``COORDS/hg19`` files ``RefSeqTSS.hg19.bed.gz``, ``CpGIsland.hg19.bed.gz``,
``RefSeqGene.hg19.bed.gz``), or any BED file. BED intervals are 0-based half-open;
here every region is held 1-based inclusive (``start = bed_start + 1``, ``end =
bed_end``), the convention of the site index, so a CpG at position ``p`` is in a region
when ``start <= p <= end``.

Computation (:func:`region_counts`): one Dask task per stored chunk row of sites reads
that row of ``methylated`` and ``total`` (all samples) and its rows of the site index.
Inside a task, each contig run's positions are sorted (the store declares
``sorted_by=("contig", "position")``), so a region's sites are the run's rows
``[searchsorted(pos, start, "left"), searchsorted(pos, end, "right"))`` and its sums
are differences of prefix sums: every region, overlapping or nested, costs two binary
searches and one subtraction per sample, whatever its length. A region cut by a block
edge gets partial sums from both blocks; the driver adds them. Memory per task: one
chunk row of sites x all samples, plus the regions it touches.

Per region and sample: summed methylated and total reads, the number of CpG sites
covered (total > 0), and the coverage-weighted mean methylation ``sum methylated / sum
total`` (NaN, never 0, where the sample has no reads in the region).
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from resistomics.errors import ConfigError, InputError
from resistomics.modalities.methylation._summaries import _features, _row_groups
from resistomics.storage import FeatureMatrix

__all__ = [
    "BUILTIN_REGION_SETS",
    "RegionCounts",
    "RegionSet",
    "benjamini_hochberg",
    "builtin_region_set",
    "read_bed",
    "region_counts",
    "region_sample_table",
    "region_set",
    "welch_region_test",
]

#: Built-in region sets and the annotation file each is made from.
BUILTIN_REGION_SETS: dict[str, str] = {
    "promoters": "RefSeqTSS.hg19.bed.gz",
    "cpg-islands": "CpGIsland.hg19.bed.gz",
    "gene-bodies": "RefSeqGene.hg19.bed.gz",
}
#: Promoter half-width around each TSS (bp): TSS +- 2 kb.
PROMOTER_FLANK = 2000


@dataclass(frozen=True)
class RegionSet:
    """Named genomic regions, 1-based inclusive.

    ``regions`` has ``region_id`` (unique: ``contig:start-end``, or the BED name when
    the file names every region uniquely), ``contig``, ``start``, ``end`` and ``name``.
    ``source`` and ``digest`` go into a result's parameters (lineage).
    """

    name: str
    regions: pd.DataFrame
    source: str
    digest: str

    def __len__(self) -> int:
        return len(self.regions)


def _open_text(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such BED file") from None
    except IsADirectoryError:
        raise InputError(str(path), "file-exists", "is a directory, not a BED file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(str(path), "gzip", f"truncated or corrupt gzip ({exc})") from None
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(str(path), "encoding", "not UTF-8 text (a binary file?)") from None


def read_bed(path: str | Path, *, name: str | None = None, flank: int = 0) -> RegionSet:
    """Read a BED file (3+ tab-separated fields; optional name in field 4) as regions.

    ``track``/``browser``/``#`` lines are skipped. With ``flank`` each interval is
    widened by ``flank`` bp on both sides (a TSS file becomes promoters), clipped at
    position 1. Identical intervals are kept once.

    Raises
    ------
    InputError
        Missing or unreadable file, fewer than 3 fields, non-integer or negative
        coordinates, an end not after its start (with the line), or no regions.
    """
    path = Path(path)
    rows: list[tuple[str, int, int, str]] = []
    for n, line in enumerate(_open_text(path), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 3:
            fields = line.split()
        if len(fields) < 3:
            raise InputError(
                str(path), "bed-fields", "expected contig, start, end (tab separated)", line=n
            )
        contig, s, e = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if not (s.isdigit() and e.isdigit()):
            raise InputError(
                str(path), "bed-coordinates", f"start {s!r} / end {e!r} are not integers >= 0",
                line=n,
            )  # fmt: skip
        start, end = int(s), int(e)
        if end <= start:
            raise InputError(
                str(path), "bed-interval", f"end {end} is not after start {start}", line=n
            )
        label = fields[3].strip() if len(fields) > 3 else ""
        rows.append((contig, max(1, start + 1 - flank), end + flank, label))
    if not rows:
        raise InputError(str(path), "not-empty", "the BED file holds no regions")
    frame = pd.DataFrame(rows, columns=["contig", "start", "end", "name"])
    frame = frame.drop_duplicates(["contig", "start", "end"]).reset_index(drop=True)
    ids = frame["contig"] + ":" + frame["start"].astype(str) + "-" + frame["end"].astype(str)
    names = frame["name"]
    use_names = bool((names != "").all() and not names.duplicated().any())
    frame.insert(0, "region_id", names if use_names else ids)
    frame = frame.astype({"start": "int64", "end": "int64"})
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    source = f"{path.name}" + (f" +-{flank} bp" if flank else "")
    return RegionSet(name=name or path.name, regions=frame, source=source, digest=digest)


def builtin_region_set(
    kind: str, annotation_dir: str | Path | None, *, flank: int = PROMOTER_FLANK
) -> RegionSet:
    """``promoters`` (TSS +- ``flank``), ``cpg-islands`` or ``gene-bodies`` (hg19).

    Raises
    ------
    ConfigError
        No annotation folder configured, or the file is not in it.
    InputError
        ``kind`` is not a built-in region set.
    """
    if kind not in BUILTIN_REGION_SETS:
        raise InputError(
            "--bed",
            "region-set",
            f"{kind!r}: choose {', '.join(BUILTIN_REGION_SETS)} or a BED file",
        )
    if annotation_dir is None:
        raise ConfigError(
            f"--bed {kind}: [annotation-dir] set RESISTOMICS_MODALITIES__METHYLATION__ANNOTATION_DIR "
            f"to a folder holding {BUILTIN_REGION_SETS[kind]} (hg19; e.g. ChromHMM's COORDS/hg19)"
        )
    path = Path(annotation_dir) / BUILTIN_REGION_SETS[kind]
    if not path.is_file():
        raise ConfigError(
            f"--bed {kind}: [annotation-dir] {path} does not exist "
            "(modalities.methylation.annotation_dir)"
        )
    return read_bed(path, name=kind, flank=flank if kind == "promoters" else 0)


def region_set(spec: str, annotation_dir: str | Path | None) -> RegionSet:
    """A built-in region set by name, else the BED file at ``spec``."""
    if spec in BUILTIN_REGION_SETS:
        return builtin_region_set(spec, annotation_dir)
    return read_bed(spec)


# -- counting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionCounts:
    """Per region (rows, in the order of ``regions``) and sample (columns).

    ``methylated``/``total``: summed reads (int64). ``n_cpgs``: sites covered (total >
    0). ``n_sites``: sites of the store inside the region (any coverage).
    """

    regions: pd.DataFrame
    sample_ids: list[str]
    methylated: np.ndarray
    total: np.ndarray
    n_cpgs: np.ndarray
    n_sites: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """Coverage-weighted mean methylation; NaN where a sample has no reads."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total > 0, self.methylated / np.maximum(self.total, 1), np.nan)


def _contig_aliases(region_contigs: Sequence[str], store_contigs: Sequence[str]) -> dict[str, str]:
    """Region contig -> the store's name for it (``chr10`` and ``10`` are one contig)."""
    have = set(store_contigs)
    out: dict[str, str] = {}
    for c in region_contigs:
        if c in have:
            out[c] = c
        elif c.startswith("chr") and c[3:] in have:
            out[c] = c[3:]
        elif f"chr{c}" in have:
            out[c] = f"chr{c}"
        elif c in ("chrM", "chrMT", "M", "MT"):
            for alt in ("chrM", "chrMT", "M", "MT"):
                if alt in have:
                    out[c] = alt
    return out


def _block_sums(
    methylated: np.ndarray,
    total: np.ndarray,
    features: pd.DataFrame,
    by_contig: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The regions a block touches and their partial sums (see the module docstring)."""
    m = np.asarray(methylated, dtype=np.int64)
    t = np.asarray(total, dtype=np.int64)
    n_samples = m.shape[1]
    contig = features["contig"].to_numpy(dtype=object)
    position = features["position"].to_numpy(dtype=np.int64)
    idx_parts, m_parts, t_parts, c_parts, s_parts = [], [], [], [], []
    cuts = np.flatnonzero(contig[1:] != contig[:-1]) + 1
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(contig)], strict=True):
        if b <= a or contig[a] not in by_contig:
            continue
        starts, ends, idx = by_contig[contig[a]]
        pos = position[a:b]
        touch = (ends >= pos[0]) & (starts <= pos[-1])
        if not touch.any():
            continue
        lo = np.searchsorted(pos, starts[touch], side="left")
        hi = np.searchsorted(pos, ends[touch], side="right")
        keep = hi > lo
        if not keep.any():
            continue
        lo, hi = lo[keep], hi[keep]
        mm, tt = m[a:b], t[a:b]
        zero = np.zeros((1, n_samples), dtype=np.int64)
        cm = np.concatenate([zero, np.cumsum(mm, axis=0)])
        ct = np.concatenate([zero, np.cumsum(tt, axis=0)])
        cc = np.concatenate([zero, np.cumsum(tt > 0, axis=0, dtype=np.int64)])
        idx_parts.append(idx[touch][keep])
        m_parts.append(cm[hi] - cm[lo])
        t_parts.append(ct[hi] - ct[lo])
        c_parts.append(cc[hi] - cc[lo])
        s_parts.append((hi - lo).astype(np.int64))
    if not idx_parts:
        empty = np.zeros((0, n_samples), dtype=np.int64)
        return np.zeros(0, dtype=np.int64), empty, empty, empty, np.zeros(0, dtype=np.int64)
    return (
        np.concatenate(idx_parts),
        np.concatenate(m_parts),
        np.concatenate(t_parts),
        np.concatenate(c_parts),
        np.concatenate(s_parts),
    )


def region_counts(store: FeatureMatrix, regions: RegionSet | pd.DataFrame) -> RegionCounts:
    """Sum a ``methylation.counts`` store over regions, per sample (one Dask compute).

    ``regions`` needs ``contig``, ``start``, ``end`` (1-based inclusive) and
    ``region_id``; regions may overlap or nest. Region contigs are matched to the
    store's with or without the ``chr`` prefix; a region on a contig the store lacks
    has no sites (NaN means).
    """
    import dask

    frame = regions.regions if isinstance(regions, RegionSet) else regions
    frame = frame.reset_index(drop=True)
    n_regions = len(frame)
    sample_ids = store.samples["sample_id"].astype(str).tolist()
    n_sites, n_samples = store.shape
    out_m = np.zeros((n_regions, n_samples), dtype=np.int64)
    out_t = np.zeros_like(out_m)
    out_c = np.zeros_like(out_m)
    out_s = np.zeros(n_regions, dtype=np.int64)
    index_path = posixpath.join(store.path, "features.parquet")
    if n_sites and n_samples and n_regions:
        bounds = _row_groups(store.root, index_path)
        store_contigs = _store_contigs(store, index_path)
        alias = _contig_aliases(frame["contig"].astype(str).unique().tolist(), store_contigs)
        contigs = frame["contig"].astype(str).map(alias)
        by_contig: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for name, members in (
            pd.Series(np.arange(n_regions)).groupby(contigs.to_numpy()).indices.items()
        ):
            by_contig[str(name)] = (
                frame["start"].to_numpy(dtype=np.int64)[members],
                frame["end"].to_numpy(dtype=np.int64)[members],
                np.asarray(members, dtype=np.int64),
            )
        meth = store.array("methylated")
        total = store.array("total")
        step = store.chunks[0]
        tasks = []
        shared = dask.delayed(by_contig, traverse=False)
        for k, start in enumerate(range(0, n_sites, step)):
            stop = min(start + step, n_sites)
            feats = dask.delayed(_features)(store.root, index_path, bounds, start, stop)
            tasks.append(
                dask.delayed(_block_sums)(meth.blocks[k, 0], total.blocks[k, 0], feats, shared)
            )
        (parts,) = dask.compute(tasks)
        for idx, m, t, c, s in parts:
            np.add.at(out_m, idx, m)
            np.add.at(out_t, idx, t)
            np.add.at(out_c, idx, c)
            np.add.at(out_s, idx, s)
    return RegionCounts(frame, sample_ids, out_m, out_t, out_c, out_s)


def _store_contigs(store: FeatureMatrix, index_path: str) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with store.root.fs.open(index_path, "rb") as f:
        column = pq.read_table(f, columns=["contig"]).column("contig")
    return [str(c) for c in pc.unique(column).to_pylist() if c is not None]


def region_sample_table(counts: RegionCounts, *, min_cpgs: int = 1) -> pd.DataFrame:
    """Long table, one row per region and sample: the counts and the mean.

    ``mean_methylation`` is NaN where the sample covers fewer than ``min_cpgs`` CpGs of
    the region (no reads at all is always NaN).
    """
    n_r, n_s = counts.methylated.shape
    mean = counts.mean
    mean = np.where(counts.n_cpgs >= max(1, min_cpgs), mean, np.nan)
    return pd.DataFrame(
        {
            "region_id": np.repeat(counts.regions["region_id"].astype(str).to_numpy(), n_s),
            "sample_id": np.tile(np.asarray(counts.sample_ids, dtype=object), n_r),
            "methylated": counts.methylated.ravel(),
            "total": counts.total.ravel(),
            "n_cpgs": counts.n_cpgs.ravel(),
            "mean_methylation": mean.ravel(),
        }
    )


# -- testing ----------------------------------------------------------------------------


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN and is not counted.

    Reference: Benjamini & Hochberg, *J R Stat Soc B* 57:289-300 (1995).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not ok.size:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    n = order.size
    scaled = p[order] * n / np.arange(1, n + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


def welch_region_test(
    values: np.ndarray, in_a: np.ndarray, in_b: np.ndarray
) -> dict[str, np.ndarray]:
    """Welch's t-test per region between two arms of per-sample region methylation.

    Parameters
    ----------
    values
        Regions x samples, the per-sample coverage-weighted region methylation (NaN
        where a sample does not cover the region: left out of that region's test).
    in_a, in_b
        Boolean masks of the samples in arm A and arm B.

    Returns
    -------
    ``mean_a``, ``mean_b``, ``diff`` (A - B), ``n_a``, ``n_b``, ``stat`` (t), ``df``
    (Welch-Satterthwaite), ``pval`` (two-sided) and ``pval_adj`` (BH over the regions
    with a p-value); NaN where an arm has fewer than 2 covered samples or both arms
    have zero variance.

    Why this test: the unit of replication is the sample. Summed over a region's CpGs,
    a sample's methylation is a mean of many reads, close to normal, and the variance
    that matters between arms is biological (sample to sample), far above the binomial
    read noise; a t-test on per-sample region means estimates exactly that variance,
    as a quasi-binomial GLM's dispersion would, without a per-region iterative fit.
    Welch's form allows the arms unequal variances (treated tumours often vary more).
    Paired designs (the same subjects before and after) are better served by the
    region-level DML multi-factor model; this test treats arms as independent, which
    is conservative for positively correlated pairs.

    References: Welch, *Biometrika* 34:28-35 (1947); Satterthwaite, *Biometrics Bull*
    2:110-114 (1946); Benjamini & Hochberg (1995), see :func:`benjamini_hochberg`.
    """
    v = np.asarray(values, dtype=np.float64)

    def moments(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = v[:, np.asarray(mask, dtype=bool)]
        ok = np.isfinite(x)
        n = ok.sum(axis=1).astype(np.float64)
        s = np.where(ok, x, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            dev = np.where(ok, x - mean[:, None], 0.0)
            var = (dev**2).sum(axis=1) / (n - 1)
        return mean, np.where(n >= 2, var, np.nan), n

    ma, va, na = moments(in_a)
    mb, vb, nb = moments(in_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        sa, sb = va / na, vb / nb
        se2 = sa + sb
        stat = (ma - mb) / np.sqrt(se2)
        df = se2**2 / (sa**2 / (na - 1) + sb**2 / (nb - 1))
    testable = (na >= 2) & (nb >= 2) & np.isfinite(se2) & (se2 > 0)
    stat = np.where(testable, stat, np.nan)
    df = np.where(testable, df, np.nan)
    pval = np.full(v.shape[0], np.nan)
    pval[testable] = 2.0 * stats.t.sf(np.abs(stat[testable]), df[testable])
    return {
        "mean_a": ma,
        "mean_b": mb,
        "diff": ma - mb,
        "n_a": na.astype(np.int64),
        "n_b": nb.astype(np.int64),
        "stat": stat,
        "df": df,
        "pval": pval,
        "pval_adj": benjamini_hochberg(pval),
    }


def region_table(counts: RegionCounts, test: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per region: coordinates, sites in the store, samples covering it, and
    (with ``test``) the two-arm statistics, most significant first."""
    out = counts.regions[["region_id", "contig", "start", "end", "name"]].copy()
    out["region_id"] = out["region_id"].astype(str)
    out["n_sites"] = counts.n_sites
    out["n_samples_covered"] = (counts.total > 0).sum(axis=1).astype(np.int64)
    keys = ("mean_a", "mean_b", "diff", "n_a", "n_b", "stat", "df", "pval", "pval_adj")
    for key in keys:
        # without a contrast the columns are there, all NaN: one table layout either way
        out[key] = test[key] if test is not None else np.nan
    if test is not None:
        out = out.sort_values(["pval", "region_id"], na_position="last", kind="stable")
    return out.reset_index(drop=True)
