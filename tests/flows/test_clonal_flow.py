"""The analyse flow on a published variants dataset (clonal evolution): result, event,
artifacts."""

from __future__ import annotations

import json
from typing import Any

from flows.analyse import analyse_flow
from flows.ingest import ingest_flow
from resistomics.modalities.variants._artifacts import EMERGENT_COLUMNS
from resistomics.pipeline import Workspace
from trial_variants import variants_maf

STUDY = "trial"  # registered by the `workspace` fixture: S0..S7, subjects P0..P3


def test_clonal_flow_reports_emergent_resistance(
    workspace: Workspace, land: Any, probe: Any
) -> None:
    ref = ingest_flow(variants_maf(workspace), STUDY, modality="variants")["ref"]
    state = analyse_flow(ref, STUDY, return_state=True)
    assert state.name == "Completed", state.message
    assert set(state.result()["results"]) == {"clonal"}
    result = workspace.catalog.resolve(state.result()["results"]["clonal"]["ref"])
    assert result.dataset_type == "signatures.clonal"
    (table,) = probe.artifacts(f"clonal-{STUDY}-calls-emergent-resistance")
    data = table.data
    rows = json.loads(data) if isinstance(data, str) else data
    assert sorted(r["subject_id"] for r in rows) == ["P0", "P1", "P2", "P3"]
    assert {r["gene"] for r in rows} == {"ESR1"}
    # every named column is in the artifact, none silently dropped, and filled in
    assert all(list(r) == list(EMERGENT_COLUMNS) for r in rows), rows[0]
    assert all(r["vaf"] > r["baseline_vaf"] for r in rows), rows
    assert all(r["catalogue_level"] == "exact" and r["catalogue_therapy"] for r in rows), rows
    (clones,) = probe.artifacts(f"clonal-{STUDY}-calls-resistant-clones")
    data = clones.data
    clone_rows = json.loads(data) if isinstance(data, str) else data
    assert sorted(r["subject_id"] for r in clone_rows) == ["P0", "P1", "P2", "P3"]
    assert all(r["resistance_changes"] == "ESR1:Y537S" for r in clone_rows)
    assert all(r["prevalence"].startswith("baseline 0.0") for r in clone_rows), clone_rows
    again = analyse_flow(ref, STUDY, return_state=True)
    assert again.name == "Unchanged"
    skipped = analyse_flow(result.ref, STUDY, return_state=True)  # a result is not analysed
    assert skipped.name == "Skipped"
