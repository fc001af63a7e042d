"""Metabolomics benchmark: normalisation + limma DA + enrichment, ours against limma in R.

Run (the issue's scale, the default; ``--samples 500 --features 2000`` for a quick run)::

    python benchmarks/metabolomics.py [--samples 5000] [--features 20000] [--workers 2]

What it does, in order (one process; R in a subprocess):

1. **Generate** ``--samples`` study samples (two groups, half each) x ``--features``
   features, feature block by feature block (the dense matrix never exists in this
   process): log-normal abundances (a mean and SD per feature), a log-normal dilution
   per sample, a planted change of ``--log2-fc`` (alternating sign) in group ``B`` on the
   features of one metabolic program, missing values not at random (a logistic
   detection limit at the feature's 5 % quantile) plus 1 % at random. The features carry
   the ChEBI IDs of Reactome R78 (``--sets``: every ChEBI ID of the file once, the rest of
   the features unannotated, as in untargeted LC-MS); the program is Reactome's
   "Tryptophan catabolism" (R-HSA-71240). Written twice, once: as a ``feature-matrix@1``
   store (the layout ingest writes; through :class:`FeatureMatrixWriter`, not the text
   readers, whose parse of 100 M cells is not what is measured) and as a raw float64
   file for R (``readBin``, column-major features x samples, no conversion).
2. **Ours** on a ``distributed.LocalCluster`` of ``--workers`` processes x 1 thread, from
   the store: half-minimum imputation, PQN (Dieterle 2006), log2, Pareto scaling and
   limma ``lmFit`` + ``eBayes`` (``~ group``) over feature blocks
   (:func:`~resistomics.modalities.metabolomics._blockwise.blockwise_limma`, one graph,
   one compute: two selection passes for PQN's exact medians, then the fit pass); then
   over-representation of the features at BH < 0.05 among the annotated ones in the
   Reactome pathways (the platform's ``over_representation``: hypergeometric, BH over
   pathways). Peak RSS: client +
   workers, sampled every 0.1 s.
3. **limma 3.54.1** through ``Rscript``, on the same matrix: ``readBin`` (timed apart),
   the same processing (matrixStats ``rowMins`` / ``rowMedians`` / ``colMedians`` /
   ``rowSds``), ``lmFit`` + ``eBayes`` + ``topTable(sort.by = "none")``; each step
   timed; max RSS from ``/usr/bin/time``.
4. **Agreement** in the same run: max relative difference of t, p and BH-adjusted p
   (p-values below 1e-300 excluded: both underflow) and logFC.
5. The numbers on stdout and in ``benchmarks/out/metabolomics.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
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
SETS = (
    ROOT.parent
    / "shared"
    / "data"
    / "metabolite_sets"
    / "ChEBI2Reactome_All_Levels_R78.human.tsv.gz"
)
if not SETS.exists():
    SETS = Path("/work/shared/data/metabolite_sets/ChEBI2Reactome_All_Levels_R78.human.tsv.gz")
PROGRAM = "R-HSA-71240"  # Tryptophan catabolism

R_SCRIPT = r"""
suppressMessages({library(limma); library(matrixStats)})
args <- commandArgs(TRUE)
path <- args[1]; nf <- as.integer(args[2]); ns <- as.integer(args[3]); out <- args[4]
t0 <- proc.time()[["elapsed"]]
con <- file(path, "rb"); x <- readBin(con, "double", n = nf * ns); close(con)
dim(x) <- c(nf, ns)
con <- file(paste0(path, ".group"), "rb"); g <- readBin(con, "integer", n = ns); close(con)
t1 <- proc.time()[["elapsed"]]
# half-minimum imputation, PQN (feature medians as reference), log2, Pareto scaling
half <- rowMins(x, na.rm = TRUE) / 2
miss <- which(is.na(x), arr.ind = TRUE)
x[miss] <- half[miss[, 1]]
rm(miss)
dil <- colMedians(x / rowMedians(x))
x <- t(t(x) / dil)
x <- log2(x)
x <- (x - rowMeans2(x)) / sqrt(rowSds(x))
t2 <- proc.time()[["elapsed"]]
design <- cbind(Intercept = 1, B = g)
fit <- eBayes(lmFit(x, design))
tt <- topTable(fit, coef = 2, number = Inf, sort.by = "none")
t3 <- proc.time()[["elapsed"]]
con <- file(out, "wb"); writeBin(c(tt$logFC, tt$t, tt$P.Value, tt$adj.P.Val), con); close(con)
cat(sprintf("READ_SECONDS %.3f\nNORMALISE_SECONDS %.3f\nLIMMA_SECONDS %.3f\n",
            t1 - t0, t2 - t1, t3 - t2))
"""


def reactome(path: Path) -> pd.DataFrame:
    """ChEBI ID -> pathway rows of the Reactome file (``chebi``, ``pathway``, ``name``)."""
    with gzip.open(path, "rt") as f:
        t = pd.read_csv(f, sep="\t", header=None, usecols=[0, 1, 3], dtype=str)
    t.columns = ["chebi", "pathway", "name"]
    return t.drop_duplicates(["chebi", "pathway"])


def generate(
    root: Any, path: str, raw: Path, n_samples: int, n_features: int, *, chebi: np.ndarray,
    program: set[str], log2_fc: float, block: int, seed: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Write the store and the raw file; the group (0/1 per sample) and planted mask."""
    from resistomics.storage import FeatureBlock, FeatureMatrixWriter

    rng = np.random.default_rng(seed)
    group = np.zeros(n_samples, dtype=np.int32)
    group[rng.permutation(n_samples)[: n_samples // 2]] = 1
    dilution = rng.normal(0.0, 0.2, size=n_samples)
    planted = np.isin(chebi, list(program))
    sign = np.where(np.cumsum(planted) % 2 == 1, 1.0, -1.0)
    fc = np.where(planted, sign * log2_fc * np.log(2), 0.0)
    samples = pd.DataFrame(
        {"sample_id": [f"S{i + 1:05d}" for i in range(n_samples)],
         "sample_type": "study", "group": np.where(group == 1, "B", "A")}
    )  # fmt: skip
    writer = FeatureMatrixWriter(
        root, path, samples=samples, arrays={"abundance": "float64"},
        feature_id="feature_id", primary="abundance",
        features_per_chunk=block, samples_per_chunk=256,
    )  # fmt: skip
    out = np.memmap(raw, np.float64, "w+", shape=(n_samples, n_features))  # = R column-major
    for s in range(0, n_features, block):
        e = min(s + block, n_features)
        n = e - s
        mu = rng.normal(np.log(2e4), 1.2, size=(n, 1))
        sd = 0.35 * rng.lognormal(0.0, 0.25, size=(n, 1))
        y = mu + rng.normal(0.0, 1.0, size=(n, n_samples)) * sd + dilution[None, :]
        y += fc[s:e, None] * group[None, :]
        limit = np.quantile(y, 0.05, axis=1, keepdims=True)
        p_mnar = 1.0 / (1.0 + np.exp(3.0 * (y - limit) / y.std(axis=1, keepdims=True)))
        missing = (rng.random(y.shape) < p_mnar) | (rng.random(y.shape) < 0.01)
        v = np.where(missing, np.nan, np.exp(y))
        features = pd.DataFrame(
            {"feature_id": [f"F{i + 1:06d}" for i in range(s, e)], "chebi": chebi[s:e]}
        )
        writer.add(FeatureBlock(features, {"abundance": v}))
        out[:, s:e] = v.T
    writer.close()
    out.flush()
    del out
    group.tofile(str(raw) + ".group")
    return group, planted


def ora(hits: np.ndarray, universe: np.ndarray, sets: pd.DataFrame) -> pd.DataFrame:
    """The platform's hypergeometric ORA (``_enrichment.over_representation``) over the
    Reactome pathways with >= 5 members in the universe; only the tested sets, by p."""
    from resistomics.modalities.metabolomics._enrichment import over_representation

    members = sets.groupby("pathway")["chebi"].agg(list).to_dict()
    names = dict(zip(sets["pathway"], sets["name"], strict=True))
    got = over_representation(
        hits, universe, members, names=names, min_size=5, max_size=len(universe)
    )
    return got[got["tested"]].reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--features", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--features-per-block", type=int, default=1024)
    parser.add_argument("--log2-fc", type=float, default=0.25)
    parser.add_argument("--sets", type=Path, default=SETS)
    parser.add_argument("--skip-r", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    from resistomics.modalities.metabolomics._blockwise import (
        Processing,
        StoreRows,
        blockwise_limma,
    )
    from resistomics.storage import DataRoot, open_feature_matrix

    ns, nf = args.samples, args.features
    sets = reactome(args.sets)
    ids = np.asarray(sorted(set(sets["chebi"])), dtype=object)
    rng = np.random.default_rng(args.seed + 1)
    chebi = np.full(nf, "", dtype=object)
    slots = rng.permutation(nf)[: min(len(ids), nf)]
    chebi[slots] = rng.permutation(ids)[: slots.size]
    program = set(sets.loc[sets["pathway"] == PROGRAM, "chebi"])
    work = Path(tempfile.mkdtemp(prefix="resistomics-bench-metabolomics-"))
    report: dict[str, Any] = {
        "samples": ns,
        "features": nf,
        "workers": args.workers,
        "features_per_block": args.features_per_block,
        "machine": f"{platform.node()} {platform.machine()}",
    }
    try:
        root = DataRoot(str(work / "root"))
        path = root.path("abundance")
        raw = work / "matrix.f64"
        t = time.perf_counter()
        group, planted = generate(
            root, path, raw, ns, nf, chebi=chebi, program=program, log2_fc=args.log2_fc,
            block=args.features_per_block, seed=args.seed,
        )  # fmt: skip
        report["generate_s"] = time.perf_counter() - t
        store = open_feature_matrix(root, path)
        print(
            f"generated {nf:,} features x {ns:,} samples ({int(planted.sum())} planted in "
            f"{PROGRAM}, {int((chebi != '').sum()):,} with a ChEBI ID) in "
            f"{report['generate_s']:.1f} s; raw file {raw.stat().st_size / 1e9:.2f} GB",
            flush=True,
        )
        design = np.column_stack([np.ones(ns), group.astype(float)])
        proc = Processing(impute="half-minimum", normalize="pqn", transform="log2", scale="pareto")

        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True,
                memory_limit="6GiB", dashboard_address=None,
            ) as cluster,
            Client(cluster),
            RssSampler(interval=0.1) as sampler,
        ):  # fmt: skip
            # warm-up: imports and first zarr open in the workers, not timed
            blockwise_limma(
                lambda a, b: np.exp(np.random.default_rng(a).normal(size=(b - a, 20))),
                100, np.column_stack([np.ones(20), np.arange(20) % 2]), coef=1,
                processing=proc, features_per_block=50,
            )  # fmt: skip
            with sampler.window() as mem:
                t = time.perf_counter()
                res = blockwise_limma(
                    StoreRows(store), nf, design, coef=1, processing=proc,
                    features_per_block=args.features_per_block,
                )  # fmt: skip
                ours_da = time.perf_counter() - t
                t = time.perf_counter()
                annotated = chebi != ""
                hits = chebi[annotated & (res.p_adj < 0.05)]
                enrichment = ora(hits, chebi[annotated], sets)
                ours_ora = time.perf_counter() - t
        top = enrichment.iloc[0]
        planted_rank = int(np.flatnonzero(enrichment["set_id"] == PROGRAM)[0]) + 1
        n_planted = int(planted.sum())
        top_n = planted[np.argsort(res.p, kind="stable")[:n_planted]].mean()
        report.update(
            ours_normalise_da_s=ours_da,
            ours_ora_s=ours_ora,
            ours_s=ours_da + ours_ora,
            ours_cpu_s=mem["cpu_s"],
            ours_peak_rss=mem["peak_sum"],
            ours_peak_rss_largest_process=max(mem["peak_by_pid"].values()),
            planted_in_top_n=float(top_n),
            fdr05=int((res.p_adj < 0.05).sum()),
            ora_top=[str(top["set_id"]), str(top["name"]), float(top["q"])],
            ora_planted_rank=planted_rank,
            ora_pathways=len(enrichment),
        )
        print(
            f"ours ({args.workers} workers): impute + PQN + log2 + Pareto + limma "
            f"{ours_da:.2f} s, ORA {ours_ora:.2f} s ({len(enrichment)} pathways); "
            f"CPU {mem['cpu_s']:.1f} s; peak RSS {mem['peak_sum'] / 2**30:.2f} GiB (client + "
            f"workers), largest process {report['ours_peak_rss_largest_process'] / 2**30:.2f} GiB",
            flush=True,
        )
        print(
            f"  oracle: {100 * top_n:.0f} % of the {n_planted} planted features in the top "
            f"{n_planted}; {report['fdr05']} at BH < 0.05; ORA: {PROGRAM} ranks {planted_rank} "
            f"(top: {top['set_id']} {top['name']}, BH {top['q']:.2g})"
        )
        if args.skip_r:
            return
        script = work / "limma.R"
        script.write_text(R_SCRIPT)
        r_out = work / "limma.out"
        t = time.perf_counter()
        run = subprocess.run(
            ["/usr/bin/time", "-f", "MAXRSS_KB %M CPU_S %U %S", "Rscript", str(script), str(raw), str(nf),
             str(ns), str(r_out)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        r_wall = time.perf_counter() - t
        if run.returncode != 0:
            raise SystemExit(f"Rscript failed:\n{run.stderr[-2000:]}")
        got = {
            ln.split()[0]: float(ln.split()[1])
            for ln in run.stdout.splitlines()
            if ln.endswith(tuple("0123456789")) and "_SECONDS" in ln
        }
        timing = next(x for x in run.stderr.splitlines() if x.startswith("MAXRSS_KB")).split()
        r_rss, r_cpu = 1024 * int(timing[1]), float(timing[3]) + float(timing[4])
        r_logfc, r_t, r_p, r_padj = np.fromfile(r_out, dtype=np.float64).reshape(4, nf)
        r_compute = got["NORMALISE_SECONDS"] + got["LIMMA_SECONDS"]

        def rel(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
            ok = np.abs(b) > floor
            return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok])))

        agree = {
            "t": rel(res.t, r_t),
            "p": rel(res.p, r_p, 1e-300),
            "p_adj": rel(res.p_adj, r_padj, 1e-300),
            "logFC": rel(res.log_fc, r_logfc),
        }
        ratio = r_compute / ours_da
        report.update(
            r_read_s=got["READ_SECONDS"],
            r_normalise_s=got["NORMALISE_SECONDS"],
            r_limma_s=got["LIMMA_SECONDS"],
            r_compute_s=r_compute,
            r_wall_s=r_wall,
            r_peak_rss=r_rss,
            r_cpu_s=r_cpu,
            agreement_max_rel=agree,
            ratio_r_compute_over_ours=ratio,
            ratio_r_with_read_over_ours=(r_compute + got["READ_SECONDS"]) / ours_da,
        )
        print(
            f"limma 3.54.1 (Rscript, 1 core): readBin {got['READ_SECONDS']:.2f} s, processing "
            f"{got['NORMALISE_SECONDS']:.2f} s, lmFit + eBayes + topTable "
            f"{got['LIMMA_SECONDS']:.2f} s (Rscript {r_wall:.1f} s, {r_cpu:.1f} CPU-s with R's start "
            f"and read); max RSS {r_rss / 2**30:.2f} GiB"
        )
        print(
            "agreement (max relative difference): "
            + ", ".join(f"{k} {v:.2g}" for k, v in agree.items())
        )
        print(
            f"ratio: R's processing + limma / ours (from the store, read included) = {ratio:.2f}x; "
            f"with R's read {report['ratio_r_with_read_over_ours']:.2f}x"
        )
    finally:
        OUT.mkdir(exist_ok=True)
        (OUT / "metabolomics.json").write_text(json.dumps(report, indent=2, default=str))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
