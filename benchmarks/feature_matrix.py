"""Streamed write of a ``feature-matrix@1`` store: time and peak memory against size.

Generates CpG-like sites (one contig, sorted positions) x samples, methylated and total
counts as int32, in blocks of ``--block`` sites, writes them with
:func:`resistomics.storage.write_feature_matrix` and sums ``total`` back through dask.
Peak RSS must not grow with ``--sites`` (the writer holds one chunk row plus a block)::

    .venv/bin/python benchmarks/feature_matrix.py --sites 500000
    .venv/bin/python benchmarks/feature_matrix.py --sites 5000000
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from resistomics.storage import DataRoot, FeatureBlock, open_feature_matrix, write_feature_matrix


def _blocks(n: int, samples: int, block: int) -> Iterator[FeatureBlock]:
    rng = np.random.default_rng(0)
    for a in range(0, n, block):
        m = min(block, n - a)
        total = rng.poisson(12, (m, samples)).astype(np.int32)
        sites = pd.DataFrame(
            {
                "contig": "chr1",
                "position": np.arange(a, a + m, dtype=np.int64) * 10 + 1,
                "strand": "+",
            }
        )
        yield FeatureBlock(sites, {"methylated": total // 2, "total": total})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=2_000_000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--block", type=int, default=100_000)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="resistomics-fm-bench-")
    try:
        root = DataRoot(folder)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        summary = write_feature_matrix(
            root,
            root.path("v"),
            _blocks(args.sites, args.samples, args.block),
            samples=pd.DataFrame({"sample_id": [f"S{i}" for i in range(args.samples)]}),
            arrays={"methylated": "int32", "total": "int32"},
            sorted_by=("contig", "position"),
        )
        wrote = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size = summary.n_features * summary.n_samples * 2 * 4 / 2**20
        started = time.perf_counter()
        open_feature_matrix(root, root.path("v")).array("total").sum().compute()
        read = time.perf_counter() - started
        print(
            f"{summary.n_features} sites x {summary.n_samples} samples x 2 int32 "
            f"({size:.0f} MiB of values): write {wrote:.1f} s, peak RSS {peak:.0f} MiB "
            f"(before the write {before:.0f} MiB); dask sum of total {read:.1f} s"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
