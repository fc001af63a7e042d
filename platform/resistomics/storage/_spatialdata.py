"""Layout `spatialdata@1`: a SpatialData Zarr store whose table is a sparse-matrix store.

One version directory holds::

    spatialdata.zarr/                 SpatialData 0.2 on-disk format: spatialdata.read_zarr opens it
        tables/table/                 AnnData (Zarr v3), CSR cell x gene counts, cells in
                                      section order; obs: cell_id, section, region, x, y, the
                                      design of the section's sample; obsm["spatial"]: x, y
        shapes/<element>_cells/       GeoParquet circles at the cell centres (radius from
                                      the cell area when given), one element per section
        shapes/<element>_cell_boundaries/, <element>_nucleus_boundaries/  polygons, if given
        points/<element>_transcripts/points.parquet/part.<i>.parquet
                                      one molecule per row, one part per spatial tile
                                      (``tile`` column), sorted by tile
    by_gene.zarr/                     CSC gene-major copy of the table (sparse-matrix@1)
    sections.parquet                  per section: element name, row range in the table,
                                      counts of cells and transcripts, bounds, units

So the cell x gene table is the same layout as expression's (``open_sparse_matrix`` with
``adata=TABLE``), gene-wise and cell-wise analyses stream it out of core, and a section
is one contiguous row range: :meth:`SpatialStore.section` reads one section's cells
without touching the others. Each section is its own SpatialData coordinate system
(sections of different slides share no coordinates). Written one section at a time, so
the writer holds one section in memory, not the dataset.

The element attributes follow what spatialdata 0.8 writes (``ngff:shapes`` /
``ngff:points`` with an identity transformation into the section's coordinate system,
``ngff:regions_table`` on the table); ``tests/storage/test_spatialdata.py`` opens a
written store with ``spatialdata.read_zarr``.
"""

from __future__ import annotations

import io
import itertools
import posixpath
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import zarr

from resistomics.errors import StorageError
from resistomics.storage._root import DataRoot
from resistomics.storage._sparse_matrix import (
    BY_GENE,
    SparseMatrixStore,
    SparseMatrixWriter,
    StoreSummary,
    export_h5ad,
    open_sparse_matrix,
)
from resistomics.storage._tables import read_table, write_table

__all__ = [
    "SDATA",
    "TABLE",
    "SpatialDataWriter",
    "SpatialStore",
    "element_name",
    "open_spatial",
]

SDATA = "spatialdata.zarr"
TABLE = f"{SDATA}/tables/table"
SECTIONS = "sections.parquet"
#: The SpatialData on-disk format versions written (spatialdata 0.8.0's).
_ROOT_VERSION = "0.2"
_SHAPES_VERSION = "0.3"
_POINTS_VERSION = "0.2"
_TABLE_VERSION = "0.2"
_UNIT = {"micron": "micrometer", "pixel": "pixel"}


def element_name(section: str) -> str:
    """A SpatialData element name for a section: letters, digits, ``_``, ``-``, ``.``."""
    out = re.sub(r"[^A-Za-z0-9_.-]", "_", section).strip(".")
    return out or "_"


def _transform(section: str, units: str) -> dict[str, Any]:
    unit = _UNIT.get(units, "unit")
    axes = [{"name": a, "type": "space", "unit": unit} for a in ("x", "y")]
    return {
        "axes": ["x", "y"],
        "coordinateTransformations": [
            {
                "type": "identity",
                "input": {"name": "xy", "axes": axes},
                "output": {"name": element_name(section), "axes": axes},
            }
        ],
    }


@dataclass(frozen=True)
class SectionRecord:
    section: str
    element: str
    row_start: int
    row_stop: int
    n_transcripts: int
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    bounds_stated: bool


class SpatialDataWriter:
    """Write a spatialdata@1 store one section at a time.

    Parameters
    ----------
    root, path
        The data root and the new, empty version directory.
    var
        The analysed features (genes), index the feature name.
    design
        The study's sample sheet (index ``sample_id``): joined into ``obs`` by section.
    units
        ``micron`` or ``pixel`` (recorded in each element's coordinate system).
    tile_size
        Edge of the square tiles transcripts are grouped in, in the coordinates' units.
    rows_per_block, genes_per_block, scratch, lognorm_target_sum, metadata
        As :class:`~resistomics.storage.SparseMatrixWriter`.
    """

    def __init__(
        self,
        root: DataRoot,
        path: str,
        *,
        var: pd.DataFrame,
        design: pd.DataFrame | None = None,
        units: str = "micron",
        tile_size: float = 1000.0,
        rows_per_block: int = 8192,
        genes_per_block: int = 1024,
        scratch: str | Path | None = None,
        lognorm_target_sum: float = 1e4,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.path = path
        self.units = units
        self.tile_size = float(tile_size)
        self._rows_per_block = rows_per_block
        base = f"{path}/{SDATA}"
        top = zarr.open_group(root.mapper(base), mode="w-", zarr_format=3)
        top.attrs["spatialdata_attrs"] = {
            "version": _ROOT_VERSION,
            "spatialdata_software_version": "0.8.0",
        }
        for kind in ("points", "shapes", "tables"):
            top.create_group(kind)
        self._matrix = SparseMatrixWriter(
            root,
            path,
            orientation="cells",
            var=var,
            value_kind="counts",
            rows_per_block=rows_per_block,
            genes_per_block=genes_per_block,
            scratch=scratch,
            lognorm_target_sum=lognorm_target_sum,
            design=design,
            metadata=metadata,
            adata=TABLE,
            by_gene=BY_GENE,
            categorical=("section", "region"),
        )
        self._records: list[SectionRecord] = []
        self._coords: list[np.ndarray] = []
        self._n_rows = 0

    # -- per section ---------------------------------------------------------------------
    def add_section(
        self,
        section: str,
        cells: pd.DataFrame,
        counts: sp.csr_matrix,
        *,
        transcripts: pa.Table | None = None,
        cell_boundaries: pd.DataFrame | None = None,
        nucleus_boundaries: pd.DataFrame | None = None,
        bounds: tuple[float, float, float, float] | None = None,
    ) -> None:
        """Add one section: its cells (index ``cell_id``; ``x``, ``y``, metadata), their
        counts (rows in ``cells`` order, columns in ``var`` order), its transcripts and
        boundary polygons (vertex tables ``cell_id, x, y``)."""
        element = element_name(section)
        if any(r.element == element for r in self._records):
            raise StorageError(f"section {section!r}: element {element!r} written twice")
        region = f"{element}_cells"
        obs = cells.copy()
        obs.index = obs.index.astype(str)
        obs.index.name = None
        obs = obs.drop(columns=["cell_id"], errors="ignore")
        obs.insert(0, "cell_id", obs.index.to_numpy())
        obs["section"] = section
        obs["sample_id"] = section
        obs["region"] = region
        for start in range(0, len(obs), self._rows_per_block):
            stop = min(start + self._rows_per_block, len(obs))
            self._matrix.add(counts[start:stop], obs.iloc[start:stop])
        xy = obs[["x", "y"]].to_numpy(dtype=np.float64)
        self._coords.append(xy)
        radius = (
            np.sqrt(obs["area"].to_numpy(dtype=np.float64) / np.pi)
            if "area" in obs.columns
            else np.full(len(obs), 5.0)
        )
        self._write_circles(region, section, obs.index.to_numpy(), xy, radius)
        for kind, frame in (
            ("cell_boundaries", cell_boundaries),
            ("nucleus_boundaries", nucleus_boundaries),
        ):
            if frame is not None and len(frame):
                self._write_polygons(f"{element}_{kind}", section, frame)
        n_tx = 0
        if transcripts is not None:
            n_tx = self._write_points(f"{element}_transcripts", section, transcripts)
        stated = bounds is not None
        if bounds is None:
            bounds = (
                (
                    float(xy[:, 0].min()),
                    float(xy[:, 1].min()),
                    float(xy[:, 0].max()),
                    float(xy[:, 1].max()),
                )
                if len(xy)
                else (0.0, 0.0, 0.0, 0.0)
            )
        self._records.append(
            SectionRecord(
                section,
                element,
                self._n_rows,
                self._n_rows + len(obs),
                n_tx,
                x_min=float(bounds[0]),
                y_min=float(bounds[1]),
                x_max=float(bounds[2]),
                y_max=float(bounds[3]),
                bounds_stated=stated,
            )
        )
        self._n_rows += len(obs)

    def _element_group(self, kind: str, name: str, section: str, extra: dict[str, Any]) -> str:
        group = zarr.open_group(self.root.mapper(f"{self.path}/{SDATA}/{kind}/{name}"), mode="w-")
        group.attrs.update(
            {"encoding-type": f"ngff:{kind}", **_transform(section, self.units), **extra}
        )
        return f"{self.path}/{SDATA}/{kind}/{name}"

    def _write_geoparquet(self, where: str, frame: Any) -> None:
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        with self.root.fs.open(f"{where}/shapes.parquet", "wb") as f:
            f.write(buffer.getvalue())

    def _write_circles(
        self, name: str, section: str, ids: np.ndarray, xy: np.ndarray, radius: np.ndarray
    ) -> None:
        import geopandas as gpd

        where = self._element_group(
            "shapes", name, section, {"spatialdata_attrs": {"version": _SHAPES_VERSION}}
        )
        frame = gpd.GeoDataFrame(
            {"radius": radius},
            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
            index=pd.Index(ids, dtype=object),
        )
        self._write_geoparquet(where, frame)

    def _write_polygons(self, name: str, section: str, vertices: pd.DataFrame) -> None:
        import geopandas as gpd
        import shapely

        ids = vertices["cell_id"].astype(str).to_numpy()
        # one polygon per run of equal cell IDs (vertices are in drawing order)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        offsets = np.r_[starts, len(ids)]
        rings = [
            np.c_[vertices["x"].to_numpy()[a:b], vertices["y"].to_numpy()[a:b]]
            for a, b in itertools.pairwise(offsets)
        ]
        geometry = [shapely.Polygon(r) if len(r) >= 3 else shapely.Polygon() for r in rings]
        where = self._element_group(
            "shapes", name, section, {"spatialdata_attrs": {"version": _SHAPES_VERSION}}
        )
        frame = gpd.GeoDataFrame(geometry=geometry, index=pd.Index(ids[starts], dtype=object))
        self._write_geoparquet(where, frame)

    def _write_points(self, name: str, section: str, table: pa.Table) -> int:
        where = self._element_group(
            "points",
            name,
            section,
            {
                "spatialdata_attrs": {
                    "feature_key": "gene",
                    "instance_key": "cell_id",
                    "version": _POINTS_VERSION,
                }
            },
        )
        frame = table.to_pandas()
        frame = frame.drop(columns=["section"], errors="ignore")
        x = frame["x"].to_numpy(dtype=np.float64)
        y = frame["y"].to_numpy(dtype=np.float64)
        finite = np.isfinite(x) & np.isfinite(y)
        x0 = float(x[finite].min()) if finite.any() else 0.0
        y0 = float(y[finite].min()) if finite.any() else 0.0
        tx = np.where(finite, np.floor((np.where(finite, x, x0) - x0) / self.tile_size), -1)
        ty = np.where(finite, np.floor((np.where(finite, y, y0) - y0) / self.tile_size), 0)
        tx, ty = tx.astype(np.int64), ty.astype(np.int64)
        width = int(tx.max()) + 1 if len(tx) and tx.max() >= 0 else 1
        # molecules without finite coordinates go to tile -1 (the expectations refuse
        # such cells; a molecule's coordinates are kept as given)
        frame["tile"] = np.where(tx >= 0, ty * width + tx, -1).astype(np.int32)
        frame = frame.sort_values("tile", kind="stable").reset_index(drop=True)
        frame["gene"] = frame["gene"].astype(str)
        directory = f"{where}/points.parquet"
        self.root.fs.makedirs(directory, exist_ok=True)
        tiles = frame["tile"].to_numpy()
        cuts = np.r_[0, np.flatnonzero(np.diff(tiles)) + 1, len(frame)]
        for i, (a, b) in enumerate(itertools.pairwise(cuts)):
            part = pa.Table.from_pandas(frame.iloc[a:b], preserve_index=False)
            with self.root.fs.open(f"{directory}/part.{i}.parquet", "wb") as f:
                pq.write_table(part, f, compression="zstd")
        if len(frame) == 0:
            part = pa.Table.from_pandas(frame, preserve_index=False)
            with self.root.fs.open(f"{directory}/part.0.parquet", "wb") as f:
                pq.write_table(part, f, compression="zstd")
        return len(frame)

    # -- finish --------------------------------------------------------------------------
    def close(self) -> StoreSummary:
        """Compose the table, tag it as SpatialData's regions table, write the sections."""
        from anndata.io import read_elem, write_elem

        summary = self._matrix.close()
        regions = [f"{r.element}_cells" for r in self._records]
        table = zarr.open_group(self.root.mapper(f"{self.path}/{TABLE}"), mode="r+")
        table.attrs.update(
            {
                "spatialdata-encoding-type": "ngff:regions_table",
                "region": regions[0] if len(regions) == 1 else regions,
                "region_key": "region",
                "instance_key": "cell_id",
                "version": _TABLE_VERSION,
            }
        )
        uns: dict[str, Any] = dict(read_elem(table["uns"]))  # type: ignore[arg-type]
        uns["spatialdata_attrs"] = {
            "region": regions[0] if len(regions) == 1 else regions,
            "region_key": "region",
            "instance_key": "cell_id",
        }
        write_elem(table, "uns", uns)
        coords = np.concatenate(self._coords) if self._coords else np.zeros((0, 2))
        obsm = table["obsm"]
        assert isinstance(obsm, zarr.Group)
        write_elem(obsm, "spatial", coords)
        with warnings.catch_warnings():
            # the parquet files inside elements are not Zarr nodes; consolidated metadata
            # is what spatialdata itself writes (zarr calls it not yet part of format 3)
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(self.root.mapper(f"{self.path}/{SDATA}"))
        write_table(
            self.root,
            f"{self.path}/{SECTIONS}",
            pd.DataFrame([r.__dict__ for r in self._records]).assign(units=self.units)
            if self._records
            else pd.DataFrame(columns=[*list(SectionRecord.__dataclass_fields__), "units"]),
        )
        return summary

    def abort_scratch(self) -> None:
        self._matrix.abort_scratch()


@dataclass(frozen=True)
class SpatialStore:
    """A spatialdata@1 version, opened lazily: the table as a sparse-matrix store."""

    root: DataRoot
    path: str
    matrix: SparseMatrixStore
    sections: pd.DataFrame

    @property
    def obs(self) -> pd.DataFrame:
        return self.matrix.obs

    @property
    def var(self) -> pd.DataFrame:
        return self.matrix.var

    def section_rows(self, section: str) -> tuple[int, int]:
        hit = self.sections[self.sections["section"] == section]
        if hit.empty:
            raise KeyError(section)
        return int(hit["row_start"].iloc[0]), int(hit["row_stop"].iloc[0])

    def section_cells(self, section: str) -> pd.DataFrame:
        """The cells (obs rows) of one section."""
        a, b = self.section_rows(section)
        return self.obs.iloc[a:b]

    def section_counts(self, section: str) -> sp.csr_matrix:
        """One section's cell x gene counts (CSR), read from its row range only."""
        from resistomics.storage._sparse_matrix import _load_rows

        a, b = self.section_rows(section)
        return _load_rows(
            self.matrix.url,
            self.matrix._opts(),
            f"{self.matrix.adata}/X",
            a,
            b,
            self.matrix.shape[1],
            "csr",
        )

    def transcript_parts(self, section: str) -> list[str]:
        """Paths of one section's transcript parts (one per spatial tile, in tile order;
        empty when the platform gave no transcripts), for readers that go tile by tile."""
        element = self.sections.loc[self.sections["section"] == section, "element"]
        if element.empty:
            raise KeyError(section)
        where = f"{self.path}/{SDATA}/points/{element.iloc[0]}_transcripts/points.parquet"
        if not self.root.fs.exists(where):
            return []
        parts = [
            str(p) for p in self.root.fs.ls(where, detail=False) if str(p).endswith(".parquet")
        ]
        return sorted(parts, key=lambda p: int(p.rsplit("part.", 1)[1].split(".")[0]))

    def transcripts(self, section: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One section's transcripts (empty frame when the platform gave none)."""
        element = self.sections.loc[self.sections["section"] == section, "element"]
        if element.empty:
            raise KeyError(section)
        where = f"{self.path}/{SDATA}/points/{element.iloc[0]}_transcripts/points.parquet"
        if not self.root.fs.exists(where):
            return pd.DataFrame(columns=columns or ["x", "y", "gene", "cell_id"])
        return read_table(self.root, where, columns=columns)


def open_spatial(root: DataRoot, path: str) -> SpatialStore:
    """Open the spatialdata@1 store in the version directory ``path``."""
    matrix = open_sparse_matrix(root, path, adata=TABLE, by_gene=BY_GENE)
    sections = read_table(root, posixpath.join(path, SECTIONS))
    return SpatialStore(root=root, path=path, matrix=matrix, sections=sections)


def inspect_spatial(root: DataRoot, path: str) -> tuple[tuple[int, int], str]:
    store = open_spatial(root, path)
    store.matrix.cells()
    store.matrix.genes()
    n_tx = int(store.sections["n_transcripts"].sum()) if len(store.sections) else 0
    return (
        tuple(store.matrix.shape),  # type: ignore[return-value]
        f"SpatialData store opens: {len(store.sections)} sections, {n_tx} transcripts",
    )


def spatial_tables(root: DataRoot, path: str) -> list[str]:
    return ["obs", "var", "sections"]


def read_spatial_table(root: DataRoot, path: str, name: str) -> pd.DataFrame:
    store = open_spatial(root, path)
    if name == "sections":
        return store.sections
    frame = store.obs if name == "obs" else store.var
    return frame.rename_axis(f"{name}_id").reset_index(drop=name == "obs")


def export_spatial_h5ad(root: DataRoot, path: str, output: Path) -> str:
    summary = export_h5ad(root, path, output, adata=TABLE)
    return (
        f"{summary.n_obs} cells x {summary.n_vars} genes, {summary.nnz} non-zeros, "
        "coordinates in obsm['spatial']"
    )


def export_spatialdata(root: DataRoot, path: str, output: Path) -> str:
    """Copy the SpatialData Zarr store out of the version (``spatialdata.read_zarr``
    opens the copy; the gene-major copy and the sections table stay behind)."""
    out = Path(output)
    if out.exists():
        raise StorageError(f"{out} exists")
    partial = out.with_name(f".{out.name}.partial")
    root.fs.get(f"{path}/{SDATA}", str(partial), recursive=True)
    partial.rename(out)
    store = open_spatial(root, path)
    return f"SpatialData store: {len(store.sections)} sections, {store.matrix.shape[0]} cells"
