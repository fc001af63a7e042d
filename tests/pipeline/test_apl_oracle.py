"""Real data: APL at diagnosis vs relapse (../shared/data/apl_relapse, maftools).

Relapse after ATRA/arsenic therapy selects mutations in the drug targets themselves, so
ingesting both MAFs and comparing relapse with diagnosis must put PML and RARA among the
top recurrent relapse genes, flagged by the resistance-mutation catalogue.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads

from shared_data import APL


def _barcodes(path: Path) -> list[str]:
    text = gzip.decompress(path.read_bytes()).decode().replace("\r\n", "\n").replace("\r", "\n")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    col = rows[0].index("Tumor_Sample_Barcode")
    return sorted({r[col] for r in rows[1:]})


def test_pml_and_rara_top_recurrent_relapse_genes(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.modalities.variants import recurrent_mutations
    from resistomics.pipeline import ingest, parse_contrast

    files = {"baseline": APL / "APL_primary.maf.gz", "relapse": APL / "APL_relapse.maf.gz"}
    rows = [
        {"sample_id": b, "subject_id": b[:-1], "phase": phase}
        for phase, path in files.items()
        for b in _barcodes(path)
    ]
    sheet = tmp_path / "apl_samples.tsv"
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("apl", parse_sample_sheet(sheet))

    calls = []
    for path in files.values():
        out = ingest(
            workspace,
            land(workspace, path, "apl", modality="variants"),
            study="apl",
            modality="variants",
        )
        assert out.status == "published", out.message
        assert out.version is not None
        table = pads.dataset(
            Path(workspace.root.to_path(out.version.uri)) / "calls",
            format="parquet",
            partitioning="hive",
        ).to_table()
        calls.append(table.to_pandas())
    variants = pd.concat(calls, ignore_index=True)
    assert (variants["alt"] == "<DUP:TANDEM>").sum() >= 2  # FLT3-ITDs kept as symbolic calls

    published = recurrent_mutations(
        workspace,
        ["apl/APL_primary", "apl/APL_relapse"],
        parse_contrast("phase:relapse vs baseline"),
    )
    assert published.version.dataset_type == "signatures.recurrent"
    assert len(published.version.parent_ids) == 2
    result = published.tables["recurrent"].set_index("gene")
    top = result.head(5)
    assert {"PML", "RARA"} <= set(top.index), result.head(10)
    assert result.loc[["PML", "RARA"], "catalogue_gene"].all()
    assert (
        result.loc[["PML", "RARA"], "proportion_a"] > result.loc[["PML", "RARA"], "proportion_b"]
    ).all()
