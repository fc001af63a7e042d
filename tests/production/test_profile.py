"""The production profile end to end: files land on S3, events drive ingest ->
validation -> publish -> analyse -> report through the Prefect worker, the catalog on
PostgreSQL lists the versions, and the API refuses clients without the auth string.

With ``RESISTOMICS_CLUSTER__KIND=slurm`` the Dask work runs in SLURM jobs: ``squeue``
shows them during the run, and adaptive scaling releases them afterwards.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from production.profile_client import BIN, REPO, ProductionProfile, wait_for
from resistomics.catalog import VersionStatus
from resistomics.pipeline import Workspace

pytestmark = [pytest.mark.production, pytest.mark.integration]

CHAIN_TIMEOUT = 420.0  # a loaded 2-core machine; about 2 minutes when quiet


def test_the_api_refuses_a_request_without_the_auth_string(production: ProductionProfile) -> None:
    url = production.api_url
    assert httpx.get(f"{url}/health").status_code == 200  # health probes need no auth
    assert httpx.post(f"{url}/deployments/filter", json={}).status_code == 401
    wrong = httpx.post(f"{url}/deployments/filter", json={}, auth=("resistomics", "guess"))
    assert wrong.status_code == 401
    assert len(production.api("POST", "/deployments/filter", {})) >= 7
    # the CLI without PREFECT_API_AUTH_STRING is refused as well
    env = production.process_env()
    del env["PREFECT_API_AUTH_STRING"]
    done = subprocess.run(
        [str(BIN / "prefect"), "deployment", "ls"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "401" in done.stdout + done.stderr, done.stdout + done.stderr


def test_the_deployments_of_prefect_yaml_run_on_the_worker_from_this_checkout(
    production: ProductionProfile,
) -> None:
    doc = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    declared = {(d["entrypoint"], d["name"]) for d in doc["deployments"]}
    registered = production.api("POST", "/deployments/filter", {})
    assert {(d["entrypoint"], d["name"]) for d in registered} == declared
    pools = {d["work_pool_name"] for d in registered}
    assert pools == {d["work_pool"]["name"] for d in doc["deployments"]}
    (pool,) = pools
    for d in registered:
        (step,) = d["pull_steps"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    workers = production.api("POST", f"/work_pools/{pool}/workers/filter", {})
    assert [w["status"] for w in workers if w["name"] == "resistomics-production"] == ["ONLINE"]
    # the storage and catalog of the profile
    assert production.env["RESISTOMICS_CATALOG_URL"].startswith("postgresql+psycopg://")
    assert production.env["RESISTOMICS_DATA_ROOT"].startswith("s3://")
    assert production.env["RESISTOMICS_LANDING_ZONE"].startswith("s3://")


def _slurm_jobs(production: ProductionProfile) -> set[str]:
    done = production.run("squeue", "--noheader", "--format=%i %j %T", check=False)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def _run_of(runs: list[dict[str, Any]], **parameters: str) -> list[dict[str, Any]]:
    return [r for r in runs if all(r["parameters"].get(k) == v for k, v in parameters.items())]


def test_landed_files_drive_the_chain_through_the_worker(
    production: ProductionProfile, tmp_path: Path
) -> None:
    slurm = production.env.get("RESISTOMICS_CLUSTER__KIND") == "slurm"
    started = time.monotonic()
    study = production.new_study(tmp_path)
    good = production.land(study, "bulk.tsv", seed=1)
    # after bulk.tsv in the sweep's order: ingest runs one at a time, analyse need not wait
    bad = production.land(study, "rejected.tsv", seed=2, negative=True)
    production.sweep()  # announces both files: resistomics.file.landed

    ws = Workspace.open(production.settings())
    jobs_seen: set[str] = set()
    result_ref = f"{study}/bulk.signatures@v1"

    def chain_done() -> bool:
        if slurm:
            jobs_seen.update(_slurm_jobs(production))
        status = {v.ref: v.status for v in ws.catalog.versions(study=study)}
        reported = any(
            r["state_type"] == "COMPLETED"
            for r in _run_of(production.flow_runs("report/on-signature"), result_ref=result_ref)
        )
        return (
            status.get(result_ref) == VersionStatus.PUBLISHED
            and status.get(f"{study}/rejected@v1") == VersionStatus.QUARANTINED
            and reported
        )

    try:
        wait_for(
            "file -> ingest -> analyse -> report, and the bad file quarantined",
            chain_done,
            timeout=CHAIN_TIMEOUT,
        )
        elapsed = time.monotonic() - started

        versions = {v.ref: v for v in ws.catalog.versions(study=study)}
        assert {ref: v.status for ref, v in versions.items()} == {
            f"{study}/bulk@v1": VersionStatus.PUBLISHED,
            f"{study}/bulk.signatures@v1": VersionStatus.PUBLISHED,
            f"{study}/rejected@v1": VersionStatus.QUARANTINED,
        }
        source, result = versions[f"{study}/bulk@v1"], versions[result_ref]
        assert result.parent_ids == (source.id,)

        # each step was a deployment run that an event's trigger created and the worker ran
        pool = production.api("GET", "/deployments/name/ingest/on-file-landed")["work_pool_name"]
        (ingest_run,) = [
            r
            for r in _run_of(production.flow_runs("ingest/on-file-landed"), path=good)
            if r["state_type"] == "COMPLETED" and r["state_name"] == "Completed"
        ]
        (analyse_run,) = _run_of(production.flow_runs("analyse/on-publish"), dataset_ref=source.ref)
        for run in (ingest_run, analyse_run):
            assert run["work_pool_name"] == pool and run["infrastructure_pid"], run
            assert run["created_by"]["type"] == "AUTOMATION", run["created_by"]
        assert source.run_id == ingest_run["id"] and result.run_id == analyse_run["id"]
        assert production.events("resistomics.file.landed", f"resistomics.file.{good}")
        assert production.events(
            "resistomics.dataset.published", f"resistomics.dataset.{study}/bulk"
        )

        # the data is on S3: the stores under the data root, nothing left in the landing
        # zone, the bad file and its report in quarantine
        fs = production.s3()
        root = production.env["RESISTOMICS_DATA_ROOT"].removeprefix("s3://")
        for v in (source, result):
            assert fs.find(f"{root}/{v.uri}"), v.uri
        landing = production.env["RESISTOMICS_LANDING_ZONE"].removeprefix("s3://")
        assert not fs.exists(f"{landing}/{study}/expression/bulk.tsv")
        assert not fs.exists(f"{landing}/{study}/expression/rejected.tsv")
        quarantined = fs.find(f"{root}/quarantine/{study}")
        assert {Path(p).name for p in quarantined} >= {"rejected.tsv", "report.json", "report.md"}
        (event,) = production.events(
            "resistomics.dataset.quarantined", f"resistomics.dataset.{study}/rejected"
        )
        assert event["resource"]["resistomics.path"] == bad

        # the CLI pointed at the profile (source profile.env) lists the same versions
        listed = production.run("resistomics", "catalog", "ls", "--study", study, "--all", "--json")
        assert {(row["ref"], row["status"]) for row in yaml.safe_load(listed.stdout)} == {
            (ref, str(v.status)) for ref, v in versions.items()
        }
        print(f"chain on the production profile in {elapsed:.0f} s")

        if slurm:
            assert jobs_seen, "no Dask worker ran as a SLURM job (squeue never showed one)"
            # adaptive scaling releases every job once the runs are done
            wait_for("SLURM jobs released", lambda: not _slurm_jobs(production), timeout=120)
    finally:
        ws.close()


def test_the_catalog_is_on_postgresql(production: ProductionProfile) -> None:
    ws = Workspace.open(production.settings())
    try:
        assert ws.catalog.engine.dialect.name == "postgresql"
    finally:
        ws.close()
