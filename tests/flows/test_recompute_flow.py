"""The nightly recompute: results of every source dataset brought up to date, idempotently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flows.ingest import ingest_flow
from flows.recompute import recompute_flow
from resistomics.catalog import VersionStatus
from resistomics.pipeline import Workspace
from trial_variants import variants_maf

STUDY = "trial"


def _rows(probe: Any, key: str) -> list[dict[str, Any]]:
    artifacts = probe.artifacts(key)
    data = artifacts[-1].data
    return json.loads(data) if isinstance(data, str) else data


def _results(workspace: Workspace) -> dict[str, int]:
    published = workspace.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    return {v.dataset: v.number for v in published if v.kind == "result"}


def test_recompute_refreshes_results_only_when_they_are_stale(
    workspace: Workspace, land: Any, probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_flow(land("bulk.tsv"), STUDY)
    ingest_flow(variants_maf(workspace), STUDY, modality="variants")
    assert _results(workspace) == {}  # nothing served: no event ran the analysis flows

    # First night: both results are missing, so both flows publish.
    state = recompute_flow(STUDY, return_state=True)
    assert state.name == "Completed", state.message
    rows = {r["dataset"]: r for r in _rows(probe, "recompute-trial")}
    assert {r["flow"] for r in rows.values()} == {"analyse"}
    assert {r["modality"] for r in rows.values()} == {"expression", "variants"}
    assert {r["state"] for r in rows.values()} == {"Completed"}
    assert _results(workspace) == {"bulk.signatures": 1, "calls.clonal": 1}

    # Second night, nothing changed: found, not recomputed.
    state = recompute_flow(STUDY, return_state=True)
    assert state.name == "Unchanged", state.message
    assert {r["state"] for r in _rows(probe, "recompute-trial")} == {"Unchanged"}
    assert _results(workspace) == {"bulk.signatures": 1, "calls.clonal": 1}

    # A new code release: every result is recomputed and supersedes the old one.
    monkeypatch.setattr("resistomics.publishing._results.__version__", "99.0.0")
    state = recompute_flow(None, return_state=True)  # all studies
    assert state.name == "Completed", state.message
    assert _results(workspace) == {"bulk.signatures": 2, "calls.clonal": 2}
    assert {r["state"] for r in _rows(probe, "recompute-all-studies")} == {"Completed"}
