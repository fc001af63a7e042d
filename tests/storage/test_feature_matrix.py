"""Layout ``feature-matrix@1``: dense features x samples Zarr arrays written block by block.

Oracles: every value read back equals the generated input (NaN where planted, integers
exact), the stored chunks are the declared ones, a writer fed blocks smaller and larger
than a chunk writes each chunk once and holds at most a chunk row plus a block, the
integrity check names a flipped byte (manifest) and a wrong shape (structure), and the
h5ad export equals the store transposed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

from resistomics.errors import StorageError
from resistomics.storage import (
    DataRoot,
    FeatureBlock,
    FeatureMatrixWriter,
    layout,
    open_feature_matrix,
    verify_manifest,
    write_feature_matrix,
    write_manifest,
)
from resistomics.storage._feature_matrix import MATRIX, inspect_feature_matrix

N_SITES = 1000
SAMPLES = pd.DataFrame(
    {
        "sample_id": [f"S{i}" for i in range(7)],
        "phase": ["baseline", "relapse"] * 3 + ["baseline"],
        "subject_id": ["P0", "P0", "P1", "P1", "P2", "P2", "P3"],
    }
)


def _sites(n: int = N_SITES) -> pd.DataFrame:
    """CpG sites on two contigs, positions increasing within each (genome order)."""
    half = n // 2
    return pd.DataFrame(
        {
            "contig": ["chr2"] * half + ["chr10"] * (n - half),
            "position": np.r_[np.arange(half) * 7 + 100, np.arange(n - half) * 5 + 50].astype(
                np.int64
            ),
            "strand": np.where(np.arange(n) % 2, "+", "-"),
        }
    )


def _methylation(n: int = N_SITES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = rng.poisson(12, size=(n, len(SAMPLES))).astype(np.int64)
    total[rng.random(total.shape) < 0.2] = 0  # sites without coverage in a sample
    methylated = rng.binomial(total, 0.4)
    return methylated, total


def _blocks(
    sites: pd.DataFrame, arrays: dict[str, np.ndarray], sizes: Iterator[int]
) -> Iterator[FeatureBlock]:
    start = 0
    while start < len(sites):
        stop = min(start + next(sizes), len(sites))
        yield FeatureBlock(sites.iloc[start:stop], {k: v[start:stop] for k, v in arrays.items()})
        start = stop


def _cycle(*sizes: int) -> Iterator[int]:
    while True:
        yield from sizes


def _write_methylation(root: DataRoot, path: str, **options: object) -> tuple[np.ndarray, ...]:
    methylated, total = _methylation()
    write_feature_matrix(
        root,
        path,
        _blocks(_sites(), {"methylated": methylated, "total": total}, _cycle(37, 300, 1, 64)),
        samples=SAMPLES,
        arrays={"methylated": "int32", "total": "int32"},
        sorted_by=("contig", "position"),
        features_per_chunk=64,
        samples_per_chunk=4,
        metadata={"value_kind": "counts"},
        **options,
    )
    return methylated, total


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(str(tmp_path / "root"))


def test_integer_counts_round_trip_streamed_in_blocks_of_any_size(root: DataRoot) -> None:
    path = root.path("v")
    methylated, total = _write_methylation(root, path)
    store = open_feature_matrix(root, path)
    assert store.shape == (N_SITES, len(SAMPLES))
    assert store.sorted_by == ("contig", "position")
    assert store.metadata == {"value_kind": "counts"}
    m, t = store.array("methylated"), store.array("total")
    assert m.dtype == np.int32 and t.dtype == np.int32
    np.testing.assert_array_equal(m.compute(), methylated)
    np.testing.assert_array_equal(t.compute(), total)
    pd.testing.assert_frame_equal(store.features, _sites())
    pd.testing.assert_frame_equal(store.samples, SAMPLES)
    # dask blocks cover whole stored chunks of every sample
    assert store.array("total", features_per_block=100).chunks[0][:2] == (128, 128)
    assert store.array("total").chunks[1] == (len(SAMPLES),)


def test_chunks_are_as_declared_and_each_is_stored(root: DataRoot) -> None:
    path = root.path("v")
    _write_methylation(root, path)
    group = zarr.open_group(root.mapper(f"{path}/{MATRIX}"), mode="r")
    total = group["total"]
    assert isinstance(total, zarr.Array)
    assert total.chunks == (64, 4) and total.shape == (N_SITES, len(SAMPLES))
    assert total.metadata.dimension_names == ("feature", "sample")  # type: ignore[union-attr]
    assert total.nchunks_initialized == total.nchunks == 16 * 2
    # the feature index: one Parquet row group per chunk row of the matrix
    import pyarrow.parquet as pq

    meta = pq.read_metadata(f"{path}/features.parquet")
    assert meta.num_row_groups == 16
    assert {meta.row_group(i).num_rows for i in range(15)} == {64}


def test_abundances_with_nan_and_a_missing_reason_code(root: DataRoot) -> None:
    rng = np.random.default_rng(1)
    n = 250
    abundance = rng.lognormal(10, 1, size=(n, len(SAMPLES)))
    reason = np.zeros(abundance.shape, dtype=np.int8)
    below = rng.random(abundance.shape) < 0.1
    absent = (rng.random(abundance.shape) < 0.05) & ~below
    reason[below], reason[absent] = 1, 2
    abundance[below | absent] = np.nan
    features = pd.DataFrame(
        {
            "id": [f"M{i:04d}" for i in range(n)],
            "name": [f"metabolite {i}" if i % 3 else None for i in range(n)],
            "mz": np.sort(rng.uniform(50, 900, n)),
            "rt": rng.uniform(0, 20, n),
        }
    )
    rsd = rng.uniform(0, 0.4, n)
    order = np.arange(len(SAMPLES), dtype=np.int64)[::-1].copy()
    codes = {"codes": {"0": "measured", "1": "below-detection", "2": "not-measured"}}
    path = root.path("m")
    writer = FeatureMatrixWriter(
        root,
        path,
        samples=SAMPLES,
        arrays={"abundance": "float64", "missing_reason": "int8"},
        feature_arrays={"qc_rsd": "float64"},
        sample_arrays={"injection_order": order},
        array_attributes={"missing_reason": codes},
        sorted_by=("mz",),
        feature_id="id",
        primary="abundance",
        features_per_chunk=32,
        samples_per_chunk=3,
    )
    for a in range(0, n, 50):
        writer.add(
            FeatureBlock(
                features.iloc[a : a + 50],
                {"abundance": abundance[a : a + 50], "missing_reason": reason[a : a + 50]},
                {"qc_rsd": rsd[a : a + 50]},
            )
        )
    summary = writer.close()
    assert (summary.n_features, summary.n_samples) == (n, len(SAMPLES))
    store = open_feature_matrix(root, path)
    got = store.array("abundance").compute()
    np.testing.assert_array_equal(np.isnan(got), below | absent)
    np.testing.assert_array_equal(got, abundance)  # NaN where NaN, equal elsewhere
    np.testing.assert_array_equal(store.array("missing_reason").compute(), reason)
    assert store.attributes("missing_reason") == codes
    np.testing.assert_array_equal(store.feature_array("qc_rsd").compute(), rsd)
    np.testing.assert_array_equal(store.sample_array("injection_order"), order)
    assert store.features["name"].isna().sum() == features["name"].isna().sum()
    shape, _ = inspect_feature_matrix(root, path)
    assert shape == (n, len(SAMPLES))

    out = root.path("m.h5ad")
    detail = layout("feature-matrix@1").exports["h5ad"](root, path, Path(out))
    assert "X = abundance" in detail and "missing_reason" in detail
    adata = ad.read_h5ad(out)
    assert adata.shape == (len(SAMPLES), n)
    np.testing.assert_array_equal(adata.X, abundance.T)
    np.testing.assert_array_equal(adata.layers["missing_reason"], reason.T)
    assert list(adata.obs_names) == SAMPLES["sample_id"].tolist()
    assert list(adata.var_names) == features["id"].tolist()
    np.testing.assert_array_equal(adata.var["qc_rsd"].to_numpy(), rsd)
    np.testing.assert_array_equal(adata.obs["injection_order"].to_numpy(), order)
    assert adata.obs["phase"].tolist() == SAMPLES["phase"].tolist()
    assert json.loads(adata.uns["resistomics"]["arrays"])["missing_reason"] == codes


def test_memory_stays_one_chunk_row_plus_a_block(root: DataRoot) -> None:
    """The writer never holds more than a chunk row of features plus the block handed
    over: each write covers whole chunks and the rest waits for the next block."""
    methylated, total = _methylation(5000)
    writer = FeatureMatrixWriter(
        root,
        root.path("big"),
        samples=SAMPLES,
        arrays={"methylated": "int32", "total": "int32"},
        features_per_chunk=128,
        samples_per_chunk=7,
    )
    sites = _sites(5000)
    for block in _blocks(sites, {"methylated": methylated, "total": total}, _cycle(100, 33)):
        writer.add(block)
        assert writer._pending_rows < 128  # everything else is already on disk
        assert writer._written % 128 == 0
    writer.close()
    store = open_feature_matrix(root, root.path("big"))
    np.testing.assert_array_equal(store.array("total").compute(), total)
    assert sum(b[1] - b[0] for b in ((a, z) for a, z, _ in store.iter_blocks())) == 5000


def test_the_declared_order_is_enforced(root: DataRoot) -> None:
    methylated, total = _methylation(10)
    sites = _sites(10)
    arrays = {"methylated": "int32", "total": "int32"}

    def write(frame: pd.DataFrame, path: str, sizes: Iterator[int]) -> None:
        write_feature_matrix(
            root,
            root.path(path),
            _blocks(frame, {"methylated": methylated, "total": total}, sizes),
            samples=SAMPLES,
            arrays=arrays,
            sorted_by=("contig", "position"),
        )

    down = sites.copy()
    down.loc[7, "position"] = 1  # back down inside chr10
    with pytest.raises(ValueError, match=r"feature 7: position 1 after 55"):
        write(down, "a", _cycle(3))
    again = sites.copy()
    again.loc[9, "contig"] = "chr2"  # chr2 again after chr10
    with pytest.raises(ValueError, match=r"feature 9: .*chr2.* appears again"):
        write(again, "b", _cycle(4))
    write(sites, "c", _cycle(1))  # genome order, one feature per block: fine


def test_values_that_do_not_fit_the_dtype_are_refused(root: DataRoot) -> None:
    writer = FeatureMatrixWriter(root, root.path("x"), samples=SAMPLES, arrays={"total": "int32"})
    site = _sites(1)
    with pytest.raises(ValueError, match="outside the range of int32"):
        writer.add(FeatureBlock(site, {"total": np.full((1, 7), 2**40)}))
    with pytest.raises(ValueError, match="non-integer"):
        writer.add(FeatureBlock(site, {"total": np.full((1, 7), 1.5)}))
    with pytest.raises(ValueError, match=r"block shape \(1, 6\)"):
        writer.add(FeatureBlock(site, {"total": np.ones((1, 6), dtype=np.int32)}))
    with pytest.raises(ValueError, match="sample_id must be unique"):
        FeatureMatrixWriter(
            root, root.path("y"), samples=pd.concat([SAMPLES, SAMPLES]), arrays={"t": "int32"}
        )


def test_an_incomplete_store_does_not_open(root: DataRoot) -> None:
    writer = FeatureMatrixWriter(root, root.path("x"), samples=SAMPLES, arrays={"total": "int32"})
    writer.add(FeatureBlock(_sites(3), {"total": np.ones((3, 7), dtype=np.int32)}))
    # a crash before close(): no layout attributes yet
    with pytest.raises(StorageError, match="not a complete feature-matrix store"):
        open_feature_matrix(root, root.path("x"))


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_integrity_catches_a_flipped_byte_and_a_wrong_shape(root: DataRoot) -> None:
    path = root.path("v")
    _write_methylation(root, path)
    spec = layout("feature-matrix@1")
    assert not spec.planned
    assert spec.inspect is not None and spec.inspect(root, path).shape == (N_SITES, 7)
    digest = write_manifest(root, path)
    assert verify_manifest(root, path, digest)[1] == []

    chunk = Path(path) / MATRIX / "total" / "c" / "3" / "1"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    problems = verify_manifest(root, path, digest)[1]
    assert [(p.file, p.kind) for p in problems] == [(f"{MATRIX}/total/c/3/1", "digest")]

    # a wrong shape: the methylated array says fewer features than the index holds
    meta_path = Path(path) / MATRIX / "methylated" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"] = [N_SITES - 64, 7]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(
        StorageError, match=r"methylated: shape \(936, 7\), the store declares \(1000, 7\)"
    ):
        spec.inspect(root, path)


def test_integrity_catches_a_missing_chunk_and_a_short_index(root: DataRoot) -> None:
    path = root.path("v")
    _write_methylation(root, path)
    (Path(path) / MATRIX / "total" / "c" / "0" / "0").unlink()
    with pytest.raises(StorageError, match="total: 1 of 32 chunk"):
        inspect_feature_matrix(root, path)

    other = root.path("w")
    _write_methylation(root, other)
    _sites(N_SITES - 1).to_parquet(f"{other}/features.parquet", index=False)
    with pytest.raises(StorageError, match="999 rows, the matrix has 1000 features"):
        inspect_feature_matrix(root, other)


def test_tables_export_and_methylation_h5ad_has_layers_without_x(root: DataRoot) -> None:
    path = root.path("v")
    methylated, total = _write_methylation(root, path)
    spec = layout("feature-matrix@1")
    assert spec.tables is not None and spec.read_table is not None
    assert spec.tables(root, path) == ["features", "samples"]
    pd.testing.assert_frame_equal(spec.read_table(root, path, "features"), _sites())
    assert (
        spec.read_table(root, path, "samples")["sample_id"].tolist()
        == SAMPLES["sample_id"].tolist()
    )
    out = Path(root.path("meth.h5ad"))
    detail = spec.exports["h5ad"](root, path, out)
    assert detail == "7 samples x 1000 features, no X, layers: methylated, total"
    adata = ad.read_h5ad(out)
    assert adata.X is None and adata.shape == (7, N_SITES)
    np.testing.assert_array_equal(adata.layers["methylated"], methylated.T)
    np.testing.assert_array_equal(adata.layers["total"], total.T)
    assert adata.var["contig"].tolist() == _sites()["contig"].tolist()
    assert not list(out.parent.glob(".*partial"))


@pytest.mark.integration
def test_worker_processes_read_the_blocks_with_a_round_trip_checksum(
    root: DataRoot,
    dask_client,  # type: ignore[no-untyped-def]
) -> None:
    """The dask arrays pickle to real worker processes, each block read where it runs."""
    from distributed import get_task_stream

    path = root.path("v")
    methylated, total = _write_methylation(root, path)
    store = open_feature_matrix(root, path)
    ratio = store.array("methylated") / store.array("total")
    with get_task_stream(dask_client) as stream:
        got_m, got_t, got_ratio = dask_client.compute(
            [store.array("methylated"), store.array("total"), ratio], sync=True
        )
    assert (
        hashlib.sha256(np.ascontiguousarray(got_m).tobytes()).digest()
        == hashlib.sha256(np.ascontiguousarray(methylated.astype(np.int32)).tobytes()).digest()
    )
    np.testing.assert_array_equal(got_t, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_array_equal(got_ratio, methylated / total)  # NaN at zero coverage
    # the blocks were read in the worker processes, not in this one
    assert stream.data and {t["worker"] for t in stream.data} <= set(
        dask_client.scheduler_info()["workers"]
    )
