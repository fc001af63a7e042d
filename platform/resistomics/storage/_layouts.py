"""The shared, versioned storage layouts every dataset version is written in.

As anndata's ``IOSpec(encoding_type, encoding_version)``: a version records the layout it
was written in (catalog ``versions.layout`` and ``versions.layout_version``), and
opening, integrity checks, export and plotting dispatch on it, never on a modality or a
format string. Layouts are few and shared between modalities; a new version of a layout
is a new entry here (old versions stay readable).

=====================  ===========================================================  ===========
layout                 what                                                         used by
=====================  ===========================================================  ===========
``sparse-matrix@1``    Zarr v3 AnnData store (CSR, cell-major) + CSC gene-major      expression;
                       copy (:mod:`resistomics.storage._sparse_matrix`)              accessibility
                                                                                     peaks/tiles,
                                                                                     spatial
                                                                                     cell x gene
``partitioned-table@1`` Parquet table(s) hive-partitioned by one column               variants;
                       (:mod:`resistomics.storage._partitioned_table`)               fragments,
                                                                                     transcripts
``result-tables@1``    ``<name>.parquet`` per result table, plus extras (Zarr)       every result
``feature-matrix@1``   dense Zarr v3 arrays, features x samples, in feature and      methylation,
                       sample blocks; Parquet feature index and samples table        metabolomics
                       (:mod:`resistomics.storage._feature_matrix`)
``spatialdata@1``      SpatialData Zarr store (points, shapes, AnnData table) that    spatial
                       ``spatialdata.read_zarr`` opens; its table is a sparse-matrix
                       store (:mod:`resistomics.storage._spatialdata`)
=====================  ===========================================================  ===========
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from resistomics.errors import StorageError, UnknownNameError
from resistomics.storage._root import DataRoot
from resistomics.storage._tables import read_table

__all__ = ["Layout", "StoredContents", "layout", "layouts", "parse_layout"]


@dataclass(frozen=True)
class StoredContents:
    """What opening a stored version found: its shape and a one-line description."""

    shape: tuple[int, ...] | None
    detail: str


@dataclass(frozen=True)
class Layout:
    """One versioned layout: how to open, list and read a version stored in it.

    ``inspect(root, path)`` opens the version far enough to prove it is readable (raises
    ``OSError``/``ValueError``/``KeyError`` when damaged); ``tables(root, path)`` names
    the tables ``export`` can write and ``read_table(root, path, name)`` reads one.
    ``format`` is the catalog's older ``versions.format`` value for this layout.
    ``exports`` are whole-store file formats (``exports["h5ad"](root, path, output)``
    writes the file and returns a one-line description); ``opens`` is the entry inside a
    version that ``opened_by`` (the reference tool) opens.
    """

    name: str
    version: int
    format: str
    description: str
    inspect: Callable[[DataRoot, str], StoredContents] | None = None
    tables: Callable[[DataRoot, str], list[str]] | None = None
    read_table: Callable[[DataRoot, str, str], pd.DataFrame] | None = None
    exports: Mapping[str, Callable[[DataRoot, str, Path], str]] = field(default_factory=dict)
    opens: str = ""
    opened_by: str = ""

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def planned(self) -> bool:
        """Declared (so modalities can plan against it) but not implemented yet."""
        return self.inspect is None


# ---------------------------------------------------------------------- sparse-matrix@1
def _sparse_inspect(root: DataRoot, path: str) -> StoredContents:
    from resistomics.storage._sparse_matrix import open_sparse_matrix

    store = open_sparse_matrix(root, path)
    # Building both lazy views reads both index arrays (cell- and gene-major).
    store.cells()
    store.genes()
    return StoredContents(tuple(store.shape), "sparse matrix opens (cell- and gene-major)")


def _sparse_tables(root: DataRoot, path: str) -> list[str]:
    return ["obs", "var"]


def _sparse_read(root: DataRoot, path: str, name: str) -> pd.DataFrame:
    from resistomics.storage._sparse_matrix import open_sparse_matrix

    store = open_sparse_matrix(root, path)
    frame = store.obs if name == "obs" else store.var
    return frame.rename_axis(f"{name}_id").reset_index()


def _sparse_h5ad(root: DataRoot, path: str, output: Path) -> str:
    from resistomics.storage._sparse_matrix import export_h5ad

    summary = export_h5ad(root, path, output)
    return f"{summary.n_obs} x {summary.n_vars}, {summary.nnz} non-zeros, design in obs"


# --------------------------------------------------------------------- feature-matrix@1
def _dense_inspect(root: DataRoot, path: str) -> StoredContents:
    from resistomics.storage._feature_matrix import inspect_feature_matrix

    shape, detail = inspect_feature_matrix(root, path)
    return StoredContents(shape, detail)


def _dense_tables(root: DataRoot, path: str) -> list[str]:
    return ["features", "samples"]


def _dense_read(root: DataRoot, path: str, name: str) -> pd.DataFrame:
    return read_table(root, posixpath.join(path, f"{name}.parquet"))


def _dense_h5ad(root: DataRoot, path: str, output: Path) -> str:
    from resistomics.storage._feature_matrix import export_feature_matrix_h5ad

    return export_feature_matrix_h5ad(root, path, output)


# ------------------------------------------------------------------ partitioned-table@1
def _partitioned_tables(root: DataRoot, path: str) -> list[str]:
    return sorted(
        posixpath.basename(p.rstrip("/"))
        for p in root.fs.ls(path, detail=False)
        if root.fs.isdir(p) and not posixpath.basename(p.rstrip("/")).startswith(".")
    )


def _parquet_inspect(root: DataRoot, path: str) -> StoredContents:
    files = [p for p in root.fs.find(path) if p.endswith(".parquet")]
    if not files:
        raise StorageError(f"{path}: no Parquet files in the version")
    for p in files:
        with root.fs.open(p, "rb") as f:
            pq.read_metadata(f)
    return StoredContents(None, f"{len(files)} Parquet file(s) open")


def _partitioned_read(root: DataRoot, path: str, name: str) -> pd.DataFrame:
    import pyarrow.dataset as pads

    base = posixpath.join(path, name)
    return (
        pads.dataset(base, format="parquet", filesystem=root.fs, partitioning="hive")
        .to_table()
        .to_pandas()
    )


# --------------------------------------------------------------------- result-tables@1
def _result_tables(root: DataRoot, path: str) -> list[str]:
    return sorted(
        p.rsplit("/", 1)[-1][: -len(".parquet")]
        for p in root.fs.ls(path, detail=False)
        if str(p).endswith(".parquet")
    )


def _result_read(root: DataRoot, path: str, name: str) -> pd.DataFrame:
    return read_table(root, posixpath.join(path, f"{name}.parquet"))


# ----------------------------------------------------------------------- spatialdata@1
def _spatial_inspect(root: DataRoot, path: str) -> StoredContents:
    from resistomics.storage._spatialdata import inspect_spatial

    shape, detail = inspect_spatial(root, path)
    return StoredContents(shape, detail)


def _spatial_tables(root: DataRoot, path: str) -> list[str]:
    from resistomics.storage._spatialdata import spatial_tables

    return spatial_tables(root, path)


def _spatial_read(root: DataRoot, path: str, name: str) -> pd.DataFrame:
    from resistomics.storage._spatialdata import read_spatial_table

    return read_spatial_table(root, path, name)


def _spatial_h5ad(root: DataRoot, path: str, output: Path) -> str:
    from resistomics.storage._spatialdata import export_spatial_h5ad

    return export_spatial_h5ad(root, path, output)


def _spatial_export(root: DataRoot, path: str, output: Path) -> str:
    from resistomics.storage._spatialdata import export_spatialdata

    return export_spatialdata(root, path, output)


_LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "sparse-matrix",
        1,
        "zarr-anndata",
        "Zarr v3 AnnData store (X as CSR, cell-major; obs, var) plus a CSC gene-major "
        "copy; anndata.read_zarr opens <version>/expression.zarr",
        _sparse_inspect,
        _sparse_tables,
        _sparse_read,
        exports={"h5ad": _sparse_h5ad},
        # the sparse-matrix store's AnnData group (_sparse_matrix.ADATA), whatever the
        # modality: its name from before other modalities, kept so recorded versions open
        opens="expression.zarr",
        opened_by="anndata.read_zarr",
    ),
    Layout(
        "partitioned-table",
        1,
        "parquet",
        "Parquet tables hive-partitioned by one column: <version>/<table>/<column>=<value>/",
        _parquet_inspect,
        _partitioned_tables,
        _partitioned_read,
    ),
    Layout(
        "result-tables",
        1,
        "parquet",
        "one <name>.parquet per result table (lineage in the schema metadata) plus extras",
        _parquet_inspect,
        _result_tables,
        _result_read,
    ),
    Layout(
        "feature-matrix",
        1,
        "zarr-feature-matrix",
        "dense Zarr v3 arrays (features x samples, chunked by feature and sample block) "
        "with a Parquet feature/site index and samples table (methylation counts, "
        "metabolite abundances): <version>/matrix.zarr, features.parquet, samples.parquet",
        _dense_inspect,
        _dense_tables,
        _dense_read,
        exports={"h5ad": _dense_h5ad},
        opens="matrix.zarr",
        opened_by="zarr.open_group (or resistomics.storage.open_feature_matrix)",
    ),
    Layout(
        "spatialdata",
        1,
        "zarr-spatialdata",
        "a SpatialData Zarr store (transcripts as points partitioned by section and tile, "
        "cell circles and boundaries as shapes, the cell x gene table as AnnData with "
        "obsm['spatial']) plus the table's gene-major copy and a sections table: "
        "<version>/spatialdata.zarr, by_gene.zarr, sections.parquet",
        _spatial_inspect,
        _spatial_tables,
        _spatial_read,
        exports={"h5ad": _spatial_h5ad, "spatialdata": _spatial_export},
        opens="spatialdata.zarr",
        opened_by="spatialdata.read_zarr",
    ),
)


def layouts() -> list[Layout]:
    """Every layout, implemented and planned."""
    return list(_LAYOUTS)


def parse_layout(spec: str) -> tuple[str, int]:
    """``"sparse-matrix@1"`` -> ``("sparse-matrix", 1)`` (no ``@``: version 1)."""
    name, _, version = spec.partition("@")
    try:
        return name, int(version or 1)
    except ValueError:
        raise UnknownNameError("layout", spec, [x.spec for x in _LAYOUTS]) from None


def layout(name: str, version: int | None = None) -> Layout:
    """The layout ``name`` (``"sparse-matrix"`` with ``version``, or ``"sparse-matrix@1"``).

    Raises
    ------
    UnknownNameError
        (a ``KeyError``) with the closest known layout.
    """
    if version is None:
        name, version = parse_layout(name)
    for x in _LAYOUTS:
        if (x.name, x.version) == (name, version):
            return x
    raise UnknownNameError("layout", f"{name}@{version}", [x.spec for x in _LAYOUTS])
