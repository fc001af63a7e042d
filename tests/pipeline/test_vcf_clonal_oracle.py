"""Planted truth through the whole variants path: caller-style VCFs -> ingest -> clonal.

Three subjects sampled at baseline and progression; a resistant clone carrying ESR1
Y537S (plus passengers) is absent at baseline and expands under therapy, a truncal clone
stays, a sensitive clone contracts. Written as Mutect2 writes a multi-sample VCF (GT, AD,
DP, AF; VEP CSQ). The planted clone and its catalogued mutation must be recovered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CSQ = "Allele|Consequence|IMPACT|SYMBOL|Gene|Feature|BIOTYPE|HGVSc|HGVSp|CANONICAL"
SUBJECTS = ("P1", "P2", "P3")
PURITY = 0.7


def _vcf(path: Path, rng: np.random.Generator) -> list[str]:
    samples = [f"{s}_{t}" for s in SUBJECTS for t in ("BL", "PD")]
    header = [
        "##fileformat=VCFv4.2",
        "##source=Mutect2",
        "##contig=<ID=chr3,length=198022430>",
        "##contig=<ID=chr5,length=180915260>",
        "##contig=<ID=chr6,length=171115067>",
        "##contig=<ID=chr7,length=159138663>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">',
        f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. Format: {CSQ}">',
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]
        ),
    ]
    mutations = [("chr6", 152419920, "A", "C", "ESR1", "p.Tyr537Ser", "resistant")]
    mutations += [
        ("chr3", 1000 + i, "G", "T", f"RES{i}", f"p.Gly{10 + i}Val", "resistant") for i in range(4)
    ]
    mutations += [
        ("chr5", 2000 + i, "C", "A", f"TRUNK{i}", f"p.Ala{20 + i}Glu", "truncal") for i in range(6)
    ]
    mutations += [
        ("chr7", 3000 + i, "T", "G", f"SENS{i}", f"p.Leu{30 + i}Arg", "sensitive") for i in range(5)
    ]
    ccf = {"resistant": (0.0, 0.9), "truncal": (1.0, 1.0), "sensitive": (0.6, 0.0)}
    lines = []
    for chrom, pos, ref, alt, gene, hgvsp, kind in mutations:
        fields = []
        for _subject in SUBJECTS:
            for t in (0, 1):
                depth = int(rng.integers(90, 220))
                n_alt = int(rng.binomial(depth, ccf[kind][t] * PURITY / 2))
                gt = "0/1" if n_alt else "0/0"
                fields.append(f"{gt}:{depth - n_alt},{n_alt}:{depth}:{n_alt / depth:.4f}")
        csq = f"{alt}|missense_variant|MODERATE|{gene}|ENSG0|ENST0|protein_coding|c.1A>C|ENSP0:{hgvsp}|YES"
        lines.append(
            "\t".join(
                [chrom, str(pos), ".", ref, alt, ".", "PASS", f"CSQ={csq}", "GT:AD:DP:AF", *fields]
            )
        )
    path.write_text("\n".join(header + lines) + "\n")
    return samples


def test_planted_resistant_clone_recovered_from_vcf(workspace, land, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.pipeline import clonal_evolution, ingest

    vcf = tmp_path / "trial.vcf"
    samples = _vcf(vcf, np.random.default_rng(2))
    sheet = tmp_path / "samples.tsv"
    pd.DataFrame(
        [
            {
                "sample_id": s,
                "subject_id": s.split("_")[0],
                "phase": "baseline" if s.endswith("BL") else "progression",
                "timepoint": 0 if s.endswith("BL") else 200,
                "purity": PURITY,
            }
            for s in samples
        ]
    ).to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("trial", parse_sample_sheet(sheet))
    out = ingest(
        workspace,
        land(workspace, vcf, "trial", modality="variants"),
        study="trial",
        modality="variants",
    )
    assert out.status == "published", out.message

    result = clonal_evolution(workspace, "trial/trial")
    emergent = result.tables["emergent_resistance"]
    assert sorted(emergent["subject_id"]) == list(SUBJECTS)
    assert set(emergent["protein_change"]) == {"Y537S"} and set(emergent["gene"]) == {"ESR1"}
    mutations = result.tables["clone_mutations"]
    clones = result.tables["clones"]
    for subject in SUBJECTS:
        mine = mutations[mutations["subject_id"] == subject]
        esr1_clone = mine.loc[mine["gene"] == "ESR1", "clone_id"].iloc[0]
        planted = set(mine.loc[mine["gene"].str.startswith("RES"), "clone_id"])
        assert planted == {esr1_clone}  # the passengers share the resistant clone
        row = clones[(clones["subject_id"] == subject) & (clones["clone_id"] == esr1_clone)]
        assert row["carries_resistance_mutation"].all()
        by_phase = row.set_index("phase")["prevalence"]
        assert by_phase["baseline"] <= 0.05 and by_phase["progression"] >= 0.75
