"""Dense Zarr arrays written in parallel by Dask workers, chunk- and shard-aligned.

Zarr shards are the unit of a write: two workers writing different chunks of the same
shard each read-modify-write the whole shard, and one of the writes is lost without any
error. So every dask block written here covers whole shards: the array is rechunked so
each dask chunk is a multiple of the shard shape along every axis (the last block may be
shorter, which is fine because it ends the array).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import zarr

from resistomics.storage._root import DataRoot

__all__ = ["aligned_chunks", "read_dense_array", "write_dense_array"]


def aligned_chunks(
    shape: tuple[int, ...], dask_chunks: tuple[tuple[int, ...], ...], shard: tuple[int, ...]
) -> tuple[tuple[int, ...], ...]:
    """Dask chunks of ``shape`` whose boundaries fall on shard boundaries.

    Each dask chunk along an axis becomes the smallest multiple of the shard length that
    is at least the largest current chunk, so blocks never share a shard.
    """
    out = []
    for n, chunks, s in zip(shape, dask_chunks, shard, strict=True):
        biggest = max(chunks) if chunks else s
        step = max(s, -(-biggest // s) * s)
        full, rest = divmod(n, step)
        out.append(tuple([step] * full + ([rest] if rest else [])) or (0,))
    return tuple(out)


def write_dense_array(
    root: DataRoot,
    path: str,
    array: da.Array,
    *,
    name: str,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None = None,
    attributes: dict[str, Any] | None = None,
    compute: bool = True,
) -> Any:
    """Write a dask array into ``path/name`` from the workers that hold its blocks.

    Parameters
    ----------
    chunks, shards
        Zarr chunk and shard shapes; ``shards`` must be multiples of ``chunks``.
    compute
        ``False`` returns the lazy store graph (a dask array of empty results).
    """
    shards = shards or chunks
    if any(s % c for s, c in zip(shards, chunks, strict=True)):
        raise ValueError(f"shards {shards} must be multiples of chunks {chunks}")
    array = array.rechunk(aligned_chunks(array.shape, array.chunks, shards))
    group = zarr.open_group(root.mapper(path), mode="a", zarr_format=3)
    target = group.create_array(
        name,
        shape=array.shape,
        dtype=array.dtype,
        chunks=chunks,
        shards=shards if shards != chunks else None,
        attributes=attributes or {},
        overwrite=True,
    )
    del target
    store = root.mapper(path)
    out = zarr.open_array(store, path=name, mode="r+")
    stored = da.store(array, out, lock=False, compute=compute, return_stored=False)  # type: ignore[arg-type]
    return stored


def read_dense_array(root: DataRoot, path: str, name: str) -> da.Array:
    """A lazy dask array over ``path/name`` chunked by shard."""
    arr = zarr.open_array(root.mapper(path), path=name, mode="r")
    shard = arr.shards or arr.chunks
    return da.from_zarr(arr, chunks=shard)
