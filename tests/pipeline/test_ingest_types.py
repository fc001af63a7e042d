"""A dataset keeps one type: landing normalised values into a counts dataset is refused."""

from __future__ import annotations

from pathlib import Path


def test_normalised_into_counts_dataset_is_quarantined(t47d_study, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import ingest

    good = tmp_path / "expr.tsv"
    good.write_text("gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t4\nG2\t5\t6\n")
    assert ingest(t47d_study, land(t47d_study, good, "t47d"), study="t47d").status == "published"
    before = [v for v in t47d_study.catalog.snapshot() if v[4] == "published"]
    norm = tmp_path / "norm" / "expr.tsv"
    norm.parent.mkdir()
    norm.write_text("gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t-0.3\t1.2\nG2\t0.5\t0.1\n")
    out = ingest(
        t47d_study, land(t47d_study, norm, "t47d"), study="t47d", options={"values": "normalized"}
    )
    assert out.status == "quarantined"
    assert (
        "[dataset-type]" in out.message
        and "expression.counts" in out.message
        and "--dataset" in out.message
    )
    assert [v for v in t47d_study.catalog.snapshot() if v[4] == "published"] == before
    # under another name it is welcome
    again = tmp_path / "again" / "expr_z.tsv"
    again.parent.mkdir()
    again.write_text(norm.read_text())
    out = ingest(
        t47d_study, land(t47d_study, again, "t47d"), study="t47d", options={"values": "normalized"}
    )
    assert out.status == "published" and out.version.dataset_type == "expression.normalized"


def test_a_quarantined_attempt_does_not_fix_the_dataset_type(
    t47d_study, land, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Only a published version fixes a dataset's type: z-scores first quarantined as
    counts (negative values) ingest as normalised into the same dataset."""
    from resistomics.pipeline import ingest

    z = tmp_path / "z.tsv"
    z.write_text("gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t-0.3\t1.2\nG2\t0.5\t0.1\n")
    first = ingest(t47d_study, land(t47d_study, z, "t47d"), study="t47d", dataset="z")
    assert first.status == "quarantined" and "non-negative-counts" in first.message
    again = ingest(
        t47d_study,
        land(t47d_study, z, "t47d"),
        study="t47d",
        dataset="z",
        options={"values": "normalized"},
    )
    assert again.status == "published", again.message
    assert again.version is not None and again.version.dataset_type == "expression.normalized"
    assert t47d_study.catalog.resolve("t47d/z").number == 2
    # now published, the type is fixed
    c = tmp_path / "c" / "z.tsv"
    c.parent.mkdir()
    c.write_text("gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t4\nG2\t5\t6\n")
    counts = ingest(t47d_study, land(t47d_study, c, "t47d"), study="t47d", dataset="z")
    assert counts.status == "quarantined" and "[dataset-type]" in counts.message
