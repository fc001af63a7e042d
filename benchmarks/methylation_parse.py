"""Parse speed of each methylation reader: rows/s over one generated sample's file.

    .venv/bin/python benchmarks/methylation_parse.py --sites 2100000            # every format
    .venv/bin/python benchmarks/methylation_parse.py --formats bismark-cov --repeat 3

One sample of ``simulate_methylation_cohort`` (``--sites`` CpGs, 5 % dropout, depth ~20)
is written in each format (gzip for ``bismark-cov``: ``.bismark.cov.gz``, as Bismark
writes it); the stranded formats hold two rows per CpG. Timed: the reader's whole stream
(``read_methylation`` and every :class:`SiteChunk` of the file, as the merge consumes
it: decompression, the checked text layer, parsing, every bad-input check, the sort and
site keys), single-threaded, wall clock and CPU; the best of ``--repeat`` runs. Writing
the files is not timed. On a shared machine read rows per CPU-second: wall clock there
includes the time other processes held the cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from resistomics.modalities.methylation._readers import (
    MethylationReadContext,
    read_methylation,
)
from resistomics.modalities.methylation._simulate import (
    simulate_methylation_cohort,
    write_methylation_files,
)

FORMATS = ("bismark-cov", "bismark-report", "modkit", "methyldackel", "dss")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=2_100_000)
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rows-per-chunk", type=int, default=1 << 16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sim = simulate_methylation_cohort(
        n_subjects=1, n_sites=args.sites, n_dmrs=0, dropout=0.05, seed=args.seed
    )
    sample = next(iter(sim.calls))
    one = dataclasses.replace(sim, calls={sample: sim.calls[sample]})
    folder = Path(tempfile.mkdtemp(prefix="meth-parse-"))
    ctx = MethylationReadContext(
        registered_samples=frozenset([sample]), rows_per_chunk=args.rows_per_chunk
    )
    print(
        f"{'format':<16}{'rows':>12}{'MB':>8}{'wall s':>9}{'cpu s':>8}{'rows/s':>13}"
        f"{'rows/cpu-s':>13}"
    )
    try:
        for fmt in args.formats:
            (path,) = write_methylation_files(
                one, folder / fmt, fmt, gzip_files=fmt == "bismark-cov"
            )
            best = None
            for _ in range(args.repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                source = read_methylation(path, ctx, fmt=fmt)
                (f,) = source.files
                sites = sum(len(c.keys) for c in f.open_chunks())
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if best is None or wall < best[0]:
                    best = (wall, cpu, f.stats.rows, sites)
            assert best is not None
            wall, cpu, rows, sites = best
            assert sites == f.stats.sites and rows > 0
            size = path.stat().st_size / 1e6
            print(
                f"{fmt:<16}{rows:>12,}{size:>8.1f}{wall:>9.2f}{cpu:>8.2f}{rows / wall:>13,.0f}"
                f"{rows / cpu:>13,.0f}"
            )
            shutil.rmtree(folder / fmt)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
