"""Each flow called directly against a temporary Prefect server: states, catalog
effects, artifacts and events."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags
from prefect.client.schemas.objects import Artifact, FlowRun, State, StateType

from flows.analyse import analyse_flow
from flows.events import (
    DATASET_PUBLISHED,
    DATASET_QUARANTINED,
    FILE_LANDED,
    LABEL_DATASET,
    LABEL_MODALITY,
    dataset_resource_id,
    file_resource_id,
)
from flows.ingest import ingest_flow
from flows.maintenance import IntegrityProblemsError, gc_flow, integrity_flow
from flows.report import report_flow
from flows.sweep import sweep_flow
from resistomics.catalog import VersionStatus
from resistomics.errors import DatasetNotFoundError
from resistomics.pipeline import Workspace

Land = Callable[..., str]
STUDY = "trial"  # registered by the `workspace` fixture
PrefectProbe = Any  # conftest.PrefectProbe (conftest modules are not imported by name)


def _flow_run(state: State) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]


def _rows(artifact: Artifact) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[return-value]


def test_ingest_publishes_with_artifacts_and_event(
    workspace: Workspace, land: Land, probe: PrefectProbe
) -> None:
    path = land("bulk.tsv")
    state = ingest_flow(path, STUDY, return_state=True)

    assert state.type == StateType.COMPLETED and state.name == "Completed"
    summary = state.result()
    assert summary["status"] == "published" and summary["ref"] == f"{STUDY}/bulk@v1"
    version = workspace.catalog.resolve(f"{STUDY}/bulk")
    assert version.shape == (8, 400)
    assert not Path(path).exists()  # moved out of the landing zone (archived)
    run = _flow_run(state)
    assert run.name == f"{STUDY}/bulk.tsv" and "quarantined" not in run.tags

    (table,) = probe.artifacts(f"validation-{STUDY}-bulk")
    assert table.type == "table" and table.flow_run_id == state.state_details.flow_run_id
    rows = _rows(table)
    assert {r["rule"] for r in rows} >= {"non-negative-counts", "registered-samples"}
    assert all(r["result"] == "pass" for r in rows)
    (summary_md,) = probe.artifacts(f"ingest-{STUDY}-bulk")
    assert summary_md.type == "markdown" and f"{STUDY}/bulk@v1" in str(summary_md.data)

    probe.flush_events()
    (event,) = probe.events(DATASET_PUBLISHED, resource_id=dataset_resource_id(STUDY, "bulk"))
    assert event.resource[LABEL_DATASET] == f"{STUDY}/bulk@v1"
    assert event.resource[LABEL_MODALITY] == "expression"
    assert event.payload["shape"] == [8, 400]


def test_bad_file_is_quarantined_not_failed(
    workspace: Workspace, land: Land, probe: PrefectProbe
) -> None:
    path = land("negative.tsv", negative=True)
    state = ingest_flow(path, STUDY, return_state=True)

    # The platform did its job: the run completes, named Quarantined, with the reason.
    assert state.type == StateType.COMPLETED and state.name == "Quarantined"
    assert "non-negative-counts" in (state.message or "")
    # ... and the dashboard finds it by its tag
    run = _flow_run(state)
    assert run.name == f"{STUDY}/negative.tsv" and "quarantined" in run.tags
    with get_client(sync_client=True) as client:
        tagged = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["quarantined"]))
        )
    assert run.id in {r.id for r in tagged}
    result = state.result()
    assert result["status"] == "quarantined" and Path(result["quarantine_uri"]).is_dir()
    assert workspace.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED) == []

    (table,) = probe.artifacts(f"validation-{STUDY}-negative")
    rows = _rows(table)
    failed = [r for r in rows if r["result"] != "pass"]
    assert [r["rule"] for r in failed] == ["non-negative-counts"]
    assert failed[0]["failing"] == 1 and "S0" in failed[0]["examples"]
    (md,) = probe.artifacts(f"ingest-{STUDY}-negative")
    assert result["quarantine_uri"] in str(md.data)

    probe.flush_events()
    (event,) = probe.events(DATASET_QUARANTINED, resource_id=dataset_resource_id(STUDY, "negative"))
    assert event.payload["failures"] == ["non-negative-counts"]
    assert event.payload["quarantine_uri"] == result["quarantine_uri"]


def test_unknown_study_fails_with_one_line(workspace: Workspace, land: Land) -> None:
    path = land("orphan.tsv", study="nobody")
    state = ingest_flow(path, "nobody", return_state=True)
    assert state.type == StateType.FAILED
    message = state.message or ""
    assert "no study named 'nobody'" in message and "\n" not in message
    with pytest.raises(DatasetNotFoundError):
        state.result()
    assert Path(path).exists()  # nothing moved


def test_same_bytes_twice_make_one_version(workspace: Workspace, land: Land) -> None:
    first = ingest_flow(land("bulk.tsv"), STUDY, return_state=True)
    again = ingest_flow(land("bulk.tsv"), STUDY, return_state=True)
    assert first.name == "Completed" and again.name == "Unchanged"
    assert len(workspace.catalog.versions(study=STUDY)) == 1


def test_event_for_a_file_already_processed_is_skipped(workspace: Workspace, land: Land) -> None:
    path = land("bulk.tsv")
    assert ingest_flow(path, STUDY, return_state=True).name == "Completed"
    # A sweep or a redelivered event announces the file again after it was archived.
    again = ingest_flow(path, STUDY, return_state=True)
    assert again.type == StateType.COMPLETED and again.name == "Skipped"
    assert len(workspace.catalog.versions(study=STUDY)) == 1


def test_signatures_and_report(workspace: Workspace, land: Land, probe: PrefectProbe) -> None:
    ref = ingest_flow(land("bulk.tsv"), STUDY)["ref"]

    state = analyse_flow(ref, STUDY, return_state=True)
    assert state.name == "Completed", state.message
    assert _flow_run(state).name == ref  # the dataset, not a random name
    result_ref = state.result()["results"]["signatures"]["ref"]
    assert result_ref == f"{STUDY}/bulk.signatures@v1"
    result = workspace.catalog.resolve(result_ref)
    assert result.parent_ids == (workspace.catalog.resolve(ref).id,)

    (top,) = probe.artifacts(f"signatures-{STUDY}-bulk-top-programs")
    rows = _rows(top)
    assert len(rows) == 8 * 3
    # The planted efflux boost in resistant samples S0-S3 comes out on top there.
    first: dict[str, str] = {}
    for r in rows:
        first.setdefault(r["sample_id"], r["gene_set"])
    assert {first[s] for s in ("S0", "S1", "S2", "S3")} == {"DRUG_EFFLUX_ABC"}, first

    # The planted efflux program scores higher in the resistant samples than in the
    # sensitive ones, and the report (generic) shows the modality's table of it.
    (by_response,) = probe.artifacts(f"signatures-{STUDY}-bulk-score-by-response")
    efflux = next(r for r in _rows(by_response) if r["program"] == "DRUG_EFFLUX_ABC")
    assert float(efflux["resistant"]) > float(efflux["sensitive"]), efflux

    again = analyse_flow(ref, STUDY, return_state=True)
    assert again.name == "Unchanged"

    report_state = report_flow(result_ref, STUDY, return_state=True)
    assert _flow_run(report_state).name == result_ref
    markdown = report_state.result()
    assert f"`{result_ref}`" in markdown and f"`{ref}`" in markdown
    assert "DRUG_EFFLUX_ABC" in markdown and "resistant" in markdown
    assert "Mean program score by response" in markdown
    (report,) = probe.artifacts(f"study-report-{STUDY}")
    assert report.type == "markdown"


def test_analyse_skips_results(workspace: Workspace, land: Land) -> None:
    ref = ingest_flow(land("bulk.tsv"), STUDY)["ref"]
    result_ref = analyse_flow(ref, STUDY)["results"]["signatures"]["ref"]
    state = analyse_flow(result_ref, STUDY, return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Skipped"


def test_sweep_announces_settled_files_of_registered_studies(
    workspace: Workspace, land: Land, probe: PrefectProbe
) -> None:
    ready = land("ready.tsv")
    orphan = land("orphan.tsv", study="unregistered")
    (Path(ready).parent / ".hidden.tsv").write_text("x")
    (Path(ready).parent / "copying.tsv.part").write_text("x")

    rows = sweep_flow(min_age_seconds=0)
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {ready, orphan}
    assert by_path[ready]["status"] == "announced" and by_path[ready]["study"] == STUDY
    assert by_path[orphan]["status"] == "unregistered-study"

    probe.flush_events()
    (event,) = probe.events(FILE_LANDED, resource_id=file_resource_id(ready))
    assert event.resource["resistomics.path"] == ready
    assert event.payload["detected_by"] == "sweep"

    # Still being written: left for the next sweep.
    rows = sweep_flow(min_age_seconds=3600)
    assert {r["status"] for r in rows if r["path"] == ready} == {"settling"}
    assert probe.artifacts("landing-sweep")


def test_gc_refuses_at_once_when_catalog_and_root_disagree(
    workspace: Workspace, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = ingest_flow(land("bulk.tsv"), STUDY)["ref"]
    shutil.rmtree(workspace.root.to_path(workspace.catalog.resolve(ref).uri))
    orphan = Path(workspace.root.new_version_path(STUDY, "bulk"))
    orphan.mkdir(parents=True)
    monkeypatch.setenv("RESISTOMICS_GC_MAX_DISAGREEMENT", "1")
    state = gc_flow(older_than_hours=0, return_state=True)
    assert state.type == StateType.FAILED
    assert "garbage collection refused: 1 catalog version(s)" in (state.message or "")
    assert orphan.is_dir()  # nothing removed
    with get_client(sync_client=True) as client:  # refused, not retried like an I/O error
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert [r.run_count for r in runs] == [1]


def test_gc_removes_only_garbage(workspace: Workspace, land: Land) -> None:
    ref = ingest_flow(land("bulk.tsv"), STUDY)["ref"]
    published = workspace.catalog.resolve(ref)
    staged = workspace.catalog.stage_version(
        study=STUDY,
        dataset="crashed",
        modality="expression",
        dataset_type="expression.counts",
        uri=workspace.root.relative_uri(workspace.root.new_version_path(STUDY, "crashed")),
        format="zarr-anndata",
        layout="sparse-matrix",
        layout_version=1,
        digest="sha256:0",
        schema_version="1.0.0",
        shape=[],
        code_version="test",
    )
    staged_dir = workspace.root.to_path(staged.uri)
    os.makedirs(staged_dir)
    orphan = workspace.root.new_version_path(STUDY, "bulk")
    os.makedirs(orphan)
    Path(orphan, "chunk").write_bytes(b"partial")

    assert gc_flow(older_than_hours=1) == []  # all young: an ingest may be writing them
    rows = gc_flow(older_than_hours=0)

    assert {(r["kind"], r["path"]) for r in rows} == {
        ("staged-version", staged_dir),
        ("unreferenced-directory", orphan),
    }
    assert not Path(staged_dir).exists() and not Path(orphan).exists()
    assert Path(workspace.root.to_path(published.uri)).is_dir()
    assert [v.ref for v in workspace.catalog.versions(study=STUDY)] == [ref]


def test_integrity_check(workspace: Workspace, land: Land, probe: PrefectProbe) -> None:
    ref = ingest_flow(land("bulk.tsv"), STUDY)["ref"]
    analyse_flow(ref, STUDY)
    state = integrity_flow(return_state=True)
    assert state.type == StateType.COMPLETED, state.message
    checks = state.result()
    assert {(c["check"], c["result"]) for c in checks} == {
        ("exists", "ok"),
        ("files", "ok"),
        ("opens", "ok"),
        ("source-digest", "ok"),
    }

    # Damage published data: the nightly run turns red and says what is wrong.
    version = workspace.catalog.resolve(ref)
    result = workspace.catalog.resolve(f"{STUDY}/bulk.signatures")
    shutil.rmtree(Path(workspace.root.to_path(version.uri)) / "by_gene.zarr")
    shutil.rmtree(workspace.root.to_path(result.uri))
    state = integrity_flow(return_state=True)
    assert state.type == StateType.FAILED
    with pytest.raises(IntegrityProblemsError) as err:
        state.result()
    problems = {(c.ref, c.check) for c in err.value.problems}
    assert problems == {(ref, "files"), (ref, "opens"), (result.ref, "exists")}
    first, latest = probe.artifacts("integrity-check-summary")
    assert "0 problem(s)" in str(first.data) and ref in str(latest.data)


def test_unreadable_file_is_quarantined_with_its_rule(
    workspace: Workspace, land: Land, probe: PrefectProbe
) -> None:
    path = land("garbage.tsv")
    Path(path).write_text("gene_id\tS0\tS1\nTP53\t12\tlots\n")
    state = ingest_flow(path, STUDY, return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Quarantined"
    (table,) = probe.artifacts(f"validation-{STUDY}-garbage")
    (row,) = _rows(table)
    assert row["table"] == "file" and row["result"] == "FAIL" and row["rule"] == "numeric-values"


def test_only_transient_errors_are_retried(prefect_api: str) -> None:
    from prefect import flow, task

    from flows._runtime import retry_on_transient_errors

    attempts: list[str] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_on_transient_errors)
    def flaky(kind: str) -> None:
        attempts.append(kind)
        raise (OSError("disk hiccup") if kind == "io" else DatasetNotFoundError("no study"))

    @flow
    def run(kind: str) -> None:
        flaky(kind)

    assert run("io", return_state=True).type == StateType.FAILED
    assert run("input", return_state=True).type == StateType.FAILED
    assert attempts == ["io", "io", "io", "input"]
