"""Out of core: a dataset several times a worker's memory ingests on small workers.

The matrix is a 100,000 x 20,000 CSR h5ad with 130 M stored values: 0.97 GiB in memory
as scipy would hold it (float32 data, int32 indices, int64 indptr), 3.3 times the
300 MiB limit of each of the two worker processes. Ingest reads it in row blocks,
composes both layouts block by block and validates it with Dask on those workers.
The oracles: it is published with the right shape and values, no worker died or was
restarted, and the ingesting process never held more than a fraction of the matrix
(tracemalloc sees numpy's allocations).
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import dask
import h5py
import numpy as np
import pandas as pd
import pytest

from resistomics.catalog import SampleRow
from resistomics.pipeline import ingest
from resistomics.storage import open_sparse_matrix

pytestmark = pytest.mark.integration

N_CELLS, N_GENES, NNZ_PER_CELL = 100_000, 20_000, 1_300
WORKER_MEMORY = 300 * 2**20
SAMPLES = ("S1", "S2", "S3", "S4")


def csr_nbytes() -> int:
    nnz = N_CELLS * NNZ_PER_CELL
    return nnz * (4 + 4) + (N_CELLS + 1) * 8


def cell_values(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the given rows, a pure function of the row number.

    Row ``i`` holds genes ``j * STEP + i % STEP`` (sorted, distinct) with value
    ``1 + (i + j) % 19``, so any block can be checked without keeping the matrix.
    """
    step = N_GENES // NNZ_PER_CELL
    j = np.arange(NNZ_PER_CELL, dtype=np.int32)[None, :]
    r = rows.astype(np.int32)[:, None]
    indices = j * step + r % step
    values = (1 + (r + j) % 19).astype(np.float32)
    return indices, values


def write_h5ad(path: Path) -> None:
    """Write the CSR h5ad with h5py in row slabs (never the whole matrix in memory)."""
    from anndata.io import write_elem

    nnz = N_CELLS * NNZ_PER_CELL
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        obs = pd.DataFrame(
            {"sample_id": pd.Categorical(np.array(SAMPLES)[np.arange(N_CELLS) % len(SAMPLES)])},
            index=pd.Index([f"cell{i}" for i in range(N_CELLS)]),
        )
        write_elem(f, "obs", obs)
        write_elem(f, "var", pd.DataFrame(index=pd.Index([f"gene{j}" for j in range(N_GENES)])))
        x = f.create_group("X")
        x.attrs.update(
            {
                "encoding-type": "csr_matrix",
                "encoding-version": "0.1.0",
                "shape": (N_CELLS, N_GENES),
            }
        )
        data = x.create_dataset("data", shape=(nnz,), dtype=np.float32)
        indices = x.create_dataset("indices", shape=(nnz,), dtype=np.int32)
        x.create_dataset("indptr", data=np.arange(N_CELLS + 1, dtype=np.int64) * NNZ_PER_CELL)
        for a in range(0, N_CELLS, 10_000):
            b = min(a + 10_000, N_CELLS)
            idx, val = cell_values(np.arange(a, b))
            indices[a * NNZ_PER_CELL : b * NNZ_PER_CELL] = idx.ravel()
            data[a * NNZ_PER_CELL : b * NNZ_PER_CELL] = val.ravel()
        for key in ("layers", "obsm", "obsp", "varm", "varp", "uns"):
            f.create_group(key).attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})


# a worker over its memory limit pauses and the run would wait forever: fail instead
@pytest.mark.timeout(240)
def test_dataset_three_times_worker_memory_ingests_out_of_core(workspace, tmp_path):  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster, get_task_stream

    assert csr_nbytes() >= 3 * WORKER_MEMORY
    workspace.catalog.register_study("st", [SampleRow(sample_id=s, subject_id=s) for s in SAMPLES])
    landed = Path(workspace.settings.resolved_landing_zone) / "st" / "expression" / "atlas.h5ad"
    landed.parent.mkdir(parents=True)
    write_h5ad(landed)

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=WORKER_MEMORY,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        workers = set(client.scheduler_info()["workers"])
        tracemalloc.start()
        started = time.monotonic()
        try:
            with get_task_stream(client) as stream:
                outcome = ingest(workspace, str(landed), study="st")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - started

        assert outcome.status == "published", outcome.message
        # the validation pass ran on both small workers, and neither died nor restarted
        assert {t["worker"] for t in stream.data} == workers
        assert set(client.scheduler_info()["workers"]) == workers
        memory = client.run(lambda dask_worker: dask_worker.monitor.get_process_memory())
        assert all(m < WORKER_MEMORY for m in memory.values()), memory

    assert peak < csr_nbytes() / 3, (
        f"peak {peak / 2**20:.0f} MiB for a {csr_nbytes() / 2**20:.0f} MiB matrix"
    )
    assert elapsed < 120
    store = open_sparse_matrix(workspace.root, workspace.root.to_path(outcome.version.uri))
    assert store.shape == (N_CELLS, N_GENES)
    assert store.dtype == np.float32
    rows = np.array([0, 1, 8191, 8192, 50_000, N_CELLS - 1])
    idx, val = cell_values(rows)
    expected = np.zeros((len(rows), N_GENES), dtype=np.float32)
    np.put_along_axis(expected, idx, val, axis=1)
    cells = store.cells()
    got = np.vstack([b.toarray() for b in dask.compute(*(cells[i : i + 1] for i in rows))])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        store.obs["n_genes_by_counts"].to_numpy(), np.full(N_CELLS, NNZ_PER_CELL)
    )
