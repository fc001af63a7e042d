"""Oracles end to end: known biology in real data, planted signal in generated data.

Real data (../shared/data/t47d_esr1, GSE89888): in vehicle-treated T47D cells the
ligand-independent ESR1 Y537S mutant keeps oestrogen-responsive genes on, so GREB1, PGR
and TFF1 are up against WT and the Hallmark early oestrogen response scores higher.
DESeq2 fits every gene on its own (about 10 ms a gene), so it runs on a fixed random
sample of the genes plus the three ER targets (all 24 samples, every value as given):
the size factors, dispersion trend and Wald test see thousands of real genes (on
samples of 500 and 2,000 genes the targets' padj was below 1e-18, far from 0.05).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.modalities.expression import differential_expression, score_signatures
from resistomics.pipeline import parse_contrast
from shared_data import GENESETS, T47D

ER_GENES = ["GREB1", "PGR", "TFF1"]
DESEQ2_GENES = 3000  # drawn from all 40,876; about 1,900 pass the >= 10 reads filter


@pytest.fixture(scope="module")
def t47d_gene_sample_published(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A workspace with T47D counts of DESEQ2_GENES random genes and the ER targets
    ingested and published as ``t47d/counts`` (read-only use)."""
    from resistomics.catalog import parse_sample_sheet
    from resistomics.config import ClusterSettings, Settings
    from resistomics.pipeline import Workspace, ingest

    counts = pd.read_csv(T47D / "counts.tsv.gz", sep="\t", dtype={"gene_id": str})
    drawn = np.random.default_rng(537).choice(len(counts), DESEQ2_GENES, replace=False)
    keep = np.zeros(len(counts), dtype=bool)
    keep[drawn] = True
    keep |= counts["gene_name"].isin(ER_GENES).to_numpy()
    root = tmp_path_factory.mktemp("t47d_gene_sample")
    ws = Workspace.open(
        Settings(data_root=str(root), cluster=ClusterSettings(processes=False, n_workers=1))
    )
    ws.catalog.register_study("t47d", parse_sample_sheet(T47D / "samples.tsv"))
    landed = Path(ws.settings.resolved_landing_zone) / "t47d" / "expression" / "counts.tsv.gz"
    landed.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(landed, "wt") as f:
        counts[keep].to_csv(f, sep="\t", index=False)
    outcome = ingest(ws, str(landed), study="t47d")
    assert outcome.status == "published", outcome.message
    yield ws
    ws.close()


@pytest.mark.parametrize(
    ("method", "published"),
    [
        pytest.param("t-test", "t47d_published", id="t-test"),
        pytest.param("deseq2", "t47d_gene_sample_published", id="deseq2"),
    ],
)
def test_t47d_y537s_vs_wt_vehicle_up_regulates_er_targets(
    request: pytest.FixtureRequest, method: str, published: str
) -> None:
    t47d_published = request.getfixturevalue(published)
    contrast = parse_contrast("esr1_genotype:Y537S vs WT", ["treatment=veh"])
    outcome = differential_expression(t47d_published, "t47d/counts", contrast, method=method)  # type: ignore[arg-type]
    de = outcome.tables["de"] if outcome.tables else None
    assert de is not None
    assert len(de) > 1000, len(de)  # the sample is thousands of genes, not only the targets
    hits = de.set_index("gene_symbol").loc[ER_GENES]
    assert (hits["log2_fold_change"] > 1).all(), hits
    assert (hits["pval_adj"] < 0.05).all(), hits
    # lineage: the result names its input version and the parameters
    assert outcome.version.parent_ids == (t47d_published.catalog.resolve("t47d/counts").id,)
    assert outcome.version.parameters["contrast"]["where"] == {"treatment": "veh"}
    # a computed result, told from landed data by its kind, in the result-tables layout
    source = t47d_published.catalog.resolve("t47d/counts")
    assert (source.kind, source.layout, source.layout_version) == ("source", "sparse-matrix", 1)
    assert (outcome.version.kind, outcome.version.layout) == ("result", "result-tables")


def test_t47d_hallmark_estrogen_response_scores_higher_in_y537s(t47d_published) -> None:  # type: ignore[no-untyped-def]
    outcome = score_signatures(t47d_published, "t47d/counts", gene_sets=str(GENESETS))
    ss = outcome.tables["sample_scores"]
    veh = ss[(ss["treatment"] == "veh")]
    for method in ("score_genes", "singscore"):
        for name in ("HALLMARK_ESTROGEN_RESPONSE_EARLY", "HALLMARK_ESTROGEN_RESPONSE_LATE"):
            sub = veh[(veh["method"] == method) & (veh["gene_set"] == name)]
            by = sub.groupby("esr1_genotype")["mean_score"]
            assert by.min()["Y537S"] > by.max()["WT"], (method, name, sub)
    # recomputing the same thing is recognised, not duplicated
    again = score_signatures(t47d_published, "t47d/counts", gene_sets=str(GENESETS))
    assert again.status == "unchanged" and again.version.id == outcome.version.id


def test_planted_program_recovered_from_single_cell_cohort(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.pipeline import ingest
    from resistomics.simulate import simulate_cohort

    cohort = simulate_cohort(n_subjects=4, cells_per_sample=150, n_genes=600, seed=1)
    sheet = tmp_path / "samples.tsv"
    cohort.samples.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("sim", parse_sample_sheet(sheet))
    h5 = tmp_path / "cohort.h5ad"
    cohort.to_anndata().write_h5ad(h5)
    outcome = ingest(workspace, land(workspace, h5, "sim"), study="sim")
    assert outcome.status == "published", outcome.message
    assert outcome.version.dataset_type == "expression.counts"

    scores = score_signatures(workspace, "sim/cohort")
    cells = scores.tables["cell_scores"]
    cells = cells[cells["method"] == "score_genes"].set_index("cell_id").loc[cohort.obs.index]
    program_cols = [c for c in cells.columns if c not in ("sample_id", "method")]
    resistant = cohort.obs["resistant"].to_numpy()
    # the planted program is the top-scoring program in resistant cells ...
    assert cells.loc[resistant, program_cols].mean().idxmax() == cohort.program
    # ... and separates resistant from sensitive cells
    planted = cells[cohort.program].to_numpy()
    assert planted[resistant].mean() - planted[~resistant].mean() > 1.0

    # the resistant fraction expands from baseline to progression in every subject
    shift = scores.tables["fraction_shift"]
    shift = shift[(shift["gene_set"] == cohort.program) & (shift["phase"] == "progression")]
    assert len(shift) == 4 and (shift["change"] > 0.15).all(), shift

    # planted genes top a cell-level DE of progression vs baseline
    for method in ("t-test", "wilcoxon"):
        de = differential_expression(
            workspace,
            "sim/cohort",
            parse_contrast("phase:progression vs baseline"),
            method=method,  # type: ignore[arg-type]
        ).tables["de"]
        top = set(de.head(len(cohort.program_genes))["gene_symbol"])
        recovered = len(top & set(cohort.program_genes)) / len(cohort.program_genes)
        assert recovered >= 0.8, (method, sorted(top))
        assert np.all(
            de.set_index("gene_symbol").loc[list(cohort.program_genes), "log2_fold_change"] > 0
        )
