"""Expression benchmark: the platform, end to end from its own store, against scanpy.

Run (the full scale of ARCHITECTURE.md's performance bar; the default)::

    python benchmarks/expression.py [--cells 200000 --genes 20000 --nnz-per-cell 600]
                                    [--skip-scanpy-wilcoxon]

What it does, in order:

1. **Generate and ingest** a sparse single-cell count matrix (cells x genes, about
   ``nnz_per_cell`` non-zeros per cell) with two groups of cells, ``A`` and ``B`` (half
   each), and planted differences (genes up and down in ``A``). Each cell draws its
   reads from a gene-popularity distribution (alias sampling, vectorised numpy, one row
   block at a time; the dense matrix never exists), so counts are multinomial, the
   standard model of UMI counts. The blocks go through the platform's own writer
   (:class:`resistomics.storage.SparseMatrixWriter`), which writes both the
   cell-major AnnData group and the gene-major copy. The store is cached under
   ``benchmarks/out/data/`` keyed by the parameters, so a re-run skips this step and
   reports the timings recorded when it was built.
2. **Ours**: on a real ``distributed.LocalCluster`` (2 worker processes x 1 thread),
   from the stored data, one ``dask.compute`` per operation: full read passes (the I/O
   floor), ``log_normalize`` (normalise + log1p), ``gene_means`` + ``score_genes``,
   ``singscore``, and ``rank_genes_two_groups`` (t-test, Wilcoxon) on the gene-major copy.
3. **scanpy** (the reference), in a subprocess of its own so that its peak memory is
   isolated: ``anndata.read_zarr`` of the same store (CSR counts in memory),
   ``normalize_total`` + ``log1p``, ``score_genes`` (same genes, same ``random_state``),
   ``rank_genes_groups`` t-test and Wilcoxon, A vs B.
4. **Memory**: a thread samples the RSS of the process tree every 0.1 s (psutil): the
   client and each worker for ours, the subprocess for scanpy; ``ru_maxrss`` of every
   process is reported as a cross-check (it catches spikes between samples). RSS counts
   shared library pages once per process, so the sum over processes overstates a little.
5. **Agreement** of our results with scanpy's (max abs difference of the t-test and
   Wilcoxon scores, the gene-set scores and the log-normalised row sums) and of
   singscore with a dense scipy ranking of a few hundred cells.
6. A table on stdout, and the same as markdown in ``benchmarks/out/expression.md`` (plus
   the raw numbers in ``benchmarks/out/expression.json``).

scanpy's Wilcoxon takes about 500 s at full scale on the 2-core machine. With
``--skip-scanpy-wilcoxon`` it is run only on a gene subset (for the agreement check and
an extrapolation) and the table shows the figure recorded in ARCHITECTURE.md (497 s at
200,000 x 20,000), labelled as not measured in this run.

Environment note: ``OPENBLAS_CORETYPE`` (see the machine notes) only slows BLAS calls.
Nothing measured here goes through BLAS (sparse products are scipy's own loops; the
statistics are numpy/numba), so leave it as it is.

Reads come from the page cache when the store was just written (or read): the timings are
warm-cache figures. Time is wall-clock from graph construction to the computed result.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp
from _rss import RssSampler
from scipy import stats

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
GENERATOR_VERSION = 1
ARCH_WILCOXON_SECONDS = 497.0  # ARCHITECTURE.md, "Performance bar" (2026-11-26)
ARCH_SHAPE = (200_000, 20_000)
GENE_SET = "BENCH_UP_IN_A"


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixSpec:
    """What is generated; the cache key."""

    n_cells: int
    n_genes: int
    nnz_per_cell: int
    seed: int
    n_planted: int  # genes changed between the groups (half up, half down in A)
    fold_change: float
    block_cells: int  # cells per generated block (= per writer.add call)
    genes_per_block: int  # the writer's gene tile width

    def key(self) -> str:
        text = json.dumps({**asdict(self), "generator": GENERATOR_VERSION}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        return f"c{self.n_cells}_g{self.n_genes}_n{self.nnz_per_cell}_s{self.seed}_{digest}"


def _alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table: draw ``j`` uniform, keep it with probability ``prob[j]``,
    else take ``alias[j]``; O(1) per draw (Vose, IEEE TSE 17:972, 1991)."""
    n = p.size
    q = p * n
    prob = np.ones(n)
    alias = np.arange(n, dtype=np.int32)
    small = list(np.flatnonzero(q < 1.0))
    large = list(np.flatnonzero(q >= 1.0))
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s] = q[s]
        alias[s] = g
        q[g] -= 1.0 - q[s]
        (small if q[g] < 1.0 else large).append(g)
    return prob, alias


_LIB_SIGMA = 0.35  # spread of library sizes (log scale)
# Library-size factors at 16 quantiles of their log-normal (mean 1), for calibration.
_LIB_QUANTILES = np.exp(_LIB_SIGMA * stats.norm.ppf((np.arange(16) + 0.5) / 16) - _LIB_SIGMA**2 / 2)


def _draws_per_cell(p: np.ndarray, target: float) -> float:
    """Mean reads per cell so that a cell detects ``target`` distinct genes on average
    (``E[distinct] = sum_g 1 - exp(-m f p_g)`` over library factors ``f``)."""
    lo, hi = 1.0, 1e8
    for _ in range(200):
        m = (lo * hi) ** 0.5
        found = np.mean([np.sum(-np.expm1(-m * f * p)) for f in _LIB_QUANTILES])
        lo, hi = (m, hi) if found < target else (lo, m)
    return (lo * hi) ** 0.5


@dataclass(frozen=True)
class Design:
    """The planted truth and the sampling tables."""

    var: pd.DataFrame
    up: np.ndarray  # gene positions up in A
    down: np.ndarray
    prob: np.ndarray  # stacked alias tables: rows [A, B]
    alias: np.ndarray
    reads: np.ndarray  # mean reads per cell, per group [A, B]


def design(spec: MatrixSpec) -> Design:
    rng = np.random.default_rng([spec.seed, 0])
    # Gene popularity: log-normal over ~3 orders of magnitude, as gene means are.
    base = np.exp(rng.normal(0.0, 1.5, spec.n_genes))
    planted = rng.choice(spec.n_genes, size=min(spec.n_planted, spec.n_genes // 4), replace=False)
    up, down = np.sort(planted[: planted.size // 2]), np.sort(planted[planted.size // 2 :])
    probs, aliases, reads = [], [], []
    for group in ("A", "B"):
        p = base.copy()
        if group == "A":
            p[up] *= spec.fold_change
            p[down] /= spec.fold_change
        p /= p.sum()
        prob, alias = _alias_table(p)
        probs.append(prob)
        aliases.append(alias)
        reads.append(_draws_per_cell(p, spec.nnz_per_cell))
    names = [f"G{i:05d}" for i in range(spec.n_genes)]
    direction = np.zeros(spec.n_genes, dtype=np.int8)
    direction[up], direction[down] = 1, -1
    var = pd.DataFrame({"planted_in_A": direction}, index=pd.Index(names))
    return Design(
        var=var,
        up=up,
        down=down,
        prob=np.stack(probs),
        alias=np.stack(aliases),
        reads=np.array(reads),
    )


def generate_blocks(spec: MatrixSpec, d: Design) -> Iterator[tuple[sp.csr_matrix, pd.DataFrame]]:
    """Row blocks of counts (CSR, float32 integers, sorted indices) with their obs.

    Each cell is assigned group A or B (probability 1/2) and one of four samples of its
    group, draws ``Poisson``-spread reads from its group's gene popularity and counts
    the reads per gene: the multiplicities are the counts. Vectorised over the block:
    one uniform per read decides both the alias-table slot and the coin; one sort of
    ``cell * n_genes + gene`` keys turns reads into CSR.
    """
    g_all = spec.n_genes
    prob = d.prob.ravel()
    alias = d.alias.ravel()
    for b, start in enumerate(range(0, spec.n_cells, spec.block_cells)):
        rng = np.random.default_rng([spec.seed, 1, b])
        n = min(spec.block_cells, spec.n_cells - start)
        is_b = rng.random(n) < 0.5
        sample = rng.integers(1, 5, n)
        lib = np.exp(rng.normal(-(_LIB_SIGMA**2) / 2, _LIB_SIGMA, n)) * d.reads[is_b.astype(int)]
        per_cell = np.maximum(1, rng.poisson(lib)).astype(np.int64)
        n_reads = int(per_cell.sum())
        x = rng.random(n_reads) * g_all
        slot = x.astype(np.int32)
        x -= slot  # the fractional part is the alias coin
        slot_g = slot + np.repeat(np.where(is_b, g_all, 0).astype(np.int32), per_cell)
        genes = np.where(x < prob[slot_g], slot, alias[slot_g])
        del x, slot, slot_g
        keys = np.repeat(np.arange(n, dtype=np.int64) * g_all, per_cell)
        keys += genes
        del genes
        keys.sort()
        first = np.empty(n_reads, dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        del first
        unique = keys[starts]
        counts = np.diff(starts, append=n_reads).astype(np.float32)
        del keys, starts
        indptr = np.searchsorted(unique, np.arange(n + 1, dtype=np.int64) * g_all)
        row_offsets = np.repeat(np.arange(n, dtype=np.int64) * g_all, np.diff(indptr))
        indices = (unique - row_offsets).astype(np.int32)
        block = sp.csr_matrix((counts, indices, indptr), shape=(n, g_all))
        block.has_sorted_indices = True
        group = np.where(is_b, "B", "A")
        obs = pd.DataFrame(
            {
                "group": group,
                "sample_id": np.char.add(group.astype(str), sample.astype(str)),
            },
            index=pd.Index([f"cell{i:07d}" for i in range(start, start + n)]),
        )
        yield block, obs


def build_store(spec: MatrixSpec) -> tuple[Any, str, dict[str, Any]]:
    """Generate and ingest the matrix unless a store for ``spec`` is cached.

    Returns the data root, the version directory and the build record (timings, sizes).
    """
    from resistomics.storage import DataRoot, SparseMatrixWriter

    root = DataRoot(str(OUT / "data"))
    final = root.path("expression", spec.key())
    record_path = Path(final) / "bench-build.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        record["cached"] = True
        return root, final, record

    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    d = design(spec)
    writer = SparseMatrixWriter(
        root,
        partial,
        orientation="cells",
        var=d.var,
        value_kind="counts",
        rows_per_block=spec.block_cells,
        genes_per_block=spec.genes_per_block,
        metadata={"source": "benchmarks/expression.py", "spec": json.dumps(asdict(spec))},
    )
    t_gen = t_add = 0.0
    nnz = 0
    n_a = 0
    blocks = generate_blocks(spec, d)
    t0 = time.perf_counter()
    try:
        while True:
            t = time.perf_counter()
            item = next(blocks, None)
            t_gen += time.perf_counter() - t
            if item is None:
                break
            block, obs = item
            nnz += block.nnz
            n_a += int((obs["group"] == "A").sum())
            t = time.perf_counter()
            writer.add(block, obs)
            t_add += time.perf_counter() - t
            done = obs.index.size + int(obs.index[0][4:])
            if done == spec.n_cells or done % (10 * spec.block_cells) == 0:
                print(
                    f"  generated {done:,}/{spec.n_cells:,} cells "
                    f"({t_gen:.1f} s generating, {t_add:.1f} s writer.add)",
                    flush=True,
                )
        t = time.perf_counter()
        summary = writer.close()
        t_close = time.perf_counter() - t
    except BaseException:
        writer.abort_scratch()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    t_total = time.perf_counter() - t0
    os.replace(partial, final)
    record = {
        "spec": asdict(spec),
        "nnz": int(summary.nnz),
        "n_a": n_a,
        "n_b": spec.n_cells - n_a,
        "dtype": summary.dtype,
        "generate_s": t_gen,
        "writer_add_s": t_add,
        "writer_close_s": t_close,
        "total_s": t_total,
        "up": d.up.tolist(),
        "down": d.down.tolist(),
        "bytes_on_disk": {
            name: _du(Path(final) / name) for name in ("expression.zarr", "by_gene.zarr")
        },
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine_load_at_build": os.getloadavg(),
    }
    record_path.write_text(json.dumps(record, indent=2))
    record["cached"] = False
    return root, final, record


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@contextlib.contextmanager
def timed(sampler: RssSampler, results: dict[str, Any], name: str) -> Iterator[None]:
    gc.collect()
    with sampler.window() as mem:
        t = time.perf_counter()
        yield
        elapsed = time.perf_counter() - t
    results[name] = {"seconds": elapsed, **mem}
    print(
        f"  {name:<34} {elapsed:8.2f} s   CPU {mem['cpu_s']:7.2f} s   "
        f"peak RSS {_gb(mem['peak_sum'])}",
        flush=True,
    )


def _gb(n: float | None) -> str:
    return "" if n is None else f"{n / 1e9:.2f} GB"


def _maxrss_bytes() -> int:
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------------------
# ours
# --------------------------------------------------------------------------------------


def _ours_pipeline(
    root: Any, version_dir: str, genes: list[str], *, target_nnz: int | None
) -> dict[str, Any]:
    """The lazy graphs of every measured operation, built from the stored data."""
    from resistomics.signatures import (
        gene_means,
        library_sizes,
        log_normalize,
        rank_genes_two_groups,
        singscore,
    )
    from resistomics.storage import open_sparse_matrix

    store = open_sparse_matrix(root, version_dir)
    kw = {} if target_nnz is None else {"target_nnz": target_nnz}
    cells = store.cells(**kw)
    by_gene = store.genes(**kw)
    sizes = store.obs["total_counts"].to_numpy()
    labels = store.obs["group"].astype(str).to_numpy()
    xc = log_normalize(cells, target_sum=1e4, size_factors=sizes)
    xg = log_normalize(by_gene, target_sum=1e4, size_factors=sizes)
    return {
        "store": store,
        "cells": cells,
        "genes": by_gene,
        "xc": xc,
        "xg": xg,
        "labels": labels,
        "gene_sets": {GENE_SET: genes},
        "read_cells": library_sizes(cells),
        "read_genes": gene_means(by_gene),
        "normalize": library_sizes(xc),
        "gene_means": gene_means(xc),
        "singscore": singscore(xc, store.var.index, {GENE_SET: genes}).scores,
        "t-test": lambda: (
            rank_genes_two_groups(xg, labels, group_a="A", group_b="B", method="t-test").table
        ),
        "wilcoxon": lambda: (
            rank_genes_two_groups(xg, labels, group_a="A", group_b="B", method="wilcoxon").table
        ),
    }


def _score_genes_graph(p: dict[str, Any], means: np.ndarray) -> Any:
    from resistomics.signatures import score_genes

    return score_genes(
        p["xc"],
        p["store"].var.index,
        p["gene_sets"],
        gene_means=means,
        ctrl_size=50,
        n_bins=25,
        random_state=0,
    ).scores


def run_ours(
    root: Any, version_dir: str, warm_dir: str, genes: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    import dask
    from distributed import Client, LocalCluster

    # No dashboard (its bokeh server raises on close here); the scheduler's small HTTP
    # server still wants port 8787 and warns when another cluster holds it.
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        processes=True,
        memory_limit=args.worker_memory,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    client = Client(cluster)
    results: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    try:
        pids = client.run(os.getpid)
        roles = {os.getpid(): "client"}
        roles.update({pid: f"worker {i}" for i, pid in enumerate(sorted(pids.values()))})

        # Warm-up on a tiny store through the same code path, so that numba's loading
        # (or first compilation) in each worker and zarr's first opens are not timed.
        t = time.perf_counter()
        warm_genes = [f"G{i:05d}" for i in range(10)]
        for _ in range(2):
            w = _ours_pipeline(root, warm_dir, warm_genes, target_nnz=20_000)
            wm = dask.compute(w["gene_means"])[0]
            dask.compute(
                w["read_cells"],
                w["read_genes"],
                w["normalize"],
                w["singscore"],
                _score_genes_graph(w, wm),
                w["t-test"](),
                w["wilcoxon"](),
            )
        results["warm_up_s"] = time.perf_counter() - t
        print(f"  (warm-up on a tiny store: {results['warm_up_s']:.1f} s, not counted)")

        with RssSampler(interval=0.1) as sampler:
            gc.collect()
            sampler.sample()
            with sampler._lock:
                results["idle_rss_by_pid"] = dict(sampler._peak_by_pid)
            with timed(sampler, results, "open store (lazy graphs)"):
                p = _ours_pipeline(root, version_dir, genes, target_nnz=args.target_nnz)
            results["n_blocks"] = {"cells": p["cells"].numblocks, "genes": p["genes"].numblocks}
            with timed(sampler, results, "read cell-major (row sums)"):
                (arrays["raw_row_sums"],) = dask.compute(p["read_cells"])
            with timed(sampler, results, "read gene-major (gene means)"):
                dask.compute(p["read_genes"])
            with timed(sampler, results, "normalize+log1p (row sums)"):
                (arrays["lognorm_row_sums"],) = dask.compute(p["normalize"])
            with timed(sampler, results, "gene_means (log-normalised)"):
                var = p["store"].var
                if "mean_lognorm" in var.columns:
                    # written at ingest during the gene-major pass (what the pipeline uses)
                    means = var["mean_lognorm"].to_numpy(dtype=np.float64)
                    results["gene_means_source"] = "stored at ingest"
                else:
                    (means,) = dask.compute(p["gene_means"])
                    results["gene_means_source"] = "computed (store predates mean_lognorm)"
            with timed(sampler, results, "score_genes (after gene_means)"):
                (scores,) = dask.compute(_score_genes_graph(p, means))
            arrays["score_genes"] = np.asarray(scores)[:, 0]
            with timed(sampler, results, "singscore"):
                (sing,) = dask.compute(p["singscore"])
            arrays["singscore"] = np.asarray(sing)[:, 0]
            with timed(sampler, results, "rank_genes t-test"):
                (tt,) = dask.compute(p["t-test"]())
            with timed(sampler, results, "rank_genes wilcoxon"):
                (wx,) = dask.compute(p["wilcoxon"]())
            # Not a scanpy operation: both tests in one compute share each block's read
            # and normalisation (same task keys), which is how a flow would run them.
            with timed(sampler, results, "rank_genes t-test + wilcoxon, one compute"):
                dask.compute(p["t-test"](), p["wilcoxon"]())
        arrays["ttest_score"] = tt[:, 0]
        arrays["ttest_lfc"] = tt[:, 1]
        arrays["wilcoxon_score"] = wx[:, 0]
        arrays["wilcoxon_pval"] = wx[:, 2]

        def _worker_maxrss() -> int:
            return _maxrss_bytes()

        results["maxrss_by_role"] = {"client": _maxrss_bytes()}
        for addr, value in client.run(_worker_maxrss).items():
            results["maxrss_by_role"][roles.get(pids[addr], addr)] = value
        results["roles"] = {str(k): v for k, v in roles.items()}
        results["idle_rss_by_role"] = {
            roles.get(pid, "other"): rss for pid, rss in results.pop("idle_rss_by_pid").items()
        }
        for r in results.values():
            if isinstance(r, dict) and "peak_by_pid" in r:
                r["peak_by_role"] = {
                    roles.get(pid, "other"): rss for pid, rss in r.pop("peak_by_pid").items()
                }
    finally:
        client.close()
        cluster.close()
    results["arrays"] = arrays
    return results


# --------------------------------------------------------------------------------------
# scanpy (subprocess)
# --------------------------------------------------------------------------------------


def scanpy_child(args: argparse.Namespace) -> None:
    """Run scanpy on the stored data; write timings and results for the parent."""
    warnings.filterwarnings("ignore")
    import anndata as ad
    import scanpy as sc

    sc.settings.verbosity = 0
    job = json.loads(Path(args.scanpy_child).read_text())
    genes: list[str] = job["genes"]
    # Warm-up on the tiny store, as for ours: numba compiles (or loads) scanpy's kernels
    # on first use, which would otherwise be timed.
    t = time.perf_counter()
    tiny = ad.read_zarr(job["warm_store"] + "/expression.zarr")
    x = tiny.X
    tiny.X = sp.csr_matrix((x.data, x.indices, x.indptr), shape=x.shape)
    sc.pp.normalize_total(tiny, target_sum=1e4)
    sc.pp.log1p(tiny)
    sc.tl.score_genes(tiny, list(tiny.var_names[:10]), random_state=0)
    for method in ("t-test", "wilcoxon"):
        sc.tl.rank_genes_groups(tiny, "group", groups=["A"], reference="B", method=method)
    del tiny, x
    print(f"  (warm-up on a tiny store: {time.perf_counter() - t:.1f} s, not counted)")
    results: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    with RssSampler(interval=0.1, tree=False) as sampler:
        with timed(sampler, results, "read_zarr (load into memory)"):
            adata = ad.read_zarr(job["store"] + "/expression.zarr")
        x = adata.X
        results["X"] = {
            "format": type(x).__name__,
            "dtype": str(x.dtype),
            "indices_dtype": str(x.indices.dtype),
            "indptr_dtype": str(x.indptr.dtype),
        }
        if x.indptr.dtype != x.indices.dtype:
            # scanpy 1.12's numba kernels (fast_array_utils) refuse CSR whose indptr and
            # indices dtypes differ ("indptr and indices must have the same dtype");
            # scipy's constructor gives both one dtype. Not timed; reported.
            adata.X = sp.csr_matrix((x.data, x.indices, x.indptr), shape=x.shape)
            results["X"]["recast_for_scanpy"] = str(adata.X.indptr.dtype)
        del x
        with timed(sampler, results, "normalize_total+log1p"):
            sc.pp.normalize_total(adata, target_sum=1e4)
            sc.pp.log1p(adata)
        arrays["lognorm_row_sums"] = np.asarray(adata.X.sum(axis=1, dtype=np.float64)).ravel()
        with timed(sampler, results, "score_genes"):
            sc.tl.score_genes(
                adata, genes, ctrl_size=50, n_bins=25, random_state=0, score_name="bench"
            )
        arrays["score_genes"] = adata.obs["bench"].to_numpy(dtype=np.float64)
        common = {"groupby": "group", "groups": ["A"], "reference": "B"}
        with timed(sampler, results, "rank_genes_groups t-test"):
            sc.tl.rank_genes_groups(adata, method="t-test", key_added="tt", **common)
        arrays["ttest_score"] = _by_gene(adata, "tt", "scores")
        arrays["ttest_lfc"] = _by_gene(adata, "tt", "logfoldchanges")
        if job["wilcoxon"] == "full":
            with timed(sampler, results, "rank_genes_groups wilcoxon"):
                sc.tl.rank_genes_groups(adata, method="wilcoxon", key_added="wx", **common)
            arrays["wilcoxon_score"] = _by_gene(adata, "wx", "scores")
            arrays["wilcoxon_pval"] = _by_gene(adata, "wx", "pvals")
        else:
            subset = np.asarray(job["wilcoxon_subset"])
            sub = adata[:, subset].copy()
            with timed(sampler, results, "rank_genes_groups wilcoxon (subset)"):
                sc.tl.rank_genes_groups(sub, method="wilcoxon", key_added="wx", **common)
            full = np.full(adata.n_vars, np.nan)
            full[subset] = _by_gene(sub, "wx", "scores")
            arrays["wilcoxon_score"] = full
    results["maxrss"] = _maxrss_bytes()
    np.savez(job["arrays"], **arrays)
    Path(job["results"]).write_text(json.dumps(results))


def _by_gene(adata: Any, key: str, field: str) -> np.ndarray:
    rec = adata.uns[key]
    values = pd.Series(
        np.asarray(rec[field]["A"], dtype=np.float64), index=np.asarray(rec["names"]["A"])
    )
    return values.reindex(adata.var_names).to_numpy()


def run_scanpy(
    version_dir: str,
    warm_dir: str,
    genes: list[str],
    *,
    full_wilcoxon: bool,
    subset: np.ndarray,
) -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    job = {
        "store": version_dir,
        "warm_store": warm_dir,
        "genes": genes,
        "wilcoxon": "full" if full_wilcoxon else "subset",
        "wilcoxon_subset": subset.tolist(),
        "arrays": str(OUT / "scanpy-arrays.npz"),
        "results": str(OUT / "scanpy-results.json"),
    }
    job_path = OUT / "scanpy-job.json"
    job_path.write_text(json.dumps(job))
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--scanpy-child", str(job_path)],
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the scanpy subprocess failed (exit {proc.returncode})")
    results = json.loads(Path(job["results"]).read_text())
    results["subprocess_s"] = time.perf_counter() - t
    with np.load(job["arrays"]) as z:
        results["arrays"] = {k: z[k] for k in z.files}
    results["maxrss_children"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return results


# --------------------------------------------------------------------------------------
# agreement and report
# --------------------------------------------------------------------------------------


def singscore_oracle(
    root: Any, version_dir: str, genes: list[str], n_cells: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """Singscore of the first cells from a dense scipy ranking (Foroutan et al. 2018)."""
    from scipy.stats import rankdata

    from resistomics.storage import open_sparse_matrix

    store = open_sparse_matrix(root, version_dir)
    block = next(store.iter_row_blocks(target_nnz=n_cells * 2_000))[:n_cells]
    # Ranks within a cell are the same for counts and log-normalised values.
    ranks = rankdata(block.toarray(), axis=1)
    members = store.var.index.get_indexer(pd.Index(genes))
    s, n = len(members), store.shape[1]
    mean_rank = ranks[:, members].mean(axis=1)
    return np.arange(block.shape[0]), (mean_rank - (s + 1) / 2) / (n - s) - 0.5


def agreement(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name in ("ttest_score", "ttest_lfc", "wilcoxon_score", "score_genes", "lognorm_row_sums"):
        if name not in ref or name not in ours:
            continue
        a, b = np.asarray(ours[name], dtype=np.float64), np.asarray(ref[name], dtype=np.float64)
        keep = ~np.isnan(b)
        out[name] = float(np.max(np.abs(a[keep] - b[keep]))) if keep.any() else float("nan")
        out[name + "_n"] = int(keep.sum())
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("numpy", "scipy", "dask", "distributed", "zarr", "anndata", "scanpy", "numba")
    found = {}
    for n in names:
        try:
            found[n] = version(n)
        except PackageNotFoundError:
            found[n] = "-"
    return found


ROWS = [
    # (label, ours keys summed, scanpy key)
    ("load / open", ["open store (lazy graphs)"], "read_zarr (load into memory)"),
    ("read cell-major pass (I/O floor)", ["read cell-major (row sums)"], None),
    ("read gene-major pass (I/O floor)", ["read gene-major (gene means)"], None),
    ("normalize_total + log1p", ["normalize+log1p (row sums)"], "normalize_total+log1p"),
    (
        "score_genes, 100 genes",
        ["gene_means (log-normalised)", "score_genes (after gene_means)"],
        "score_genes",
    ),
    ("singscore, 100 genes", ["singscore"], None),
    ("rank_genes t-test, A vs B", ["rank_genes t-test"], "rank_genes_groups t-test"),
    ("rank_genes wilcoxon, A vs B", ["rank_genes wilcoxon"], "rank_genes_groups wilcoxon"),
    (
        "t-test + wilcoxon in one compute (shared read)",
        ["rank_genes t-test + wilcoxon, one compute"],
        None,
    ),
]


def report(
    spec: MatrixSpec,
    build: dict[str, Any],
    ours: dict[str, Any] | None,
    ref: dict[str, Any] | None,
    agree: dict[str, float],
    sing_err: float | None,
    args: argparse.Namespace,
) -> str:
    nnz = build["nnz"]
    csr_bytes = nnz * (4 + 4) + (spec.n_cells + 1) * 8
    v = _versions()
    lines = [
        f"# Expression benchmark: {spec.n_cells:,} cells x {spec.n_genes:,} genes",
        "",
        f"- matrix: {nnz:,} non-zeros ({nnz / spec.n_cells:.0f} per cell), "
        f"{csr_bytes / 1e9:.2f} GB as CSR (float32 values + int32 indices + int64 indptr); "
        f"groups A/B: {build['n_a']:,} / {build['n_b']:,} cells",
        f"- store on disk (blosc-zstd, bitshuffle): cell-major "
        f"{build['bytes_on_disk']['expression.zarr'] / 1e9:.2f} GB, gene-major "
        f"{build['bytes_on_disk']['by_gene.zarr'] / 1e9:.2f} GB",
        f"- machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; load average at start "
        f"{args.load_at_start[0]:.1f}; Python {platform.python_version()}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- ours: distributed.LocalCluster, {args.workers} worker processes x "
        f"{args.threads_per_worker} thread, memory_limit={args.worker_memory}; end to end "
        "from the store (read + decompress + normalise + compute), one dask.compute per "
        "operation; warm page cache",
        "- scanpy: a subprocess; times are in memory after `read_zarr` (listed apart)",
        "- command: `" + " ".join(["python benchmarks/expression.py", *args.command]) + "`",
        "",
    ]
    if ours:
        nb = ours["n_blocks"]
        lines.insert(
            -2,
            f"- read blocks: {nb['cells'][0]} cell-major, {nb['genes'][1]} gene-major "
            f"(target_nnz {args.target_nnz or 'default'})",
        )
    gen_rate = nnz / max(build["generate_s"], 1e-9)
    ingest_s = build["writer_add_s"] + build["writer_close_s"]
    lines += [
        "## Generation and ingest"
        + (" (recorded when the cached store was built)" if build["cached"] else ""),
        "",
        f"- generate (vectorised numpy): {build['generate_s']:.1f} s, "
        f"{gen_rate / 1e6:.1f} M non-zeros/s",
        f"- ingest (`SparseMatrixWriter`: add {build['writer_add_s']:.1f} s + close "
        f"{build['writer_close_s']:.1f} s, both layouts): {ingest_s:.1f} s, "
        f"{nnz / max(ingest_s, 1e-9) / 1e6:.1f} M non-zeros/s, "
        f"{csr_bytes / max(ingest_s, 1e-9) / 1e6:.0f} MB/s of CSR",
        f"- built {build['built_at']} (load average then {build['machine_load_at_build'][0]:.1f})",
        "",
        "## Operations",
        "",
        "Ours always runs from the stored data (read + decompress + normalise + the "
        "operation). scanpy's own time is in memory after its load; its end-to-end time "
        "from the same stored data adds `read_zarr` and (for every operation after it) "
        "`normalize_total + log1p`, and the ratio compares like with like: "
        "scanpy end to end / ours.",
        "",
        "| operation | ours (from store) | scanpy in memory | scanpy end to end | ratio | "
        "ours peak RSS (client + workers) | ours largest worker | scanpy peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    cpu_lines = [
        "| operation | ours CPU (client + workers) | scanpy CPU |",
        "|---|---:|---:|",
    ]
    total_ours = total_ref = 0.0
    for label, our_keys, ref_key in ROWS:
        o = [ours[k] for k in our_keys] if ours else []
        o_s = sum(x["seconds"] for x in o) if o else None
        o_peak = max(x["peak_sum"] for x in o) if o else None
        o_worker = (
            max(
                (
                    rss
                    for x in o
                    for role, rss in x["peak_by_role"].items()
                    if role.startswith("worker")
                ),
                default=None,
            )
            if o
            else None
        )
        r = ref.get(ref_key) if (ref and ref_key) else None
        r_s = r["seconds"] if r else None
        r_peak = r["peak_sum"] if r else None
        r_text = f"{r_s:.2f} s" if r_s is not None else "-"
        if ref_key == "rank_genes_groups wilcoxon" and ref and r is None:
            sub = ref.get("rank_genes_groups wilcoxon (subset)")
            if (spec.n_cells, spec.n_genes) == ARCH_SHAPE:
                r_s = ARCH_WILCOXON_SECONDS
                r_text = f"{r_s:.0f} s †"
                extrapolated = (
                    f" In this run scanpy's Wilcoxon on {len(args.wilcoxon_subset)} genes took "
                    f"{sub['seconds']:.2f} s (x {spec.n_genes / len(args.wilcoxon_subset):.0f}"
                    f" = {sub['seconds'] * spec.n_genes / len(args.wilcoxon_subset):.0f} s "
                    "if linear in genes)."
                    if sub
                    else ""
                )
                notes.append(
                    "† not measured in this run (--skip-scanpy-wilcoxon): the figure "
                    "recorded in ARCHITECTURE.md for this shape on this machine." + extrapolated
                )
            elif sub:
                r_s = sub["seconds"] * spec.n_genes / len(args.wilcoxon_subset)
                r_text = f"~{r_s:.0f} s †"
                notes.append(
                    f"† not measured in this run (--skip-scanpy-wilcoxon): extrapolated from "
                    f"scanpy's Wilcoxon on {len(args.wilcoxon_subset)} genes "
                    f"({sub['seconds']:.2f} s), linear in genes."
                )
            r_peak = sub["peak_sum"] if sub else None
        if ref_key and label != "load / open" and o_s and r_s:
            total_ours += o_s
            total_ref += r_s
        comparable = label != "load / open"
        e2e = None
        if ref and r_s is not None and comparable:
            e2e = r_s + ref["read_zarr (load into memory)"]["seconds"]
            if ref_key != "normalize_total+log1p" and "normalize_total+log1p" in ref:
                e2e += ref["normalize_total+log1p"]["seconds"]
        e2e_text = f"{e2e:.2f} s" if e2e is not None else "-"
        ratio = f"{e2e / o_s:.1f}x" if (e2e and o_s) else "-"
        o_text = f"{o_s:.2f} s" if o_s is not None else "-"
        if len(our_keys) > 1 and o:
            o_text += " (" + " + ".join(f"{x['seconds']:.2f}" for x in o) + ")"
        lines.append(
            f"| {label} | {o_text} | {r_text} | {e2e_text} | {ratio} | {_gb(o_peak)} | {_gb(o_worker)} "
            f"| {_gb(r_peak)} |"
        )
        o_cpu = sum(x["cpu_s"] for x in o) if o else None
        r_cpu = r["cpu_s"] if r else None
        cpu_lines.append(
            f"| {label} | {'-' if o_cpu is None else f'{o_cpu:.2f} s'} "
            f"| {'-' if r_cpu is None else f'{r_cpu:.2f} s'} |"
        )
    if ours and ref:
        ref_load = ref["read_zarr (load into memory)"]["seconds"]
        lines.append(
            f"| **operations both run, incl. scanpy's load** | {total_ours:.1f} s | "
            f"| {total_ref + ref_load:.1f} s | {(total_ref + ref_load) / total_ours:.1f}x | | | |"
        )
    lines += ["", *notes]
    if any("score_genes" in label for label, *_ in ROWS):
        source = ours.get("gene_means_source", "computed") if ours else "computed"
        lines.append(
            "score_genes (ours): gene means of the log-normalised matrix (to draw the control "
            f"genes; {source}), then one pass for the scores."
        )
    lines += [
        "",
        "CPU seconds in the same windows (user + system, all processes measured): on a "
        "quiet machine ours is about 2x its wall time when both workers are busy.",
        "",
        *cpu_lines,
    ]
    lines += ["", "## Peak memory of the whole run", ""]
    if ours:
        idle = ours["idle_rss_by_role"]
        lines.append(
            "- ours, RSS idle before the first operation (imports, cluster, warm-up): "
            + ", ".join(f"{role} {_gb(val)}" for role, val in idle.items())
            + f" (sum {_gb(sum(idle.values()))})"
        )
        mr = ours["maxrss_by_role"]
        lines.append(
            "- ours, ru_maxrss per process: "
            + ", ".join(f"{role} {_gb(val)}" for role, val in mr.items())
            + f" (sum {_gb(sum(mr.values()))})"
        )
    if ref:
        lines.append(f"- scanpy subprocess, ru_maxrss: {_gb(ref['maxrss'])}")
    lines += ["", "## Agreement with scanpy", ""]
    if agree:
        for k, val in agree.items():
            if not k.endswith("_n"):
                lines.append(f"- {k}: max abs difference {val:.2e} over {agree[k + '_n']:,} values")
    else:
        lines.append("- (scanpy not run)")
    if sing_err is not None:
        lines.append(
            f"- singscore vs dense scipy ranking (300 cells): max abs difference {sing_err:.2e}"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=200_000)
    p.add_argument("--genes", type=int, default=20_000)
    p.add_argument("--nnz-per-cell", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block-cells", type=int, default=10_000, help="cells per writer.add")
    p.add_argument("--genes-per-block", type=int, default=1024, help="writer gene tile width")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--worker-memory", default="auto", help="LocalCluster memory_limit")
    p.add_argument(
        "--target-nnz",
        type=int,
        default=None,
        help="non-zeros per read block (default: the store's own default)",
    )
    p.add_argument("--skip-scanpy", action="store_true")
    p.add_argument(
        "--skip-scanpy-wilcoxon",
        action="store_true",
        help="run scanpy's Wilcoxon on a gene subset only (about 500 s saved at full scale)",
    )
    p.add_argument("--wilcoxon-subset-genes", type=int, default=200)
    p.add_argument("--rebuild", action="store_true", help="regenerate the cached store")
    p.add_argument("--scanpy-child", help=argparse.SUPPRESS)
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.nnz_per_cell > args.genes // 2:
        # The reads needed to reach that many distinct genes per cell grow without bound
        # as nnz approaches the gene count (coupon collecting).
        p.error(
            f"--nnz-per-cell ({args.nnz_per_cell}) must be at most half of --genes ({args.genes})"
        )
    return args


def _spec(args: argparse.Namespace) -> MatrixSpec:
    return MatrixSpec(
        n_cells=args.cells,
        n_genes=args.genes,
        nnz_per_cell=args.nnz_per_cell,
        seed=args.seed,
        n_planted=200,
        fold_change=2.0,
        block_cells=args.block_cells,
        genes_per_block=args.genes_per_block,
    )


def _is_cached(spec: MatrixSpec) -> bool:
    return (OUT / "data" / "expression" / spec.key() / "bench-build.json").exists()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.command = sys.argv[1:] if argv is None else list(argv)
    if args.scanpy_child:
        scanpy_child(args)
        return
    args.load_at_start = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    spec = _spec(args)
    warm = MatrixSpec(2_000, 400, 50, 1, 40, 2.0, 1_000, 128)
    if args.build_only:
        build_store(spec)
        build_store(warm)
        return
    if args.rebuild:
        shutil.rmtree(OUT / "data" / "expression" / spec.key(), ignore_errors=True)

    print(f"[1/4] store for {spec.n_cells:,} x {spec.n_genes:,} ({spec.key()})")
    was_cached = _is_cached(spec)
    if not (was_cached and _is_cached(warm)):
        # Generated and ingested in a process of its own, so that the memory it leaves
        # behind does not count against the client measured below.
        given = sys.argv[1:] if argv is None else argv
        cmd = [sys.executable, str(Path(__file__).resolve()), *given, "--build-only"]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise SystemExit("generating the store failed")
    root, version_dir, build = build_store(spec)
    build["cached"] = was_cached
    _, warm_dir, _ = build_store(warm)
    print(
        f"  {'cached' if was_cached else 'built'}: {build['nnz']:,} non-zeros; generate "
        f"{build['generate_s']:.1f} s, ingest {build['writer_add_s'] + build['writer_close_s']:.1f} s"
    )
    names = [f"G{i:05d}" for i in range(spec.n_genes)]
    up = np.asarray(build["up"], dtype=np.int64)
    rng = np.random.default_rng([spec.seed, 2])
    genes = [names[i] for i in np.sort(rng.choice(up, size=min(100, up.size), replace=False))]
    # scanpy's Wilcoxon subset (with --skip-scanpy-wilcoxon): half planted, half not.
    k = min(args.wilcoxon_subset_genes, spec.n_genes)
    planted = up[: k // 2]
    others = rng.choice(
        np.setdiff1d(np.arange(spec.n_genes), planted), k - planted.size, replace=False
    )
    subset = np.unique(np.concatenate([planted, others]))
    args.wilcoxon_subset = subset

    print(f"[2/4] ours: LocalCluster({args.workers} processes x {args.threads_per_worker} thread)")
    ours = run_ours(root, version_dir, warm_dir, genes, args)
    t_idx, t_oracle = singscore_oracle(root, version_dir, genes)
    sing_err = float(np.max(np.abs(ours["arrays"]["singscore"][t_idx] - t_oracle)))

    ref = None
    agree: dict[str, float] = {}
    if not args.skip_scanpy:
        print("[3/4] scanpy (subprocess)")
        ref = run_scanpy(
            version_dir,
            warm_dir,
            genes,
            full_wilcoxon=not args.skip_scanpy_wilcoxon,
            subset=subset,
        )
        agree = agreement(ours["arrays"], ref["arrays"])
    print("[4/4] report")
    text = report(spec, build, ours, ref, agree, sing_err, args)
    print()
    print(text)
    (OUT / "expression.md").write_text(text)
    raw = {
        "spec": asdict(spec),
        "build": build,
        "ours": {k: v for k, v in ours.items() if k != "arrays"},
        "scanpy": None if ref is None else {k: v for k, v in ref.items() if k != "arrays"},
        "agreement": agree,
        "singscore_vs_dense": sing_err,
        "versions": _versions(),
        "load_at_start": args.load_at_start,
    }
    (OUT / "expression.json").write_text(json.dumps(raw, indent=2, default=str))
    print(f"written: {OUT / 'expression.md'} and expression.json")


if __name__ == "__main__":
    main()
