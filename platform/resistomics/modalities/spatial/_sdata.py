"""Reader of an existing SpatialData Zarr store (``spatialdata.read_zarr``), any platform.

What it takes from the store:

- **cells**: the rows of the annotating table (``tables/*``, or the legacy ``table/table``
  group of SpatialData < 0.1 stores, which ``spatialdata`` 0.8 no longer loads), keyed
  by its ``instance_key``; without a table, the cell shapes element (a shapes element
  named ``cell_boundaries`` / ``cells`` / ``cell_circles``, else the first one).
  Coordinates: the table's ``obsm["spatial"]``, else the centroids of the cells' shapes;
  ``area`` from polygon areas (or circle radii).
- **counts**: the table's ``X`` when its genes are named and it has one row per cell;
  otherwise (no table, or a table without gene names, as bento-tools' MERFISH sample)
  the transcripts counted per cell and gene, which is what the table would hold.
- **transcripts**: the points element (``transcripts``, else the first), its
  ``feature_key`` the gene and its ``instance_key`` (or a column naming the cell shapes
  element) the cell, empty or null meaning unassigned. ``overlaps_nucleus`` from such a
  column, or from a column naming the nucleus shapes element (the nucleus a molecule
  falls in, empty when none).
- **boundaries**: polygon elements named ``*cell*`` / ``*nucle*`` as vertex tables.

One section per store (``--sample``, else the folder name). Coordinates stay in the
store's intrinsic units: ``micron`` when its coordinate system says micrometres, else
``pixel``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from resistomics.errors import InputError
from resistomics.modalities.spatial._landed import check_labels_column
from resistomics.modalities.spatial._raw import SpatialInput, SpatialReadContext

__all__ = ["detect_spatialdata", "read_spatialdata"]

_CELL_SHAPES = ("cell_boundaries", "cells", "cell_circles", "cell_shapes")
_NUCLEUS_SHAPES = ("nucleus_boundaries", "nuclei", "nucleus")


def detect_spatialdata(path: str) -> bool:
    """A directory holding a Zarr group with SpatialData element groups."""
    try:
        if not os.path.isdir(path):
            return False
        names = set(os.listdir(path))
        if not ({".zgroup", "zarr.json"} & names):
            return False
        return bool({"points", "shapes", "tables", "table", "images", "labels"} & names)
    except OSError:
        return False


def _section(path: str, ctx: SpatialReadContext) -> str:
    if ctx.section:
        return ctx.section
    name = os.path.basename(path.rstrip("/"))
    return name[: -len(".zarr")] if name.endswith(".zarr") else name


def _check_parquet(path: str) -> None:
    """Every Parquet file of the points and shapes elements has a readable footer (a
    truncated copy is named, not left to fail somewhere inside spatialdata)."""
    import pyarrow.parquet as pq

    for kind in ("points", "shapes"):
        top = os.path.join(path, kind)
        if not os.path.isdir(top):
            continue
        for dirpath, _, files in sorted(os.walk(top)):
            for f in sorted(files):
                if not f.endswith(".parquet"):
                    continue
                full = os.path.join(dirpath, f)
                try:
                    pq.read_metadata(full)
                except Exception as exc:  # pyarrow raises several kinds
                    raise InputError(
                        path,
                        "parquet",
                        f"damaged Parquet file: {str(exc).splitlines()[0]}",
                        row=os.path.relpath(full, path),
                    ) from None


def _open(path: str) -> Any:
    import spatialdata as sd

    _check_parquet(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sd.read_zarr(path)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            path, "spatialdata", f"not a readable SpatialData store: {message}"
        ) from None


def _table(path: str, sdata: Any) -> Any | None:
    tables = dict(sdata.tables)
    if len(tables) > 1:
        panels = {name: tuple(t.var_names) for name, t in tables.items()}
        if len(set(panels.values())) > 1:
            names = ", ".join(sorted(panels))
            raise InputError(
                path, "one-panel", f"tables {names} measure different gene panels", row="tables"
            )
    if tables:
        return tables["table"] if "table" in tables else next(iter(tables.values()))
    legacy = os.path.join(path, "table", "table")
    if os.path.isdir(legacy):
        import anndata as ad

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ad.read_zarr(legacy)
    return None


def _units(element: Any) -> str:
    from spatialdata.transformations import get_transformation

    try:
        transformations = get_transformation(element, get_all=True)
        for t in transformations.values():
            axes = getattr(getattr(t, "input_coordinate_system", None), "axes", ()) or ()
            if any(str(getattr(a, "unit", "")).lower() in ("micrometer", "um", "µm") for a in axes):
                return "micron"
    except Exception:
        pass
    return "pixel"


def _pick(names: list[str], preferred: tuple[str, ...], contains: str) -> str | None:
    for p in preferred:
        if p in names:
            return p
    hits = [n for n in names if contains in n.lower()]
    return hits[0] if hits else None


def _vertices(shapes: Any) -> pd.DataFrame:
    """Exterior ring vertices of each polygon (the first part of a multipolygon)."""
    rows: list[pd.DataFrame] = []
    for cell_id, geom in zip(shapes.index.astype(str), shapes.geometry, strict=True):
        if geom is None or geom.is_empty:
            continue
        poly = geom.geoms[0] if geom.geom_type == "MultiPolygon" else geom
        if poly.geom_type != "Polygon":
            continue
        xy = np.asarray(poly.exterior.coords, dtype=np.float64)
        rows.append(pd.DataFrame({"cell_id": cell_id, "x": xy[:, 0], "y": xy[:, 1]}))
    if not rows:
        return pd.DataFrame({"cell_id": [], "x": [], "y": []})
    return pd.concat(rows, ignore_index=True)


def _geometry_table(shapes: Any) -> pd.DataFrame:
    """Centroid and area of each shape (circles: centre and pi r^2)."""
    kinds = set(shapes.geometry.geom_type)
    if kinds <= {"Point"}:
        radius = (
            shapes["radius"].to_numpy(dtype=np.float64)
            if "radius" in shapes.columns
            else np.full(len(shapes), np.nan)
        )
        x, y = shapes.geometry.x.to_numpy(), shapes.geometry.y.to_numpy()
        area = np.pi * radius**2
    else:
        centroids = shapes.geometry.centroid
        x, y = centroids.x.to_numpy(), centroids.y.to_numpy()
        area = shapes.geometry.area.to_numpy()
    return pd.DataFrame(
        {"x": x.astype(np.float64), "y": y.astype(np.float64), "area": area},
        index=pd.Index(shapes.index.astype(str), name="cell_id"),
    )


def read_spatialdata(path: str, ctx: SpatialReadContext) -> SpatialInput:
    """Read a SpatialData Zarr store into a :class:`SpatialInput` (see the module doc).

    Raises
    ------
    InputError
        Rule ``spatialdata`` for a store ``spatialdata.read_zarr`` cannot open or one
        without cells; ``one-panel`` for tables measuring different genes;
        ``columns`` for a points element without its gene column.
    """
    sdata = _open(path)
    section = _section(path, ctx)
    shape_names = list(sdata.shapes)
    cell_shapes = _pick(shape_names, _CELL_SHAPES, "cell")
    nucleus_shapes = _pick(shape_names, _NUCLEUS_SHAPES, "nucle")
    points_name = "transcripts" if "transcripts" in sdata.points else next(iter(sdata.points), None)
    table = _table(path, sdata)

    transcripts: pd.DataFrame | None = None
    if points_name is not None:
        points = sdata.points[points_name]
        attrs = dict(points.attrs.get("spatialdata_attrs", {}))
        try:
            frame = points.compute()
        except Exception as exc:  # a damaged Parquet part, any reader error
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                path, "parquet", f"points cannot be read: {message}", row=f"points/{points_name}"
            ) from None
        feature = attrs.get("feature_key") or next(
            (c for c in ("feature_name", "gene", "target") if c in frame.columns), None
        )
        if feature is None or feature not in frame.columns:
            raise InputError(
                path,
                "columns",
                f"points element {points_name!r} has no gene column (feature_key)",
                row=f"points/{points_name}",
            )
        instance = attrs.get("instance_key")
        cell_col = next(
            (
                c
                for c in (instance, cell_shapes, "cell_id", "cell")
                if c is not None and c in frame.columns
            ),
            None,
        )
        cell = (
            frame[cell_col].astype("string").fillna("").to_numpy(dtype=object)
            if cell_col is not None
            else np.full(len(frame), "", dtype=object)
        )
        if "overlaps_nucleus" in frame.columns:
            nuclear = frame["overlaps_nucleus"].fillna(False).astype(bool).to_numpy()
        elif nucleus_shapes is not None and nucleus_shapes in frame.columns:
            nuclear = (frame[nucleus_shapes].astype("string").fillna("") != "").to_numpy()
        else:
            nuclear = None
        transcripts = pd.DataFrame(
            {
                "x": frame["x"].to_numpy(dtype=np.float64),
                "y": frame["y"].to_numpy(dtype=np.float64),
                "gene": frame[feature].astype(str).to_numpy(),
                "cell_id": pd.array(
                    [c if c not in ("", "-1", "UNASSIGNED", "0") else None for c in cell],
                    dtype="string",
                ),
                "section": section,
            }
        )
        if "z" in frame.columns:
            transcripts.insert(2, "z", frame["z"].to_numpy(dtype=np.float64))
        if nuclear is not None:
            transcripts["overlaps_nucleus"] = nuclear

    geometry = _geometry_table(sdata.shapes[cell_shapes]) if cell_shapes is not None else None
    genes_from_points = sorted(transcripts["gene"].unique()) if transcripts is not None else []
    use_table = table is not None and (
        transcripts is None or bool(set(map(str, table.var_names)) & set(genes_from_points))
    )
    if use_table:
        assert table is not None
        attrs = dict(table.uns.get("spatialdata_attrs", {}))
        key = attrs.get("instance_key")
        ids = (
            table.obs[key].astype(str).to_numpy()
            if key is not None and key in table.obs.columns
            else table.obs_names.astype(str).to_numpy()
        )
        counts = sp.csr_matrix(table.X)
        genes = list(map(str, table.var_names))
        if "spatial" in table.obsm:
            xy = np.asarray(table.obsm["spatial"], dtype=np.float64)[:, :2]
            cells = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}, index=pd.Index(ids))
        elif geometry is not None:
            cells = geometry.reindex(ids)
        else:
            raise InputError(
                path, "spatialdata", "the table has no obsm['spatial'] and no cell shapes"
            )
        extra = table.obs.drop(
            columns=[c for c in (key, attrs.get("region_key")) if c], errors="ignore"
        )
        for c in extra.columns:
            if c not in cells.columns:
                cells[str(c)] = extra[c].to_numpy()
    else:
        if transcripts is None or geometry is None:
            raise InputError(
                path, "spatialdata", "no table, and no transcripts with cell shapes to count"
            )
        assigned = transcripts["cell_id"].notna().to_numpy()
        ids = list(geometry.index)
        index_of = {c: i for i, c in enumerate(ids)}
        genes = genes_from_points
        gene_of = {g: j for j, g in enumerate(genes)}
        rows = np.array(
            [index_of.get(c, -1) for c in transcripts["cell_id"].to_numpy()[assigned]],
            dtype=np.int64,
        )
        cols = np.array(
            [gene_of[g] for g in transcripts["gene"].to_numpy()[assigned]], dtype=np.int64
        )
        known = rows >= 0  # molecules of cells without a shape: kept, checked later
        counts = sp.csr_matrix(
            (np.ones(int(known.sum())), (rows[known], cols[known])),
            shape=(len(ids), len(genes)),
        )
        counts.sum_duplicates()
        cells = geometry.copy()
    cells = cells.copy()
    cells.index = pd.Index(cells.index.astype(str), name="cell_id")
    if geometry is not None and "area" not in cells.columns:
        cells["area"] = geometry["area"].reindex(cells.index).to_numpy()
    if "section" in cells.columns:
        # the store's own section column: one value is replaced by the registered
        # section; several would put every cell of the store into one section
        given = cells["section"].dropna().astype(str).unique()
        if len(given) > 1:
            raise InputError(
                path,
                "one-section",
                f"the table's section column holds {len(given)} sections "
                f"({', '.join(map(repr, sorted(given)[:3]))}{' ...' if len(given) > 3 else ''}); "
                "land one section per store (its registered sample: --sample)",
                column="section",
            )
        cells = cells.drop(columns="section")
    cells.insert(2, "section", section)
    check_labels_column(Path(path), cells, ctx.labels_column)
    units = _units(sdata.shapes[cell_shapes]) if cell_shapes is not None else "pixel"
    gene_frame = pd.DataFrame(
        {"feature_type": ["gene"] * len(genes)}, index=pd.Index(genes, name="gene")
    )
    for name in gene_frame.index:
        lowered = name.lower()
        if lowered.startswith(("blank", "negcontrol", "negprb", "negcon")):
            gene_frame.loc[name, "feature_type"] = (
                "blank" if lowered.startswith("blank") else "negative_control_probe"
            )
    return SpatialInput(
        platform="spatialdata",
        source=path,
        cells=cells,
        counts=counts.astype(np.float64).tocsr(),
        genes=gene_frame,
        transcripts=pa.Table.from_pandas(transcripts, preserve_index=False)
        if transcripts is not None
        else None,
        cell_boundaries=_vertices(sdata.shapes[cell_shapes])
        if cell_shapes is not None
        and not set(sdata.shapes[cell_shapes].geometry.geom_type) <= {"Point"}
        else None,
        nucleus_boundaries=_vertices(sdata.shapes[nucleus_shapes])
        if nucleus_shapes is not None
        else None,
        units=units,  # type: ignore[arg-type]
        bounds={},
    )
