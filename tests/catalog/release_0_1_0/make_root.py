"""Make ``root.tar.gz``: a data root written by resistomics 0.1.0 (main@4cea930).

Run with that release's code first on the path, e.g.::

    git archive 4cea930 platform | tar -x -C /tmp/rel
    PYTHONPATH=/tmp/rel/platform python tests/catalog/release_0_1_0/make_root.py

The root holds a SQLite catalog at the release's schema (no ``alembic_version``) with
absolute URIs under the directory it was made in (so opening it elsewhere is also a
moved root), and: study ``old`` (4 samples, 2 subjects), an expression counts dataset
published twice (v1 superseded), a quarantined counts attempt, a DE result (Parquet
with lineage), and variant calls (Parquet partitioned by subject).
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.catalog import parse_sample_sheet
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, differential_expression, ingest, parse_contrast

HERE = Path(__file__).parent
MAF_COLUMNS = (
    "Hugo_Symbol\tChromosome\tStart_Position\tEnd_Position\tVariant_Classification\t"
    "Reference_Allele\tTumor_Seq_Allele2\tTumor_Sample_Barcode\tHGVSp_Short\t"
    "t_ref_count\tt_alt_count\tt_depth"
)
MAF_ROWS = [
    "ESR1\t6\t152419920\t152419920\tMissense_Mutation\tA\tC\tP1_BL\tp.Y537S\t120\t0\t120",
    "ESR1\t6\t152419920\t152419920\tMissense_Mutation\tA\tC\tP1_PD\tp.Y537S\t60\t40\t100",
    "TP53\t17\t7577120\t7577120\tMissense_Mutation\tC\tT\tP2_PD\tp.R273H\t70\t30\t100",
]


def counts(seed: int, *, negative: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genes = [f"GENE{i:03d}" for i in range(60)]
    frame = pd.DataFrame(
        rng.poisson(rng.lognormal(3.0, 1.0, size=(60, 1)) * np.ones((1, 4))),
        index=pd.Index(genes, name="gene_id"),
        columns=["P1_BL", "P1_PD", "P2_BL", "P2_PD"],
    )
    frame.iloc[:5, [1, 3]] *= 4  # planted: up at progression
    if negative:
        frame.iloc[0, 0] = -5
    return frame


def land(ws: Workspace, name: str, text: str, modality: str) -> str:
    path = Path(ws.settings.resolved_landing_zone) / "old" / modality / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="resistomics-0.1.0-"))
    root = work / "root"
    ws = Workspace.open(
        Settings(data_root=str(root), cluster=ClusterSettings(processes=False, n_workers=1))
    )
    sheet = work / "samples.tsv"
    sheet.write_text(
        "sample_id\tsubject_id\tphase\ttimepoint\ttreatment\n"
        "P1_BL\tP1\tbaseline\t0\tdrug\nP1_PD\tP1\tprogression\t200\tdrug\n"
        "P2_BL\tP2\tbaseline\t0\tdrug\nP2_PD\tP2\tprogression\t150\tdrug\n"
    )
    ws.catalog.register_study("old", parse_sample_sheet(sheet))
    for seed, name in ((0, "counts.tsv"), (1, "counts2.tsv")):
        out = ingest(
            ws,
            land(ws, name, counts(seed).to_csv(sep="\t"), "expression"),
            study="old",
            dataset="counts",
        )
        assert out.status == "published", out.message
    bad = ingest(
        ws,
        land(ws, "bad.tsv", counts(2, negative=True).to_csv(sep="\t"), "expression"),
        study="old",
        dataset="counts",
    )
    assert bad.status == "quarantined", bad.message
    maf = "\n".join([MAF_COLUMNS, *MAF_ROWS]) + "\n"
    out = ingest(ws, land(ws, "calls.maf", maf, "variants"), study="old", modality="variants")
    assert out.status == "published", out.message
    de = differential_expression(
        ws, "old/counts", parse_contrast("phase:progression vs baseline", []), method="t-test"
    )
    assert de.version.status.value == "published"
    ws.close()
    target = HERE / "root.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        tar.add(root, arcname="root")
    (HERE / "made_in.txt").write_text(str(root) + "\n")
    shutil.rmtree(work)
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
