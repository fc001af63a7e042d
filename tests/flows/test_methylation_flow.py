"""The analyse flow on a new methylation dataset: the default ``markers`` analysis runs,
calls planted MGMT promoter hypermethylation at progression, and leaves the QC table,
the marker calls and the flagged changes as artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flows._runtime import artifact_key
from flows.analyse import analyse_flow
from flows.ingest import ingest_flow
from resistomics.config import load_settings
from resistomics.modalities.methylation._artifacts import CALL_COLUMNS, QC_COLUMNS
from resistomics.modalities.methylation._dmr import DSS_COLUMNS
from resistomics.modalities.methylation._simulate import (
    simulate_methylation_cohort,
    write_methylation_files,
)
from resistomics.pipeline import Workspace
from resistomics.storage import read_table
from shared_data import SHARED_DATA

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


RRBS = SHARED_DATA / "methylation_rrbs"


def test_analyse_flow_runs_dml_and_dmrs_for_registered_contrasts(
    resistomics_env: dict[str, str], probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On DSS's RRBS cohort with ``case:SLE vs HC`` registered, the analyse flow runs
    markers, the smoothed DML test and callDMR (p 0.01) on it: the published DMRs are
    the 43 DSS 2.46 called (``dss_callDMR_smoothed_p0.01.tsv.gz``; coordinates equal,
    areaStat to 1e-6 relative as in test_dmr_analysis.py), with lineage DMR -> DML ->
    counts; without a registered contrast only markers run and the run says why, and a
    registered contrast one arm of which the dataset lacks is noted, not failed."""
    from typer.testing import CliRunner

    from flows.cli import app

    if not RRBS.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    monkeypatch.setenv("RESISTOMICS_MODALITIES__METHYLATION__SITES_PER_CHUNK", "4096")
    runner = CliRunner()
    for study in ("rrbs", "plain", "half"):
        r = runner.invoke(app, ["study", "register", str(RRBS / "samples.tsv"), "--study", study])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["study", "contrast", "case:SLE vs LN", "--study", "rrbs"])
    assert r.exit_code == 1 and "case takes" in r.output, r.output
    for study in ("rrbs", "half"):
        r = runner.invoke(app, ["study", "contrast", "case:SLE vs HC", "--study", study])
        assert r.exit_code == 0 and "(8 vs 8 samples)" in r.output, r.output
    healthy = set(pd.read_csv(RRBS / "samples.tsv", sep="\t").query("case == 'HC'")["sample_id"])
    ws = Workspace.open(load_settings())
    try:
        refs = {}
        for study in ("rrbs", "plain", "half"):
            folder = Path(ws.settings.resolved_landing_zone) / study / "methylation" / "rrbs"
            folder.mkdir(parents=True)
            for f in RRBS.glob("*.bismark.cov.gz"):
                if study != "half" or f.name.split(".")[0] in healthy:
                    shutil.copyfile(f, folder / f.name)
            refs[study] = ingest_flow(str(folder), study, modality="methylation")["ref"]
        state = analyse_flow(refs["plain"], "plain", return_state=True)
        assert state.name == "Completed", state.message
        assert set(state.result()["results"]) == {"markers"}
        assert "dml not run: study plain has no registered contrast" in state.message
        assert "dmr not run" in state.message

        # the study's contrast, but only HC samples in this dataset: a note, not a failure
        state = analyse_flow(refs["half"], "half", return_state=True)
        assert state.name == "Completed", state.message
        assert set(state.result()["results"]) == {"markers"}
        assert "dml [case:SLE vs HC] not run: the contrast does not apply" in state.message
        assert "[contrast-arm]" in state.message
        assert "dmr [case:SLE vs HC] not run: its input" in state.message

        state = analyse_flow(refs["rrbs"], "rrbs", return_state=True)
        assert state.name == "Completed", state.message
        results = state.result()["results"]
        key = "case:SLE vs HC"
        assert set(results) == {"markers", f"dml [{key}]", f"dmr [{key}]"}
        dmr = ws.catalog.resolve(results[f"dmr [{key}]"]["ref"])
        dml = ws.catalog.resolve(results[f"dml [{key}]"]["ref"])
        assert dmr.dataset_type == "methylation.dmr" and dml.dataset_type == "methylation.dml"
        assert list(dmr.parent_ids) == [dml.id] and list(dml.parent_ids) == [
            ws.catalog.resolve(refs["rrbs"]).id
        ]
        assert dml.parameters["smoothing"] is True and dml.parameters["span"] == 500
        assert dmr.parameters["p_threshold"] == 0.01
        table = read_table(ws.root, f"{ws.root.to_path(dmr.uri)}/dmr.parquet")
        ref = pd.read_csv(
            RRBS / "dss_2.46.0" / "dss_callDMR_smoothed_p0.01.tsv.gz", sep="\t"
        ).rename(columns=DSS_COLUMNS)
        keys = ["contig", "start", "end", "length", "n_cpg"]
        assert len(table) == 43
        assert table[keys].astype(str).values.tolist() == ref[keys].astype(str).values.tolist()
        np.testing.assert_allclose(table["area_stat"], ref["area_stat"], rtol=1e-6)
        (top,) = probe.artifacts(artifact_key("methylation", "rrbs", dmr.dataset, "top-dmrs"))
        top_rows = _rows(top)
        assert len(top_rows) == 43
        best = ref.loc[ref["area_stat"].abs().idxmax()]
        assert (top_rows[0]["contig"], top_rows[0]["start"]) == (best["contig"], best["start"])
        (dmls,) = probe.artifacts(artifact_key("methylation", "rrbs", dml.dataset, "top-dmls"))
        assert len(_rows(dmls)) == 50
        (qc,) = probe.artifacts(artifact_key("methylation", "rrbs", "rrbs", "qc"))
        assert len(_rows(qc)) == 16
        again = analyse_flow(refs["rrbs"], "rrbs", return_state=True)
        assert again.name == "Unchanged", again.message
    finally:
        ws.close()
