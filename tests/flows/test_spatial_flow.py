"""The analyse flow on new spatial datasets: ``nhood`` on each and ``niches`` for the
registered contrast over the study's sections (S0 at baseline and S1 at progression of
subject P0 in the flows study), with their results published and their artifacts in
Prefect."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from flows._runtime import artifact_key
from flows.analyse import analyse_flow
from resistomics.modalities.spatial import simulate_niche_cohort
from resistomics.pipeline import Workspace, ingest
from spatial_files import NICHE_PROGRAM, write_niche_section

STUDY = "trial"  # S0..S7, subjects P0..P3, even samples baseline, odd progression


def test_analyse_flow_runs_nhood_and_the_niches_of_each_contrast(
    workspace: Workspace, probe: Any, tmp_path: Path
) -> None:
    workspace.catalog.save_contrast(
        STUDY, column="phase", group_a="progression", group_b="baseline", where={}
    )
    cohort = simulate_niche_cohort(n_patients=1, sections_per_sample=1, n_cells=600, seed=2)
    refs = []
    for sample, section in zip(("S0", "S1"), cohort.sections.values(), strict=True):
        src = write_niche_section(tmp_path, dataclasses.replace(section, name=sample), seed=3)
        target = Path(workspace.settings.resolved_landing_zone) / STUDY / "spatial" / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, target)
        out = ingest(workspace, str(target), study=STUDY)
        assert out.status == "published" and out.version is not None, out.message
        refs.append(out.version.ref)
    state = analyse_flow(refs[1], STUDY, return_state=True)
    assert state.name == "Completed", state.message
    results = state.result()["results"]
    assert set(results) == {"nhood", "niches [phase:progression vs baseline]"}
    niches = workspace.catalog.resolve(results["niches [phase:progression vs baseline]"]["ref"])
    assert niches.dataset == f"niches.{NICHE_PROGRAM}.phase_progression_vs_baseline"
    assert len(niches.parent_ids) == 2  # both sections of the study
    for name in ("cohort", "sections", "summary"):
        (art,) = probe.artifacts(artifact_key("spatial", STUDY, niches.dataset, name))
        assert art is not None
    nhood = workspace.catalog.resolve(results["nhood"]["ref"])
    (pairs,) = probe.artifacts(artifact_key("spatial", STUDY, nhood.dataset, "pairs"))
    assert pairs is not None
