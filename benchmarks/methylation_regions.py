"""Region summaries of a methylation store: promoters (RefSeq TSS +- 2 kb, hg19) over a
generated store of CpG sites x samples, wall clock and peak RSS.

    .venv/bin/python benchmarks/methylation_regions.py --sites 2000000 --samples 16

Half the sites are drawn within 4 kb of a promoter start, half uniformly over chr1-22,
X; counts are Poisson(15) reads, binomial(0.5) methylated. Only ``region_counts`` is
timed (one Dask compute on the local threaded scheduler); writing the store is not.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.modalities.methylation._regions import builtin_region_set, region_counts
from resistomics.storage import DataRoot, FeatureBlock, open_feature_matrix, write_feature_matrix

REPO = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout (one level further up from a git worktree)
ANNOTATION = next(
    (
        base / "shared" / "data" / "annotation_hg19"
        for base in (REPO.parent, REPO.parent.parent)
        if (base / "shared" / "data").is_dir()
    ),
    REPO.parent / "shared" / "data" / "annotation_hg19",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=2_000_000)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--annotation", default=str(ANNOTATION))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    promoters = builtin_region_set("promoters", args.annotation)
    rng = np.random.default_rng(args.seed)
    contigs = [f"chr{i}" for i in range(1, 23)] + ["chrX"]
    r = promoters.regions[promoters.regions["contig"].isin(contigs)]
    half = args.sites // 2
    near = r.sample(half, replace=True, random_state=args.seed)
    sites = pd.DataFrame(
        {
            "contig": np.concatenate(
                [near["contig"].to_numpy(), rng.choice(contigs, args.sites - half)]
            ),
            "position": np.concatenate(
                [
                    near["start"].to_numpy() + rng.integers(0, 4000, half),
                    rng.integers(10_000, 150_000_000, args.sites - half),
                ]
            ),
        }
    )
    sites["order"] = sites["contig"].map({c: i for i, c in enumerate(contigs)})
    sites = sites.drop_duplicates(["contig", "position"]).sort_values(["order", "position"])
    sites = sites.drop(columns="order").assign(strand="*").reset_index(drop=True)
    total = rng.poisson(15, (len(sites), args.samples)).astype(np.int32)
    methylated = rng.binomial(total, 0.5).astype(np.int32)
    folder = Path(tempfile.mkdtemp(prefix="meth-regions-"))
    try:
        root = DataRoot(str(folder))
        path = root.path("store")
        write_feature_matrix(
            root,
            path,
            [FeatureBlock(sites, {"methylated": methylated, "total": total})],
            samples=pd.DataFrame({"sample_id": [f"S{i}" for i in range(args.samples)]}),
            arrays={"methylated": "int32", "total": "int32"},
            sorted_by=("contig", "position"),
        )
        del sites, total, methylated
        store = open_feature_matrix(root, path)
        start = time.perf_counter()
        counts = region_counts(store, promoters)
        seconds = time.perf_counter() - start
        print(
            f"{store.n_features:,} sites x {store.n_samples} samples, {len(promoters):,} "
            f"promoters ({int((counts.n_sites > 0).sum()):,} with sites): {seconds:.2f} s"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
