"""End to end from the stored data: the published scores and DE equal scanpy's."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc


def test_pipeline_scores_and_de_equal_scanpy(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.knowledge import builtin_programs
    from resistomics.modalities.expression import differential_expression, score_signatures
    from resistomics.pipeline import ingest, parse_contrast
    from resistomics.simulate import simulate_cohort

    cohort = simulate_cohort(n_subjects=3, cells_per_sample=120, n_genes=500, seed=5)
    sheet = tmp_path / "s.tsv"
    cohort.samples.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("sim", parse_sample_sheet(sheet))
    h5 = tmp_path / "c.h5ad"
    cohort.to_anndata().write_h5ad(h5)
    version = ingest(workspace, land(workspace, h5, "sim"), study="sim").version
    assert version is not None

    scores = score_signatures(workspace, "sim/c", methods=("score_genes",), random_state=0)
    ours = scores.tables["cell_scores"].set_index("cell_id")

    adata = ad.read_zarr(Path(workspace.root.to_path(version.uri)) / "expression.zarr")
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    for program in builtin_programs().sets:
        genes = [g for g in program.genes if g in adata.var_names]
        sc.tl.score_genes(adata, genes, score_name="ref", random_state=0)
        np.testing.assert_allclose(
            ours.loc[adata.obs_names, program.name], adata.obs["ref"], atol=1e-6
        )

    adata.obs["phase"] = pd.Categorical(
        cohort.samples.set_index("sample_id").loc[adata.obs["sample_id"], "phase"].to_numpy()
    )
    for method in ("t-test", "wilcoxon"):
        de = (
            differential_expression(
                workspace, "sim/c", parse_contrast("phase:progression vs baseline"), method=method
            )
            .tables["de"]
            .set_index("gene_id")
        )  # type: ignore[arg-type]
        sc.tl.rank_genes_groups(
            adata, "phase", groups=["progression"], reference="baseline", method=method
        )
        ref = sc.get.rank_genes_groups_df(adata, group="progression").set_index("names")
        np.testing.assert_allclose(de.loc[ref.index, "score"], ref["scores"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            de.loc[ref.index, "pval_adj"], ref["pvals_adj"], rtol=1e-5, atol=1e-8
        )
        np.testing.assert_allclose(
            de.loc[ref.index, "log2_fold_change"], ref["logfoldchanges"], rtol=1e-4, atol=1e-5
        )
