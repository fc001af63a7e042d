"""The clonal flow on a published variants dataset: result, event, artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flows.clonal import clonal_flow
from flows.ingest import ingest_flow
from resistomics.pipeline import Workspace

STUDY = "trial"  # registered by the `workspace` fixture: S0..S7, subjects P0..P3
HEADER = [
    "Hugo_Symbol",
    "Chromosome",
    "Start_Position",
    "Reference_Allele",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
    "HGVSp_Short",
    "t_ref_count",
    "t_alt_count",
    "t_depth",
]


def _maf(workspace: Workspace) -> str:
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
                    str(depth - alt),
                    str(alt),
                    str(depth),
                ]
            )
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "variants"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "calls.maf"
    path.write_text("\n".join("\t".join(r) for r in [HEADER, *rows]) + "\n")
    return str(path)


def test_clonal_flow_reports_emergent_resistance(
    workspace: Workspace, land: Any, probe: Any
) -> None:
    ref = ingest_flow(_maf(workspace), STUDY, modality="variants")["ref"]
    state = clonal_flow(ref, STUDY, return_state=True)
    assert state.name == "Completed", state.message
    result = workspace.catalog.resolve(state.result()["ref"])
    assert result.dataset_type == "signatures.clonal"
    (table,) = probe.artifacts(f"clonal-{STUDY}-calls-emergent-resistance")
    data = table.data
    rows = json.loads(data) if isinstance(data, str) else data
    assert sorted(r["subject_id"] for r in rows) == ["P0", "P1", "P2", "P3"]
    assert {r["gene"] for r in rows} == {"ESR1"}
    again = clonal_flow(ref, STUDY, return_state=True)
    assert again.name == "Unchanged"
    expression_ref = ingest_flow(land("bulk.tsv"), STUDY)["ref"]
    skipped = clonal_flow(expression_ref, STUDY, return_state=True)
    assert skipped.name == "Skipped"
