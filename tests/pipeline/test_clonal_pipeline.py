"""Clonal evolution end to end: planted resistant clone expanding under therapy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HEADER = [
    "Hugo_Symbol",
    "Chromosome",
    "Start_Position",
    "Reference_Allele",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
    "HGVSp_Short",
    "Variant_Classification",
    "t_ref_count",
    "t_alt_count",
    "t_depth",
]


def _cohort(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    samples, rows = [], []
    for s in range(3):
        subject = f"P{s + 1}"
        purity = 0.7
        for phase, sample, resistant_ccf, sensitive_ccf in (
            ("baseline", f"{subject}_BL", 0.0, 0.6),
            ("progression", f"{subject}_PD", 0.9, 0.0),
        ):
            samples.append(
                {
                    "sample_id": sample,
                    "subject_id": subject,
                    "phase": phase,
                    "timepoint": 0 if phase == "baseline" else 180,
                    "purity": purity,
                }
            )
            muts = [("ESR1", "6", 152419920, "A", "C", "p.Y537S", resistant_ccf)]
            muts += [
                (f"RES{i}", "3", 1000 + i, "G", "T", f"p.G{10 + i}V", resistant_ccf)
                for i in range(5)
            ]
            muts += [(f"TRUNK{i}", "5", 2000 + i, "C", "A", f"p.A{20 + i}E", 1.0) for i in range(8)]
            muts += [
                (f"SENS{i}", "7", 3000 + i, "T", "G", f"p.L{30 + i}R", sensitive_ccf)
                for i in range(6)
            ]
            for gene, chrom, pos, ref, alt, change, ccf in muts:
                depth = int(rng.integers(120, 200))
                alt_n = int(rng.binomial(depth, ccf * purity / 2))
                rows.append(
                    [
                        gene,
                        chrom,
                        str(pos),
                        ref,
                        alt,
                        sample,
                        change,
                        "Missense_Mutation",
                        str(depth - alt_n),
                        str(alt_n),
                        str(depth),
                    ]
                )
    sheet = tmp_path / "samples.tsv"
    pd.DataFrame(samples).to_csv(sheet, sep="\t", index=False)
    maf = tmp_path / "cohort.maf"
    maf.write_text("\n".join("\t".join(r) for r in [HEADER, *rows]) + "\n")
    return sheet, maf


def test_emergent_resistance_mutation_and_its_clone(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.pipeline import clonal_evolution, ingest

    sheet, maf = _cohort(tmp_path, np.random.default_rng(11))
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
