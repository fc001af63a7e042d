"""NanoString (Bruker) CosMx SMI flat-file export -> :class:`SpatialInput`.

Files (NanoString, "CosMx SMI Data Analysis User Manual", flat files): ``*_exprMat_file.csv``
(``fov``, ``cell_ID``, then one column per target: genes, ``NegPrb*`` negative-control
probes, ``SystemControl*`` / ``FalseCode*`` codewords matching no probe),
``*_metadata_file.csv`` (``fov``, ``cell_ID``, ``Area``, ``CenterX_global_px``,
``CenterY_global_px``, ...) and optional ``*_tx_file.csv`` (``fov``, ``cell_ID``,
``x_global_px``, ``y_global_px``, ``z``, ``target``, ``CellComp``).

- Cells are named ``f"{fov}_{cell_ID}"`` (cell IDs restart in each field of view).
  ``cell_ID`` 0 is the background of a field of view, not a cell: its matrix and metadata
  rows are dropped; its transcripts are kept, unassigned (``cell_id`` null).
- Pixel coordinates become micrometres at :data:`COSMX_UM_PER_PX` (0.12028 um per pixel,
  the CosMx SMI camera's pixel size at the sample); ``Area`` (square pixels) becomes
  ``area`` in square micrometres. The transcripts' ``z`` is a focal-plane index, not a
  length, and is not kept as a coordinate.
- ``overlaps_nucleus`` is ``CellComp == "Nuclear"`` (``Cytoplasm``, ``Membrane`` and
  ``None`` are not).
- ``NegPrb*`` are ``negative_control_probe``. ``SystemControl*`` and ``FalseCode*`` are
  ``negative_control_codeword``: like Xenium's negative-control codewords they are
  barcodes no probe carries, so their counts measure false decoding, not hybridisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from resistomics.errors import InputError
from resistomics.modalities.spatial._landed import (
    align_cells,
    check_finite,
    check_integer_counts,
    check_labels_column,
    check_transcript_cells,
    check_unique_ids,
    find_file,
    numeric_column,
    read_csv_table,
    require_file,
    section_name,
)
from resistomics.modalities.spatial._raw import SpatialInput, SpatialReadContext

__all__ = ["COSMX_UM_PER_PX", "detect_cosmx", "read_cosmx"]

#: Micrometres per pixel of the CosMx SMI images (NanoString's stated 0.12028 um/px).
COSMX_UM_PER_PX = 0.12028
_KEYS = ("fov", "cell_ID")
#: Matrix columns that are not targets.
_NOT_TARGETS = frozenset({"fov", "cell_ID", "cell", "cell_id"})
_EXPR = "*_exprMat_file.csv"
_META = "*_metadata_file.csv"
_TX = "*_tx_file.csv"


def _kind(target: str) -> str:
    if target.startswith("NegPrb"):
        return "negative_control_probe"
    if target.startswith(("SystemControl", "FalseCode")):
        return "negative_control_codeword"
    return "gene"


def detect_cosmx(path: str) -> bool:
    """A CosMx export: a ``*_exprMat_file.csv`` next to a ``*_metadata_file.csv``. Cheap;
    never raises."""
    try:
        p = Path(path)
        return p.is_dir() and find_file(p, _EXPR) is not None and find_file(p, _META) is not None
    except OSError:
        return False


def _cell_ids(path: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``f"{fov}_{cell_ID}"`` per row and the mask of real cells (``cell_ID`` not 0)."""
    fov = numeric_column(path, frame, "fov")
    cell = numeric_column(path, frame, "cell_ID")
    for name, values in (("fov", fov), ("cell_ID", cell)):
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                str(path),
                "integer-ids",
                f"{name} {frame[name].iloc[i]!r} is not a whole number",
                line=i + 2,
                column=name,
            )
    ids = (
        pd.Series(fov.astype(np.int64)).astype(str)
        + "_"
        + pd.Series(cell.astype(np.int64)).astype(str)
    ).to_numpy(dtype=object)
    return ids, cell != 0


def read_cosmx(path: str, ctx: SpatialReadContext) -> SpatialInput:
    """Read a CosMx flat-file export folder (see the module docstring).

    Raises
    ------
    InputError
        A required file or column missing, a value that is not a number, a non-finite
        cell centre or transcript location, non-integer counts or IDs, a cell of the
        expression matrix not in the metadata file, a cell (``fov``, ``cell_ID``) twice
        in either, a transcript assigned to a cell that is not there.
    """
    folder = Path(path)
    section = section_name(folder, ctx.section)
    expr_path = require_file(folder, "CosMx", _EXPR)
    expr = read_csv_table(expr_path, required=_KEYS)
    targets = [str(c) for c in expr.columns if c not in _NOT_TARGETS]
    ids, real = _cell_ids(expr_path, expr)
    check_unique_ids(expr_path, ids, rows=np.flatnonzero(real), column="cell_ID")
    values = np.empty((expr.shape[0], len(targets)), dtype=np.float64)
    for j, target in enumerate(targets):
        values[:, j] = numeric_column(expr_path, expr, target)
    check_integer_counts(expr_path, values)
    counts = sp.csr_matrix(values[real].astype(np.int64))
    barcodes = ids[real].tolist()
    genes = pd.DataFrame(
        {"feature_type": [_kind(t) for t in targets]},
        index=pd.Index(targets, dtype=str, name="feature"),
    )

    meta_path = require_file(folder, "CosMx", _META)
    centres = ("CenterX_global_px", "CenterY_global_px")
    meta = read_csv_table(meta_path, required=(*_KEYS, *centres))
    # the background rows (cell_ID 0) match no matrix cell and are left out by the join
    meta_ids, meta_real = _cell_ids(meta_path, meta)
    check_unique_ids(meta_path, meta_ids, rows=np.flatnonzero(meta_real), column="cell_ID")
    rows = align_cells(expr_path, meta_path, barcodes, meta_ids.tolist())
    coords = {}
    for axis, column in zip(("x", "y"), centres, strict=True):
        px = numeric_column(meta_path, meta, column)
        check_finite(meta_path, px, column, meta_ids.tolist())
        coords[axis] = px[rows] * COSMX_UM_PER_PX
    cells = pd.DataFrame(coords, index=pd.Index(barcodes, dtype=str, name="cell_id"))
    cells["section"] = section
    picked = meta.iloc[rows].reset_index(drop=True)
    for column in picked.columns:
        if column in (*centres, "cell_ID", "section"):
            continue
        if column == "Area":
            cells["area"] = numeric_column(meta_path, picked, "Area") * COSMX_UM_PER_PX**2
        else:
            cells[str(column)] = picked[column].to_numpy()

    tx_path = find_file(folder, _TX)
    transcripts = None
    if tx_path is not None:
        transcripts = _transcripts(tx_path, section)
        check_transcript_cells(
            tx_path, transcripts["cell_id"], barcodes, unassigned="cell_ID 0", column="cell_ID"
        )
    check_labels_column(meta_path, cells, ctx.labels_column)
    return SpatialInput(
        platform="cosmx",
        source=str(folder),
        cells=cells,
        counts=counts,
        genes=genes,
        transcripts=transcripts,
        units="micron",
    )


def _transcripts(path: Path, section: str) -> pa.Table:
    need = (*_KEYS, "x_global_px", "y_global_px", "target")
    tx = read_csv_table(path, required=need, strings=("target", "CellComp"))
    ids, real = _cell_ids(path, tx)
    columns: dict[str, pa.Array] = {}
    for axis in ("x", "y"):
        name = f"{axis}_global_px"
        px = numeric_column(path, tx, name)
        check_finite(path, px, name)
        columns[axis] = pa.array(px * COSMX_UM_PER_PX, pa.float64())
    columns["gene"] = pa.array(tx["target"].astype(str).to_numpy(dtype=object), pa.string())
    columns["cell_id"] = pa.array(ids, pa.string(), mask=~real)
    columns["section"] = pa.array(np.full(len(tx), section, dtype=object), pa.string())
    if "CellComp" in tx.columns:
        columns["overlaps_nucleus"] = pa.array((tx["CellComp"] == "Nuclear").to_numpy(), pa.bool_())
    return pa.table(columns)
