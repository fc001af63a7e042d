"""A small planted cohort MAF: a resistant clone carrying ESR1 Y537S expands under therapy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.simulate import MAF_COLUMNS


def planted_cohort(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """Three subjects (baseline, progression; purity 0.7): ESR1 Y537S + 5 mutations absent
    at baseline and at CCF 0.9 at progression, 8 truncal, 6 sensitive (0.6 -> 0). Returns
    the sample sheet and the MAF (with read counts)."""
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
    maf.write_text("\n".join("\t".join(r) for r in [MAF_COLUMNS, *rows]) + "\n")
    return sheet, maf
