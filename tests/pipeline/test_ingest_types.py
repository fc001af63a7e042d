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
    out = ingest(t47d_study, land(t47d_study, norm, "t47d"), study="t47d", values="normalized")
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
    out = ingest(t47d_study, land(t47d_study, again, "t47d"), study="t47d", values="normalized")
    assert out.status == "published" and out.version.dataset_type == "expression.normalized"
