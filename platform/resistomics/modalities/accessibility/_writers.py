"""Writing a peak count matrix as an ``accessibility.counts`` version (``sparse-matrix@1``)."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

import pandas as pd

from resistomics.modalities._plugin import Written
from resistomics.modalities.accessibility._source import PeakMatrixSource

if TYPE_CHECKING:
    from resistomics.publishing import Staging

__all__ = ["LAYOUT", "PEAKS_TABLE", "write_counts"]

LAYOUT = "sparse-matrix@1"
#: The peak table of a counts version, beside the AnnData store (its var, as Parquet).
PEAKS_TABLE = "peaks.parquet"
_PEAK_COLUMNS = ["contig", "start", "end", "name"]


def write_counts(
    staging: Staging,
    fmt: str,
    source: PeakMatrixSource,
    design: pd.DataFrame,
    *,
    extra_parameters: dict[str, Any] | None = None,
    obs_columns: pd.DataFrame | None = None,
    stage: bool = True,
) -> Written:
    """Stream ``source`` into the shared sparse layout (barcode- and peak-major copies),
    the peaks as var and as ``peaks.parquet``.

    ``obs_columns`` (indexed by barcode) are per-barcode QC columns added to obs (the
    fragment QC of a matrix counted from fragments). ``stage=False`` when the caller
    staged the version already (it wrote the fragments beside the matrix first).
    """
    from resistomics.storage import SparseMatrixWriter, open_sparse_matrix, write_table

    ws = staging.ws
    s = ws.settings
    version_dir = staging.new_version_dir()
    writer = SparseMatrixWriter(
        ws.root,
        version_dir,
        orientation=source.orientation,
        obs=source.fixed if source.orientation == "genes" else None,
        var=source.fixed if source.orientation == "cells" else None,
        value_kind="counts",
        rows_per_block=s.rows_per_chunk,
        genes_per_block=s.genes_per_block,
        scratch=staging.scratch,
        lognorm_target_sum=s.normalize_target_sum,
        design=design,
        metadata={
            "source": staging.landed,
            "format": fmt,
            "digest": staging.digest,
            "features": "peaks",
            **source.details,
        },
    )
    for block, labels in source.blocks:
        if obs_columns is not None and source.orientation == "cells":
            labels = labels.join(obs_columns, how="left")
        writer.add(block, labels)
        del block  # one block alive at a time
        staging.advance(1)
    if stage:
        staging.stage(
            dataset_type="accessibility.counts",
            layout=LAYOUT,
            parameters={"format": fmt, **source.details, **(extra_parameters or {})},
        )
    summary = writer.close()
    store = open_sparse_matrix(ws.root, version_dir)
    peaks = store.var[_PEAK_COLUMNS].rename_axis("peak_id").reset_index()
    write_table(ws.root, posixpath.join(version_dir, PEAKS_TABLE), peaks)
    return Written(
        shape=(summary.n_obs, summary.n_vars),
        detail=f"{summary.n_obs} barcodes/samples x {summary.n_vars} peaks",
        report={"nnz": summary.nnz, "dtype": summary.dtype, "peaks": summary.n_vars},
    )
