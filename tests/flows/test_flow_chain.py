"""The event chain end to end on a real Prefect server, with no manual flow call.

``python -m flows.serve`` runs in a subprocess against the session's temporary Prefect
server (its triggers and automations run; its scheduler does not, which the chain does
not need). The test only lands a file and emits ``resistomics.file.landed``; the
server's triggers start ingest, ingest's event starts analyse, and analyse's event
starts the report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound

from flows.events import emit_file_landed
from resistomics.catalog import VersionStatus
from resistomics.errors import DatasetNotFoundError
from resistomics.pipeline import Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
STUDY = "trial"  # registered by the `workspace` fixture
DEPLOYMENTS = ("ingest/on-file-landed", "analyse/on-publish", "report/on-signature")
CHAIN_TIMEOUT = 240.0


@contextlib.contextmanager
def _serve(
    prefect_api: str, env_vars: dict[str, str], log_path: Path, *paths: str
) -> Iterator[Path]:
    """``python -m flows.serve`` against the test server with ``paths`` first on
    PYTHONPATH; yields its log file."""
    env = {
        **os.environ,
        **env_vars,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PYTHONPATH": os.pathsep.join([*paths, str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            cwd=log_path.parent,  # not the repo root: runs must find `flows` anyway
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_deployments(proc, log_path)
            yield log_path
        finally:
            proc.send_signal(signal.SIGINT)  # the runner shuts down on SIGINT/SIGTERM
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def served(prefect_api: str, resistomics_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """``python -m flows.serve`` against the test server; yields its log file."""
    with _serve(prefect_api, resistomics_env, tmp_path / "serve.log") as log:
        yield log


def _wait_for_deployments(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"flows.serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                for name in DEPLOYMENTS:
                    client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    pytest.fail(f"deployments not served in 90 s:\n{log_path.read_text()}")
                time.sleep(0.5)


def _runs(deployment: str) -> list[FlowRun]:
    name = deployment.split("/")[1]
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])),
            limit=50,
        )


@pytest.mark.integration
def test_landed_file_reaches_signatures_and_report_by_events(
    workspace: Workspace, land: Callable[..., str], served: Path, probe: Any
) -> None:
    started = time.monotonic()
    path = land("bulk.tsv")
    emit_file_landed(path, study=STUDY, modality="expression", detected_by="test")
    probe.flush_events()

    deadline = started + CHAIN_TIMEOUT
    reannounced = False
    result = None
    while time.monotonic() < deadline:
        try:
            result = workspace.catalog.resolve(f"{STUDY}/bulk.signatures")
        except DatasetNotFoundError:
            result = None
        if result is not None and _report_done():
            break
        if not reannounced and time.monotonic() - started > 30 and not _ingest_runs(path):
            # The server loads new automations asynchronously; an event that arrived
            # before the trigger was live is announced again (ingest is idempotent).
            emit_file_landed(path, study=STUDY, modality="expression", detected_by="test-retry")
            probe.flush_events()
            reannounced = True
        time.sleep(1)
    elapsed = time.monotonic() - started
    assert result is not None and _report_done(), (
        f"chain incomplete after {elapsed:.0f} s; runs: "
        f"{[(r.name, r.state_name, r.parameters) for d in DEPLOYMENTS for r in _runs(d)]}\n"
        f"serve log:\n{served.read_text()[-6000:]}"
    )

    published = workspace.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    assert {v.ref for v in published} == {f"{STUDY}/bulk@v1", f"{STUDY}/bulk.signatures@v1"}
    assert result.parent_ids == (workspace.catalog.resolve(f"{STUDY}/bulk").id,)

    # Each step ran as a deployment run whose parameters the trigger rendered from the
    # event's labels, and left its run ID in the catalog's lineage.
    (ingest_run,) = [r for r in _ingest_runs(path) if r.state_type == StateType.COMPLETED]
    assert ingest_run.parameters == {"path": path, "study": STUDY, "modality": "expression"}
    assert workspace.catalog.resolve(f"{STUDY}/bulk").run_id == str(ingest_run.id)
    sig_runs = [r for r in _runs("analyse/on-publish") if r.state_type == StateType.COMPLETED]
    assert [r.parameters for r in sig_runs] == [{"dataset_ref": f"{STUDY}/bulk@v1", "study": STUDY}]
    assert result.run_id == str(sig_runs[0].id)
    report_runs = _runs("report/on-signature")
    assert [r.parameters for r in report_runs] == [
        {"result_ref": f"{STUDY}/bulk.signatures@v1", "study": STUDY}
    ]
    (report,) = probe.artifacts(f"study-report-{STUDY}")
    assert f"{STUDY}/bulk.signatures@v1" in str(report.data)
    print(f"chain completed in {elapsed:.1f} s")


def _report_done() -> bool:
    return any(r.state_type == StateType.COMPLETED for r in _runs("report/on-signature"))


def _reported(result_ref: str) -> bool:
    return any(
        r.state_type == StateType.COMPLETED and r.parameters.get("result_ref") == result_ref
        for r in _runs("report/on-signature")
    )


def _ingest_runs(path: str) -> list[FlowRun]:
    return [r for r in _runs("ingest/on-file-landed") if r.parameters.get("path") == path]


@pytest.mark.integration
def test_a_plugin_modality_runs_the_whole_chain_without_library_edits(
    workspace: Workspace,
    prefect_api: str,
    resistomics_env: dict[str, str],
    tmp_path: Path,
    probe: Any,
) -> None:
    """The toy modality of tests/toy_modality, installed through a real entry point (a
    .dist-info on the served process's PYTHONPATH), goes file -> event -> ingest ->
    validation -> publish -> analyse -> report through the real Prefect server."""
    import toy_modality

    site = toy_modality.install(tmp_path / "site")
    tests_dir = str(Path(toy_modality.__file__).resolve().parents[1])
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "toy"
    folder.mkdir(parents=True)
    path = str(toy_modality.write_good(folder / "values.toy", [f"S{i}" for i in range(8)]))
    with _serve(prefect_api, resistomics_env, tmp_path / "serve.log", str(site), tests_dir) as log:
        started = time.monotonic()
        emit_file_landed(path, study=STUDY, modality="toy", detected_by="test")
        probe.flush_events()
        result = None
        reannounced = False
        while time.monotonic() < started + CHAIN_TIMEOUT:
            try:
                result = workspace.catalog.resolve(f"{STUDY}/values.summary")
            except DatasetNotFoundError:
                result = None
            if result is not None and _reported(result.ref):
                break
            if not reannounced and time.monotonic() - started > 30 and not _ingest_runs(path):
                emit_file_landed(path, study=STUDY, modality="toy", detected_by="test-retry")
                probe.flush_events()
                reannounced = True
            time.sleep(1)
        assert result is not None and _reported(result.ref), log.read_text()[-6000:]
    source = workspace.catalog.resolve(f"{STUDY}/values")
    assert (source.modality, source.dataset_type, source.layout) == (
        "toy",
        "toy.values",
        "partitioned-table",
    )
    assert source.status == VersionStatus.PUBLISHED and source.shape == (24, 3)
    assert (result.kind, result.modality, result.dataset_type) == ("result", "toy", "toy.summary")
    assert result.parent_ids == (source.id,)
    (analyse_run,) = [
        r
        for r in _runs("analyse/on-publish")
        if r.state_type == StateType.COMPLETED and r.parameters.get("dataset_ref") == source.ref
    ]
    assert result.run_id == str(analyse_run.id)
