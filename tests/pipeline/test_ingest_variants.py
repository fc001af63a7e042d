"""Variant calls through the ingest pipeline: Parquet partitioned by subject, or quarantine."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as pads
import pytest

COLUMNS = [
    "Hugo_Symbol",
    "Chromosome",
    "Start_Position",
    "End_Position",
    "Variant_Classification",
    "Reference_Allele",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
    "HGVSp_Short",
    "t_ref_count",
    "t_alt_count",
    "t_depth",
]
ROWS = [
    [
        "ESR1",
        "6",
        "152419920",
        "152419920",
        "Missense_Mutation",
        "A",
        "C",
        "P1_BL",
        "p.Y537S",
        "120",
        "0",
        "120",
    ],
    [
        "ESR1",
        "6",
        "152419920",
        "152419920",
        "Missense_Mutation",
        "A",
        "C",
        "P1_PD",
        "p.Y537S",
        "60",
        "40",
        "100",
    ],
    [
        "TP53",
        "17",
        "7577120",
        "7577120",
        "Missense_Mutation",
        "C",
        "T",
        "P1_BL",
        "p.R273H",
        "50",
        "50",
        "100",
    ],
    [
        "TP53",
        "17",
        "7577120",
        "7577120",
        "Missense_Mutation",
        "C",
        "T",
        "P2_PD",
        "p.R273H",
        "70",
        "30",
        "100",
    ],
]


def _maf(path: Path, rows: list[list[str]], newline: str = "\r") -> Path:
    text = newline.join("\t".join(r) for r in [COLUMNS, *rows]) + newline
    path.write_text(text, newline="")
    return path


@pytest.fixture
def variants_study(workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet

    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tsubject_id\tphase\ttimepoint\n"
        "P1_BL\tP1\tbaseline\t0\nP1_PD\tP1\tprogression\t200\nP2_PD\tP2\tprogression\t150\n"
    )
    workspace.catalog.register_study("var", parse_sample_sheet(sheet))
    return workspace


def test_maf_publishes_parquet_partitioned_by_subject(variants_study, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.knowledge import annotate
    from resistomics.pipeline import ingest

    src = _maf(tmp_path / "calls.maf", ROWS)
    out = ingest(
        variants_study,
        land(variants_study, src, "var", modality="variants"),
        study="var",
        modality="variants",
    )
    assert out.status == "published", out.message
    assert out.version is not None and out.version.dataset_type == "variants.calls"
    assert (out.version.kind, out.version.layout, out.version.layout_version) == (
        "source",
        "partitioned-table",
        1,
    )
    calls_dir = Path(variants_study.root.to_path(out.version.uri)) / "calls"
    assert sorted(p.name for p in calls_dir.iterdir()) == ["subject_id=P1", "subject_id=P2"]
    table = pads.dataset(calls_dir, format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == 4 and out.version.shape[0] == 4
    pd_row = table[(table["sample_id"] == "P1_PD") & (table["gene"] == "ESR1")].iloc[0]
    assert (pd_row["alt_count"], pd_row["depth"]) == (40, 100) and abs(pd_row["vaf"] - 0.4) < 1e-9
    hits = annotate(table, gene_col="gene", change_col="protein_change")
    assert hits.loc[hits["gene"] == "ESR1", "catalogue_hit"].all()
    # same bytes again: no new version
    again = ingest(
        variants_study,
        land(variants_study, src, "var", modality="variants"),
        study="var",
        modality="variants",
    )
    assert again.status == "unchanged"


def test_inconsistent_counts_are_quarantined(variants_study, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import ingest

    good = _maf(tmp_path / "calls.maf", ROWS)
    ingest(
        variants_study,
        land(variants_study, good, "var", modality="variants"),
        study="var",
        modality="variants",
    )
    before = [v for v in variants_study.catalog.snapshot() if v[4] == "published"]
    bad_rows = [r.copy() for r in ROWS]
    bad_rows[1][10] = "140"  # 140 alt reads out of a depth of 100
    (tmp_path / "bad").mkdir()
    bad = _maf(tmp_path / "bad" / "calls.maf", bad_rows)
    out = ingest(
        variants_study,
        land(variants_study, bad, "var", modality="variants"),
        study="var",
        modality="variants",
    )
    assert out.status == "quarantined"
    assert "calls.maf" in out.message and "[validation]" in out.message
    assert "depth-covers-counts" in out.message and "P1_PD" in out.message, out.message
    assert [v for v in variants_study.catalog.snapshot() if v[4] == "published"] == before
    assert out.quarantine_uri is not None and (Path(out.quarantine_uri) / "report.md").exists()


def test_unregistered_sample_is_quarantined_at_read(variants_study, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import ingest

    rows = [
        *ROWS,
        [
            "KRAS",
            "12",
            "25398284",
            "25398284",
            "Missense_Mutation",
            "C",
            "A",
            "P9_XX",
            "p.G12C",
            "9",
            "1",
            "10",
        ],
    ]
    out = ingest(
        variants_study,
        land(variants_study, _maf(tmp_path / "c.maf", rows), "var", modality="variants"),
        study="var",
        modality="variants",
    )
    assert (
        out.status == "quarantined"
        and "[registered-samples]" in out.message
        and "P9_XX" in out.message
    )
    assert variants_study.catalog.versions() == []
