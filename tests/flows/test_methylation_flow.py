"""The analyse flow on a new methylation dataset: the default ``markers`` analysis runs,
calls planted MGMT promoter hypermethylation at progression, and leaves the QC table,
the marker calls and the flagged changes as artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows._runtime import artifact_key
from flows.analyse import analyse_flow
from flows.ingest import ingest_flow
from resistomics.modalities.methylation._artifacts import CALL_COLUMNS, QC_COLUMNS
from resistomics.modalities.methylation._simulate import (
    simulate_methylation_cohort,
    write_methylation_files,
)
from resistomics.pipeline import Workspace

SAMPLES = [f"S{i}" for i in range(8)]  # the flows conftest study
STUDY = "trial"  # S0..S7, subjects P0..P3, even samples baseline, odd progression


def _rows(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def test_analyse_flow_runs_markers_on_new_methylation_data(
    workspace: Workspace, probe: Any
) -> None:
    sim = simulate_methylation_cohort(
        n_subjects=4,
        n_sites=600,
        seed=2,
        planted_regions=[
            {
                "contig": "chr10",
                "start": 131264949,
                "end": 131265710,
                "n_cpgs": 30,
                "baseline": 0.04,
                "progression": 0.8,
            }
        ],
    )
    # the simulator's P1-base, P1-prog, ... are the study's S0 (baseline), S1, ...
    rename = dict(zip(sim.samples["sample_id"], SAMPLES, strict=True))
    sim = type(sim)(
        samples=sim.samples.assign(sample_id=sim.samples["sample_id"].map(rename)),
        calls={rename[k]: v for k, v in sim.calls.items()},
        dmrs=sim.dmrs,
        levels=sim.levels,
    )
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "methylation" / "cov"
    write_methylation_files(sim, folder, "bismark-cov")
    ref = ingest_flow(str(folder), STUDY, modality="methylation")["ref"]
    state = analyse_flow(ref, STUDY, return_state=True)
    assert state.name == "Completed", state.message
    assert set(state.result()["results"]) == {"markers"}
    result = workspace.catalog.resolve(state.result()["results"]["markers"]["ref"])
    assert result.dataset_type == "methylation.markers"
    dataset = result.dataset.removesuffix(".markers")
    (qc,) = probe.artifacts(artifact_key("methylation", STUDY, dataset, "qc"))
    qc_rows = _rows(qc)
    assert sorted(r["sample_id"] for r in qc_rows) == SAMPLES
    assert all(list(r) == list(QC_COLUMNS) for r in qc_rows)
    assert all(r["median_depth"] > 5 and 0 < r["fraction_covered"] <= 1 for r in qc_rows)
    (calls,) = probe.artifacts(artifact_key("methylation", STUDY, dataset, "marker-calls"))
    mgmt = {r["sample_id"]: r["call"] for r in _rows(calls) if r["gene"] == "MGMT"}
    assert all(list(r) == list(CALL_COLUMNS) for r in _rows(calls))
    assert mgmt == {s: ("methylated" if i % 2 else "unmethylated") for i, s in enumerate(SAMPLES)}
    (changes,) = probe.artifacts(artifact_key("methylation", STUDY, dataset, "marker-changes"))
    flagged = _rows(changes)
    assert sorted(r["subject_id"] for r in flagged) == ["P0", "P1", "P2", "P3"]
    assert all(r["gene"] == "MGMT" and r["implication"] == "sensitivity" for r in flagged)
    again = analyse_flow(ref, STUDY, return_state=True)
    assert again.name == "Unchanged"
