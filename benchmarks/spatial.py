"""Spatial benchmark: neighbour graphs + nhood enrichment + co-occurrence over a cohort.

Run (the issue's scale, the default; ``--sections 10 --cells 20000`` for a quick run)::

    python benchmarks/spatial.py [--sections 100] [--cells 50000] [--workers 2]
        [--squidpy-sections 4] [--squidpy-python PYTHON]

What it does, in order (one process; squidpy 1.8.3, in the test environment, in a
subprocess of ``--squidpy-python``, default this interpreter, so its memory is its own):

1. **Generate** ``--sections`` sections of ``--cells`` cells each (5 M cells by default)
   over ``--side`` um squares (2,000 um: Xenium-like density, 12,500 cells/mm^2), 8 cell
   types: tumour nests (Gaussian clusters), fibroblasts gathered around some of them,
   immune and endothelial cells spread with density gradients. One Parquet file per
   section (x, y, cell_type), written section by section (the cohort is never in memory).
2. **Ours** on a ``distributed.LocalCluster`` of ``--workers`` processes x 1 thread through
   :func:`~resistomics.modalities.spatial.map_sections`: each task reads one section,
   builds the kNN graph (k = 6), draws 1,000 label permutations for the neighbourhood
   enrichment z-scores and counts co-occurrence over ``--interval`` distances (default
   20 thresholds up to 200 um, the scale of a niche), then drops the section. Peak RSS of
   the client and of each worker, sampled every 0.1 s.
3. **squidpy 1.8.3** on the first ``--squidpy-sections`` sections (it analyses one section
   in memory; the whole cohort would take hours), the same statistics with the same
   parameters: ``spatial_neighbors_knn(n_neighs=6)``, ``nhood_enrichment(n_perms=1000,
   seed=..., n_jobs=1)``, ``co_occurrence(interval=...)``; each step timed; its cells/s
   is that subset's, stated as such. Max RSS of the subprocess from ``getrusage``.
4. **Agreement** on those sections, in the same run: nhood observed counts equal,
   z-scores (same permutation stream) max |difference|, co-occurrence ratios max
   |difference|.
5. The numbers on stdout and in ``benchmarks/out/spatial.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT), str(ROOT / "benchmarks")]

from _rss import RssSampler  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
TYPES = (
    "tumour",
    "fibroblast",
    "macrophage",
    "t_cell",
    "b_cell",
    "endothelial",
    "nk_cell",
    "dendritic",
)
SHARES = np.array([0.35, 0.15, 0.12, 0.14, 0.06, 0.08, 0.05, 0.05])
NHOOD_SEED = 11

SQUIDPY_SCRIPT = r"""
import json, sys, time, resource, warnings
import numpy as np, pandas as pd, anndata as ad, squidpy as sq
warnings.simplefilter("ignore")
paths, interval, n_perms, seed, out = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
edges = np.array([float(v) for v in interval.split(":")], dtype=np.float32)
times = {"neighbors": 0.0, "nhood": 0.0, "co_occurrence": 0.0}
res = {}
for i, path in enumerate(paths):
    frame = pd.read_parquet(path)
    adata = ad.AnnData(obs=pd.DataFrame({"cell_type": pd.Categorical(frame["cell_type"])},
                                        index=frame.index.astype(str)))
    adata.obsm["spatial"] = frame[["x", "y"]].to_numpy()
    t = time.perf_counter(); sq.gr.spatial_neighbors_knn(adata, n_neighs=6)
    times["neighbors"] += time.perf_counter() - t
    t = time.perf_counter()
    z, counts = sq.gr.nhood_enrichment(adata, cluster_key="cell_type", n_perms=n_perms,
                                       seed=seed, n_jobs=1, copy=True, show_progress_bar=False)
    times["nhood"] += time.perf_counter() - t
    t = time.perf_counter()
    occ, _ = sq.gr.co_occurrence(adata, cluster_key="cell_type", interval=edges, copy=True)
    times["co_occurrence"] += time.perf_counter() - t
    res[f"z{i}"], res[f"count{i}"], res[f"occ{i}"] = z, counts, occ
    res[f"categories{i}"] = np.array(adata.obs["cell_type"].cat.categories, dtype=str)
np.savez(out, **res)
print(json.dumps({"times": times, "squidpy": sq.__version__,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_section(seed: int, n_cells: int, side: float) -> pd.DataFrame:
    """One generated section: ``n_cells`` cells of the 8 types on a ``side`` um square."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_cells, SHARES)
    n_nests = 12
    nests = rng.uniform(0.1 * side, 0.9 * side, (n_nests, 2))
    spread = rng.uniform(60, 160, n_nests)
    parts = []
    for code, n in enumerate(counts):
        if TYPES[code] == "tumour":
            which = rng.integers(0, n_nests, n)
            xy = nests[which] + rng.normal(0, 1, (n, 2)) * spread[which, None]
        elif TYPES[code] == "fibroblast":  # half around a third of the nests, half stroma
            near = n // 2
            which = rng.integers(0, n_nests // 3, near)
            ring = nests[which] + rng.normal(0, 1, (near, 2)) * (spread[which, None] * 1.3)
            xy = np.vstack([ring, rng.uniform(0, side, (n - near, 2))])
        else:  # a density gradient along a random direction
            angle = rng.uniform(0, 2 * np.pi)
            u = rng.uniform(0, side, (4 * n, 2))
            proj = (u @ np.array([np.cos(angle), np.sin(angle)])) / (side * np.sqrt(2)) + 0.5
            keep = rng.uniform(size=4 * n) < np.clip(proj, 0.05, 1.0)
            xy = u[keep][:n]
            if len(xy) < n:
                xy = np.vstack([xy, rng.uniform(0, side, (n - len(xy), 2))])
        parts.append((np.clip(xy, 0, side), np.full(n, code)))
    xy = np.vstack([p[0] for p in parts])
    codes = np.concatenate([p[1] for p in parts])
    order = rng.permutation(n_cells)
    return pd.DataFrame(
        {
            "x": xy[order, 0],
            "y": xy[order, 1],
            "cell_type": pd.Categorical.from_codes(codes[order], categories=list(TYPES)),
        },
        index=pd.Index([f"s{seed}_c{i}" for i in range(n_cells)], name="cell_id"),
    )


def _loader(directory: str) -> Any:
    from resistomics.modalities.spatial import Section

    def load(name: str) -> Section:
        frame = pd.read_parquet(Path(directory) / f"{name}.parquet")
        return Section(
            name=name,
            coords=frame[["x", "y"]].to_numpy(),
            labels=pd.Categorical(frame["cell_type"]),
        )

    return load


def run_ours(
    directory: Path, names: list[str], workers: int, edges: np.ndarray
) -> tuple[float, dict[str, Any], list[Any]]:
    import dask
    from distributed import Client, LocalCluster

    from resistomics.modalities.spatial import map_sections

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="8GB",
        ) as cluster,
        Client(cluster) as client,
    ):
        # compile the numba kernels on every worker first (not part of the timing)
        warm = map_sections(
            _loader(str(directory)), names[:workers], k=6, n_perms=5, interval=edges[:3]
        )
        client.gather(client.compute(warm))
        pids = list(client.run(lambda: __import__("os").getpid()).values())
        with RssSampler(interval=0.1) as sampler, sampler.window() as mem:
            t0 = time.perf_counter()
            parts = map_sections(
                _loader(str(directory)),
                names,
                k=6,
                n_perms=1000,
                seed=NHOOD_SEED,
                interval=edges,
            )
            results = list(dask.compute(*parts))
            elapsed = time.perf_counter() - t0
    memory = {
        "peak_rss_total_mb": mem["peak_sum"] / 2**20,
        "peak_rss_worker_mb": max(mem["peak_by_pid"].get(p, 0) for p in pids) / 2**20,
        "cpu_s": mem["cpu_s"],
    }
    return elapsed, memory, results


def run_squidpy(python: str, paths: list[Path], edges: np.ndarray, out: Path) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [
            python,
            "-c",
            SQUIDPY_SCRIPT,
            ",".join(str(p) for p in paths),
            ":".join(repr(float(e)) for e in edges),
            "1000",
            str(NHOOD_SEED),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"squidpy failed:\n{proc.stderr[-3000:]}")
    info: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    info["child_max_rss_mb_getrusage"] = (
        max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    )
    return info


def agreement(ours: list[Any], squidpy_out: Path, n: int) -> dict[str, float]:
    ref = np.load(squidpy_out)
    worst = {"nhood_count_max_abs": 0.0, "nhood_z_max_abs": 0.0, "cooc_ratio_max_abs": 0.0}
    for i in range(n):
        got = ours[i]
        cats = tuple(ref[f"categories{i}"].tolist())
        assert got.nhood.categories == cats, (got.nhood.categories, cats)
        worst["nhood_count_max_abs"] = max(
            worst["nhood_count_max_abs"],
            float(np.abs(got.nhood.counts - ref[f"count{i}"]).max()),
        )
        both = np.isfinite(got.nhood.zscore) & np.isfinite(ref[f"z{i}"])
        worst["nhood_z_max_abs"] = max(
            worst["nhood_z_max_abs"],
            float(np.abs(got.nhood.zscore[both] - ref[f"z{i}"][both]).max()),
        )
        worst["cooc_ratio_max_abs"] = max(
            worst["cooc_ratio_max_abs"],
            float(np.abs(got.co_occurrence.ratio - ref[f"occ{i}"]).max()),
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", type=int, default=100)
    parser.add_argument("--cells", type=int, default=50_000, help="cells per section")
    parser.add_argument("--side", type=float, default=2000.0, help="section side, um")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--squidpy-sections", type=int, default=4)
    parser.add_argument("--squidpy-python", default=sys.executable)
    parser.add_argument(
        "--interval",
        default="0:200:21",
        help="co-occurrence distances as start:stop:num (numpy linspace), um",
    )
    args = parser.parse_args()
    start, stop, num = args.interval.split(":")
    edges = np.linspace(float(start), float(stop), int(num), dtype=np.float32)
    OUT.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="resistomics-bench-spatial-") as tmp:
        directory = Path(tmp)
        names = [f"section{i:03d}" for i in range(args.sections)]
        t0 = time.perf_counter()
        for i, name in enumerate(names):
            make_section(1000 + i, args.cells, args.side).to_parquet(directory / f"{name}.parquet")
        generate_s = time.perf_counter() - t0
        total_cells = args.sections * args.cells
        print(f"generated {args.sections} sections x {args.cells:,} cells in {generate_s:.1f} s")

        ours_s, memory, results = run_ours(directory, names, args.workers, edges)
        ours_rate = total_cells / ours_s
        print(
            f"ours: {ours_s:.1f} s on {args.workers} workers, {ours_rate:,.0f} cells/s; "
            f"peak RSS {memory['peak_rss_total_mb']:.0f} MB total, "
            f"{memory['peak_rss_worker_mb']:.0f} MB per worker"
        )

        n_sq = min(args.squidpy_sections, args.sections)
        sq_out = directory / "squidpy.npz"
        sq = run_squidpy(
            args.squidpy_python, [directory / f"{n}.parquet" for n in names[:n_sq]], edges, sq_out
        )
        sq_s = sum(sq["times"].values())
        sq_rate = n_sq * args.cells / sq_s
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in sq["times"].items())
        print(
            f"squidpy {sq['squidpy']}: {n_sq} sections ({n_sq * args.cells:,} cells) in "
            f"{sq_s:.1f} s ({steps}), {sq_rate:,.0f} cells/s; max RSS {sq['max_rss_mb']:.0f} MB"
        )
        agree = agreement(results, sq_out, n_sq)
        print(
            f"agreement on those sections: nhood counts max |diff| "
            f"{agree['nhood_count_max_abs']:g}, z-scores {agree['nhood_z_max_abs']:.2e}, "
            f"co-occurrence ratios {agree['cooc_ratio_max_abs']:.2e}"
        )
        ratio = ours_rate / sq_rate
        print(f"ratio (cells/s, ours / squidpy): {ratio:.1f}x")

    section_mb = args.cells * (2 * 8 + 1) / 2**20
    record = {
        "sections": args.sections,
        "cells_per_section": args.cells,
        "cells": total_cells,
        "side_um": args.side,
        "interval": edges.tolist(),
        "n_perms": 1000,
        "k": 6,
        "workers": args.workers,
        "generate_s": generate_s,
        "ours_s": ours_s,
        "ours_cells_per_s": ours_rate,
        **memory,
        "section_coords_labels_mb": section_mb,
        "squidpy": sq,
        "squidpy_sections": n_sq,
        "squidpy_s": sq_s,
        "squidpy_cells_per_s": sq_rate,
        "agreement": agree,
        "ratio": ratio,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    (OUT / "spatial.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
