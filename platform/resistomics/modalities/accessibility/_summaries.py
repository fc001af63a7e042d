"""Validation summaries of stored accessibility versions, computed with Dask.

``accessibility.counts`` (``sparse-matrix@1``): the matrix's row blocks reduce to the
shared *chunks* and *cells* tables (:func:`resistomics.validation.summarize_matrix`:
NaN, negative and fractional counts; per barcode the counts in peaks and peaks
detected), extended per barcode with the fragment QC the store holds (unique fragments,
fraction of fragments in peaks, TSS enrichment, nucleosome signal; NaN where the source
had no fragments); blocks of the peak table reduce to one *peaks* row each (intervals,
coordinates, duplicates, each with examples) and the peaks to one *contigs* row per
contig. ``accessibility.peaks`` (a peak set) has the *peaks* and *contigs* tables only.
The suites in ``schemas/accessibility/`` check these small tables.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FRAGMENT_QC_COLUMNS", "summarize_counts", "summarize_peak_table", "summarize_tiles"]

#: Per-barcode fragment QC a store's obs may hold, checked against configured bounds.
FRAGMENT_QC_COLUMNS = (
    "unique_fragments",
    "fraction_in_peaks",
    "tss_enrichment",
    "nucleosome_signal",
)
_EXAMPLES = 5
#: Peaks per task of the peak-table summary.
PEAKS_PER_TASK = 1 << 18


def _peak_block(
    frame: pd.DataFrame, duplicated: np.ndarray, start: int, sizes: Mapping[str, int]
) -> dict[str, Any]:
    contig = frame["contig"].astype(str).to_numpy(dtype=object)
    s = pd.to_numeric(frame["start"]).to_numpy(dtype=np.int64)
    e = pd.to_numeric(frame["end"]).to_numpy(dtype=np.int64)
    ids = frame.index.astype(str).to_numpy(dtype=object)
    length = pd.Series(contig).map(dict(sizes)).to_numpy(dtype=np.float64)

    def examples(mask: np.ndarray, what: str) -> list[str]:
        return [f"{ids[i]} {what}" for i in np.flatnonzero(mask)[:_EXAMPLES]]

    negative = (s < 0) | (e < 0)
    reversed_ = s >= e
    beyond = e > np.nan_to_num(length, nan=np.inf)
    return {
        "start": start,
        "n_peaks": len(frame),
        "n_negative": int(negative.sum()),
        "negative_examples": examples(negative, "negative coordinate"),
        "n_bad_interval": int(reversed_.sum()),
        "interval_examples": examples(reversed_, "start >= end"),
        "n_beyond_end": int(beyond.sum()),
        "beyond_examples": examples(beyond, "beyond the contig's length"),
        "n_duplicate": int(duplicated.sum()),
        "duplicate_examples": examples(duplicated, "twice"),
    }


def summarize_peak_table(
    peaks: pd.DataFrame, *, chrom_sizes: Mapping[str, int] | None = None
) -> dict[str, pd.DataFrame]:
    """The *peaks* (one row per block of peaks) and *contigs* tables of a peak table
    (columns ``contig``, ``start``, ``end``; index the peak ID), one Dask task per block."""
    import dask

    sizes = dict(chrom_sizes or {})
    key = (
        peaks["contig"].astype(str)
        + ":"
        + peaks["start"].astype(str)
        + "-"
        + peaks["end"].astype(str)
    )
    duplicated = key.duplicated().to_numpy()
    tasks = [
        dask.delayed(_peak_block, pure=True)(
            peaks.iloc[a : a + PEAKS_PER_TASK], duplicated[a : a + PEAKS_PER_TASK], a, sizes
        )
        for a in range(0, len(peaks), PEAKS_PER_TASK)
    ]
    (rows,) = dask.compute(tasks)
    columns = list(_peak_block(peaks.iloc[:0], np.zeros(0, bool), 0, {}))
    blocks = pd.DataFrame(rows, columns=columns)
    grouped = peaks.groupby(peaks["contig"].astype(str), sort=False)
    contigs = pd.DataFrame(
        {
            "contig": list(grouped.groups),
            "n_peaks": grouped.size().to_numpy(dtype=np.int64),
            "max_end": grouped["end"].max().to_numpy(dtype=np.int64),
        }
    ).astype({"contig": object})
    contigs["length"] = [float(sizes[c]) if c in sizes else np.nan for c in contigs["contig"]]
    return {"peaks": blocks, "contigs": contigs}


def summarize_counts(
    cells_matrix: Any,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    chrom_sizes: Mapping[str, int] | None = None,
) -> dict[str, pd.DataFrame]:
    """The *chunks*, *cells*, *peaks* and *contigs* tables of a stored peak count matrix.

    ``cells_matrix`` is the store's cell-major Dask array (``SparseMatrixStore.cells``).
    The *cells* table has per barcode ``counts_in_peaks``, ``peaks_detected`` and the
    :data:`FRAGMENT_QC_COLUMNS` (from obs; NaN when the store has none).
    """
    from resistomics.validation import summarize_matrix

    matrix = summarize_matrix(cells_matrix, obs, var)
    cells = matrix.cells.rename(
        columns={"library_size": "counts_in_peaks", "detected_genes": "peaks_detected"}
    )
    for column in FRAGMENT_QC_COLUMNS:
        cells[column] = (
            pd.to_numeric(obs[column], errors="coerce").to_numpy(dtype=np.float64)
            if column in obs.columns
            else np.nan
        )
    return {
        "chunks": matrix.chunks,
        "cells": cells,
        **summarize_peak_table(var, chrom_sizes=chrom_sizes),
    }


# -- the tile matrix a fragments ingest stores at tiles/ ----------------------------------

TILE_BLOCK_COLUMNS = [
    "start",
    "n_tiles",
    "n_negative",
    "negative_examples",
    "n_misaligned",
    "misaligned_examples",
    "n_bad_width",
    "width_examples",
    "n_beyond_end",
    "beyond_examples",
    "n_unknown_contig",
    "unknown_contig_examples",
]


def _tile_block(
    frame: pd.DataFrame, start: int, sizes: Mapping[str, int], tile_size: int
) -> dict[str, Any]:
    contig = frame["contig"].astype(str).to_numpy(dtype=object)
    s = pd.to_numeric(frame["start"]).to_numpy(dtype=np.int64)
    e = pd.to_numeric(frame["end"]).to_numpy(dtype=np.int64)
    ids = frame.index.astype(str).to_numpy(dtype=object)
    length = pd.Series(contig).map(dict(sizes)).to_numpy(dtype=np.float64)

    def examples(mask: np.ndarray, what: str) -> list[str]:
        return [f"{ids[i]} {what}" for i in np.flatnonzero(mask)[:_EXAMPLES]]

    negative = (s < 0) | (e < 0)
    misaligned = (s % tile_size) != 0 if tile_size > 0 else np.zeros(len(s), bool)
    width = e - s
    # a contig's last tile is cut at its end; every other one is tile_size wide
    bad_width = (width <= 0) | (width > tile_size) if tile_size > 0 else width <= 0
    bad_width |= (width < tile_size) & (e != np.nan_to_num(length, nan=-1).astype(np.int64))
    unknown = np.isnan(length)
    beyond = e > np.nan_to_num(length, nan=np.inf)
    return {
        "start": start,
        "n_tiles": len(frame),
        "n_negative": int(negative.sum()),
        "negative_examples": examples(negative, "negative coordinate"),
        "n_misaligned": int(misaligned.sum()),
        "misaligned_examples": examples(misaligned, f"starts off the {tile_size}-bp grid"),
        "n_bad_width": int(bad_width.sum()),
        "width_examples": examples(bad_width, f"is not {tile_size} bp (nor the contig's cut end)"),
        "n_beyond_end": int(beyond.sum()),
        "beyond_examples": examples(beyond, "beyond the contig's length"),
        "n_unknown_contig": int(unknown.sum()),
        "unknown_contig_examples": examples(unknown, "on a contig without a length"),
    }


def summarize_tiles(
    root: Any, path: str, *, chrom_sizes: Mapping[str, int] | None = None
) -> dict[str, pd.DataFrame]:
    """The *tiles* (one row per block of the tile table: coordinates >= 0, starts on the
    ``tile_size`` grid, widths ``tile_size`` but a contig's cut last tile, ends within
    the contig, contigs with a length) and *tile_chunks* (the shared NaN / negative /
    non-integer counts per row block of the tile matrix) tables of the tile store a
    fragments ingest writes at ``tiles/`` (both empty when the version has none). The
    tile size is the store's own (its metadata), the lengths the chrom-sizes file's."""
    import dask

    from resistomics.modalities.accessibility._fragments import TILES_ADATA, TILES_BY_TILE
    from resistomics.storage import open_sparse_matrix
    from resistomics.validation import summarize_matrix

    if not root.fs.exists(posixpath.join(path, TILES_BY_TILE)):
        return {
            "tiles": pd.DataFrame(columns=TILE_BLOCK_COLUMNS),
            "tile_chunks": pd.DataFrame(
                {
                    c: pd.Series([], dtype=np.int64 if c.startswith("n_") else object)
                    for c in (
                        "n_nan",
                        "nan_examples",
                        "n_negative",
                        "negative_examples",
                        "n_non_integer",
                        "non_integer_examples",
                    )
                }
            ),
        }
    store = open_sparse_matrix(root, path, adata=TILES_ADATA, by_gene=TILES_BY_TILE)
    tile_size = int(store.metadata.get("tile_size", 0))
    sizes = dict(chrom_sizes or {})
    var = store.var
    tasks = [
        dask.delayed(_tile_block, pure=True)(var.iloc[a : a + PEAKS_PER_TASK], a, sizes, tile_size)
        for a in range(0, len(var), PEAKS_PER_TASK)
    ]
    (rows,) = dask.compute(tasks)
    matrix = summarize_matrix(store.cells(target_nnz=1 << 20), store.obs, var)
    return {"tiles": pd.DataFrame(rows, columns=TILE_BLOCK_COLUMNS), "tile_chunks": matrix.chunks}
