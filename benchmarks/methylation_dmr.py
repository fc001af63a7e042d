"""DMR calling (DSS ``callDMR``) streamed from a Parquet DML table: wall clock, peak RSS,
and DSS's own ``callDMR`` on a subset of the same table.

    .venv/bin/python benchmarks/methylation_dmr.py --cpgs 10000000 --dss-cpgs 1000000

The DML table is generated a contig at a time (23 contigs, CpGs 2-200 bp apart, p-values
uniform except in planted runs of 5-40 CpGs every ~20 kb, mu1/mu2/stat drawn) and written
with pyarrow's default row groups; only ``call_dmrs(path)`` is timed, in a fresh process
(its peak RSS is ``ru_maxrss`` of that process, the interpreter and imports included).
With ``--dss-cpgs`` the first N rows are written as TSV and DSS's ``callDMR`` runs on them
through ``Rscript`` (reading the file is not timed).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CONTIGS = [f"chr{i}" for i in range(1, 23)] + ["chrX"]

_CHILD = """
import resource, sys, time
from resistomics.modalities.methylation._dmr import call_dmrs
t = time.perf_counter()
d = call_dmrs(sys.argv[1], p_threshold=1e-5)
s = time.perf_counter() - t
print(len(d), s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

_R = """
suppressMessages(library(DSS))
d <- read.delim(commandArgs(TRUE)[1]); class(d)[2] <- "DMLtest"
t <- system.time(r <- callDMR(d, p.threshold=1e-5))[["elapsed"]]
cat(nrow(r), t, "\\n")
"""


def _contig(rng: np.random.Generator, name: str, n: int) -> pd.DataFrame:
    pos = 10_000 + np.cumsum(rng.integers(2, 200, n))
    pval = rng.random(n)
    for s in rng.choice(n - 40, max(1, n // 200), replace=False):
        pval[s : s + rng.integers(5, 40)] = rng.uniform(0, 1e-7)
    mu1, mu2 = rng.random(n), rng.random(n)
    return pd.DataFrame(
        {
            "contig": name,
            "position": pos,
            "mu1": mu1,
            "mu2": mu2,
            "diff": mu1 - mu2,
            "diff_se": rng.uniform(0.02, 0.2, n),
            "stat": rng.normal(0, 3, n),
            "pval": pval,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpgs", type=int, default=10_000_000)
    ap.add_argument("--dss-cpgs", type=int, default=0, help="rows for DSS (0: skip DSS)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="meth-dmr-"))
    try:
        path = folder / "dml.parquet"
        per = np.diff(np.linspace(0, args.cpgs, len(CONTIGS) + 1).astype(int))
        writer = None
        head = []
        for name, n in zip(CONTIGS, per, strict=True):
            frame = _contig(rng, name, int(n))
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            if sum(len(h) for h in head) < args.dss_cpgs:
                head.append(frame)
        assert writer is not None
        writer.close()
        size = path.stat().st_size / 2**20
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)], check=True, capture_output=True, text=True
        ).stdout.split()
        n_dmrs, seconds, rss = int(out[0]), float(out[1]), float(out[2])
        print(
            f"ours: {args.cpgs:,} CpGs ({size:.0f} MiB Parquet), {n_dmrs:,} DMRs in "
            f"{seconds:.2f} s ({args.cpgs / seconds:,.0f} CpGs/s), peak RSS {rss:.0f} MiB"
        )
        if args.dss_cpgs and shutil.which("Rscript"):
            sub = pd.concat(head).head(args.dss_cpgs)
            tsv = folder / "dml.tsv"
            sub.rename(columns={"contig": "chr", "position": "pos", "diff_se": "diff.se"}).to_csv(
                tsv, sep="\t", index=False
            )
            (folder / "run.R").write_text(_R)
            start = time.perf_counter()
            r = subprocess.run(
                ["Rscript", str(folder / "run.R"), str(tsv)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            wall = time.perf_counter() - start
            dss_seconds = float(r[1])
            print(
                f"DSS callDMR: {len(sub):,} CpGs, {int(r[0]):,} DMRs in {dss_seconds:.2f} s "
                f"({len(sub) / dss_seconds:,.0f} CpGs/s; Rscript wall {wall:.1f} s with the read)"
            )
            print(f"ratio (CpGs/s): {args.cpgs / seconds / (len(sub) / dss_seconds):.1f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
