"""Scoring results as users get them: explicit resistant-fraction thresholds, gene sets
with no gene in the dataset skipped (and recorded), datasets without gene symbols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.errors import InputError
from resistomics.knowledge import GeneSet, GeneSetCollection
from resistomics.modalities.expression import score_signatures


@pytest.fixture
def cohort_ws(workspace, land, tmp_path: Path):  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.pipeline import ingest
    from resistomics.simulate import simulate_cohort

    cohort = simulate_cohort(n_subjects=3, cells_per_sample=60, n_genes=300, seed=4)
    sheet = tmp_path / "samples.tsv"
    cohort.samples.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("sim", parse_sample_sheet(sheet))
    h5 = tmp_path / "cohort.h5ad"
    cohort.to_anndata().write_h5ad(h5)
    assert ingest(workspace, land(workspace, h5, "sim"), study="sim").status == "published"
    return workspace, cohort


def _collection(cohort, *, empty: int) -> GeneSetCollection:  # type: ignore[no-untyped-def]
    sets = [GeneSet(cohort.program, tuple(cohort.program_genes))]
    sets += [GeneSet(f"EMPTY_{i}", ("NOT_A_GENE_1", "NOT_A_GENE_2")) for i in range(empty)]
    return GeneSetCollection(source="test.gmt", version="1", sets=tuple(sets))


def test_explicit_thresholds_per_program_and_for_all(cohort_ws) -> None:  # type: ignore[no-untyped-def]
    ws, cohort = cohort_ws
    collection = _collection(cohort, empty=0)
    auto = score_signatures(ws, "sim/cohort", gene_sets=collection, methods=("score_genes",))
    auto_cut = auto.tables["fraction_shift"]["threshold"].iloc[0]
    # default unchanged: the 95th percentile of the baseline cells' scores
    cells = auto.tables["cell_scores"]
    baseline = set(cohort.samples.loc[cohort.samples["phase"] == "baseline", "sample_id"])
    expected = np.quantile(cells.loc[cells["sample_id"].isin(baseline), cohort.program], 0.95)
    assert auto_cut == pytest.approx(expected)
    given = score_signatures(
        ws,
        "sim/cohort",
        gene_sets=collection,
        methods=("score_genes",),
        threshold={cohort.program: 5.0},
    )
    shift = given.tables["fraction_shift"]
    assert (shift["threshold"] == 5.0).all() and (shift["fraction"] == 0).all()
    assert given.version.id != auto.version.id
    assert given.version.parameters["threshold"] == {cohort.program: 5.0}
    one = score_signatures(
        ws, "sim/cohort", gene_sets=collection, methods=("score_genes",), threshold=-5.0
    )
    assert (one.tables["fraction_shift"]["fraction"] == 1).all()
    with pytest.raises(InputError, match="threshold-program"):
        score_signatures(ws, "sim/cohort", gene_sets=collection, threshold={"NOPE": 1.0})


def test_empty_gene_sets_are_skipped_and_recorded(cohort_ws) -> None:  # type: ignore[no-untyped-def]
    ws, cohort = cohort_ws
    outcome = score_signatures(ws, "sim/cohort", gene_sets=_collection(cohort, empty=2))
    skipped = outcome.tables["skipped_gene_sets"]
    assert list(skipped["gene_set"]) == ["EMPTY_0", "EMPTY_1"]
    assert "warning: skipped 2 gene set(s)" in outcome.message and "EMPTY_0" in outcome.message
    assert set(outcome.tables["sample_scores"]["gene_set"]) == {cohort.program}
    with pytest.raises(InputError, match="gene-set-overlap"):
        score_signatures(
            ws,
            "sim/cohort",
            gene_sets=GeneSetCollection("x.gmt", "1", (GeneSet("EMPTY", ("NOPE",)),)),
        )


def test_dataset_without_gene_symbols_says_so(t47d_study, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import ingest

    frame = pd.DataFrame(
        np.arange(40).reshape(5, 8),
        index=pd.Index([f"ENSG0000000000{i}" for i in range(5)], name="gene_id"),
        columns=[f"veh_WT_rep{i}" for i in range(1, 5)]
        + [f"veh_Y537S_rep{i}" for i in range(1, 5)],
    )
    src = tmp_path / "ensembl.tsv"
    frame.to_csv(src, sep="\t")
    out = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d")
    assert out.status == "published", out.message
    with pytest.raises(InputError, match="gene-symbols") as info:
        score_signatures(t47d_study, out.version.ref)
    assert "Ensembl IDs" in str(info.value) and "gene_name" in str(info.value)
