"""Peak memory of ``metabolomics normalize`` over stored feature blocks.

Usage::

    python benchmarks/metabolomics_normalize.py [--features 100000] [--samples 600]
        [--block 4096] [--workers 2] [--memory-limit 400MiB] [--knn-features 12000]

1. Writes a generated abundance matrix (pooled QCs every 5th injection, a blank,
   missing values below a detection limit) as a ``feature-matrix@1`` store, one block at
   a time (the generator never holds the matrix either).
2. Starts a ``LocalCluster`` of ``--workers`` worker processes, each with
   ``--memory-limit`` (below the matrix's size), and runs what the ``normalize``
   analysis runs: :func:`normalize_blockwise` (half-minimum, PQN on the QC reference,
   log2, Pareto) with its blocks streamed into a new store by ``write_feature_matrix``.
3. Samples the RSS of this process (the client) and of each worker every 50 ms; prints
   the matrix size, the peaks and the time (and ``benchmarks/out/metabolomics_normalize.json``).
4. The same for KNN imputation (feature-wise, donors streamed) on ``--knn-features``,
   whose written store is also checked against :func:`normalize_matrix` in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import _rss


def _generate(root, path: str, n_features: int, n_samples: int, block: int, seed: int):  # type: ignore[no-untyped-def]
    from resistomics.modalities.metabolomics._blockwise import plan_blocks
    from resistomics.storage import FeatureBlock, write_feature_matrix

    rng = np.random.default_rng(seed)
    types = np.array(["study"] * n_samples, dtype=object)
    types[::5] = "qc"
    types[-1] = "blank"
    dilution = rng.lognormal(0, 0.2, n_samples)

    def parts():  # type: ignore[no-untyped-def]
        for s, e in plan_blocks(n_features, block):
            level = rng.lognormal(8, 1, (e - s, 1))
            x = level * rng.lognormal(0, 0.25, (e - s, n_samples)) * dilution[None, :]
            x[:, types == "qc"] = level * rng.lognormal(
                0, 0.05, (e - s, int((types == "qc").sum()))
            )
            x[(x < np.exp(6.5)) & (types != "qc")[None, :]] = np.nan
            yield FeatureBlock(
                pd.DataFrame({"feature_id": [f"f{i}" for i in range(s, e)]}), {"abundance": x}
            )

    write_feature_matrix(
        root,
        path,
        parts(),
        samples=pd.DataFrame(
            {"sample_id": [f"s{j}" for j in range(n_samples)], "sample_type": types}
        ),
        arrays={"abundance": "float64"},
        feature_id="feature_id",
        features_per_chunk=block,
        samples_per_chunk=256,
    )
    return types


def _run(root, path: str, types: np.ndarray, steps, args, label: str) -> dict:  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster

    from resistomics.modalities.metabolomics._blockwise import StoreRows
    from resistomics.modalities.metabolomics._normalization import normalize_matrix
    from resistomics.modalities.metabolomics._normalize_blocks import normalize_blockwise
    from resistomics.storage import FeatureBlock, open_feature_matrix, write_feature_matrix

    store = open_feature_matrix(root, path)
    used = np.flatnonzero(types != "blank")
    qc = types[used] == "qc"
    features = store.features
    out_path = root.path(f"{label}-normalized")
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
        _rss.RssSampler(interval=0.05, tree=True) as sampler,
    ):
        workers = list(client.run(os.getpid).values())
        time.sleep(1.0)
        sampler.sample()
        base_client = sampler._peak_by_pid.get(sampler.root.pid, 0)
        with sampler.window() as peaks:
            t0 = time.perf_counter()
            fig, blocks = normalize_blockwise(
                StoreRows(store), store.n_features, steps, n_samples=store.n_samples,
                used=used, study=np.flatnonzero(types == "study"), qc=qc,
                features_per_block=store.chunks[0],
            )  # fmt: skip
            write_feature_matrix(
                root,
                out_path,
                (
                    FeatureBlock(
                        features.iloc[b.features].reset_index(drop=True),
                        {"abundance": b.values, "scaled": b.scaled},
                    )
                    for b in blocks
                ),
                samples=store.samples.iloc[used].reset_index(drop=True),
                arrays={"abundance": "float64", "scaled": "float64"},
                feature_id="feature_id",
                features_per_chunk=store.chunks[0],
                samples_per_chunk=256,
            )
            seconds = time.perf_counter() - t0
    by_pid = peaks["peak_by_pid"]
    client_peak = by_pid.get(sampler.root.pid, 0)
    worker_peaks = [by_pid.get(p, 0) for p in workers]
    # check: the written rows against the in-memory pipeline on the kept rows of the matrix
    written = open_feature_matrix(root, out_path)
    check = {}
    if store.n_features * store.n_samples <= 20_000_000:
        x = np.asarray(store.array("abundance").compute())[:, used]
        ref = normalize_matrix(x, steps, qc=qc)
        got = np.asarray(written.array("abundance").compute())
        check["max_abs_diff_vs_in_memory"] = float(np.nanmax(np.abs(got - ref.values)))
    matrix_mb = store.n_features * store.n_samples * 8 / 2**20
    return {
        "label": label,
        "matrix": f"{store.n_features} x {store.n_samples}",
        "matrix_MiB": round(matrix_mb, 1),
        "block_MiB": round(store.chunks[0] * store.n_samples * 8 / 2**20, 1),
        "n_blocks": -(-store.n_features // store.chunks[0]),
        "kept": int(fig.keep.sum()),
        "seconds": round(seconds, 1),
        "client_rss_before_MiB": round(base_client / 2**20, 1),
        "client_peak_rss_MiB": round(client_peak / 2**20, 1),
        "worker_peak_rss_MiB": [round(p / 2**20, 1) for p in worker_peaks],
        "worker_memory_limit": args.memory_limit,
        **check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="400MiB")
    parser.add_argument("--knn-features", type=int, default=12_000)
    parser.add_argument("--knn-samples", type=int, default=200)
    parser.add_argument("--knn-block", type=int, default=1000)
    args = parser.parse_args()

    from resistomics.modalities.metabolomics._normalization import NormalizationSteps
    from resistomics.storage import DataRoot

    tmp = Path(tempfile.mkdtemp(prefix="metab-norm-"))
    root = DataRoot(str(tmp / "root"))
    results = []
    types = _generate(root, root.path("big"), args.features, args.samples, args.block, 1)
    steps = NormalizationSteps(
        impute="half-min", method="pqn", drift="none", transform="log", scale="pareto"
    )
    results.append(_run(root, root.path("big"), types, steps, args, "pqn"))
    print(json.dumps(results[-1]), flush=True)
    if args.knn_features:
        types = _generate(root, root.path("knn"), args.knn_features, args.knn_samples,
                          args.knn_block, 2)  # fmt: skip
        steps = NormalizationSteps(
            impute="knn", knn_k=10, method="pqn", drift="none", transform="log", scale="pareto"
        )
        results.append(_run(root, root.path("knn"), types, steps, args, "knn"))
        print(json.dumps(results[-1]), flush=True)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "metabolomics_normalize.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
