"""10x Genomics Xenium output folder -> :class:`SpatialInput`.

Files (10x Genomics, "Xenium Onboard Analysis output files"): the counts
``cell_feature_matrix.h5`` or the ``cell_feature_matrix/`` MEX directory; the cells
``cells.parquet`` (or ``cells.csv.gz``: ``cell_id``, ``x_centroid``, ``y_centroid``,
``transcript_counts``, ``control_probe_counts``, ``cell_area``, ``nucleus_area``, ...);
optional ``transcripts.parquet`` (``feature_name``, ``cell_id`` (``"UNASSIGNED"``, or
``-1`` in early versions, when not in a cell), ``overlaps_nucleus``, ``qv``,
``x_location``, ``y_location``, ``z_location``), ``cell_boundaries.parquet`` and
``nucleus_boundaries.parquet`` (``cell_id``, ``vertex_x``, ``vertex_y``) and
``experiment.xenium`` (JSON run metadata, checked to parse). Coordinates are already in
micrometres. Feature types map through
:data:`~resistomics.modalities.spatial._landed.TENX_FEATURE_TYPES`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from resistomics.errors import InputError
from resistomics.modalities.spatial._landed import (
    TENX_FEATURE_TYPES,
    align_cells,
    check_finite,
    check_labels_column,
    check_transcript_cells,
    check_unique_ids,
    feature_types,
    find_file,
    numeric_column,
    read_csv_table,
    read_parquet,
    read_tenx_matrix,
    require_file,
    section_name,
)
from resistomics.modalities.spatial._raw import SpatialInput, SpatialReadContext

__all__ = ["detect_xenium", "read_xenium"]

_MATRIX = ("cell_feature_matrix.h5", "cell_feature_matrix")
_CELLS = ("cells.parquet", "cells.csv")
#: Xenium's cells-table columns kept under the neutral names.
_RENAME = {"cell_area": "area"}


def detect_xenium(path: str) -> bool:
    """A Xenium output folder: ``experiment.xenium``, or a cell-feature matrix next to
    ``cells.parquet``/``cells.csv.gz``. Cheap; never raises."""
    try:
        p = Path(path)
        if not p.is_dir():
            return False
        if (p / "experiment.xenium").is_file():
            return True
        return find_file(p, *_MATRIX) is not None and find_file(p, *_CELLS) is not None
    except OSError:
        return False


def read_xenium(path: str, ctx: SpatialReadContext) -> SpatialInput:
    """Read a Xenium output folder (see the module docstring for the files).

    Raises
    ------
    InputError
        A required file or column missing, a truncated Parquet file, a non-finite
        centroid or transcript location, non-integer counts, an unknown feature type,
        a cell of the matrix not in the cells table, a cell ID twice in the matrix or
        the cells table, a transcript assigned to a cell that is not there, a malformed
        ``experiment.xenium``.
    """
    folder = Path(path)
    section = section_name(folder, ctx.section)
    experiment = folder / "experiment.xenium"
    if experiment.is_file():
        try:
            json.loads(experiment.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                str(experiment), "json", f"not valid JSON ({str(exc).splitlines()[0]})"
            ) from None

    matrix_path = require_file(folder, "Xenium", *_MATRIX)
    barcodes, counts, genes = read_tenx_matrix(matrix_path)
    genes["feature_type"] = feature_types(
        matrix_path, genes["feature_type"].tolist(), TENX_FEATURE_TYPES
    )

    cells_path = require_file(folder, "Xenium", *_CELLS)
    need = ("cell_id", "x_centroid", "y_centroid")
    if cells_path.name.endswith(".parquet"):
        meta = read_parquet(cells_path, required=need).to_pandas()
    else:
        meta = read_csv_table(cells_path, required=need, strings=("cell_id",))
    meta_ids = meta["cell_id"].map(_text).to_numpy(dtype=object)
    check_unique_ids(
        cells_path,
        meta_ids,
        line_offset=None if cells_path.name.endswith(".parquet") else 2,
        column="cell_id",
    )
    rows = align_cells(matrix_path, cells_path, barcodes, meta_ids)
    meta = meta.iloc[rows].reset_index(drop=True)
    coords = {}
    for axis, column in (("x", "x_centroid"), ("y", "y_centroid")):
        values = numeric_column(cells_path, meta, column)
        check_finite(cells_path, values, column, barcodes, line_offset=None)
        coords[axis] = values
    cells = pd.DataFrame(coords, index=pd.Index(barcodes, dtype=str, name="cell_id"))
    cells["section"] = section
    for column in meta.columns:
        if column not in (*need, "section"):
            cells[_RENAME.get(column, column)] = meta[column].to_numpy()

    transcripts = None
    tx_path = find_file(folder, "transcripts.parquet")
    if tx_path is not None:
        transcripts = _transcripts(tx_path, section)
        check_transcript_cells(
            tx_path,
            transcripts["cell_id"],
            barcodes,
            unassigned="'UNASSIGNED' (-1 in early versions)",
            line_offset=None,
        )
    check_labels_column(cells_path, cells, ctx.labels_column)
    return SpatialInput(
        platform="xenium",
        source=str(folder),
        cells=cells,
        counts=counts,
        genes=genes,
        transcripts=transcripts,
        cell_boundaries=_boundaries(find_file(folder, "cell_boundaries.parquet")),
        nucleus_boundaries=_boundaries(find_file(folder, "nucleus_boundaries.parquet")),
        units="micron",
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_dictionary(column.type):
        return pc.cast(column.cast(column.type.value_type), pa.string())
    return pc.cast(column, pa.string())


def _finite(path: Path, table: pa.Table, column: str) -> pa.ChunkedArray:
    values = pc.cast(table[column], pa.float64())
    arr = values.to_numpy(zero_copy_only=False)
    check_finite(path, np.asarray(arr, dtype=np.float64), column, line_offset=None)
    return values


def _transcripts(path: Path, section: str) -> pa.Table:
    need = ("feature_name", "cell_id", "x_location", "y_location")
    table = read_parquet(path, required=need)
    cell = table["cell_id"]
    if pa.types.is_integer(cell.type):
        # early Xenium versions: integer IDs, -1 when not in a cell
        cell = pc.if_else(pc.equal(cell, -1), pa.scalar(None, cell.type), cell)
        ids = pc.cast(cell, pa.string())
    else:
        ids = _as_string(cell)
        ids = pc.if_else(pc.equal(ids, "UNASSIGNED"), pa.scalar(None, pa.string()), ids)
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "x": _finite(path, table, "x_location"),
        "y": _finite(path, table, "y_location"),
    }
    if "z_location" in table.column_names:
        columns["z"] = pc.cast(table["z_location"], pa.float64())
    columns["gene"] = _as_string(table["feature_name"])
    columns["cell_id"] = ids
    columns["section"] = pa.array(np.full(table.num_rows, section, dtype=object), pa.string())
    if "overlaps_nucleus" in table.column_names:
        columns["overlaps_nucleus"] = pc.cast(table["overlaps_nucleus"], pa.bool_())
    if "qv" in table.column_names:
        columns["qv"] = pc.cast(table["qv"], pa.float64())
    return pa.table(columns)


def _boundaries(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    table = read_parquet(path, required=("cell_id", "vertex_x", "vertex_y"))
    frame = table.to_pandas()
    out = pd.DataFrame({"cell_id": frame["cell_id"].map(_text).astype(str)})
    for axis in ("x", "y"):
        values = numeric_column(path, frame, f"vertex_{axis}")
        check_finite(path, values, f"vertex_{axis}", line_offset=None)
        out[axis] = values
    return out
