"""Prefect faults on the production profile: the worker and the server killed in the
middle of an ingest run.

- ``kill -9`` of the worker with the flow runs it started (a lost host): the run's
  heartbeats stop, the zombie-run automation (deploy/production/automations.yaml) marks
  it Crashed, ``profile.py start`` brings a new worker up, and the file announced
  again (as the next landing-zone sweep would) is given back from the dead run's claim
  and published: one version.
- ``kill -9`` of the server mid-run, restarted by ``profile.py start`` on the same port
  and database: the run finishes (its client retries) or ends Crashed / Failed with a
  message; either way the file is published exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from production.profile_client import ProductionProfile, wait_for
from resistomics.catalog import VersionInfo, VersionStatus
from resistomics.errors import DatasetNotFoundError
from resistomics.pipeline import Workspace

pytestmark = [pytest.mark.production, pytest.mark.integration]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _ingest_runs(production: ProductionProfile, path: str) -> list[dict[str, Any]]:
    return [
        r
        for r in production.flow_runs("ingest/on-file-landed")
        if r["parameters"].get("path") == path
    ]


def _running_ingest(production: ProductionProfile, path: str) -> dict[str, Any] | None:
    return next((r for r in _ingest_runs(production, path) if r["state_type"] == "RUNNING"), None)


def _flow_run(production: ProductionProfile, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = production.api("GET", f"/flow_runs/{run_id}")
    return run


def _bulk_versions(production: ProductionProfile, study: str) -> list[VersionInfo]:
    ws = Workspace.open(production.settings())
    try:
        return [v for v in ws.catalog.versions(study=study) if v.dataset == "bulk"]
    finally:
        ws.close()


def _kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)


def _run_pid(run: dict[str, Any]) -> int | None:
    """The flow run's process, from Prefect's ``infrastructure_pid`` (``host:pid``)."""
    text = str(run.get("infrastructure_pid") or "")
    tail = text.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _wait_published_once(
    production: ProductionProfile, study: str, *, interrupted: dict[str, Any], timeout: float
) -> VersionInfo:
    """Wait until the study's ``bulk`` dataset has a published version; then check it
    is the only one, whatever its number.

    The catalog numbers a version when it is staged, under the study's lock, and never
    reuses a number: a run killed after staging leaves its staged row (invisible to
    readers, removed by garbage collection) holding v1, and the run that ingests the
    file again publishes v2. The oracle is therefore one published version, nothing
    superseded or quarantined, and no staged row but the interrupted run's.
    """
    ref = f"{study}/bulk"
    wait_for(
        f"{ref} published",
        lambda: any(v.status == VersionStatus.PUBLISHED for v in _bulk_versions(production, study)),
        timeout=timeout,
    )
    versions = _bulk_versions(production, study)
    (published,) = [v for v in versions if v.status == VersionStatus.PUBLISHED]
    leftovers = [v for v in versions if v.id != published.id]
    # a version of the same bytes published twice would be PUBLISHED + SUPERSEDED
    assert all(
        v.status == VersionStatus.STAGED and v.run_id == interrupted["id"] for v in leftovers
    ), versions
    ws = Workspace.open(production.settings())
    try:
        assert ws.catalog.resolve(ref).id == published.id
        for staged in leftovers:  # invisible to readers
            with pytest.raises(DatasetNotFoundError):
                ws.catalog.resolve(f"{ref}@v{staged.number}")
    finally:
        ws.close()
    return published


def test_a_worker_killed_mid_ingest_leaves_a_crashed_run_and_one_version(
    production: ProductionProfile, tmp_path: Path
) -> None:
    study = production.new_study(tmp_path)
    path = production.land(study, "bulk.tsv", seed=11)
    production.announce(path, study=study)
    run = wait_for(
        "an ingest run Running", lambda: _running_ingest(production, path), timeout=300, poll=0.5
    )
    time.sleep(2)  # into the run: claimed, being read

    worker = production.status()["services"]["prefect-worker"]
    _kill_group(worker["pid"])  # the worker and the flow runs it started: a lost host
    _kill_group(_run_pid(_flow_run(production, run["id"])))
    assert not production.status()["services"]["prefect-worker"]["running"]
    production.script("start")  # recovers: a new worker, the rest kept
    assert production.status()["services"]["prefect-worker"]["pid"] != worker["pid"]
    # announced again (the next sweep would): the new run (in one of the ingest slots the
    # dead run does not hold) gives the dead run's claim back to the landing zone (its
    # process is gone), claims it and publishes it
    production.announce(path, study=study)

    crashed = wait_for(
        "the killed run marked Crashed by the zombie-run automation",
        lambda: (r := _flow_run(production, run["id"]))["state_type"] in TERMINAL and r,
        timeout=240,
    )
    if crashed["state_type"] == "CRASHED":
        assert "heartbeat" in crashed["state"]["message"], crashed["state"]  # ours, not a guess
    else:  # killed after its last state report: it finished before the kill landed
        assert crashed["state_type"] == "COMPLETED", crashed["state"]

    published = _wait_published_once(production, study, interrupted=crashed, timeout=300)
    print(
        f"worker killed: the run ended {crashed['state_name']}; published once "
        f"(v{published.number})"
    )


def test_a_server_killed_mid_ingest_publishes_once(
    production: ProductionProfile, tmp_path: Path
) -> None:
    study = production.new_study(tmp_path)
    path = production.land(study, "bulk.tsv", seed=12)
    production.announce(path, study=study)
    run = wait_for(
        "an ingest run Running", lambda: _running_ingest(production, path), timeout=300, poll=0.5
    )
    time.sleep(2)

    server = production.status()["services"]["prefect-server"]
    _kill_group(server["pid"])
    time.sleep(3)  # the run's client meets a dead server
    production.script("start")  # the same port, the same PostgreSQL database
    status = production.status()["services"]
    assert (
        status["prefect-server"]["running"] and status["prefect-server"]["port"] == server["port"]
    )

    final = wait_for(
        "the interrupted run ended (completed, or crashed / failed visibly)",
        lambda: (r := _flow_run(production, run["id"]))["state_type"] in TERMINAL and r,
        timeout=300,
    )
    if final["state_type"] != "COMPLETED":
        assert final["state"]["message"], final["state"]  # says why, in the UI
        production.announce(path, study=study)  # a file it left claimed is taken again
    published = _wait_published_once(production, study, interrupted=final, timeout=300)
    print(
        f"server killed: the run ended {final['state_name']}; published once (v{published.number})"
    )
