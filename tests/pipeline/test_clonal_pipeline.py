"""Clonal evolution end to end: planted resistant clone expanding under therapy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.variant_cohort import planted_cohort


def test_emergent_resistance_mutation_and_its_clone(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.modalities.variants import clonal_evolution
    from resistomics.pipeline import ingest

    sheet, maf = planted_cohort(tmp_path, np.random.default_rng(11))
    workspace.catalog.register_study("evo", parse_sample_sheet(sheet))
    out = ingest(
        workspace,
        land(workspace, maf, "evo", modality="variants"),
        study="evo",
        modality="variants",
    )
    assert out.status == "published", out.message

    result = clonal_evolution(workspace, "evo/cohort")
    assert result.version.dataset_type == "signatures.clonal"
    emergent = result.tables["emergent_resistance"]
    assert sorted(emergent["subject_id"]) == ["P1", "P2", "P3"]
    assert set(emergent["gene"]) == {"ESR1"}
    changes = result.tables["changes"]
    trunk = changes[changes["gene"].str.startswith("TRUNK")]
    assert (trunk["call"] == "stable").mean() >= 0.9
    sens = changes[changes["gene"].str.startswith("SENS")]
    assert sens["call"].isin(["lost", "contracted"]).all()
    clones = result.tables["clones"]
    flagged = clones[clones["carries_resistance_mutation"]]
    assert set(flagged["subject_id"]) == {"P1", "P2", "P3"}
    selection = result.tables["clone_selection"]
    chosen = selection[selection["selected"]].set_index("subject_id")
    assert sorted(chosen.index) == ["P1", "P2", "P3"]
    # The selected K is the BIC minimum of each subject and matches the clones published.
    best = selection.loc[selection.groupby("subject_id")["bic"].idxmin()].set_index("subject_id")
    assert (chosen["n_clones"] == best["n_clones"]).all()
    assert (clones.groupby("subject_id")["clone_id"].nunique() <= chosen["n_clones"]).all()
    assert result.version.parent_ids == (out.version.id,)
    again = clonal_evolution(workspace, "evo/cohort")
    assert again.status == "unchanged"


def test_recurrence_where_restricts_calls_and_denominators(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from resistomics.catalog import parse_sample_sheet
    from resistomics.modalities.variants import recurrent_mutations
    from resistomics.pipeline import ingest, parse_contrast

    sheet, maf = planted_cohort(tmp_path, np.random.default_rng(5))
    design = pd.read_csv(sheet, sep="\t")
    design["site"] = np.where(design["subject_id"] == "P3", "B", "A")
    design.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("evo", parse_sample_sheet(sheet))
    out = ingest(workspace, land(workspace, maf, "evo", modality="variants"), study="evo",
                 modality="variants")  # fmt: skip
    assert out.status == "published", out.message
    everyone = (
        recurrent_mutations(
            workspace, ["evo/cohort"], parse_contrast("phase:progression vs baseline")
        )
        .tables["recurrent"]
        .set_index("gene")
    )
    site_a = (
        recurrent_mutations(
            workspace, ["evo/cohort"], parse_contrast("phase:progression vs baseline", ["site=A"])
        )
        .tables["recurrent"]
        .set_index("gene")
    )
    assert (everyone.loc["ESR1", "n_a"], everyone.loc["ESR1", "only_a"]) == (3, 3)
    assert (site_a.loc["ESR1", "n_a"], site_a.loc["ESR1", "only_a"]) == (2, 2)
    assert set(site_a["test"]) == {"mcnemar"}  # the same subjects at both phases
