"""10x Genomics Visium / Visium HD Space Ranger output -> :class:`SpatialInput`.

Files (10x Genomics, "Space Ranger spatial outputs"): the counts
``filtered_feature_bc_matrix.h5`` or the ``filtered_feature_bc_matrix/`` MEX directory;
the spot positions ``spatial/tissue_positions.csv`` (with a header: ``barcode``,
``in_tissue``, ``array_row``, ``array_col``, ``pxl_row_in_fullres``,
``pxl_col_in_fullres``), ``spatial/tissue_positions_list.csv`` (the same columns, no
header; Space Ranger < 2.0) or ``spatial/tissue_positions.parquet`` (Visium HD); and
``spatial/scalefactors_json.json`` (``spot_diameter_fullres``, ``tissue_hires_scalef``,
Visium HD also ``microns_per_pixel`` and ``bin_size_um``).

Spot centres are converted from full-resolution pixels to micrometres: a Visium spot is
55 um across (10x Genomics, Visium Spatial Gene Expression slide specification), so one
pixel is ``55 / spot_diameter_fullres`` um; for Visium HD the scale factors' own
``microns_per_pixel`` is used, else the bin size over ``spot_diameter_fullres`` (which HD
writes as the bin's width in pixels). ``x`` is the pixel column, ``y`` the pixel row.
A Visium HD run folder (``binned_outputs/square_XXXum/`` or ``square_XXXum/`` inside the
path) is read at 8 um bins when present, else at its finest bin. When
``spatial/tissue_hires_image.png`` is there, the full-resolution image's extent (its
size over ``tissue_hires_scalef``) becomes the section's bounds.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.errors import InputError
from resistomics.modalities.spatial._landed import (
    TENX_FEATURE_TYPES,
    align_cells,
    check_finite,
    check_labels_column,
    check_unique_ids,
    feature_types,
    find_file,
    numeric_column,
    read_csv_table,
    read_parquet,
    read_tenx_matrix,
    require_columns,
    require_file,
    section_name,
)
from resistomics.modalities.spatial._raw import SpatialInput, SpatialReadContext

__all__ = ["VISIUM_SPOT_DIAMETER_UM", "detect_visium", "read_visium"]

#: The diameter of a Visium spot, micrometres.
VISIUM_SPOT_DIAMETER_UM = 55.0
_MATRIX = ("filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix")
_POSITIONS = ("tissue_positions.csv", "tissue_positions_list.csv", "tissue_positions.parquet")
_COLUMNS = (
    "barcode",
    "in_tissue",
    "array_row",
    "array_col",
    "pxl_row_in_fullres",
    "pxl_col_in_fullres",
)
_BIN = re.compile(r"^square_(\d+)um$")


def _bin_folder(folder: Path) -> Path:
    """The folder holding the matrix: ``folder`` itself, or a Visium HD bin inside it."""
    if find_file(folder, *_MATRIX) is not None:
        return folder
    bins: dict[int, Path] = {}
    for parent in (folder, folder / "binned_outputs"):
        if parent.is_dir():
            for child in parent.iterdir():
                m = _BIN.match(child.name)
                if m and child.is_dir():
                    bins[int(m.group(1))] = child
    if not bins:
        return folder
    return bins[8] if 8 in bins else bins[min(bins)]


def detect_visium(path: str) -> bool:
    """A Space Ranger output: a filtered feature-barcode matrix with a ``spatial/``
    folder (directly or in a Visium HD bin). Cheap; never raises."""
    try:
        p = Path(path)
        if not p.is_dir():
            return False
        run = _bin_folder(p)
        return find_file(run, *_MATRIX) is not None and (run / "spatial").is_dir()
    except OSError:
        return False


def read_visium(path: str, ctx: SpatialReadContext) -> SpatialInput:
    """Read a Visium or Visium HD Space Ranger output (see the module docstring).

    Raises
    ------
    InputError
        A required file or column missing; scale factors missing, not JSON or without a
        positive ``spot_diameter_fullres``; a truncated Parquet file; a non-finite spot
        position; non-integer counts; a barcode of the matrix not in the positions; a
        barcode twice in the matrix or the positions.
    """
    folder = Path(path)
    section = section_name(folder, ctx.section)
    run = _bin_folder(folder)
    matrix_path = require_file(run, "Space Ranger", *_MATRIX)
    barcodes, counts, genes = read_tenx_matrix(matrix_path)
    genes["feature_type"] = feature_types(
        matrix_path, genes["feature_type"].tolist(), TENX_FEATURE_TYPES
    )
    spatial = run / "spatial"
    um_per_px, hires_scale = _scale(spatial / "scalefactors_json.json", run)

    positions_path = require_file(spatial, "Space Ranger", *_POSITIONS)
    positions = _positions(positions_path)
    ids = positions["barcode"].astype(str).tolist()
    line_offset = 1 if positions_path.name.startswith("tissue_positions_list") else 2
    if positions_path.suffix == ".parquet":
        line_offset = 0
    check_unique_ids(positions_path, ids, line_offset=line_offset or None, column="barcode")
    rows = align_cells(matrix_path, positions_path, barcodes, ids)
    coords = {}
    for axis, column in (("x", "pxl_col_in_fullres"), ("y", "pxl_row_in_fullres")):
        px = numeric_column(positions_path, positions, column, line_offset=line_offset)
        check_finite(positions_path, px, column, ids, line_offset=line_offset or None)
        coords[axis] = px[rows] * um_per_px
    cells = pd.DataFrame(coords, index=pd.Index(barcodes, dtype=str, name="cell_id"))
    cells["section"] = section
    picked = positions.iloc[rows].reset_index(drop=True)
    for column in ("in_tissue", "array_row", "array_col"):
        cells[column] = numeric_column(
            positions_path, picked, column, line_offset=line_offset
        ).astype(np.int64)
    cells["in_tissue"] = cells["in_tissue"].astype(bool)

    bounds = {}
    image = spatial / "tissue_hires_image.png"
    if image.is_file() and hires_scale is not None:
        size = _png_size(image)
        if size is not None:
            width, height = size
            bounds[section] = (
                0.0,
                0.0,
                width / hires_scale * um_per_px,
                height / hires_scale * um_per_px,
            )
    check_labels_column(positions_path, cells, ctx.labels_column)
    return SpatialInput(
        platform="visium",
        source=str(folder),
        cells=cells,
        counts=counts,
        genes=genes,
        units="micron",
        bounds=bounds,
    )


def _scale(path: Path, run: Path) -> tuple[float, float | None]:
    """Micrometres per full-resolution pixel and the hires image's scale factor."""
    if not path.is_file():
        raise InputError(
            str(path),
            "scale-factors",
            "the Space Ranger scale factors file is missing: without spot_diameter_fullres "
            "the spot positions cannot be converted to micrometres",
        )
    try:
        factors = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            str(path),
            "scale-factors",
            f"not valid JSON ({str(exc).splitlines()[0]})",
            line=exc.lineno if isinstance(exc, json.JSONDecodeError) else None,
        ) from None
    if not isinstance(factors, dict):
        raise InputError(str(path), "scale-factors", "expected a JSON object of scale factors")

    def positive(key: str) -> float | None:
        value = factors.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not np.isfinite(value)
            or value <= 0
        ):
            raise InputError(
                str(path), "scale-factors", f"{key} is {value!r}, expected a positive number"
            )
        return float(value)

    diameter = positive("spot_diameter_fullres")
    hires = positive("tissue_hires_scalef")
    microns = positive("microns_per_pixel")
    if microns is not None:
        return microns, hires
    if diameter is None:
        raise InputError(
            str(path),
            "scale-factors",
            "spot_diameter_fullres is missing: the spot positions cannot be converted to "
            "micrometres",
        )
    m = _BIN.match(run.name)
    bin_um = positive("bin_size_um") or (float(m.group(1)) if m else None)
    return (bin_um if bin_um is not None else VISIUM_SPOT_DIAMETER_UM) / diameter, hires


def _positions(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return read_parquet(path, required=_COLUMNS).to_pandas()
    if path.name.startswith("tissue_positions_list"):
        return read_csv_table(path, names=_COLUMNS, strings=("barcode",))
    frame = read_csv_table(path, required=_COLUMNS, strings=("barcode",))
    require_columns(path, frame.columns, _COLUMNS)
    return frame


def _png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None if it is not a PNG."""
    with path.open("rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)
