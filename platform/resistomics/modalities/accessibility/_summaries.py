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

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FRAGMENT_QC_COLUMNS", "summarize_counts", "summarize_peak_table"]

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
