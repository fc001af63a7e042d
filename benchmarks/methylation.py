"""Methylation benchmark: two-group DML test (DSS ``DMLtest``), ours against DSS.

Run (the issue's scale, the default; ``--cpgs 200000`` for a quick run)::

    python benchmarks/methylation.py [--cpgs 5000000] [--dss-cpgs 200000] [--smoothing]

What it does, in order:

1. **Generate** a cohort of ``--cpgs`` CpGs x 16 samples (8 vs 8) as per-sample Bismark
   coverage files (chr, start, end, %, methylated, unmethylated): bimodal levels, a
   planted shift of 0.3 on 1% of the CpGs in arm A, Poisson depth around 15 per sample,
   beta-binomial counts with dispersion 0.05 (the model of
   :mod:`resistomics.modalities.methylation._simulate`, vectorised for this size), a
   site missing from a file where it has no reads.
2. **Ingest** the folder through the platform (``resistomics.pipeline.ingest``: streaming
   k-way merge into ``feature-matrix@1``, expectations).
3. **Ours**: :func:`~resistomics.modalities.methylation._dml.write_dml_parts` (what the
   ``dml`` analysis publishes: each block's rows a Parquet part written on its worker)
   on a ``distributed.LocalCluster`` of 2 worker processes x 1 thread, from the store,
   one graph computed once; peak RSS of each worker process (``VmHWM``, workers
   started for this step, after a 3,000-CpG warm-up that loads the compiled kernel;
   not ``ru_maxrss``, which Linux carries over from the client through the fork and
   exec that start a worker) and
   of the client during the step (its RSS sampled every 20 ms: the client's own
   ``ru_maxrss`` is the generation and ingest before it).
4. **DSS 2.46** (Debian ``r-bioc-dss``, installed with ``apt-get`` when ``Rscript`` or
   DSS is missing and we are root) through ``Rscript`` on the first ``--dss-cpgs``
   CpGs of the same files (DSS text format), ``DMLtest`` with the same options; the time
   of ``DMLtest`` alone (not the file reading) and Rscript's max RSS
   (``/usr/bin/time -f %M``).
5. **Agreement** on that subset: ours on the same CpGs against DSS's table (max relative
   difference of stat, pval, phi1).
6. The numbers on stdout and in ``benchmarks/out/methylation.json``.

CpGs/s are over the CpGs each run was given (DSS: the subset; ours: the cohort). The
machine is shared (2 cores): timings are wall-clock under whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

OUT = ROOT / "benchmarks" / "out"
N_PER_ARM = 8

DSS_SCRIPT = r"""
suppressMessages(library(DSS))
args <- commandArgs(TRUE)
folder <- args[1]; out <- args[2]; smoothing <- args[3] == "TRUE"
s <- read.table(file.path(folder, "samples.tsv"), header=TRUE, sep="\t")
dat <- lapply(s$sample_id, function(id) read.table(file.path(folder, paste0(id, ".txt")), header=TRUE))
BS <- makeBSseqData(dat, s$sample_id)
g1 <- s$sample_id[s$arm == "A"]; g2 <- s$sample_id[s$arm == "B"]
t0 <- proc.time()[["elapsed"]]
d <- DMLtest(BS, group1=g1, group2=g2, smoothing=smoothing, ncores=1)
el <- proc.time()[["elapsed"]] - t0
write.table(d, out, sep="\t", quote=FALSE, row.names=FALSE)
cat(sprintf("DMLTEST_SECONDS %.3f\n", el))
"""


def ensure_dss() -> None:
    """Install Debian's ``r-bioc-dss`` (DSS 2.46 and R) when DSS is not there."""
    probe = ["Rscript", "-e", "suppressMessages(library(DSS))"]
    if shutil.which("Rscript") and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise SystemExit("DSS is not installed: apt-get install r-bioc-dss (as root)")
    print("installing r-bioc-dss (apt-get) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "r-bioc-dss", "time"], check=True, env=env)


class PeakRSS:
    """This process's peak resident memory over a ``with`` block (sampled every 20 ms)."""

    def __enter__(self) -> PeakRSS:
        self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())


def generate(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """Per-sample Bismark coverage files of ``n`` CpGs on 4 contigs; the sample sheet."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    contigs = np.repeat(["chr1", "chr2", "chr3", "chr4"], np.diff(np.linspace(0, n, 5).astype(int)))
    position = np.empty(n, dtype=np.int64)
    for c in np.unique(contigs):
        sel = contigs == c
        position[sel] = np.cumsum(rng.integers(2, 120, size=int(sel.sum()))) + 10_000
    level = np.where(rng.random(n) < 0.6, rng.beta(8, 1.5, n), rng.beta(1.5, 8, n))
    planted = rng.random(n) < 0.01
    phi = 0.05
    rows = []
    for arm in ("A", "B"):
        for i in range(N_PER_ARM):
            sid = f"{arm}{i + 1}"
            rows.append({"sample_id": sid, "subject_id": sid, "arm": arm})
            mu = np.clip(level + np.where(planted & (arm == "A"), 0.3, 0.0), 0.01, 0.99)
            depth = rng.poisson(15 * rng.uniform(0.7, 1.3), n)
            p = rng.beta(mu * (1 / phi - 1), (1 - mu) * (1 / phi - 1))
            meth = rng.binomial(depth, p)
            keep = depth > 0
            frame = pd.DataFrame(
                {
                    "chr": contigs[keep],
                    "start": position[keep],
                    "end": position[keep],
                    "pct": np.round(100 * meth[keep] / depth[keep], 4),
                    "meth": meth[keep],
                    "unmeth": depth[keep] - meth[keep],
                }
            )
            frame.to_csv(folder / f"{sid}.bismark.cov", sep="\t", header=False, index=False)
    return pd.DataFrame(rows)


def dss_subset(cov: Path, sheet: pd.DataFrame, folder: Path, n: int) -> tuple[str, int]:
    """The first ``n`` CpGs (in chr1.. order) of every file in DSS's text format."""
    folder.mkdir(parents=True, exist_ok=True)
    union: set[tuple[str, int]] = set()
    frames = {}
    for sid in sheet["sample_id"]:
        f = pd.read_csv(
            cov / f"{sid}.bismark.cov",
            sep="\t",
            header=None,
            names=["chr", "pos", "end", "pct", "m", "u"],
            nrows=int(n * 1.2) + 1000,
        )
        frames[sid] = f
        union.update(zip(f["chr"], f["pos"], strict=True))
    keys = sorted(union, key=lambda k: (k[0], k[1]))[:n]
    last = keys[-1]
    for sid, f in frames.items():
        f = f[(f["chr"] < last[0]) | ((f["chr"] == last[0]) & (f["pos"] <= last[1]))]
        pd.DataFrame({"chr": f["chr"], "pos": f["pos"], "N": f["m"] + f["u"], "X": f["m"]}).to_csv(
            folder / f"{sid}.txt", sep="\t", index=False
        )
    sheet.to_csv(folder / "samples.tsv", sep="\t", index=False)
    return last[0], int(last[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpgs", type=int, default=5_000_000)
    parser.add_argument("--dss-cpgs", type=int, default=200_000)
    parser.add_argument("--smoothing", action="store_true")
    parser.add_argument("--sites-per-block", type=int, default=1 << 16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ensure_dss()

    from distributed import Client, LocalCluster

    from resistomics.catalog import parse_sample_sheet
    from resistomics.config import ClusterSettings, Settings
    from resistomics.modalities.methylation._dml import StoreCounts, dml_test, write_dml_parts
    from resistomics.modalities.methylation._dml_analysis import _site_index
    from resistomics.pipeline import Workspace, ingest
    from resistomics.storage import open_feature_matrix

    work = Path(tempfile.mkdtemp(prefix="resistomics-bench-methylation-"))
    report: dict[str, object] = {
        "cpgs": args.cpgs,
        "samples": 2 * N_PER_ARM,
        "smoothing": args.smoothing,
        "machine": f"{platform.node()} {platform.machine()}",
    }
    try:
        ws = Workspace.open(
            Settings(data_root=str(work / "root"), cluster=ClusterSettings(n_workers=2))
        )
        landing = Path(ws.settings.resolved_landing_zone) / "bench" / "methylation" / "cohort"
        t = time.perf_counter()
        sheet = generate(landing, args.cpgs, args.seed)
        report["generate_s"] = time.perf_counter() - t
        sheet_path = work / "samples.tsv"
        sheet.to_csv(sheet_path, sep="\t", index=False)
        ws.catalog.register_study("bench", parse_sample_sheet(sheet_path))
        size = sum(f.stat().st_size for f in landing.iterdir())
        print(
            f"generated {args.cpgs:,} CpGs x {len(sheet)} samples "
            f"({size / 1e9:.2f} GB of Bismark .cov) in {report['generate_s']:.1f} s"
        )
        # DSS's copy of a subset, before ingest moves the landed files
        dss_dir = work / "dss"
        last = dss_subset(landing, sheet, dss_dir, min(args.dss_cpgs, args.cpgs))

        t = time.perf_counter()
        outcome = ingest(ws, str(landing), study="bench", modality="methylation")
        report["ingest_s"] = time.perf_counter() - t
        assert outcome.status == "published", outcome.message
        print(
            f"ingest: {report['ingest_s']:.1f} s, {args.cpgs / report['ingest_s']:,.0f} CpGs/s "
            f"({outcome.message})"
        )
        store = open_feature_matrix(ws.root, ws.root.to_path(outcome.version.uri))
        contigs, positions = _site_index(store)
        arm = store.samples["arm"].astype(str).to_numpy()
        g1, g2 = np.flatnonzero(arm == "A"), np.flatnonzero(arm == "B")
        ws.close()

        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                memory_limit="4GiB",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: None)
            # the compiled kernel is loaded (numba's cache) in each worker before timing
            dml_test(StoreCounts(store), contigs[:3000], positions[:3000], g1, g2)
            client.run(lambda: __import__("gc").collect())

            def _cpu() -> float:
                import resource as r

                u = r.getrusage(r.RUSAGE_SELF)
                return u.ru_utime + u.ru_stime

            from resistomics.storage import DataRoot

            parts = work / "dml.parquet"
            load_before = Path("/proc/loadavg").read_text().split()[:3]
            cpu0 = sum(client.run(_cpu).values()) + time.process_time()
            t = time.perf_counter()
            with PeakRSS() as client_step:
                n_tested = write_dml_parts(
                    StoreCounts(store),
                    contigs,
                    positions,
                    g1,
                    g2,
                    root=DataRoot(str(work)),
                    directory=str(parts),
                    smoothing=args.smoothing,
                    sites_per_block=args.sites_per_block,
                )
            ours_s = time.perf_counter() - t
            ours_cpu = sum(client.run(_cpu).values()) + time.process_time() - cpu0

            def _maxrss() -> int:
                # VmHWM: this process's own peak (ru_maxrss would carry the client's
                # peak over from the fork that started the worker, through exec)
                with open("/proc/self/status") as f:
                    line = next(x for x in f if x.startswith("VmHWM:"))
                return int(line.split()[1]) * 1024

            worker_rss = sorted(client.run(_maxrss).values())
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        client_rss = client_step.peak
        n_sig = int((pd.read_parquet(parts, columns=["fdr"])["fdr"] < 0.05).sum())
        n_parts = len(list(parts.glob("part-*.parquet")))
        report.update(
            sites_per_block=args.sites_per_block,
            parts=n_parts,
            loadavg_before=load_before,
            loadavg_after=load_after,
            client_process_peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            ours_s=ours_s,
            ours_cpgs_per_s=args.cpgs / ours_s,
            ours_cpu_s=ours_cpu,
            ours_cpu_us_per_cpg=1e6 * ours_cpu / args.cpgs,
            ours_tested=n_tested,
            ours_fdr05=n_sig,
            ours_worker_peak_rss=worker_rss,
            client_peak_rss=client_rss,
        )
        print(
            f"ours: {ours_s:.1f} s for {args.cpgs:,} CpGs = {args.cpgs / ours_s:,.0f} CpGs/s, "
            f"{ours_cpu:.1f} CPU-s (workers + client) = {1e6 * ours_cpu / args.cpgs:.2f} "
            f"CPU-us/CpG ({n_tested:,} tested in {n_parts} parts of <= {args.sites_per_block:,}, "
            f"{n_sig:,} at FDR < 0.05); peak RSS per worker "
            f"{', '.join(f'{r / 2**20:.0f} MiB' for r in worker_rss)}; client during the "
            f"step {client_rss / 2**20:.0f} MiB; loadavg {' '.join(load_before)} -> "
            f"{' '.join(load_after)}"
        )

        # DSS on the subset
        dss_out = work / "dss_result.tsv"
        script = work / "dss.R"
        script.write_text(DSS_SCRIPT)
        t = time.perf_counter()
        proc = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "MAXRSS_KB %M",
                "Rscript",
                str(script),
                str(dss_dir),
                str(dss_out),
                str(args.smoothing).upper(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        dss_wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"Rscript failed:\n{proc.stderr[-2000:]}")
        dss_rss = 1024 * int(
            next(x for x in proc.stderr.splitlines() if x.startswith("MAXRSS_KB")).split()[1]
        )
        dss_s = float(
            next(x for x in proc.stdout.splitlines() if x.startswith("DMLTEST_SECONDS")).split()[1]
        )
        dss = pd.read_csv(dss_out, sep="\t")
        dss_given = min(args.dss_cpgs, args.cpgs)
        report.update(
            dss_cpgs=dss_given,
            dss_s=dss_s,
            dss_wall_s=dss_wall,
            dss_cpgs_per_s=dss_given / dss_s,
            dss_peak_rss=dss_rss,
        )
        print(
            f"DSS 2.46 DMLtest: {dss_s:.1f} s for the first {dss_given:,} CpGs "
            f"(Rscript {dss_wall:.1f} s with reading) = {dss_given / dss_s:,.0f} CpGs/s; "
            f"Rscript max RSS {dss_rss / 2**20:.0f} MiB"
        )

        # agreement on the subset: ours on the same CpGs (up to the last one DSS got)
        in_subset = (contigs.astype(str) < last[0]) | (
            (contigs.astype(str) == last[0]) & (positions <= last[1])
        )
        rows = np.flatnonzero(np.asarray(in_subset))
        sub = (
            dml_test(
                lambda lo, hi: StoreCounts(store)(int(rows[0]) + lo, int(rows[0]) + hi),
                contigs[rows],
                positions[rows],
                g1,
                g2,
                smoothing=args.smoothing,
                sites_per_block=args.sites_per_block,
                compute=lambda *a: __import__("dask").compute(*a, scheduler="sync"),
            )
            if rows.size and (np.diff(rows) == 1).all()
            else None
        )
        if sub is not None:
            both = sub.astype({"contig": str}).merge(
                dss, left_on=["contig", "position"], right_on=["chr", "pos"], suffixes=("", "_dss")
            )
            agree = {
                c: float(
                    np.max(
                        np.abs(both[c] - both[f"{c}_dss"])
                        / np.maximum(np.abs(both[f"{c}_dss"]), 1e-12)
                    )
                )
                for c in ("stat", "pval", "phi1", "mu1")
            }
            report["agreement_max_rel"] = agree
            report["agreement_sites"] = [len(sub), len(dss), len(both)]
            print(
                f"agreement with DSS on the subset ({len(both):,} of {len(dss):,} DSS rows, "
                f"{len(sub):,} ours): max relative difference "
                + ", ".join(f"{k} {v:.2g}" for k, v in agree.items())
            )
        ratio = report["ours_cpgs_per_s"] / report["dss_cpgs_per_s"]  # type: ignore[operator]
        report["ratio"] = ratio
        print(
            f"ratio: {ratio:.1f}x DSS's CpGs/s (bar: 50x); ours 2 workers, DSS 1 core "
            f"(DMLtest's default ncores here)"
        )
        OUT.mkdir(exist_ok=True)
        (OUT / "methylation.json").write_text(json.dumps(report, indent=2, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
