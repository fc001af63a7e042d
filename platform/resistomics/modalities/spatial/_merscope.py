"""Vizgen MERSCOPE output folder -> :class:`SpatialInput`.

Files (Vizgen, "MERSCOPE Instrument User Guide", output data): ``cell_by_gene.csv``
(first column the cell ID, then one column per gene, ``Blank-*`` columns for the blank
codewords), ``cell_metadata.csv`` (first column the cell ID, unnamed or ``EntityID``;
``fov``, ``volume``, ``center_x``, ``center_y``, ``min_x``...), optional
``detected_transcripts.csv`` (``global_x``, ``global_y``, ``global_z``, ``gene``,
``cell_id`` with ``-1`` when not in a cell) and optional ``images/manifest.json``
(``bbox_microns``, the mosaic's extent) with ``images/micron_to_mosaic_pixel_transform.csv``
(the 3 x 3 affine from micrometres to mosaic pixels). Coordinates are micrometres.
``Blank-*`` genes are kept with ``feature_type`` ``"blank"``; every other column is a gene.
The mosaic extent becomes the section's :attr:`~SpatialInput.bounds`: ``bbox_microns``
when the manifest states it, else the mosaic's pixel size mapped back through the affine.
"""

from __future__ import annotations

import json
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

__all__ = ["detect_merscope", "read_merscope"]

_CENTRES = ("center_x", "center_y")


def detect_merscope(path: str) -> bool:
    """A MERSCOPE folder: ``cell_by_gene.csv`` next to ``cell_metadata.csv``. Cheap;
    never raises."""
    try:
        p = Path(path)
        return (
            p.is_dir()
            and find_file(p, "cell_by_gene.csv") is not None
            and find_file(p, "cell_metadata.csv") is not None
        )
    except OSError:
        return False


def read_merscope(path: str, ctx: SpatialReadContext) -> SpatialInput:
    """Read a MERSCOPE output folder (see the module docstring for the files).

    Raises
    ------
    InputError
        A required file or column missing, a value that is not a number, a non-finite
        cell centre or transcript location, non-integer counts, a cell of
        ``cell_by_gene.csv`` not in ``cell_metadata.csv``, a cell ID twice in either, a
        transcript assigned to a cell that is not there, a malformed manifest or
        transform.
    """
    folder = Path(path)
    section = section_name(folder, ctx.section)
    matrix_path = require_file(folder, "MERSCOPE", "cell_by_gene.csv")
    matrix = read_csv_table(matrix_path, id_first=True)
    id_column = str(matrix.columns[0])
    barcodes = matrix[id_column].astype(str).tolist()
    check_unique_ids(matrix_path, barcodes, column=id_column or None)
    gene_names = [str(c) for c in matrix.columns[1:]]
    counts = _counts(matrix_path, matrix, gene_names)
    genes = pd.DataFrame(
        {"feature_type": ["blank" if g.startswith("Blank-") else "gene" for g in gene_names]},
        index=pd.Index(gene_names, dtype=str, name="feature"),
    )

    meta_path = require_file(folder, "MERSCOPE", "cell_metadata.csv")
    meta = read_csv_table(meta_path, required=_CENTRES, id_first=True)
    meta_id = str(meta.columns[0])
    if meta_id in _CENTRES:
        raise InputError(
            str(meta_path), "required-columns", "the first column must be the cell ID", line=1
        )
    meta_ids = meta[meta_id].astype(str).tolist()
    check_unique_ids(meta_path, meta_ids, column=meta_id or None)
    rows = align_cells(matrix_path, meta_path, barcodes, meta_ids)
    coords = {}
    for axis, column in zip(("x", "y"), _CENTRES, strict=True):
        values = numeric_column(meta_path, meta, column)
        check_finite(meta_path, values, column, meta_ids)
        coords[axis] = values[rows]
    cells = pd.DataFrame(coords, index=pd.Index(barcodes, dtype=str, name="cell_id"))
    cells["section"] = section
    picked = meta.iloc[rows].reset_index(drop=True)
    for column in picked.columns:
        if column not in (meta_id, *_CENTRES, "section"):
            cells[str(column)] = picked[column].to_numpy()

    tx_path = find_file(folder, "detected_transcripts.csv")
    transcripts = None
    if tx_path is not None:
        transcripts = _transcripts(tx_path, section)
        check_transcript_cells(tx_path, transcripts["cell_id"], barcodes, unassigned="-1")
    bounds = _bounds(folder)
    check_labels_column(meta_path, cells, ctx.labels_column)
    return SpatialInput(
        platform="merscope",
        source=str(folder),
        cells=cells,
        counts=counts,
        genes=genes,
        transcripts=transcripts,
        units="micron",
        bounds={} if bounds is None else {section: bounds},
    )


def _counts(path: Path, frame: pd.DataFrame, genes: list[str]) -> sp.csr_matrix:
    values = np.empty((frame.shape[0], len(genes)), dtype=np.float64)
    for j, gene in enumerate(genes):
        values[:, j] = numeric_column(path, frame, gene)
    check_integer_counts(path, values)
    return sp.csr_matrix(values.astype(np.int64))


def _transcripts(path: Path, section: str) -> pa.Table:
    tx = read_csv_table(
        path, required=("global_x", "global_y", "gene", "cell_id"), strings=("gene", "cell_id")
    )
    columns: dict[str, pa.Array] = {}
    for axis in ("x", "y", "z"):
        name = f"global_{axis}"
        if axis == "z" and name not in tx.columns:
            continue
        values = numeric_column(path, tx, name)
        if axis != "z":
            check_finite(path, values, name)
        columns[axis] = pa.array(values, pa.float64())
    cell = tx["cell_id"].astype(str).str.strip()
    unassigned = tx["cell_id"].isna() | cell.isin(["-1", "", "nan"])
    columns["gene"] = pa.array(tx["gene"].astype(str).to_numpy(dtype=object), pa.string())
    columns["cell_id"] = pa.array(
        cell.to_numpy(dtype=object), pa.string(), mask=unassigned.to_numpy()
    )
    columns["section"] = pa.array(np.full(len(tx), section, dtype=object), pa.string())
    return pa.table(columns)


def _bounds(folder: Path) -> tuple[float, float, float, float] | None:
    manifest_path = folder / "images" / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            str(manifest_path), "json", f"not a valid JSON object ({str(exc).splitlines()[0]})"
        ) from None
    box = manifest.get("bbox_microns")
    if box is not None:
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise InputError(
                str(manifest_path), "mosaic-bounds", f"bbox_microns {box!r} is not 4 numbers"
            ) from None
        return _checked_box(manifest_path, (x0, y0, x1, y1))
    width, height = manifest.get("mosaic_width_pixels"), manifest.get("mosaic_height_pixels")
    transform_path = folder / "images" / "micron_to_mosaic_pixel_transform.csv"
    if width is None or height is None or not transform_path.is_file():
        return None
    affine = _transform(transform_path)
    # pixel = A @ micron: the mosaic's corners back in micrometres
    inverse = np.linalg.inv(affine)
    corners = np.array([[0, 0, 1], [float(width), float(height), 1]]) @ inverse.T
    return _checked_box(
        transform_path,
        (
            float(corners[:, 0].min()),
            float(corners[:, 1].min()),
            float(corners[:, 0].max()),
            float(corners[:, 1].max()),
        ),
    )


def _transform(path: Path) -> np.ndarray:
    try:
        rows = [
            line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        affine = np.array(rows, dtype=np.float64)
    except (ValueError, UnicodeDecodeError):
        affine = np.empty(0)
    if (
        affine.shape != (3, 3)
        or not np.isfinite(affine).all()
        or abs(np.linalg.det(affine)) < 1e-12
    ):
        raise InputError(
            str(path),
            "mosaic-transform",
            "expected 3 lines of 3 space-separated numbers, an invertible affine transform",
        )
    return affine


def _checked_box(
    path: Path, box: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    if not (np.isfinite(box).all() and x1 > x0 and y1 > y0):
        raise InputError(
            str(path), "mosaic-bounds", f"the mosaic extent {box} is empty or not finite"
        )
    return box
