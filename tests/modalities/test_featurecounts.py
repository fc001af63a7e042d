"""featureCounts output: comment line, annotation columns, BAM paths as sample names."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np

FEATURECOUNTS = (
    '# Program:featureCounts v2.0.6; Command:"featureCounts" "-a" "genes.gtf"\n'
    "Geneid\tChr\tStart\tEnd\tStrand\tLength\t/data/bam/veh_WT_rep1.bam\t/data/bam/veh_WT_rep2.sorted.bam\n"
    "ENSG01\tchr1;chr1\t11869;12010\t12227;12057\t+;+\t1735\t12\t0\n"
    "ENSG02\tchr1\t14404\t29570\t-\t15170\t7\t31\n"
)


def test_featurecounts_table_publishes_with_annotations(t47d_study, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import ingest

    src = tmp_path / "fc.counts.txt"
    src.write_text(FEATURECOUNTS)
    out = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d")
    assert out.status == "published", out.message
    adata = ad.read_zarr(Path(t47d_study.root.to_path(out.version.uri)) / "expression.zarr")
    assert list(adata.obs_names) == ["veh_WT_rep1", "veh_WT_rep2"]  # BAM paths -> sample IDs
    assert list(adata.var_names) == ["ENSG01", "ENSG02"]
    assert {"Chr", "Length"} <= set(adata.var.columns)
    np.testing.assert_array_equal(adata.X.toarray(), [[12, 7], [0, 31]])
