"""Layout ``feature-matrix@1``: dense features x samples matrices in Zarr v3, feature blocks.

For data with one value (or a few) per feature and sample and few zeros: CpG sites x
samples (methylated and total read counts), metabolites x samples (abundances, NaN where
missing, with a code saying why). One version directory holds::

    matrix.zarr/                Zarr v3 group; its attributes declare the layout
        <array>                 2-D, (n_features, n_samples): e.g. methylated, total (int32),
                                abundance (float64, NaN missing), missing_reason (int8)
        feature_arrays/<name>   optional 1-D per-feature arrays (n_features,)
        sample_arrays/<name>    optional 1-D per-sample arrays (n_samples,)
    features.parquet            the feature index, row i = feature i; any columns
                                (contig, position, strand | id, name, mz, rt, class)
    samples.parquet             sample_id (column j = sample j) + design columns

Every 2-D array is chunked ``(features_per_chunk, samples_per_chunk)`` (defaults 16,384
x 64: 8 MiB of float64, 4 MiB of int32 per chunk before compression), so per-feature
computations (DML tests, differential abundance) stream feature blocks of all samples
and a region query reads only its blocks. Every chunk is stored, also one that holds
only the fill value (``write_empty_chunks``), so a missing chunk file is damage, never
"all zero".

Writing streams: :class:`FeatureMatrixWriter` takes feature blocks of any size in order
(a reader's batches, a sorted merge of per-sample files), keeps at most one chunk row of
features plus the block in hand, and writes whole chunks, so no two writes touch one
chunk and peak memory is one block, never the matrix. The feature index goes to Parquet
one row group per chunk row. The group's attributes (shape, arrays, sortedness) are
written last: a store cut short by a crash does not open.

``sorted_by`` declares the order of the feature index: ``("contig", "position")`` means
each contig's features form one run (contigs in any order: genome order is not
lexical) with positions non-decreasing inside it; ``("mz",)`` means non-decreasing
m/z. The writer refuses blocks that break the declaration, so readers of the store may
rely on it (binary search of a region).
"""

from __future__ import annotations

import functools
import json
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from zarr.codecs import BloscCodec

from resistomics.errors import StorageError
from resistomics.storage._root import DataRoot

__all__ = [
    "FEATURES",
    "MATRIX",
    "SAMPLES",
    "FeatureBlock",
    "FeatureMatrix",
    "FeatureMatrixSummary",
    "FeatureMatrixWriter",
    "export_feature_matrix_h5ad",
    "inspect_feature_matrix",
    "open_feature_matrix",
    "write_feature_matrix",
]

MATRIX = "matrix.zarr"
FEATURES = "features.parquet"
SAMPLES = "samples.parquet"
ENCODING = "feature-matrix"
ENCODING_VERSION = 1
FEATURES_PER_CHUNK = 16384
SAMPLES_PER_CHUNK = 64
_FEATURE_ARRAYS = "feature_arrays"
_SAMPLE_ARRAYS = "sample_arrays"
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
_WRITE: Any = {"write_empty_chunks": True}  # zarr ArrayConfigParams


@dataclass(frozen=True)
class FeatureBlock:
    """The next features of a matrix, in index order.

    Attributes
    ----------
    features
        Their rows of the feature index (any columns; the same columns in every block).
    arrays
        Each declared 2-D array's rows for these features: shape
        ``(len(features), n_samples)``.
    feature_arrays
        Each declared per-feature array's values for these features.
    """

    features: pd.DataFrame
    arrays: Mapping[str, npt.ArrayLike]
    feature_arrays: Mapping[str, npt.ArrayLike] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureMatrixSummary:
    """What the writer stored."""

    n_features: int
    n_samples: int
    arrays: dict[str, str]  # name -> dtype
    chunks: tuple[int, int]


def _fill(dtype: np.dtype[Any]) -> Any:
    return np.nan if dtype.kind == "f" else 0


def _cast(what: str, values: npt.ArrayLike, dtype: np.dtype[Any]) -> np.ndarray:
    """``values`` as ``dtype``, refusing a cast that would change a value."""
    arr = np.asarray(values)
    if arr.dtype == dtype:
        return arr
    if dtype.kind in "iu":
        if arr.dtype.kind == "f":
            if arr.size and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
                raise ValueError(f"{what}: non-integer values cannot be stored as {dtype}")
        elif arr.dtype.kind not in "iub":
            raise ValueError(f"{what}: {arr.dtype} values cannot be stored as {dtype}")
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ValueError(f"{what}: values outside the range of {dtype}")
    elif dtype.kind == "f" and arr.dtype.kind not in "iubf":
        raise ValueError(f"{what}: {arr.dtype} values cannot be stored as {dtype}")
    return arr.astype(dtype)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for messages and set keys)."""
    return value.item() if isinstance(value, np.generic) else value


class _SortCheck:
    """Checks that streamed feature rows follow the declared ``sorted_by`` order."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.prefix = self.columns[:-1]
        self.done: set[tuple[Any, ...]] = set()  # prefix groups already left behind
        self.last: pd.DataFrame | None = None  # the previous block's last row
        self.seen = 0  # rows before the current block

    def check(self, features: pd.DataFrame) -> None:
        if not self.columns or features.empty:
            self.seen += len(features)
            return
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise ValueError(f"sorted_by names columns the features lack: {missing}")
        keys = features[self.columns].reset_index(drop=True)
        head = 0 if self.last is None else 1
        if self.last is not None:
            keys = pd.concat([self.last, keys], ignore_index=True)
        values = keys[self.columns[-1]].to_numpy()
        if self.prefix:
            p = keys[self.prefix]
            changed = (p != p.shift()).any(axis=1).to_numpy(copy=True)
            changed[0] = self.last is None
            for i in np.flatnonzero(changed):
                group = tuple(_plain(x) for x in p.iloc[i])
                if i > 0:
                    self.done.add(tuple(_plain(x) for x in p.iloc[i - 1]))
                if group in self.done:
                    raise ValueError(
                        f"feature {self.seen + i - head}: {dict(zip(self.prefix, group, strict=True))} "
                        f"appears again after other values (sorted_by {self.columns})"
                    )
        else:
            changed = np.zeros(len(keys), dtype=bool)
        down = np.flatnonzero(~changed[1:] & (values[1:] < values[:-1]))
        if down.size:
            at = int(down[0]) + 1
            raise ValueError(
                f"feature {self.seen + at - head}: {self.columns[-1]} {_plain(values[at])!r} "
                f"after {_plain(values[at - 1])!r} (sorted_by {self.columns})"
            )
        self.last = keys.iloc[[-1]].reset_index(drop=True)
        self.seen += len(features)


class FeatureMatrixWriter:
    """Stream feature blocks into a new ``feature-matrix@1`` store.

    Parameters
    ----------
    root, path
        The data root and the (new, empty) version directory.
    samples
        One row per sample, in column order of the matrix: ``sample_id`` (unique) and
        any design columns (subject, phase, injection order, sample type...).
    arrays
        The 2-D arrays and their dtypes, e.g. ``{"methylated": "int32", "total":
        "int32"}`` or ``{"abundance": "float64", "missing_reason": "int8"}``. Float
        arrays are NaN where a block leaves nothing, integer arrays 0.
    feature_arrays
        Optional 1-D per-feature arrays and their dtypes (filled by the blocks).
    sample_arrays
        Optional 1-D per-sample arrays, known up front (values, length ``n_samples``).
    array_attributes
        JSON attributes per array, e.g. the codes of a missing-reason array
        (``{"missing_reason": {"codes": {"0": "measured", "1": "below-detection"}}}``).
    sorted_by
        Columns the feature index is sorted by (see the module docstring); checked.
    feature_id
        The feature index column that names each feature (unique), if any: what
        AnnData export uses as ``var_names``.
    primary
        The array AnnData export writes as ``X`` (the others become layers).
    features_per_chunk, samples_per_chunk
        The chunk shape of every 2-D array.
    feature_schema
        Arrow schema of the feature index (default: from the first block; give it when
        a column may be all missing in the first block).
    metadata
        JSON metadata kept with the store (value kind, source, code version...).
    """

    def __init__(
        self,
        root: DataRoot,
        path: str,
        *,
        samples: pd.DataFrame,
        arrays: Mapping[str, npt.DTypeLike],
        feature_arrays: Mapping[str, npt.DTypeLike] | None = None,
        sample_arrays: Mapping[str, npt.ArrayLike] | None = None,
        array_attributes: Mapping[str, Mapping[str, Any]] | None = None,
        sorted_by: Sequence[str] = (),
        feature_id: str | None = None,
        primary: str | None = None,
        features_per_chunk: int = FEATURES_PER_CHUNK,
        samples_per_chunk: int = SAMPLES_PER_CHUNK,
        feature_schema: pa.Schema | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if "sample_id" not in samples.columns:
            raise ValueError("samples needs a sample_id column")
        ids = samples["sample_id"]
        if ids.isna().any() or ids.astype(str).duplicated().any():
            raise ValueError("sample_id must be unique and present for every sample")
        if not arrays:
            raise ValueError("a feature matrix needs at least one array")
        if features_per_chunk < 1 or samples_per_chunk < 1:
            raise ValueError("chunk sizes must be positive")
        if primary is not None and primary not in arrays:
            raise ValueError(f"primary {primary!r} is not one of the arrays {sorted(arrays)}")
        names = [*arrays, *(feature_arrays or {})]
        for name in names:
            if (
                not name
                or "/" in name
                or name.startswith(".")
                or name
                in (
                    _FEATURE_ARRAYS,
                    _SAMPLE_ARRAYS,
                )
            ):
                raise ValueError(f"array name {name!r} is not allowed")
        self.root = root
        self.path = path
        self.samples = samples.assign(sample_id=ids.astype(str)).reset_index(drop=True)
        self.n_samples = len(self.samples)
        self.dtypes = {k: np.dtype(v) for k, v in arrays.items()}
        self.feature_dtypes = {k: np.dtype(v) for k, v in (feature_arrays or {}).items()}
        self.sample_values = {k: np.asarray(v) for k, v in (sample_arrays or {}).items()}
        for k, v in self.sample_values.items():
            if v.shape != (self.n_samples,):
                raise ValueError(
                    f"sample array {k!r}: shape {v.shape}, expected ({self.n_samples},)"
                )
        self.array_attributes = {k: dict(v) for k, v in (array_attributes or {}).items()}
        self.sorted_by = tuple(sorted_by)
        self.feature_id = feature_id
        self.primary = primary
        self.chunks = (int(features_per_chunk), int(samples_per_chunk))
        self.metadata = dict(metadata or {})
        self._schema = feature_schema
        self._sort = _SortCheck(self.sorted_by)
        self._pending: list[FeatureBlock] = []
        self._pending_rows = 0
        self._written = 0
        self._ids: set[str] | None = set() if feature_id else None
        self._parquet: pq.ParquetWriter | None = None
        self._parquet_file: Any = None
        self._closed = False

        root.fs.makedirs(path, exist_ok=True)
        self._group = zarr.open_group(root.mapper(f"{path}/{MATRIX}"), mode="w-", zarr_format=3)
        self._arrays = {
            name: self._group.create_array(
                name,
                shape=(0, self.n_samples),
                dtype=dtype,
                chunks=self.chunks,
                fill_value=_fill(dtype),
                compressors=[_COMPRESSOR],
                dimension_names=("feature", "sample"),
                attributes=self.array_attributes.get(name, {}),
                config=_WRITE,
            )
            for name, dtype in self.dtypes.items()
        }
        by_feature = self._group.create_group(_FEATURE_ARRAYS)
        self._feature_arrays = {
            name: by_feature.create_array(
                name,
                shape=(0,),
                dtype=dtype,
                chunks=(self.chunks[0],),
                fill_value=_fill(dtype),
                compressors=[_COMPRESSOR],
                dimension_names=("feature",),
                attributes=self.array_attributes.get(name, {}),
                config=_WRITE,
            )
            for name, dtype in self.feature_dtypes.items()
        }
        by_sample = self._group.create_group(_SAMPLE_ARRAYS)
        for name, values in self.sample_values.items():
            by_sample.create_array(
                name,
                data=values,
                chunks=(max(self.n_samples, 1),),
                compressors=[_COMPRESSOR],
                dimension_names=("sample",),
                attributes=self.array_attributes.get(name, {}),
            )

    # -- streaming ---------------------------------------------------------------------

    def add(self, block: FeatureBlock) -> None:
        """Add the next features (any number; in index order)."""
        if self._closed:
            raise RuntimeError("writer already closed")
        n = len(block.features)
        if set(block.arrays) != set(self.dtypes):
            raise ValueError(
                f"block arrays {sorted(block.arrays)} != declared {sorted(self.dtypes)}"
            )
        if set(block.feature_arrays) != set(self.feature_dtypes):
            raise ValueError(
                f"block feature arrays {sorted(block.feature_arrays)} != declared "
                f"{sorted(self.feature_dtypes)}"
            )
        arrays = {k: _cast(k, v, self.dtypes[k]) for k, v in block.arrays.items()}
        for k, v in arrays.items():
            if v.shape != (n, self.n_samples):
                raise ValueError(
                    f"array {k!r}: block shape {v.shape}, expected ({n}, {self.n_samples})"
                )
        per_feature = {
            k: _cast(k, v, self.feature_dtypes[k]) for k, v in block.feature_arrays.items()
        }
        for k, v in per_feature.items():
            if v.shape != (n,):
                raise ValueError(f"feature array {k!r}: shape {v.shape}, expected ({n},)")
        features = block.features.reset_index(drop=True)
        if self.feature_id is not None:
            if self.feature_id not in features.columns:
                raise ValueError(f"feature_id column {self.feature_id!r} is not in the features")
            ids = features[self.feature_id].astype(str)
            assert self._ids is not None
            dup = ids[ids.duplicated()].tolist() or [i for i in ids if i in self._ids]
            if dup:
                raise ValueError(f"feature_id {dup[0]!r} appears twice")
            self._ids.update(ids)
        self._sort.check(features)
        if n == 0:
            return
        self._pending.append(FeatureBlock(features, arrays, per_feature))
        self._pending_rows += n
        if self._pending_rows >= self.chunks[0]:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._pending:
            return
        step = self.chunks[0]
        n = self._pending_rows if final else (self._pending_rows // step) * step
        if n == 0:
            return

        def joined(get: Any) -> Any:
            parts = [get(b) for b in self._pending]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        start, stop = self._written, self._written + n
        rest_arrays: dict[str, np.ndarray] = {}
        for name, target in self._arrays.items():
            values = joined(lambda b, k=name: b.arrays[k])
            target.resize((stop, self.n_samples))
            target[start:stop, :] = values[:n]
            rest_arrays[name] = values[n:].copy()  # a view would keep the whole block alive
            del values
        rest_features: dict[str, np.ndarray] = {}
        for name, target in self._feature_arrays.items():
            values = joined(lambda b, k=name: b.feature_arrays[k])
            target.resize((stop,))
            target[start:stop] = values[:n]
            rest_features[name] = values[n:].copy()
        features = pd.concat([b.features for b in self._pending], ignore_index=True)
        self._write_features(features.iloc[:n])
        rest = features.iloc[n:].reset_index(drop=True)
        self._pending = [FeatureBlock(rest, rest_arrays, rest_features)] if len(rest) else []
        self._pending_rows = len(rest)
        self._written = stop

    def _write_features(self, features: pd.DataFrame) -> None:
        if self._schema is None:
            table = pa.Table.from_pandas(features, preserve_index=False)
            self._schema = table.schema
        else:
            try:
                table = pa.Table.from_pandas(features, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ValueError(
                    f"feature index block does not match the first one: {exc}"
                ) from None
        if self._parquet is None:
            self._parquet_file = self.root.fs.open(posixpath.join(self.path, FEATURES), "wb")
            meta = {
                **(self._schema.metadata or {}),
                b"resistomics.sorted_by": json.dumps(list(self.sorted_by)).encode(),
            }
            self._schema = self._schema.with_metadata(meta)
            self._parquet = pq.ParquetWriter(self._parquet_file, self._schema, compression="zstd")
        self._parquet.write_table(table.cast(self._schema), row_group_size=self.chunks[0])

    # -- closing -----------------------------------------------------------------------

    def close(self) -> FeatureMatrixSummary:
        """Write what is left, the samples table and the layout attributes."""
        if self._closed:
            raise RuntimeError("writer already closed")
        self._flush(final=True)
        self._closed = True
        if self._parquet is None:  # no features at all: an empty index, still a table
            empty = (
                self._schema.empty_table().to_pandas()
                if self._schema is not None
                else pd.DataFrame({c: pd.Series(dtype=object) for c in self.sorted_by})
            )
            self._write_features(empty)
        assert self._parquet is not None
        self._parquet.close()
        self._parquet_file.close()
        with self.root.fs.open(posixpath.join(self.path, SAMPLES), "wb") as f:
            pq.write_table(
                pa.Table.from_pandas(self.samples, preserve_index=False), f, compression="zstd"
            )
        shape = (self._written, self.n_samples)
        self._group.attrs.update(
            {
                "encoding-type": ENCODING,
                "encoding-version": ENCODING_VERSION,
                "shape": list(shape),
                "chunks": list(self.chunks),
                "arrays": {k: str(v) for k, v in self.dtypes.items()},
                "feature_arrays": {k: str(v) for k, v in self.feature_dtypes.items()},
                "sample_arrays": {k: str(v.dtype) for k, v in self.sample_values.items()},
                "sorted_by": list(self.sorted_by),
                "feature_id": self.feature_id,
                "primary": self.primary,
                "metadata": self.metadata,
            }
        )
        return FeatureMatrixSummary(
            n_features=shape[0],
            n_samples=shape[1],
            arrays={k: str(v) for k, v in self.dtypes.items()},
            chunks=self.chunks,
        )


def write_feature_matrix(
    root: DataRoot, path: str, blocks: Iterable[FeatureBlock], **options: Any
) -> FeatureMatrixSummary:
    """Write a ``feature-matrix@1`` store from an iterator of feature blocks.

    ``options`` are :class:`FeatureMatrixWriter`'s (``samples`` and ``arrays`` at least).
    The blocks are consumed one at a time: the matrix is never in memory.
    """
    writer = FeatureMatrixWriter(root, path, **options)
    for block in blocks:
        writer.add(block)
    return writer.close()


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureMatrix:
    """A ``feature-matrix@1`` store, opened lazily.

    The feature index and the samples table are read on first use; :meth:`array`
    returns dask arrays whose blocks cover whole stored chunks.
    """

    root: DataRoot
    path: str
    shape: tuple[int, int]
    chunks: tuple[int, int]
    arrays: dict[str, str]
    feature_arrays: dict[str, str]
    sample_arrays: dict[str, str]
    sorted_by: tuple[str, ...]
    feature_id: str | None
    primary: str | None
    metadata: dict[str, Any]

    @property
    def n_features(self) -> int:
        return self.shape[0]

    @property
    def n_samples(self) -> int:
        return self.shape[1]

    @functools.cached_property
    def features(self) -> pd.DataFrame:
        """The feature index (row i = feature i), as pandas."""
        with self.root.fs.open(posixpath.join(self.path, FEATURES), "rb") as f:
            return pq.read_table(f).to_pandas()

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """The samples table (row j = sample j): ``sample_id`` and design columns."""
        with self.root.fs.open(posixpath.join(self.path, SAMPLES), "rb") as f:
            return pq.read_table(f).to_pandas()

    def _zarr(self, name: str) -> zarr.Array:
        group = zarr.open_group(self.root.mapper(f"{self.path}/{MATRIX}"), mode="r")
        arr = group[name]
        assert isinstance(arr, zarr.Array)
        return arr

    def attributes(self, name: str) -> dict[str, Any]:
        """The JSON attributes of an array (e.g. the codes of a missing-reason array)."""
        if name in self.arrays:
            return dict(self._zarr(name).attrs)
        if name in self.feature_arrays:
            return dict(self._zarr(f"{_FEATURE_ARRAYS}/{name}").attrs)
        return dict(self._zarr(f"{_SAMPLE_ARRAYS}/{name}").attrs)

    def _block(self, features_per_block: int | None) -> int:
        step = self.chunks[0]
        want = features_per_block or step
        return max(step, -(-want // step) * step)

    def array(self, name: str, *, features_per_block: int | None = None) -> da.Array:
        """A 2-D array as a lazy dask array (features x samples).

        Each block holds ``features_per_block`` features (rounded up to whole stored
        chunks; default one chunk row) of every sample.
        """
        if name not in self.arrays:
            raise KeyError(f"no array {name!r} (arrays: {', '.join(self.arrays)})")
        samples = max(self.n_samples, 1)
        return da.from_zarr(self._zarr(name), chunks=(self._block(features_per_block), samples))

    def feature_array(self, name: str, *, features_per_block: int | None = None) -> da.Array:
        """A per-feature array as a lazy dask array, blocked like :meth:`array`."""
        if name not in self.feature_arrays:
            raise KeyError(f"no feature array {name!r}")
        return da.from_zarr(
            self._zarr(f"{_FEATURE_ARRAYS}/{name}"), chunks=(self._block(features_per_block),)
        )

    def sample_array(self, name: str) -> np.ndarray:
        """A per-sample array (small: read at once)."""
        if name not in self.sample_arrays:
            raise KeyError(f"no sample array {name!r}")
        return np.asarray(self._zarr(f"{_SAMPLE_ARRAYS}/{name}")[:])

    def feature_columns(self, columns: Sequence[str]) -> pa.Table:
        """Some columns of the feature index as an Arrow table.

        Cheaper than :attr:`features` for a large index: no pandas object column (a
        Python string per row) unless the caller asks for one.
        """
        with self.root.fs.open(posixpath.join(self.path, FEATURES), "rb") as f:
            table = pq.read_table(f, columns=list(columns))
        return table

    def read_rows(self, names: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of the 2-D arrays ``names`` (every sample), read now.

        For tasks that build their own row ranges (e.g. a block and its halo of
        neighbouring sites), so each task reads the chunks it needs itself.
        """
        return {n: np.asarray(self._zarr(n)[start:stop, :]) for n in names}

    def iter_blocks(
        self, names: Sequence[str] | None = None, *, features_per_block: int | None = None
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """``(start, stop, {array: values})`` per feature block, for one-process consumers."""
        names = list(names or self.arrays)
        opened = {n: self._zarr(n) for n in names}
        step = self._block(features_per_block)
        for start in range(0, self.n_features, step):
            stop = min(start + step, self.n_features)
            yield start, stop, {n: np.asarray(a[start:stop, :]) for n, a in opened.items()}


def open_feature_matrix(root: DataRoot, path: str) -> FeatureMatrix:
    """Open the ``feature-matrix@1`` store in the version directory ``path``.

    Raises
    ------
    StorageError
        When the directory holds no complete store of this layout.
    """
    try:
        group = zarr.open_group(root.mapper(f"{path}/{MATRIX}"), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise StorageError(f"{path}: no {MATRIX} ({exc})") from None
    attrs: dict[str, Any] = dict(group.attrs)
    if attrs.get("encoding-type") != ENCODING or "shape" not in attrs:
        raise StorageError(f"{path}/{MATRIX}: not a complete {ENCODING} store")
    if attrs.get("encoding-version") != ENCODING_VERSION:
        raise StorageError(
            f"{path}/{MATRIX}: {ENCODING} version {attrs.get('encoding-version')!r}, "
            f"this release reads {ENCODING_VERSION}"
        )
    shape = tuple(int(x) for x in attrs["shape"])
    chunks = tuple(int(x) for x in attrs["chunks"])
    return FeatureMatrix(
        root=root,
        path=path,
        shape=(shape[0], shape[1]),
        chunks=(chunks[0], chunks[1]),
        arrays=dict(attrs["arrays"]),
        feature_arrays=dict(attrs.get("feature_arrays") or {}),
        sample_arrays=dict(attrs.get("sample_arrays") or {}),
        sorted_by=tuple(attrs.get("sorted_by") or ()),
        feature_id=attrs.get("feature_id"),
        primary=attrs.get("primary"),
        metadata=dict(attrs.get("metadata") or {}),
    )


def _parquet_rows(root: DataRoot, path: str) -> int:
    with root.fs.open(path, "rb") as f:
        return int(pq.read_metadata(f).num_rows)


def inspect_feature_matrix(root: DataRoot, path: str) -> tuple[tuple[int, int], str]:
    """Check a store's structure against its declaration, reading no values.

    Every declared array must exist with the declared shape, dtype and chunks and have
    every chunk stored; the feature index must have one row per feature and the samples
    table one unique ``sample_id`` per sample. Returns the shape and a one-line
    description; raises :class:`~resistomics.errors.StorageError` naming the first
    mismatch (per-file digests are the manifest's job).
    """
    store = open_feature_matrix(root, path)
    nf, ns = store.shape

    def check(
        name: str, expected_shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...] | None
    ) -> None:
        try:
            arr = store._zarr(name)
        except KeyError:
            raise StorageError(f"{path}/{MATRIX}/{name}: declared but missing") from None
        if tuple(arr.shape) != expected_shape:
            raise StorageError(
                f"{path}/{MATRIX}/{name}: shape {tuple(arr.shape)}, the store declares {expected_shape}"
            )
        if str(arr.dtype) != dtype:
            raise StorageError(f"{path}/{MATRIX}/{name}: dtype {arr.dtype}, declared {dtype}")
        if chunks is not None and tuple(arr.chunks) != chunks:
            raise StorageError(
                f"{path}/{MATRIX}/{name}: chunks {tuple(arr.chunks)}, declared {chunks}"
            )
        if chunks is not None and arr.nchunks_initialized != arr.nchunks:
            raise StorageError(
                f"{path}/{MATRIX}/{name}: {arr.nchunks - arr.nchunks_initialized} of "
                f"{arr.nchunks} chunk(s) missing"
            )

    for name, dtype in store.arrays.items():
        check(name, (nf, ns), dtype, store.chunks)
    for name, dtype in store.feature_arrays.items():
        check(f"{_FEATURE_ARRAYS}/{name}", (nf,), dtype, (store.chunks[0],))
    for name, dtype in store.sample_arrays.items():
        check(f"{_SAMPLE_ARRAYS}/{name}", (ns,), dtype, None)
    rows = _parquet_rows(root, posixpath.join(path, FEATURES))
    if rows != nf:
        raise StorageError(f"{path}/{FEATURES}: {rows} rows, the matrix has {nf} features")
    samples = store.samples
    if len(samples) != ns:
        raise StorageError(f"{path}/{SAMPLES}: {len(samples)} rows, the matrix has {ns} samples")
    if "sample_id" not in samples.columns or samples["sample_id"].duplicated().any():
        raise StorageError(f"{path}/{SAMPLES}: sample_id missing or not unique")
    listed = ", ".join(f"{k} {v}" for k, v in store.arrays.items())
    return (nf, ns), f"{nf} features x {ns} samples ({listed}); index and samples match"


def export_feature_matrix_h5ad(root: DataRoot, path: str, output: str | Path) -> str:
    """Write the store as an ``.h5ad`` file: samples x features, in bounded memory.

    ``obs`` is the samples table (``obs_names`` the sample IDs), ``var`` the feature
    index (``var_names`` the ``feature_id`` column, else the row number) plus the
    per-feature arrays, each sample array an ``obs`` column. ``X`` is the ``primary``
    array (none declared: no ``X``) and every other 2-D array a layer, each transposed
    one stored chunk row at a time. Written under a temporary name and renamed.
    Returns a one-line description.
    """
    import h5py
    from anndata.io import write_elem

    store = open_feature_matrix(root, path)
    nf, ns = store.shape
    obs = store.samples.copy()
    obs.index = pd.Index(obs.pop("sample_id").astype(str).to_numpy())
    for name in store.sample_arrays:
        obs[name] = store.sample_array(name)
    var = store.features.copy()
    if store.feature_id is not None:
        var.index = pd.Index(var[store.feature_id].astype(str).to_numpy())
    else:
        var.index = pd.Index([str(i) for i in range(nf)], name=None)
    for name in store.feature_arrays:
        var[name] = np.asarray(store.feature_array(name))
    for frame in (obs, var):
        for c in frame.columns:
            if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]):
                frame[c] = pd.Categorical(frame[c].where(frame[c].isna(), frame[c].astype(str)))
    uns = {
        "resistomics": {
            "layout": f"{ENCODING}@{ENCODING_VERSION}",
            "metadata": json.dumps(store.metadata, default=str),
            "arrays": json.dumps({n: store.attributes(n) for n in store.arrays}, default=str),
            "sorted_by": json.dumps(list(store.sorted_by)),
        }
    }
    out = Path(output)
    partial = out.with_name(f".{out.name}.partial")
    layers = [n for n in store.arrays if n != store.primary]
    try:
        with h5py.File(partial, "w") as target:
            target.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
            write_elem(target, "obs", obs)
            write_elem(target, "var", var)
            write_elem(target, "uns", uns)
            for empty in ("obsm", "varm", "obsp", "varp"):
                write_elem(target, empty, {})
            group = target.create_group("layers")
            group.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
            datasets = {}
            for name in store.arrays:
                parent = target if name == store.primary else group
                key = "X" if name == store.primary else name
                ds = parent.create_dataset(
                    key,
                    shape=(ns, nf),
                    dtype=np.dtype(store.arrays[name]),
                    chunks=(max(min(ns, store.chunks[1]), 1), max(min(nf, store.chunks[0]), 1))
                    if ns and nf
                    else None,
                    compression="gzip" if ns and nf else None,
                )
                ds.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
                datasets[name] = ds
            for start, stop, values in store.iter_blocks():
                for name, block in values.items():
                    datasets[name][:, start:stop] = block.T
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    x = f"X = {store.primary}" if store.primary else "no X"
    return f"{ns} samples x {nf} features, {x}, layers: {', '.join(layers) or 'none'}"
