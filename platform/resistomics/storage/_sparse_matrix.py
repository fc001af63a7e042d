"""Layout `sparse-matrix@1`: sparse matrices in Zarr v3 in the AnnData on-disk layout, both orientations.

One version directory holds two Zarr v3 groups::

    expression.zarr/        AnnData on-disk layout: ``anndata.read_zarr`` opens it
        X                   csr_matrix (cell-major): data, indices, indptr
        obs, var            AnnData dataframes (cells/samples, genes)
        uns/resistomics     value kind (counts | normalized), source, code version
    by_gene.zarr/           csc_matrix: the gene-major copy of X (data, indices, indptr)

Both orientations are written once at ingest, so cell-wise computations (library
sizes, gene-set scores) stream row blocks and gene-wise ones (differential expression,
per-gene QC) stream column blocks, each out of core (BPCells-style, see
ARCHITECTURE.md). The copy lives beside the AnnData group because AnnData refuses
unknown top-level keys. The AnnData group is named ``expression.zarr`` in every
modality's versions: the layout's file name from when expression was its only user,
kept because recorded versions (and their manifests) name it.

Writing streams: readers hand the writer blocks of rows (cells) or of columns (genes);
the writer spools them as tiles in local scratch and then composes each layout one row
block or one gene block at a time, so peak memory is one block, never the matrix. The
1-D Zarr arrays are written by one process in whole chunks (a buffered appender), so no
two writers ever touch the same chunk.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr
import zarr.storage
from zarr.codecs import BloscCodec

from resistomics.errors import StorageError
from resistomics.storage._root import DataRoot

__all__ = [
    "SparseMatrixStore",
    "SparseMatrixWriter",
    "StoreSummary",
    "open_sparse_matrix",
]

ValueKind = Literal["counts", "normalized"]

ADATA = "expression.zarr"  # recorded in every sparse-matrix@1 version: never rename
BY_GENE = "by_gene.zarr"
NNZ_PER_CHUNK = 1 << 20  # 1 Mi values: 4 MiB of float32 per chunk before compression
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def _encoding(kind: str, version: str = "0.1.0") -> dict[str, Any]:
    return {"encoding-type": kind, "encoding-version": version}


class _Appender:
    """Append to a 1-D Zarr array in whole chunks (partial chunks stay in memory)."""

    def __init__(self, group: zarr.Group, name: str, dtype: np.dtype[Any], chunk: int) -> None:
        self.array = group.create_array(
            name, shape=(0,), dtype=dtype, chunks=(chunk,), compressors=[_COMPRESSOR]
        )
        self.chunk = chunk
        self.dtype = dtype
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.written = 0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.buffer.append(np.asarray(values, dtype=self.dtype))
        self.buffered += values.size
        if self.buffered >= self.chunk:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self.buffer:
            return
        # one piece (a whole block handed over) is written as is, not copied first
        joined = self.buffer[0] if len(self.buffer) == 1 else np.concatenate(self.buffer)
        n = joined.size if final else (joined.size // self.chunk) * self.chunk
        if n:
            self.array.resize((self.written + n,))
            self.array[self.written : self.written + n] = joined[:n]
            self.written += n
        rest = joined[n:].copy()  # a view would keep the whole previous block alive
        self.buffer = [rest] if rest.size else []
        self.buffered = rest.size

    def close(self) -> int:
        self._flush(final=True)
        return self.written


@dataclass(frozen=True)
class StoreSummary:
    """What the writer saw while composing (advisory; validation recomputes with Dask)."""

    n_obs: int
    n_vars: int
    nnz: int
    dtype: str


def _sparse(block: sp.spmatrix | sp.sparray | np.ndarray) -> sp.csr_matrix:
    if isinstance(block, np.ndarray):
        return sp.csr_matrix(block)
    return sp.csr_matrix(block)


class SparseMatrixWriter:
    """Stream a matrix into a new sparse-matrix store.

    Parameters
    ----------
    root
        The data root.
    path
        The (new, empty) version directory path on the root's file system.
    orientation
        ``"cells"`` when the reader yields blocks of rows (cells/samples) and knows the
        genes up front; ``"genes"`` when it yields blocks of genes (bulk count tables)
        and knows the samples up front.
    obs, var
        The axis known up front (``var`` for ``cells``, ``obs`` for ``genes``).
    value_kind
        ``counts`` or ``normalized``.
    rows_per_block, genes_per_block
        Tile size for the axis the reader does not block.
    scratch
        Local directory for tiles (default: a temporary directory, removed on close).
    lognorm_target_sum
        For counts, ``var["mean_lognorm"]`` gets each gene's mean of the counts
        normalised to this total per cell and ``log1p``-transformed (what gene-set
        scoring bins genes by), computed during the gene-major pass.
    design
        The study design, one row per sample indexed by ``sample_id`` (the catalog's
        sample sheet). Its columns (subject, phase, timepoint, treatment, response,
        batch, site, annotations) are written into ``obs`` by each row's
        ``sample_id``, so that ``anndata.read_zarr`` users get the design; a column the
        reader also produced is replaced by the sample sheet's.
    adata, by_gene
        Where the AnnData group and the gene-major copy go inside ``path`` (default
        ``expression.zarr`` and ``by_gene.zarr``; a SpatialData store puts its table at
        ``spatialdata.zarr/tables/table``). The parent groups must exist.
    categorical
        ``obs`` columns stored as categoricals over all blocks' values (blocks arrive
        with their own categories; SpatialData's region column must be categorical).
    """

    def __init__(
        self,
        root: DataRoot,
        path: str,
        *,
        orientation: Literal["cells", "genes"],
        obs: pd.DataFrame | None = None,
        var: pd.DataFrame | None = None,
        value_kind: ValueKind,
        rows_per_block: int = 8192,
        genes_per_block: int = 1024,
        scratch: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        lognorm_target_sum: float = 1e4,
        design: pd.DataFrame | None = None,
        adata: str = ADATA,
        by_gene: str = BY_GENE,
        categorical: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.adata = adata
        self.by_gene = by_gene
        self.categorical = categorical
        self.design = design
        self.path = path
        self.orientation = orientation
        self.value_kind = value_kind
        self.rows_per_block = rows_per_block
        self.genes_per_block = genes_per_block
        self.metadata = dict(metadata or {})
        self.lognorm_target_sum = float(lognorm_target_sum)
        self._scratch = Path(tempfile.mkdtemp(prefix="resistomics-tiles-", dir=scratch))
        self._obs_parts: list[pd.DataFrame] = [] if obs is None else [obs]
        self._var_parts: list[pd.DataFrame] = [] if var is None else [var]
        if orientation == "cells" and var is None:
            raise ValueError("orientation='cells' needs var up front")
        if orientation == "genes" and obs is None:
            raise ValueError("orientation='genes' needs obs up front")
        fixed = var if orientation == "cells" else obs
        assert fixed is not None
        n_fixed = len(fixed)
        step = genes_per_block if orientation == "cells" else rows_per_block
        self._fixed_bounds = [(s, min(s + step, n_fixed)) for s in range(0, n_fixed, step)] or [
            (0, 0)
        ]
        self._n_streamed = 0
        self._n_blocks = 0
        self._float32_exact = True
        self._nnz = 0
        self._closed = False

    # -- streaming ---------------------------------------------------------------------

    def _tile_path(self, r: int, g: int) -> Path:
        return self._scratch / f"r{r:06d}_g{g:06d}.npz"

    def add(self, block: sp.spmatrix | sp.sparray | np.ndarray, labels: pd.DataFrame) -> None:
        """Add the next block along the streamed axis with its rows of obs (or var).

        For ``orientation="cells"`` the block is cells x genes; for ``"genes"`` it is
        genes x samples, as count tables hold it.
        """
        m = _sparse(block)
        if m.data.size and self._float32_exact:
            with np.errstate(invalid="ignore", over="ignore"):
                self._float32_exact = bool(
                    np.array_equal(m.data.astype(np.float32), m.data, equal_nan=True)
                )
        if self.orientation == "cells":
            expected = sum(b - a for a, b in self._fixed_bounds)
            if m.shape != (len(labels), expected):
                raise ValueError(f"block shape {m.shape} != ({len(labels)}, {expected})")
            m = m.tocsc()
            for g, (a, b) in enumerate(self._fixed_bounds):
                sp.save_npz(self._tile_path(self._n_blocks, g), m[:, a:b].tocsr(), compressed=False)
            self._obs_parts.append(labels)
        else:
            # gene blocks arrive as the file holds them: genes x samples
            m = m.T.tocsr()
            expected = sum(b - a for a, b in self._fixed_bounds)
            if m.shape != (expected, len(labels)):
                raise ValueError(f"block shape {m.shape} != ({expected}, {len(labels)})")
            for r, (a, b) in enumerate(self._fixed_bounds):
                sp.save_npz(self._tile_path(r, self._n_blocks), m[a:b, :].tocsr(), compressed=False)
            self._var_parts.append(labels)
        self._n_streamed += m.shape[0] if self.orientation == "cells" else m.shape[1]
        self._n_blocks += 1
        self._nnz += m.nnz

    # -- composing ---------------------------------------------------------------------

    def close(self) -> StoreSummary:
        """Compose both layouts and write obs/var; the store is complete on return."""
        try:
            return self._compose()
        finally:
            self.abort_scratch()

    def abort_scratch(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _compose(self) -> StoreSummary:
        if self._closed:
            raise RuntimeError("writer already closed")
        self._closed = True
        obs = pd.concat(self._obs_parts) if self._obs_parts else pd.DataFrame(index=[])
        var = pd.concat(self._var_parts) if self._var_parts else pd.DataFrame(index=[])
        n_obs, n_vars = len(obs), len(var)
        if self.orientation == "cells":
            n_rb, n_gb = self._n_blocks, len(self._fixed_bounds)
        else:
            n_rb, n_gb = len(self._fixed_bounds), self._n_blocks
        dtype = np.dtype(np.float32 if self._float32_exact else np.float64)
        # indices and indptr share one dtype (scipy and scanpy refuse mixed ones): int32
        # while every index and offset fits, else int64.
        small = max(n_obs, n_vars, self._nnz) < 2**31 - 1
        index_dtype = np.dtype(np.int32 if small else np.int64)

        group = zarr.open_group(
            self.root.mapper(self.path + "/" + self.adata), mode="w-", zarr_format=3
        )
        group.attrs.update(_encoding("anndata"))

        # cell-major X, then the gene-major copy, each composed one block at a time
        x = group.create_group(
            "X", attributes={**_encoding("csr_matrix"), "shape": [n_obs, n_vars]}
        )
        rows = (
            _join_minor([sp.load_npz(self._tile_path(r, g)) for g in range(n_gb)])
            for r in range(n_rb)
        )
        nnz, totals, detected, _ = _write_compressed(x, rows, dtype=dtype, index_dtype=index_dtype)
        bg = zarr.open_group(
            self.root.mapper(self.path + "/" + self.by_gene), mode="w-", zarr_format=3
        )
        bg.attrs.update({**_encoding("csc_matrix"), "shape": [n_obs, n_vars]})
        lognorm = (totals, self.lognorm_target_sum) if self.value_kind == "counts" else None
        cols = (
            _join_minor([sp.load_npz(self._tile_path(r, g)).tocsc() for r in range(n_rb)])
            for g in range(n_gb)
        )
        _, gene_totals, gene_cells, lognorm_sums = _write_compressed(
            bg, cols, dtype=dtype, index_dtype=index_dtype, lognorm=lognorm
        )

        obs = _with_design(obs, self.design)
        for column in self.categorical:
            obs[column] = pd.Categorical(obs[column].astype(str))
        var = var.copy()
        obs["total_counts"] = totals
        obs["n_genes_by_counts"] = detected
        var["total_counts"] = gene_totals
        var["n_cells_by_counts"] = gene_cells
        var["mean"] = gene_totals / max(n_obs, 1)
        if lognorm_sums is not None:
            var["mean_lognorm"] = lognorm_sums / max(n_obs, 1)
            self.metadata["lognorm_target_sum"] = self.lognorm_target_sum
        meta = {"value_kind": self.value_kind, "dtype": str(dtype), **self.metadata}

        def small_elements(g: zarr.Group) -> None:
            from anndata.io import write_elem

            _write_frame(g, "obs", obs)
            _write_frame(g, "var", var)
            for empty in ("layers", "obsm", "obsp", "varm", "varp"):
                g.create_group(empty, attributes=_encoding("dict"))
            write_elem(g, "uns", {"resistomics": {k: str(v) for k, v in meta.items()}})

        _write_composed(self.root, self.path + "/" + self.adata, small_elements)
        bg.attrs.update({"value_kind": self.value_kind, "metadata": meta, "layout_version": "1"})
        return StoreSummary(n_obs=n_obs, n_vars=n_vars, nnz=int(nnz), dtype=str(dtype))


def _join_minor(parts: list[Any]) -> sp.csr_matrix | sp.csc_matrix:
    """Join CSR tiles side by side (or CSC tiles top to bottom) into one block.

    scipy's ``hstack`` of CSR (``vstack`` of CSC) goes through COO with int64
    coordinates, about five times the block in memory; placing each tile's values
    straight into the joined arrays costs the block twice (tiles + result), which is
    what bounds the writer's peak memory.
    """
    fmt = parts[0].format
    major = parts[0].shape[0] if fmt == "csr" else parts[0].shape[1]
    widths = [p.shape[1] if fmt == "csr" else p.shape[0] for p in parts]
    counts = [np.diff(p.indptr) for p in parts]
    indptr = np.zeros(major + 1, dtype=np.int64)
    np.cumsum(np.sum(counts, axis=0, dtype=np.int64), out=indptr[1:])
    nnz = int(indptr[-1])
    idx = np.dtype(np.int32 if max(nnz, sum(widths)) < 2**31 - 1 else np.int64)
    data = np.empty(nnz, dtype=np.result_type(*(p.dtype for p in parts)))
    indices = np.empty(nnz, dtype=idx)
    fill = indptr[:-1].copy()  # where the next value of each major element goes
    offset = 0
    for part, count, width in zip(parts, counts, widths, strict=True):
        if part.nnz:
            dest = np.repeat(fill - part.indptr[:-1], count) + np.arange(part.nnz)
            data[dest] = part.data
            indices[dest] = part.indices + offset
        fill += count
        offset += width
    shape = (major, offset) if fmt == "csr" else (offset, major)
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    return cls((data, indices, indptr.astype(idx)), shape=shape)


def _write_compressed(
    group: zarr.Group,
    blocks: Iterator[sp.csr_matrix | sp.csc_matrix],
    *,
    dtype: np.dtype[Any],
    index_dtype: np.dtype[Any],
    lognorm: tuple[np.ndarray, float] | None = None,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None]:
    """Append compressed blocks (all CSR rows or all CSC columns) as data/indices/indptr.

    Returns the number of stored values and, per major-axis element (row of CSR, column
    of CSC), its sum and its count of stored non-zeros. With ``lognorm=(library_sizes,
    target_sum)`` (CSC only) also each gene's sum of ``log1p(x / (L / target_sum))``,
    computed as :func:`resistomics.signatures.log_normalize` does, so gene means of the
    normalised matrix are known without another pass.
    """
    data = _Appender(group, "data", dtype, NNZ_PER_CHUNK)
    indices = _Appender(group, "indices", index_dtype, NNZ_PER_CHUNK)
    ptr_parts = [np.zeros(1, dtype=np.int64)]
    sums: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    norm_sums: list[np.ndarray] = []
    offset = 0
    for block in blocks:
        block.sort_indices()
        data.add(block.data)
        indices.add(block.indices)
        ptr_parts.append(block.indptr[1:].astype(np.int64) + offset)
        offset += block.nnz
        axis = 1 if block.format == "csr" else 0
        sums.append(np.asarray(block.sum(axis=axis), dtype=np.float64).ravel())
        counts.append(np.diff(block.indptr).astype(np.int64))
        if lognorm is not None:
            libs, target = lognorm
            out = np.dtype(np.float64 if dtype == np.float64 else np.float32)
            scale = np.asarray(libs, dtype=out) / out.type(target)
            scale = scale + (scale == 0)
            # bad input (negative counts) gives NaN here; validation quarantines it later
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.log1p(block.data.astype(out) / scale[block.indices]).astype(np.float64)
            norm = sp.csc_matrix((values, block.indices, block.indptr), shape=block.shape)
            norm_sums.append(np.asarray(norm.sum(axis=0), dtype=np.float64).ravel())
            del values, norm
        del block  # free it before the generator composes the next one
    nnz = data.close()
    indices.close()
    indptr = np.concatenate(ptr_parts).astype(index_dtype)
    group.create_array(
        "indptr",
        data=indptr,
        chunks=(min(max(len(indptr), 1), 1 << 20),),
        compressors=[_COMPRESSOR],
    )

    def joined(parts: list[np.ndarray], kind: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=kind)

    return (
        nnz,
        joined(sums, np.float64),
        joined(counts, np.int64),
        joined(norm_sums, np.float64) if lognorm is not None else None,
    )


def _with_design(obs: pd.DataFrame, design: pd.DataFrame | None) -> pd.DataFrame:
    """``obs`` with the design columns of each row's sample (see the writer's ``design``)."""
    obs = obs.copy()
    if design is None or design.empty or "sample_id" not in obs.columns:
        return obs
    columns = design.drop(columns=["sample_id"], errors="ignore")
    joined = columns.reindex(obs["sample_id"].astype(str).to_numpy())
    for c in joined.columns:
        obs[str(c)] = joined[c].to_numpy()
    return obs


def _write_composed(root: DataRoot, path: str, write: Callable[[zarr.Group], None]) -> None:
    """Compose small elements (obs, var, uns) in memory, then store each file once.

    anndata's ``write_elem`` straight onto an object store costs about a dozen requests
    per node (existence checks of the node and its parents, a listing when a key is
    missing, one rewrite of ``zarr.json`` per attribute set): 1,570 requests for a
    200-gene table. The same zarr code writes the same keys into a memory store here,
    and each key (metadata document or chunk) is then one PUT under ``path``, next to
    the group's own ``zarr.json`` (kept as written). The bytes on disk are the same.
    """
    held: dict[str, Any] = {}
    write(zarr.open_group(zarr.storage.MemoryStore(store_dict=held), mode="w", zarr_format=3))
    files = {
        posixpath.join(path, key): buffer.to_bytes()
        for key, buffer in held.items()
        if key != "zarr.json"
    }
    if root.protocol in ("file", "local"):
        for target, data in files.items():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
    else:
        root.fs.pipe(files)


def _write_frame(group: zarr.Group, key: str, frame: pd.DataFrame) -> None:
    from anndata.io import write_elem

    frame = frame.copy()
    frame.index = frame.index.astype(str)
    frame.index.name = None
    for c in frame.columns:
        values = frame[c]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            # text as categories, missing values missing (not the string "None")
            frame[c] = pd.Categorical(values.where(values.isna(), values.astype(str)))
    write_elem(group, key, frame)


# -- reading -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _open_array(url: str, options_json: str, name: str) -> zarr.Array:
    options = json.loads(options_json)
    group, _, array = name.rpartition("/")
    full = f"{url}/{group}"
    if "://" in url:
        store: Any = zarr.storage.FsspecStore.from_url(
            full, storage_options=options, read_only=True
        )
    else:
        store = zarr.storage.LocalStore(full, read_only=True)
    return zarr.open_array(store, path=array, mode="r")


def _load_rows(
    url: str, options_json: str, prefix: str, start: int, stop: int, n_other: int, fmt: str
) -> sp.csr_matrix | sp.csc_matrix:
    indptr = np.asarray(_open_array(url, options_json, f"{prefix}/indptr")[start : stop + 1])
    lo, hi = int(indptr[0]), int(indptr[-1])
    data = np.asarray(_open_array(url, options_json, f"{prefix}/data")[lo:hi])
    indices = np.asarray(_open_array(url, options_json, f"{prefix}/indices")[lo:hi])
    ptr = (indptr - lo).astype(np.int64)
    n = stop - start
    if fmt == "csr":
        return sp.csr_matrix((data, indices, ptr), shape=(n, n_other))
    return sp.csc_matrix((data, indices, ptr), shape=(n_other, n))


def _partition(indptr: np.ndarray, target_nnz: int, max_len: int) -> list[tuple[int, int]]:
    """Split rows (or columns) into contiguous blocks of about ``target_nnz`` values."""
    n = len(indptr) - 1
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < n:
        goal = indptr[start] + target_nnz
        stop = int(np.searchsorted(indptr, goal, side="right")) - 1
        stop = max(start + 1, min(stop, start + max_len, n))
        bounds.append((start, stop))
        start = stop
    return bounds or [(0, 0)]


@dataclass(frozen=True)
class SparseMatrixStore:
    """A published (or staged) sparse-matrix store, opened lazily.

    ``cells()`` and ``genes()`` return dask arrays of shape (n_obs, n_vars) whose
    blocks are ``scipy.sparse`` CSR row blocks and CSC column blocks respectively; each
    block is read by the task that needs it, so nothing is loaded up front.
    """

    url: str
    storage_options: dict[str, Any]
    obs: pd.DataFrame
    var: pd.DataFrame
    dtype: np.dtype[Any]
    value_kind: ValueKind
    metadata: dict[str, Any] = field(default_factory=dict)
    adata: str = ADATA
    by_gene: str = BY_GENE

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.obs), len(self.var))

    def _opts(self) -> str:
        return json.dumps(self.storage_options, sort_keys=True)

    def _indptr(self, prefix: str) -> np.ndarray:
        return np.asarray(_open_array(self.url, self._opts(), f"{prefix}/indptr")[:])

    def cells(self, *, target_nnz: int = 8 << 20, max_rows: int = 65536) -> da.Array:
        """Cell-major dask array: CSR row blocks of about ``target_nnz`` values."""
        bounds = _partition(self._indptr(f"{self.adata}/X"), target_nnz, max_rows)
        n_vars = self.shape[1]
        opts = self._opts()
        meta = sp.csr_matrix((0, n_vars), dtype=self.dtype)
        blocks = [
            da.from_delayed(
                dask.delayed(_load_rows, pure=True)(
                    self.url, opts, f"{self.adata}/X", a, b, n_vars, "csr"
                ),
                shape=(b - a, n_vars),
                dtype=self.dtype,
                meta=meta,
            )
            for a, b in bounds
        ]
        return da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]

    def genes(self, *, target_nnz: int = 8 << 20, max_genes: int = 4096) -> da.Array:
        """Gene-major dask array: CSC column blocks of about ``target_nnz`` values."""
        prefix = self.by_gene
        bounds = _partition(self._indptr(prefix), target_nnz, max_genes)
        n_obs = self.shape[0]
        opts = self._opts()
        meta = sp.csc_matrix((n_obs, 0), dtype=self.dtype)
        blocks = [
            da.from_delayed(
                dask.delayed(_load_rows, pure=True)(self.url, opts, prefix, a, b, n_obs, "csc"),
                shape=(n_obs, b - a),
                dtype=self.dtype,
                meta=meta,
            )
            for a, b in bounds
        ]
        return da.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]

    def iter_row_blocks(self, *, target_nnz: int = 8 << 20) -> Iterator[sp.csr_matrix]:
        """Row blocks in order, for single-process consumers."""
        opts = self._opts()
        for a, b in _partition(self._indptr(f"{self.adata}/X"), target_nnz, 65536):
            yield _load_rows(self.url, opts, f"{self.adata}/X", a, b, self.shape[1], "csr")


def open_sparse_matrix(
    root: DataRoot, path: str, *, adata: str = ADATA, by_gene: str = BY_GENE
) -> SparseMatrixStore:
    """Open the sparse-matrix store in the version directory ``path``, lazily.

    ``adata`` and ``by_gene`` locate its two groups inside ``path`` (as written by
    :class:`SparseMatrixWriter`).
    """
    from anndata.io import read_elem

    group = zarr.open_group(root.mapper(f"{path}/{adata}"), mode="r")
    obs = read_elem(group["obs"])
    var = read_elem(group["var"])
    if not isinstance(obs, pd.DataFrame) or not isinstance(var, pd.DataFrame):
        raise StorageError(f"{path}: obs/var are not AnnData dataframes")
    meta: dict[str, Any] = dict(
        zarr.open_group(root.mapper(f"{path}/{by_gene}"), mode="r").attrs["metadata"]  # type: ignore[arg-type]
    )
    data = zarr.open_array(root.mapper(f"{path}/{adata}"), path="X/data", mode="r")
    dtype = np.dtype(data.dtype)
    url = root.to_url(path)
    return SparseMatrixStore(
        url=url,
        storage_options=dict(root.storage_options),
        obs=obs,
        var=var,
        dtype=dtype,
        value_kind="normalized" if meta.get("value_kind") == "normalized" else "counts",
        metadata=meta,
        adata=adata,
        by_gene=by_gene,
    )


# -- export ----------------------------------------------------------------------------

#: Elements of the AnnData store copied as they are (small: frames and dicts).
_SMALL_ELEMENTS = ("obs", "var", "uns", "layers", "obsm", "obsp", "varm", "varp")


def export_h5ad(
    root: DataRoot,
    path: str,
    output: str | Path,
    *,
    elements_per_block: int = 1 << 22,
    adata: str = ADATA,
) -> StoreSummary:
    """Write the sparse-matrix store in the version directory ``path`` as an ``.h5ad`` file.

    The file is what ``anndata.write_h5ad`` would write for the store's AnnData (CSR
    ``X``, obs with the study design, var, uns), but ``X`` is copied
    ``elements_per_block`` stored values at a time (48 MB for float32 values and int32
    indices at the default), so exporting a store larger than memory works; reading the
    file back with ``anndata.read_h5ad`` loads all of ``X`` (about 8-12 bytes per
    non-zero), which ``backed="r"`` avoids. Written under a temporary name and renamed,
    so a failed export leaves no partial file.

    Returns
    -------
    StoreSummary
        Shape, stored values and value dtype of ``X``.
    """
    import h5py
    from anndata.io import read_elem, write_elem

    source = zarr.open_group(root.mapper(f"{path}/{adata}"), mode="r")
    x = source["X"]
    assert isinstance(x, zarr.Group)
    shape = [int(n) for n in x.attrs["shape"]]  # type: ignore[union-attr, arg-type]
    out = Path(output)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with h5py.File(partial, "w") as target:
            target.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
            for key in _SMALL_ELEMENTS:
                if key in source:
                    write_elem(target, key, read_elem(source[key]))
            group = target.create_group("X")
            group.attrs.update(
                {"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": shape}
            )
            for name in ("data", "indices", "indptr"):
                array = x[name]
                assert isinstance(array, zarr.Array)
                dataset = group.create_dataset(
                    name,
                    shape=array.shape,
                    dtype=array.dtype,
                    chunks=(min(max(array.shape[0], 1), 1 << 16),) if array.shape[0] else None,
                    compression="gzip" if array.shape[0] else None,
                )
                for start in range(0, array.shape[0], elements_per_block):
                    stop = min(start + elements_per_block, array.shape[0])
                    dataset[start:stop] = array[start:stop]
            nnz = int(x["data"].shape[0])  # type: ignore[union-attr]
            dtype = str(x["data"].dtype)  # type: ignore[union-attr]
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return StoreSummary(n_obs=shape[0], n_vars=shape[1], nnz=nnz, dtype=dtype)
