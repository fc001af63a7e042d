"""``accessibility qc``: per-cell and per-sample QC of a published accessibility dataset.

Input: ``accessibility.counts`` (a peak matrix, with the fragments it was counted from
when it came from a fragments file) or ``accessibility.fragments``. From the stored
fragments (``fragments/sample_id=<s>/contig=<c>/part-0.parquet``), one Dask task per
(sample, contig) partition reads its row groups one at a time (memory: one row group)
and returns additive counts per barcode (fragments, nucleosome-free and
mononucleosomal fragments, fragments overlapping a peak, ArchR's TSS window and flank
insertions) and per sample (insertions per offset around the TSSs, fragments per
length); the driver adds them up and turns them into the statistics of :mod:`._qc`:

* unique fragments (rows), FRiP (fragments overlapping a peak by >= 1 bp over all,
  Signac's definition: :func:`._qc.fraction_in_peaks`), ArchR's TSS enrichment
  (:func:`._qc.archr_tss_score`, against ``modalities.accessibility.tss_bed``),
  Signac's nucleosome signal (:func:`._qc.nucleosome_signal`);
* the aggregate TSS profile per sample (insertions per bp offset within +-2 kb,
  normalised to the mean of the 100 bp at each end: :func:`._qc.normalised_profile`)
  and the fragment-size histogram per sample (:func:`._qc.fragment_size_histogram`).

A count matrix adds counts in peaks and peaks detected per barcode (one Dask pass over
its row blocks); a matrix without fragments has those only. Each cell passes or fails
the settings' bounds (the ``min_*`` / ``max_*`` of ``AccessibilitySettings``; a
statistic that could not be computed is not checked). Published as
``accessibility.qc`` (``schemas/accessibility/accessibility.qc.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.errors import AnalysisNotApplicableError
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.accessibility._qc import (
    MONONUCLEOSOMAL,
    NUCLEOSOME_FREE_BELOW,
    archr_tss_score,
    fragment_size_histogram,
    fragments_in_peaks,
    normalised_profile,
    tss_enrichment,
)
from resistomics.modalities.accessibility._tiles import Fragments, Intervals, merge_intervals
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)

__all__ = [
    "CELL_COLUMNS",
    "QC_TYPE",
    "SAMPLE_COLUMNS",
    "accessibility_qc",
    "fragment_partitions",
    "plot_qc",
    "qc_artifacts",
]

QC_TYPE = "accessibility.qc"
COUNTS, FRAGMENTS = "accessibility.counts", "accessibility.fragments"
#: Values per task of the count pass (as the validation summaries': one Zarr chunk).
BLOCK_NNZ = 1 << 20
#: ArchR's TSS region (``TSSParams``: +-2000 bp, 101-bp window, 100-bp flanks).
TSS_FLANK, TSS_WINDOW, TSS_NORM = 2000, 101, 100
#: Longest fragment the size histogram bins (Cell Ranger ATAC plots up to 800 bp).
MAX_LENGTH = 1000
#: The per-cell statistics, in the order of the cells table.
STATISTICS = (
    "counts_in_peaks",
    "peaks_detected",
    "unique_fragments",
    "fraction_in_peaks",
    "tss_enrichment",
    "nucleosome_signal",
)
CELL_COLUMNS = ("sample_id", "barcode", *STATISTICS, "passes", "failed")
SAMPLE_COLUMNS = (
    "sample_id",
    "n_cells",
    "n_passing",
    "fraction_passing",
    *(f"median_{s}" for s in STATISTICS),
    "fragments",
    "fragments_longer",
)
# per-barcode additive counts of a partition (columns of its ``counts`` array)
_COUNTS = ("fragments", "free", "mono", "in_peaks", "tss_window", "tss_flank")


def fragment_partitions(ws: Workspace, path: str) -> list[str]:
    """The ``sample_id=<s>/contig=<c>`` folders of a version's stored fragments."""
    base = posixpath.join(path, "fragments")
    if not ws.root.fs.exists(base):
        return []
    return sorted(
        p for p in ws.root.fs.find(base, withdirs=True) if "contig=" in p.rsplit("/", 1)[-1]
    )


def _partition_counts(
    url: str,
    options_json: str,
    directory: str,
    peaks: tuple[np.ndarray, np.ndarray] | None,
    tss: tuple[np.ndarray, np.ndarray | None] | None,
) -> dict[str, Any]:
    """Additive QC counts of one (sample, contig) partition, row group by row group."""
    import pyarrow.parquet as pq

    from resistomics.storage import DataRoot

    root = DataRoot(url, json.loads(options_json))
    contig = directory.rstrip("/").rsplit("contig=", 1)[1]
    sample = directory.rstrip("/").split("sample_id=", 1)[1].split("/", 1)[0]
    barcodes = pd.Index([], dtype=object)
    counts = np.zeros((0, len(_COUNTS)), np.int64)
    profile = np.zeros(2 * TSS_FLANK + 1, np.int64)
    sizes = np.zeros(MAX_LENGTH + 1, np.int64)
    longer = 0
    peak_set = (
        Intervals(np.full(peaks[0].shape[0], contig), peaks[0], peaks[1])
        if peaks is not None
        else None
    )
    tss_set = (
        Intervals(np.full(tss[0].shape[0], contig), tss[0], tss[0] + 1, strand=tss[1])
        if tss is not None
        else None
    )
    with root.fs.open(posixpath.join(directory, "part-0.parquet"), "rb") as f:
        parquet = pq.ParquetFile(f)
        for g in range(parquet.num_row_groups):
            table = parquet.read_row_group(g, columns=["start", "end", "barcode"])
            bc = table.column("barcode").to_numpy(zero_copy_only=False).astype(object)
            where = barcodes.get_indexer(bc)
            new = pd.unique(bc[where < 0])
            if len(new):
                barcodes = barcodes.append(pd.Index(new, dtype=object))
                counts = np.vstack([counts, np.zeros((len(new), len(_COUNTS)), np.int64)])
                where = barcodes.get_indexer(bc)
            start = table.column("start").to_numpy().astype(np.int64)
            end = table.column("end").to_numpy().astype(np.int64)
            frags = Fragments(
                contig=np.zeros(len(start), np.int64),
                start=start,
                end=end,
                cell=where.astype(np.int64),
                contigs=(contig,),
                n_cells=len(barcodes),
            )
            n = len(barcodes)
            length = end - start
            counts[:, 0] += np.bincount(where, minlength=n)
            counts[:, 1] += np.bincount(where[length < NUCLEOSOME_FREE_BELOW], minlength=n)
            mono = (length >= MONONUCLEOSOMAL[0]) & (length <= MONONUCLEOSOMAL[1])
            counts[:, 2] += np.bincount(where[mono], minlength=n)
            if peak_set is not None:
                counts[:, 3] += np.bincount(where[fragments_in_peaks(frags, peak_set)], minlength=n)
            if tss_set is not None:
                t = tss_enrichment(
                    frags, tss_set, flank=TSS_FLANK, window=TSS_WINDOW, norm=TSS_NORM
                )
                counts[:, 4] += t.window_counts.astype(np.int64)
                counts[:, 5] += t.flank_counts.astype(np.int64)
                profile += t.profile_counts.astype(np.int64)
            hist = fragment_size_histogram(frags, max_length=MAX_LENGTH)
            sizes += hist.counts
            longer += hist.longer
    return {
        "sample_id": sample,
        "barcodes": barcodes.to_numpy(dtype=object),
        "counts": counts,
        "profile": profile,
        "sizes": sizes,
        "longer": longer,
    }


def _by_contig(frame: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    if frame is None or not len(frame):
        return {}
    return {str(c): g for c, g in frame.groupby(frame["contig"].astype(str), sort=False)}


def _fragment_qc(
    ws: Workspace,
    folders: list[str],
    peaks: pd.DataFrame | None,
    tss: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Per-barcode fragment statistics, the TSS profile and size histogram per sample,
    and the fragments beyond :data:`MAX_LENGTH` per sample (one Dask compute)."""
    import dask

    merged = None
    if peaks is not None and len(peaks):
        m = merge_intervals(
            Intervals(
                peaks["contig"].astype(str).to_numpy(),
                peaks["start"].to_numpy(np.int64),
                peaks["end"].to_numpy(np.int64),
            )
        )
        merged = pd.DataFrame({"contig": m.contig, "start": m.start, "end": m.end})
    peak_of, tss_of = _by_contig(merged), _by_contig(tss)
    options = json.dumps(dict(ws.root.storage_options), sort_keys=True)
    tasks = []
    for d in folders:
        contig = d.rstrip("/").rsplit("contig=", 1)[1]
        p = peak_of.get(contig)
        t = tss_of.get(contig)
        tasks.append(
            dask.delayed(_partition_counts, pure=True)(
                ws.root.url,
                options,
                d,
                None if p is None else (p["start"].to_numpy(np.int64), p["end"].to_numpy(np.int64)),
                None
                if t is None
                else (
                    t["start"].to_numpy(np.int64),
                    t["strand"].astype(str).to_numpy() if "strand" in t.columns else None,
                ),
            )
        )
    (parts,) = dask.compute(tasks)
    frames = [
        pd.DataFrame(p["counts"], columns=list(_COUNTS)).assign(
            sample_id=p["sample_id"], barcode=p["barcodes"]
        )
        for p in parts
    ]
    per_cell = (
        pd.concat(frames, ignore_index=True)
        .groupby(["sample_id", "barcode"], sort=True)[list(_COUNTS)]
        .sum()
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = pd.DataFrame(
            {
                "unique_fragments": per_cell["fragments"].to_numpy(np.float64),
                "fraction_in_peaks": per_cell["in_peaks"].to_numpy(np.float64)
                / per_cell["fragments"].to_numpy(np.float64)
                if merged is not None
                else np.nan,
                "tss_enrichment": archr_tss_score(
                    per_cell["tss_window"].to_numpy(),
                    per_cell["tss_flank"].to_numpy(),
                    window=TSS_WINDOW,
                    norm=TSS_NORM,
                )
                if tss is not None
                else np.nan,
                "nucleosome_signal": per_cell["mono"].to_numpy(np.float64)
                / per_cell["free"].to_numpy(np.float64),
            },
            index=per_cell.index,
        )
    samples = sorted({p["sample_id"] for p in parts})
    offsets = np.arange(-TSS_FLANK, TSS_FLANK + 1, dtype=np.int64)
    profiles, histograms, longer = [], [], {}
    for s in samples:
        mine = [p for p in parts if p["sample_id"] == s]
        insertions = np.sum([p["profile"] for p in mine], axis=0)
        if tss is not None:
            profiles.append(
                pd.DataFrame(
                    {
                        "sample_id": s,
                        "offset": offsets,
                        "insertions": insertions,
                        "enrichment": normalised_profile(insertions, norm=TSS_NORM),
                    }
                )
            )
        hist = np.sum([p["sizes"] for p in mine], axis=0)
        histograms.append(
            pd.DataFrame(
                {"sample_id": s, "length": np.arange(1, MAX_LENGTH + 1), "fragments": hist[1:]}
            )
        )
        longer[s] = int(sum(p["longer"] for p in mine))
    return (
        stats,
        _concat(profiles, PROFILE_COLUMNS),
        _concat(histograms, SIZE_COLUMNS),
        longer,
    )


PROFILE_COLUMNS = {"sample_id": object, "offset": np.int64, "insertions": np.int64}
SIZE_COLUMNS = {"sample_id": object, "length": np.int64, "fragments": np.int64}


def _concat(frames: list[pd.DataFrame], columns: Mapping[str, Any]) -> pd.DataFrame:
    if frames:
        return pd.concat(frames, ignore_index=True)
    empty = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
    if "insertions" in columns:
        empty["enrichment"] = pd.Series([], dtype=np.float64)
    return empty


def _bounds(settings: Any) -> dict[str, tuple[float | None, float | None]]:
    """Each statistic's (min, max) from the accessibility settings (None: unbounded)."""
    return {
        "counts_in_peaks": (settings.min_counts_in_peaks, settings.max_counts_in_peaks),
        "unique_fragments": (settings.min_unique_fragments, settings.max_unique_fragments),
        "fraction_in_peaks": (settings.min_fraction_in_peaks, None),
        "tss_enrichment": (settings.min_tss_enrichment, None),
        "nucleosome_signal": (None, settings.max_nucleosome_signal),
    }


def pass_fail(
    cells: pd.DataFrame, bounds: Mapping[str, tuple[float | None, float | None]]
) -> tuple[np.ndarray, list[str]]:
    """Whether each cell is within every bound, and the bounds it breaks (``name<min``,
    ``name>max``; ``; ``-joined). A NaN statistic (not computed) is not checked."""
    failed: list[list[str]] = [[] for _ in range(len(cells))]
    for name, (lo, hi) in bounds.items():
        if name not in cells.columns:
            continue
        values = cells[name].to_numpy(np.float64)
        known = ~np.isnan(values)
        for bound, bad, sign in (
            (lo, lambda v, b: v < b, "<"),
            (hi, lambda v, b: v > b, ">"),
        ):
            if bound is None:
                continue
            for i in np.flatnonzero(known & bad(values, float(bound))):
                failed[i].append(f"{name}{sign}{float(bound):g}")
    return np.array([not f for f in failed], dtype=bool), ["; ".join(f) for f in failed]


def _tss_table(path: str | None) -> tuple[pd.DataFrame | None, str | None]:
    if path is None:
        return None, None
    from resistomics.modalities.accessibility._fragments import read_tss

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    tss = read_tss(path)
    return tss, digest


def accessibility_qc(
    ws: Workspace, ref: str, *, study: str | None = None, run_id: str | None = None
) -> ResultOutcome:
    """Per-cell and per-sample QC of a published accessibility dataset (module docstring).

    Tables: ``cells`` (:data:`CELL_COLUMNS`: each barcode's statistics, ``passes`` and
    the bounds it ``failed``), ``samples`` (:data:`SAMPLE_COLUMNS` joined to the study
    design: cells, cells passing, the median of each statistic, fragments and those
    longer than :data:`MAX_LENGTH`), ``tss_profile`` (sample, offset, insertions,
    enrichment; empty without ``tss_bed`` or fragments) and ``fragment_sizes`` (sample,
    length 1..1000, fragments; empty without fragments).

    Raises
    ------
    AnalysisNotApplicableError
        For a peak set (``accessibility.peaks``): no cells to score.
    """
    # the settings through the registry: importing ._modality here would close an
    # import cycle through its commands
    from resistomics.modalities._registry import modality

    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type not in (COUNTS, FRAGMENTS):
        raise AnalysisNotApplicableError(
            f"{version.ref} is {version.dataset_type}: QC needs accessibility.counts or "
            "accessibility.fragments",
            place=version.ref,
            rule="dataset-type",
        )
    settings = modality("accessibility").settings_of(ws.settings)
    path = ws.root.to_path(version.uri)
    folders = fragment_partitions(ws, path)
    tss, tss_digest = _tss_table(settings.tss_bed) if folders else (None, None)
    bounds = _bounds(settings)
    parameters: dict[str, Any] = {
        "tss_bed": settings.tss_bed if folders else None,
        "tss_digest": tss_digest,
        "tss_method": "archr",
        "tss_flank": TSS_FLANK,
        "frip": "fragments overlapping a peak by >= 1 bp (Signac)",
        "max_length": MAX_LENGTH,
        "bounds": {k: list(v) for k, v in bounds.items()},
    }
    digest, existing = published_result(ws, version, QC_TYPE, parameters)
    if existing is not None:
        return existing
    counts = None
    peaks = None
    if version.dataset_type == COUNTS:
        from resistomics.storage import open_sparse_matrix
        from resistomics.validation import summarize_matrix

        store = open_sparse_matrix(ws.root, path)
        summary = summarize_matrix(store.cells(target_nnz=BLOCK_NNZ), store.obs, store.var)
        counts = pd.DataFrame(
            {
                "sample_id": store.obs["sample_id"].astype(str).to_numpy(),
                "barcode": store.obs.index.astype(str).to_numpy(),
                "counts_in_peaks": summary.cells["library_size"].to_numpy(np.float64),
                "peaks_detected": summary.cells["detected_genes"].to_numpy(np.float64),
            }
        )
        peaks = store.var[["contig", "start", "end"]]
    longer: dict[str, int] = {}
    if folders:
        stats, profile, sizes, longer = _fragment_qc(ws, folders, peaks, tss)
        stats = stats.reset_index()
        cells = (
            counts.merge(stats, on=["sample_id", "barcode"], how="left")
            if counts is not None
            else stats.assign(counts_in_peaks=np.nan, peaks_detected=np.nan)
        )
    else:
        assert counts is not None
        cells = counts.assign(
            unique_fragments=np.nan,
            fraction_in_peaks=np.nan,
            tss_enrichment=np.nan,
            nucleosome_signal=np.nan,
        )
        profile, sizes = _concat([], PROFILE_COLUMNS), _concat([], SIZE_COLUMNS)
    cells = cells.astype({"sample_id": object, "barcode": object})
    passes, failed = pass_fail(cells, bounds)
    cells["passes"] = passes
    cells["failed"] = failed
    cells = cells[list(CELL_COLUMNS)].reset_index(drop=True)
    samples = _sample_table(ws, version, cells, sizes, longer)
    return publish_result(
        ws,
        modality="accessibility",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.qc",
        dtype=QC_TYPE,
        parameters=parameters,
        digest=digest,
        tables={
            "samples": samples,
            "cells": cells,
            "tss_profile": profile,
            "fragment_sizes": sizes,
        },
        run_id=run_id,
    )


def _sample_table(
    ws: Workspace,
    version: VersionInfo,
    cells: pd.DataFrame,
    sizes: pd.DataFrame,
    longer: Mapping[str, int],
) -> pd.DataFrame:
    grouped = cells.groupby("sample_id", sort=True)
    out = pd.DataFrame(
        {
            "n_cells": grouped.size(),
            "n_passing": grouped["passes"].sum().astype(np.int64),
        }
    )
    out["fraction_passing"] = out["n_passing"] / out["n_cells"]
    for s in STATISTICS:
        # a statistic never computed stays NaN (and quietly so: nanmedian of all-NaN warns)
        out[f"median_{s}"] = grouped[s].agg(
            lambda v: float(np.median(v[~np.isnan(v)])) if (~np.isnan(v)).any() else np.nan
        )
    if len(sizes):
        out["fragments"] = sizes.groupby("sample_id")["fragments"].sum()
        out["fragments"] = out["fragments"].fillna(0) + pd.Series(longer).reindex(out.index).fillna(
            0
        )
    else:
        out["fragments"] = 0
    out["fragments"] = out["fragments"].astype(np.int64)
    out["fragments_longer"] = pd.Series(longer).reindex(out.index).fillna(0).astype(np.int64)
    out = out.rename_axis("sample_id").reset_index()[list(SAMPLE_COLUMNS)]
    design = ws.catalog.samples(version.study).drop(columns=["sample_id"], errors="ignore")
    design = design.drop(columns=[c for c in design.columns if c in out.columns])
    return out.merge(design, left_on="sample_id", right_index=True, how="left")


# -- what a run shows -------------------------------------------------------------------


def qc_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The per-sample QC table and a markdown summary of an ``accessibility.qc`` result."""
    samples = result_table(ws, result, "samples")
    cells = result_table(ws, result, "cells")
    study, dataset = result.study, result.dataset.removesuffix(".qc")
    failing = cells.loc[~cells["passes"], "failed"].str.split("; ").explode()
    reasons = failing[failing.astype(bool)].str.extract(r"^([a-z_]+)")[0].value_counts()
    params = result.parameters or {}

    def fmt(v: Any) -> str:
        return "n/a" if pd.isna(v) else f"{v:.3g}"

    lines = [
        f"# Accessibility QC: `{result.ref}`",
        "",
        f"- cells: {len(cells)}; passing the bounds: {int(cells['passes'].sum())}",
        f"- TSS set: `{params.get('tss_bed')}`"
        + ("" if params.get("tss_bed") else " (no tss_bed setting or no fragments: no TSS score)"),
        f"- FRiP: {params.get('frip')}",
        *(f"  - failing {name}: {int(n)} cells" for name, n in reasons.items()),
        "",
        "| sample | cells | passing | median fragments | median TSS enrichment | median FRiP |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r.sample_id} | {r.n_cells} | {r.n_passing} | {fmt(r.median_unique_fragments)} "
            f"| {fmt(r.median_tss_enrichment)} | {fmt(r.median_fraction_in_peaks)} |"
            for r in samples.itertuples()
        ),
        "",
        f"- tables: `{result.uri}` (samples, cells, tss_profile, fragment_sizes)",
    ]
    return [
        Artifact(
            "table",
            ("accessibility", study, dataset, "qc"),
            f"Per-sample accessibility QC of {result.ref}",
            table=samples[list(SAMPLE_COLUMNS)],
        ),
        Artifact(
            "markdown",
            ("accessibility", study, dataset, "qc-summary"),
            f"Accessibility QC of {result.ref}",
            markdown="\n".join(lines) + "\n",
        ),
    ]


def plot_qc(ws: Workspace, result: VersionInfo, output: str | Path, *, kind: str = "both") -> Path:
    """The TSS enrichment profile and the fragment-size distribution per sample
    (:func:`resistomics.plots.plot_accessibility_qc`); ``kind`` ``tss`` or ``sizes``
    draws one panel."""
    from resistomics.plots import plot_accessibility_qc

    return plot_accessibility_qc(
        result_table(ws, result, "tss_profile"),
        result_table(ws, result, "fragment_sizes"),
        output,
        kind=kind,
        title=f"Accessibility QC, {result.ref}",
    )
