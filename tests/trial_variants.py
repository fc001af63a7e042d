"""A variant-call MAF for the flow tests' study ``trial`` (S0..S7, subjects P0..P3):
ESR1 Y537S absent at baseline (even samples), at VAF 0.35 at progression (odd samples),
two truncal mutations at VAF 0.3 everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resistomics.pipeline import Workspace
from resistomics.simulate import MAF_COLUMNS

STUDY = "trial"  # registered by the `workspace` fixture: S0..S7, subjects P0..P3


def variants_maf(workspace: Workspace) -> str:
    """Write the MAF into the study's variants landing folder; return its path."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(8):
        progression = i % 2 == 1
        for gene, pos, change, vaf in (
            ("ESR1", 152419920, "p.Y537S", 0.35 if progression else 0.0),
            ("TRUNK1", 2000, "p.A20E", 0.3),
            ("TRUNK2", 2001, "p.A21E", 0.3),
        ):
            depth = 150
            alt = int(rng.binomial(depth, vaf))
            rows.append(
                [
                    gene,
                    "6",
                    str(pos),
                    "A",
                    "C",
                    f"S{i}",
                    change,
                    "Missense_Mutation",
                    str(depth - alt),
                    str(alt),
                    str(depth),
                ]
            )
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "variants"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "calls.maf"
    path.write_text("\n".join("\t".join(r) for r in [MAF_COLUMNS, *rows]) + "\n")
    return str(path)
