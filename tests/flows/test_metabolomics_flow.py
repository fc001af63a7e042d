"""The analyse flow on a new metabolomics dataset: ``normalize`` once and ``da`` for each
registered contrast (paired phases of the flows study), with the QC table (QC RSD before
and after drift correction) and the top features as Prefect artifacts; ``programs`` and
``enrich`` (default as well) are noted as not applicable to features without ChEBI IDs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from flows._runtime import artifact_key
from flows.analyse import analyse_flow
from resistomics.pipeline import Workspace, ingest

SAMPLES = [f"S{i}" for i in range(8)]  # the flows conftest study
STUDY = "trial"  # S0..S7, subjects P0..P3, even samples baseline, odd progression
N_QC, N_FEATURES = 5, 12


def _rows(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def _table(path: Path) -> None:
    """S0..S7 and 5 pooled QCs in one drifting run (x1 -> x1.6); m00-m02 triple at
    progression."""
    rng = np.random.default_rng(5)
    base = rng.lognormal(6, 1, N_FEATURES)
    order = ["QC_1", "S0", "S1", "QC_2", "S2", "S3", "QC_3", "S4", "S5", "QC_4", "S6", "S7", "QC_5"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["Sample", "Label", "injection_order", *[f"m{i:02d}" for i in range(N_FEATURES)]]
        )
        for pos, name in enumerate(order):
            v = base * rng.lognormal(0, 0.02 if name.startswith("QC") else 0.1, N_FEATURES)
            if name.startswith("S") and int(name[1]) % 2:
                v[:3] *= 3.0
            v *= 1.0 + 0.6 * pos / len(order)
            w.writerow([name, "QC" if name.startswith("QC") else "study", pos + 1, *v])


def test_analyse_flow_normalizes_and_tests_each_contrast(workspace: Workspace, probe: Any) -> None:
    workspace.catalog.save_contrast(
        STUDY, column="phase", group_a="progression", group_b="baseline", where={}
    )
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "metabolomics"
    folder.mkdir(parents=True)
    _table(folder / "plasma.csv")
    # the ingest flow takes no reader options: the injection order needs --extra-columns
    out = ingest(
        workspace,
        str(folder / "plasma.csv"),
        study=STUDY,
        modality="metabolomics",
        options={"extra_columns": ["injection_order"]},
    )
    assert out.status == "published", out.message
    assert out.version is not None
    ref = out.version.ref
    state = analyse_flow(ref, STUDY, return_state=True)
    assert state.name == "Completed", state.message
    results = state.result()["results"]
    assert set(results) == {"normalize", "da [phase:progression vs baseline]"}
    # programs and enrich are default too, but these features carry no ChEBI ID: noted,
    # naming the rule, not a failed run
    notes = state.result()["notes"]
    assert any(n.startswith("programs not run") and "[identifiers]" in n for n in notes), notes
    assert any(n.startswith("enrich") and "[identifiers]" in n for n in notes), notes
    norm = workspace.catalog.resolve(results["normalize"]["ref"])
    assert norm.parameters["drift_corrected"] is True
    (qc,) = probe.artifacts(artifact_key("metabolomics", STUDY, norm.dataset, "qc-features"))
    rows = _rows(qc)
    assert len(rows) == N_FEATURES
    assert all(float(r["qc_rsd_after"]) < float(r["qc_rsd_before"]) for r in rows)
    da = workspace.catalog.resolve(results["da [phase:progression vs baseline]"]["ref"])
    assert da.parent_ids == (norm.id,)
    (top,) = probe.artifacts(artifact_key("metabolomics", STUDY, da.dataset, "top-features"))
    assert {r["feature_id"] for r in _rows(top)[:3]} == {"m00", "m01", "m02"}
