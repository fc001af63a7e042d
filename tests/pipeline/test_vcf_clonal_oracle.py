"""Planted truth through the whole variants path: caller-style VCF -> ingest -> clonal.

Six subjects sampled at baseline and progression (:func:`resistomics.simulate.
simulate_clonal_cohort`): a resistant clone carrying a different catalogued resistance
mutation in each subject (ESR1 Y537S, ESR1 D538G, EGFR T790M, ABL1 T315I, BTK C481S,
KRAS Y96D) plus passengers is absent at baseline and expands under therapy, a truncal
clone stays, a sensitive clone contracts. Written as Mutect2 + VEP write a merged
multi-sample VCF (GT, AD, DP, AF; CSQ). Every planted clone and its catalogued mutation
must be recovered, and the clone plot drawn.
"""

from __future__ import annotations

from pathlib import Path

from resistomics.simulate import simulate_clonal_cohort

ONE_LETTER = {
    "Tyr": "Y",
    "Ser": "S",
    "Asp": "D",
    "Gly": "G",
    "Thr": "T",
    "Met": "M",
    "Ile": "I",
    "Cys": "C",
}


def _short(hgvsp: str) -> str:
    body = hgvsp.removeprefix("p.")
    return ONE_LETTER[body[:3]] + body[3:-3] + ONE_LETTER[body[-3:]]


def test_planted_resistant_clones_recovered_from_vcf(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.image import imread

    from resistomics.catalog import parse_sample_sheet
    from resistomics.modalities import plot_dataset
    from resistomics.modalities.variants import clonal_evolution
    from resistomics.pipeline import ingest

    sim = simulate_clonal_cohort(n_subjects=6, seed=2)
    vcf = sim.write_vcf(tmp_path / "trial.vcf")
    sheet = tmp_path / "samples.tsv"
    sim.samples.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("trial", parse_sample_sheet(sheet))
    out = ingest(
        workspace,
        land(workspace, vcf, "trial", modality="variants"),
        study="trial",
        modality="variants",
    )
    assert out.status == "published", out.message
    assert out.version.shape[0] == len(sim.calls)  # every call, none from "./." entries

    result = clonal_evolution(workspace, "trial/trial")
    emergent = result.tables["emergent_resistance"]
    found = {(r.subject_id, r.gene, r.protein_change) for r in emergent.itertuples(index=False)}
    planted = {(s, gene, _short(hgvsp)) for s, (gene, hgvsp) in sim.drivers.items()}
    assert found == planted
    mutations = result.tables["clone_mutations"]
    clones = result.tables["clones"]
    truth = sim.calls.drop_duplicates(["subject_id", "pos"])[["subject_id", "pos", "clone"]]
    merged = mutations.merge(truth, on=["subject_id", "pos"])
    assert len(merged) == len(mutations) == len(truth)
    for subject, (gene, _) in sim.drivers.items():
        mine = merged[merged["subject_id"] == subject]
        driver_clone = mine.loc[mine["gene"] == gene, "clone_id"].iloc[0]
        # the passengers share the resistant clone, and nothing else joins it
        assert set(mine.loc[mine["clone"] == "resistant", "clone_id"]) == {driver_clone}
        assert set(mine.loc[mine["clone_id"] == driver_clone, "clone"]) == {"resistant"}
        row = clones[(clones["subject_id"] == subject) & (clones["clone_id"] == driver_clone)]
        assert row["carries_resistance_mutation"].all()
        by_phase = row.set_index("phase")["prevalence"]
        assert by_phase["baseline"] <= 0.05 and by_phase["progression"] >= 0.55
        truncal = set(mine.loc[mine["clone"] == "truncal", "clone_id"])
        assert len(truncal) == 1
        assert (
            clones[(clones["subject_id"] == subject) & clones["clone_id"].isin(truncal)][
                "prevalence"
            ]
            >= 0.9
        ).all()

    png = plot_dataset(workspace, result.version, tmp_path / "clones.png")
    image = imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 600
    red = (image[..., 0] > 0.6) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 200  # the flagged resistant clones are drawn in red
