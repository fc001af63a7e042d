"""Throughput of the presto-style Wilcoxon rank-sum test on a generated matrix.

Not collected by pytest (the name does not start with ``test_``). Run, e.g.::

    PYTHONPATH=platform python tests/signatures/bench_wilcoxon.py \
        --cells 200000 --genes 20000 --nnz-per-cell 600 --workers 2

It generates a gene-major (CSC blocks) log-normalised matrix on the workers of a local
``distributed`` cluster, persists it (all in memory, as in the architecture's
performance bar), then times ``rank_genes_two_groups(..., method="wilcoxon")`` from
graph construction to the computed result and reports non-zeros per second.
"""

from __future__ import annotations

import argparse
import time

import dask.array as da
import numpy as np
from scipy import sparse


def _gene_block(
    block_id: tuple[int, int], *, n_cells: int, n_genes: int, density: float, chunk: int, seed: int
) -> sparse.csc_matrix:
    j = block_id[1]
    lo = j * chunk
    hi = min(lo + chunk, n_genes)
    rng = np.random.default_rng([seed, j])
    # Per-gene detection rates spread over two orders of magnitude, mean ~ density.
    rates = np.clip(rng.lognormal(np.log(density) - 0.5, 1.0, hi - lo), 1e-4, 0.9)
    columns = []
    for rate in rates:
        k = rng.binomial(n_cells, rate)
        if k < n_cells // 20:
            rows = np.unique(rng.integers(0, n_cells, size=k))
        else:
            rows = np.flatnonzero(rng.random(n_cells) < rate)
        columns.append(rows.astype(np.int32))
    indices = np.concatenate(columns)
    indptr = np.concatenate([[0], np.cumsum([c.size for c in columns])]).astype(np.int64)
    # log1p(count * 1e4 / library size): many distinct values, like real data.
    lib = rng.uniform(2_000, 20_000, n_cells)
    umi = rng.geometric(0.6, indptr[-1]).astype(np.float64)
    data = np.log1p(umi * 1e4 / lib[indices]).astype(np.float32)
    return sparse.csc_matrix((data, indices, indptr), shape=(n_cells, hi - lo))


def main() -> None:
    from distributed import Client, LocalCluster, wait

    from resistomics.signatures import rank_genes_two_groups

    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=50_000)
    p.add_argument("--genes", type=int, default=20_000)
    p.add_argument("--nnz-per-cell", type=int, default=600)
    p.add_argument("--chunk", type=int, default=500, help="genes per block")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tie-correct", action="store_true")
    p.add_argument("--method", default="wilcoxon")
    a = p.parse_args()

    density = a.nnz_per_cell / a.genes
    n_blocks = -(-a.genes // a.chunk)
    with (
        LocalCluster(
            n_workers=a.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=0,
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):
        X = da.map_blocks(
            _gene_block,
            dtype=np.float32,
            chunks=(
                (a.cells,),
                tuple(min(a.chunk, a.genes - i * a.chunk) for i in range(n_blocks)),
            ),
            meta=sparse.csc_matrix((0, 0), dtype=np.float32),
            n_cells=a.cells,
            n_genes=a.genes,
            density=density,
            chunk=a.chunk,
            seed=0,
        ).persist()
        wait(X)
        nnz = int(
            X.map_blocks(
                lambda b: np.array([[b.nnz]]),
                chunks=(1, 1),
                dtype=np.int64,
                meta=np.empty((0, 0), np.int64),
            )
            .sum()
            .compute()
        )
        labels = np.where(np.random.default_rng(1).random(a.cells) < 0.5, "A", "B")
        # warm-up: compile/load the numba kernels on every worker
        warm = rank_genes_two_groups(
            X[:, : a.chunk * a.workers],
            labels,
            group_a="A",
            group_b="B",
            method=a.method,
            tie_correct=a.tie_correct,
        )
        warm.table.compute()
        t0 = time.perf_counter()
        res = rank_genes_two_groups(
            X, labels, group_a="A", group_b="B", method=a.method, tie_correct=a.tie_correct
        )
        table = res.table.compute()
        dt = time.perf_counter() - t0
        assert table.shape == (a.genes, 8) and np.isfinite(table[:, 0]).all()
        print(
            f"{a.method} tie_correct={a.tie_correct}: {a.cells} cells x {a.genes} genes, "
            f"{nnz / 1e6:.1f} M non-zeros, {a.workers} workers: {dt:.2f} s, "
            f"{nnz / dt / 1e6:.1f} M nnz/s"
        )


if __name__ == "__main__":
    main()
