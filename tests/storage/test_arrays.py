"""Dense Zarr arrays written by several Dask worker processes, shard-aligned.

Two workers writing chunks of the same shard each rewrite the whole shard and one write
is silently lost, so the oracle is a checksum of everything read back against the
input, with a real two-process cluster, shards larger than chunks, and input dask
chunks that deliberately straddle shard boundaries.
"""

from __future__ import annotations

import hashlib
import os

import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import get_task_stream

from resistomics.storage import DataRoot, read_dense_array, write_dense_array
from resistomics.storage._arrays import aligned_chunks


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _boundaries(chunks: tuple[int, ...]) -> list[int]:
    return np.cumsum(chunks)[:-1].tolist()


@pytest.mark.parametrize(
    ("shape", "dask_chunks", "shard"),
    [
        ((1000,), ((137,) * 7 + (41,),), (200,)),
        ((1000,), ((1000,),), (64,)),
        ((1000,), ((10,) * 100,), (300,)),  # small chunks grow to one shard
        ((999, 70), ((333, 333, 333), (30, 30, 10)), (100, 64)),
        ((5, 5), ((5,), (5,)), (8, 8)),  # array smaller than a shard
        ((0, 4), ((0,), (4,)), (2, 2)),  # empty axis
    ],
)
def test_aligned_chunks_fall_on_shard_boundaries(shape, dask_chunks, shard):  # type: ignore[no-untyped-def]
    out = aligned_chunks(shape, dask_chunks, shard)

    for n, before, after, s in zip(shape, dask_chunks, out, shard, strict=True):
        assert sum(after) == n
        assert all(b % s == 0 for b in _boundaries(after))  # blocks never share a shard
        assert all(c > 0 for c in after) or n == 0
        if n:  # never smaller blocks than the input's largest (no blow-up of the graph)
            assert max(after) >= min(n, max(before))


def test_aligned_chunks_examples() -> None:
    assert aligned_chunks((1000,), ((137,) * 7 + (41,),), (200,)) == ((200,) * 5,)
    assert aligned_chunks((1000,), ((250,) * 4,), (200,)) == ((400, 400, 200),)
    assert aligned_chunks((10, 7), ((3, 3, 4), (7,)), (4, 2)) == ((4, 4, 2), (7,))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("dtype", "shape", "input_chunks", "chunks", "shards"),
    [
        # input chunks straddle every shard; shards hold 4 x 2 chunks
        ("float32", (2000, 300), (137, 71), (50, 40), (200, 80)),
        # one shard per row band; the last band is short
        ("int64", (1030, 64), (333, 64), (64, 64), (256, 64)),
    ],
)
def test_parallel_write_from_worker_processes(
    tmp_path, dask_client, dtype, shape, input_chunks, chunks, shards
):  # type: ignore[no-untyped-def]
    pids = dask_client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    root = DataRoot(str(tmp_path / "root"))
    # generated on the workers from a seed: blocks are born where they are written
    rng = da.random.default_rng(42)
    array = (rng.standard_normal(shape, chunks=input_chunks) * 1000).astype(dtype)
    expected = array.compute()
    path = root.path("scores.zarr")

    with get_task_stream(dask_client) as stream:
        write_dense_array(
            root, path, array, name="m", chunks=chunks, shards=shards, attributes={"kind": "test"}
        )

    # the blocks were written by both worker processes, not by this one
    assert {t["worker"] for t in stream.data} == set(pids)

    stored = zarr.open_array(root.mapper(path), path="m", mode="r")
    assert stored.chunks == chunks
    assert stored.shards == shards
    assert stored.attrs["kind"] == "test"
    back = read_dense_array(root, path, "m")
    assert back.chunks[0][0] == shards[0]
    values = back.compute()
    assert values.dtype == np.dtype(dtype)
    assert sha256(values) == sha256(expected)


def test_write_refuses_shards_that_are_not_multiples_of_chunks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = DataRoot(str(tmp_path / "root"))
    with pytest.raises(ValueError, match=r"shards \(30,\) must be multiples of chunks \(20,\)"):
        write_dense_array(
            root,
            root.path("a.zarr"),
            da.zeros(100, chunks=10),
            name="a",
            chunks=(20,),
            shards=(30,),
        )
