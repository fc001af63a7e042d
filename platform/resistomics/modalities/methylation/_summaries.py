"""Validation summaries of a stored ``methylation.counts`` version (``feature-matrix@1``).

One Dask task per stored chunk row of sites reads that row of ``methylated`` and
``total`` (all samples) and the same rows of the site index, and returns the counts of
sites breaking each value rule with a few examples, the contig runs it holds, and per
sample the covered sites and a depth histogram. The driver joins the tasks (contig runs
and sortedness across block edges, per-sample medians from the summed histograms) into
the small tables the suites in ``schemas/methylation/methylation.counts.yaml`` check.
Memory per task: one chunk row of sites x all samples.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from resistomics.modalities._genome import DEFAULT_CONTIGS, read_chrom_sizes
from resistomics.storage import DataRoot, FeatureMatrix

__all__ = [
    "DEFAULT_CONTIGS",
    "DEPTH_BINS",
    "methylation_params",
    "read_chrom_sizes",
    "summarize_methylation",
]

#: Depth histogram bins per sample: exact medians below this depth (a median at or
#: above it is reported as this value, a lower bound).
DEPTH_BINS = 4096
_EXAMPLES = 5


@dataclass(frozen=True)
class _Part:
    row: dict[str, Any]
    #: contig runs: contig, sites, first position, largest position, first key, last key
    runs: list[tuple[str, int, int, int, int, int]]
    #: per sample: covered sites, depth sum, then the depth histogram (DEPTH_BINS)
    per_sample: np.ndarray | None = None


def _rows_and_runs(part: _Part) -> tuple[dict[str, Any], list[tuple[str, int, int, int, int, int]]]:
    return part.row, part.runs


def _per_sample(part: _Part) -> np.ndarray:
    assert part.per_sample is not None
    return part.per_sample


def _tree_sum(items: list[Any]) -> Any:
    """The sum of delayed arrays, added pairwise (depth log2 n) inside the graph."""
    import dask

    if not items:
        return None
    while len(items) > 1:
        items = [
            dask.delayed(np.add)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


def _site(contig: Any, position: Any, strand: Any) -> str:
    return f"{contig}:{position}{'' if strand == '*' else strand}"


def _summarize_block(
    methylated: np.ndarray,
    total: np.ndarray,
    features: pd.DataFrame,
    start: int,
    sample_ids: Sequence[str],
) -> _Part:
    m = np.asarray(methylated, dtype=np.int64)
    t = np.asarray(total, dtype=np.int64)
    contig = features["contig"].to_numpy(dtype=object)
    position = features["position"].to_numpy()
    strand = features["strand"].to_numpy(dtype=object)

    def examples(mask: np.ndarray, what: str) -> list[str]:
        out = []
        for i, j in np.argwhere(mask)[:_EXAMPLES]:
            out.append(
                f"{_site(contig[i], position[i], strand[i])} {sample_ids[j]} "
                f"{what} methylated={m[i, j]} total={t[i, j]}"
            )
        return out

    negative = (m < 0) | (t < 0)
    above = m > t
    missing = features[["contig", "position", "strand"]].isna().any(axis=1).to_numpy()
    pos = np.where(missing, 0, pd.to_numeric(features["position"]).fillna(0).to_numpy())
    bad_position = (pos <= 0) & ~missing
    code = np.select([strand == "+", strand == "-"], [0, 1], 2).astype(np.int64)
    keys = pos.astype(np.int64) * 4 + code
    same_contig = contig[1:] == contig[:-1]
    unsorted = np.zeros(len(contig), dtype=bool)
    unsorted[1:] = same_contig & (keys[1:] < keys[:-1])
    duplicate = np.zeros(len(contig), dtype=bool)
    duplicate[1:] = same_contig & (keys[1:] == keys[:-1])
    runs = []
    cuts = np.flatnonzero(~same_contig) + 1
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(contig)], strict=True):
        if b > a:
            runs.append(
                (
                    str(contig[a]),
                    b - a,
                    int(pos[a]),
                    int(pos[a:b].max()),
                    int(keys[a]),
                    int(keys[b - 1]),
                )
            )

    def site_examples(mask: np.ndarray, what: str) -> list[str]:
        return [
            f"{_site(contig[i], position[i], strand[i])} {what}"
            for i in np.flatnonzero(mask)[:_EXAMPLES]
        ]

    covered_mask = t > 0
    clipped = np.clip(t, 0, DEPTH_BINS - 1)
    histogram = np.zeros((t.shape[1], DEPTH_BINS), dtype=np.int64)
    for j in range(t.shape[1]):
        col = clipped[covered_mask[:, j], j]
        histogram[j] = np.bincount(col, minlength=DEPTH_BINS)
    row = {
        "start": start,
        "n_sites": len(contig),
        "n_negative": int(negative.sum()),
        "negative_examples": examples(negative, "negative count:"),
        "n_methylated_above_total": int(above.sum()),
        "above_total_examples": examples(above, "methylated above total:"),
        "n_bad_position": int(bad_position.sum()),
        "position_examples": site_examples(bad_position, "position <= 0"),
        "n_unsorted": int(unsorted.sum()),
        "unsorted_examples": site_examples(unsorted, "after a larger position"),
        "n_duplicate_sites": int(duplicate.sum()),
        "duplicate_examples": site_examples(duplicate, "twice"),
        "n_missing_key": int(missing.sum()),
        "missing_key_examples": [f"site {start + i}" for i in np.flatnonzero(missing)[:_EXAMPLES]],
    }
    per_sample = np.concatenate(
        [
            covered_mask.sum(axis=0)[:, None],
            np.where(covered_mask, t, 0).sum(axis=0)[:, None],
            histogram,
        ],
        axis=1,
    ).astype(np.int64)
    return _Part(row=row, runs=runs, per_sample=per_sample)


def _row_groups(root: DataRoot, path: str) -> np.ndarray:
    with root.fs.open(path, "rb") as f:
        meta = pq.read_metadata(f)
    return np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])


def _features(root: DataRoot, path: str, bounds: np.ndarray, start: int, stop: int) -> pd.DataFrame:
    """Rows ``[start, stop)`` of the site index, reading only the row groups they lie in."""
    first = int(np.searchsorted(bounds, start, side="right")) - 1
    last = int(np.searchsorted(bounds, stop, side="left"))
    with root.fs.open(path, "rb") as f:
        table = pq.ParquetFile(f).read_row_groups(
            list(range(first, last)), columns=["contig", "position", "strand"]
        )
    offset = start - int(bounds[first])
    return table.slice(offset, stop - start).to_pandas()


def _median(histogram: np.ndarray) -> float:
    n = int(histogram.sum())
    if n == 0:
        return 0.0
    cum = np.cumsum(histogram)
    lo = int(np.searchsorted(cum, (n + 1) // 2, side="left"))
    if n % 2:
        return float(lo)
    hi = int(np.searchsorted(cum, n // 2 + 1, side="left"))
    return (lo + hi) / 2


def summarize_methylation(
    store: FeatureMatrix,
    *,
    chrom_sizes: Mapping[str, int] | None = None,
) -> dict[str, pd.DataFrame]:
    """The summary tables of a stored version: ``blocks``, ``contigs`` and ``samples``.

    ``blocks``: one row per stored chunk row of sites, counts of sites (or entries)
    breaking each value rule with examples. ``contigs``: one row per contig, sites,
    largest position, length (from ``chrom_sizes``, else NaN) and sites beyond it.
    ``samples``: one row per sample, covered sites, fraction covered, median and mean
    depth of covered sites, and what its file's reader counted (percentages
    disagreeing with the counts, non-CpG methylation).
    """
    import dask

    root, base = store.root, store.path
    index_path = posixpath.join(base, "features.parquet")
    bounds = _row_groups(root, index_path)
    samples = store.samples
    sample_ids = samples["sample_id"].astype(str).tolist()
    n_sites, n_samples = store.shape
    step = store.chunks[0]
    tasks = []
    if n_sites and n_samples:
        meth = store.array("methylated")
        total = store.array("total")
        for k, start in enumerate(range(0, n_sites, step)):
            stop = min(start + step, n_sites)
            feats = dask.delayed(_features)(root, index_path, bounds, start, stop)
            tasks.append(
                dask.delayed(_summarize_block)(
                    meth.blocks[k, 0], total.blocks[k, 0], feats, start, sample_ids
                )
            )
    # Each block's per-sample counts (covered, depth sum, depth histogram) are summed in
    # a pairwise tree inside the graph, so only a few histograms are alive at once
    # (returning one per block would hold n_blocks x n_samples x DEPTH_BINS values).
    light = [dask.delayed(_rows_and_runs)(t) for t in tasks]
    per_sample = _tree_sum([dask.delayed(_per_sample)(t) for t in tasks])
    if tasks:
        rows_runs, totals = dask.compute(light, per_sample)
    else:
        rows_runs, totals = [], np.zeros((n_samples, DEPTH_BINS + 2), dtype=np.int64)
    parts = [_Part(row=r, runs=u) for r, u in rows_runs]
    rows = [p.row for p in parts]
    # sortedness across block edges and contigs that come back in a later block
    contigs: dict[str, dict[str, int]] = {}
    previous: tuple[str, int] | None = None
    for p in parts:
        for i, (name, n, _first, last_pos, first_key, last_key) in enumerate(p.runs):
            info = contigs.setdefault(name, {"n_sites": 0, "max_position": 0, "runs": 0})
            joined = i == 0 and previous is not None and previous[0] == name
            if not joined:
                info["runs"] += 1
                if info["runs"] == 2:
                    p.row["n_unsorted"] += 1
                    p.row["unsorted_examples"].append(f"{name} again after other contigs")
            elif first_key < previous[1]:  # type: ignore[index]
                p.row["n_unsorted"] += 1
                p.row["unsorted_examples"].append(
                    f"{name}: block at site {p.row['start']} goes back"
                )
            elif first_key == previous[1]:  # type: ignore[index]
                p.row["n_duplicate_sites"] += 1
                p.row["duplicate_examples"].append(f"{name}:{first_key >> 2} twice")
            info["n_sites"] += n
            info["max_position"] = max(info["max_position"], last_pos)
            previous = (name, last_key)
    block_columns = list(
        _summarize_block(
            np.zeros((0, 0), np.int32),
            np.zeros((0, 0), np.int32),
            pd.DataFrame({"contig": [], "position": [], "strand": []}),
            0,
            [],
        ).row
    )
    blocks = pd.DataFrame(rows, columns=block_columns)
    sizes = dict(chrom_sizes or {})
    contig_table = pd.DataFrame(
        {
            "contig": list(contigs),
            "n_sites": [c["n_sites"] for c in contigs.values()],
            "max_position": [c["max_position"] for c in contigs.values()],
            "length": [float(sizes[c]) if c in sizes else np.nan for c in contigs],
        }
    ).astype({"contig": object, "n_sites": "int64", "max_position": "int64"})
    contig_table["n_beyond_end"] = (
        contig_table["max_position"] > contig_table["length"].fillna(np.inf)
    ).astype("int64")
    covered, depth_sum, histogram = totals[:, 0], totals[:, 1], totals[:, 2:]
    out = pd.DataFrame({"sample_id": sample_ids})
    out["n_sites_covered"] = covered.astype(np.int64)
    out["fraction_covered"] = covered / n_sites if n_sites else 0.0
    out["median_depth"] = [_median(h) for h in histogram]
    out["mean_depth"] = np.where(covered > 0, depth_sum / np.maximum(covered, 1), 0.0)
    for column, default in (
        ("n_percent_discrepant", 0),
        ("max_percent_discrepancy", 0.0),
        ("non_cpg_methylation", np.nan),
    ):
        out[column] = samples[column].to_numpy() if column in samples.columns else default
    examples = samples["percent_examples"] if "percent_examples" in samples.columns else None
    out["percent_examples"] = [
        [f"{sid}: {e}" for e in str(examples.iloc[j]).split(" | ") if e]
        if examples is not None and isinstance(examples.iloc[j], str)
        else []
        for j, sid in enumerate(sample_ids)
    ]
    return {"blocks": blocks, "contigs": contig_table, "samples": out}


def methylation_params(
    *,
    registered_samples: Iterable[str],
    contigs: Iterable[str] = DEFAULT_CONTIGS,
    min_median_depth: float = 0.0,
    max_median_depth: float | None = None,
    min_fraction_covered: float = 0.0,
    max_fraction_covered: float = 1.0,
    max_non_cpg_methylation: float = 1.0,
) -> dict[str, Any]:
    """The ``$name`` values of the ``methylation.counts`` suites."""
    return {
        "registered_samples": sorted(registered_samples),
        "contigs": sorted(contigs),
        "min_median_depth": min_median_depth,
        "max_median_depth": max_median_depth,
        "min_fraction_covered": min_fraction_covered,
        "max_fraction_covered": max_fraction_covered,
        "max_non_cpg_methylation": max_non_cpg_methylation,
    }
