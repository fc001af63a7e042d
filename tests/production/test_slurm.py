"""Dask workers as SLURM jobs over TLS, on a real one-node SLURM cluster.

``deploy/production/slurm.py`` starts munged, slurmctld and slurmd once for the module
(installing Debian's packages when missing) and ``tls.py`` makes the certificates;
everything goes through :func:`resistomics.cluster.dask_client` with ``kind=slurm``.
The fault: a worker's job is killed (``scancel --signal=KILL``) in the middle of a
Wilcoxon DE on a generated single-cell store, and the published table equals the one
of a run without the fault, to the bit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import psutil
import pytest
from distributed import Client
from distributed.security import Security

from resistomics.cluster import dask_client
from resistomics.config import ClusterSettings, Settings

pytestmark = [pytest.mark.production, pytest.mark.integration]

PRODUCTION = Path(__file__).resolve().parents[2] / "deploy" / "production"
RELEASE_WAIT = 60.0  # adaptive scaling must give the jobs back within this


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"production_{name}", PRODUCTION / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def slurm_env() -> Iterator[dict[str, str]]:
    """The one-node cluster's client environment (``SLURM_CONF`` set for the module)."""
    slurm = _load("slurm")
    # a short path: munge and slurmstepd put unix sockets in it
    state = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    try:
        env = slurm.start(state)
    except slurm.SlurmUnavailable as exc:
        shutil.rmtree(state, ignore_errors=True)
        pytest.skip(f"no SLURM cluster on this machine: {exc}")
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]  # sbatch/squeue/scancel of dask-jobqueue
    try:
        yield env
    finally:
        slurm.stop(state)
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        shutil.rmtree(state, ignore_errors=True)


def _cluster_settings(env: dict[str, str], **update: Any) -> ClusterSettings:
    fields = {
        k.removeprefix("RESISTOMICS_CLUSTER__").lower(): v
        for k, v in env.items()
        if k.startswith("RESISTOMICS_CLUSTER__")
    }
    return ClusterSettings(**{**fields, "memory_limit": "2GiB", **update})


def _squeue() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True, timeout=30
    )
    return set(out.stdout.split())


def _wait_for_empty_queue(timeout: float) -> float:
    start = time.monotonic()
    while (jobs := _squeue()) and time.monotonic() - start < timeout:
        time.sleep(0.5)
    assert not jobs, f"SLURM jobs {sorted(jobs)} still queued after {timeout:.0f} s"
    return time.monotonic() - start


def _job_ids(client: Client) -> dict[str, str]:
    """Scheduler worker address -> SLURM job id, from the workers' own environment."""
    out: dict[str, str] = client.run(lambda: os.environ["SLURM_JOB_ID"])
    return out


def _square(x: int) -> int:
    time.sleep(0.2)
    return x * x


def test_slurm_daemons_listen_on_loopback_only(slurm_env) -> None:  # type: ignore[no-untyped-def]
    """slurmctld and slurmd bind 127.0.0.1 (``CommunicationParameters=NoCtldInAddrAny,
    NoInAddrAny`` with the 127.0.0.1 of ``SlurmctldHost`` and ``NodeAddr``), not 0.0.0.0,
    on the ports slurm.conf gives them; and the cluster still runs a job."""
    slurm = _load("slurm")
    conf_path = Path(slurm_env["SLURM_CONF"])
    running = slurm._running(slurm._Layout(conf_path.parent))
    conf = dict(line.split("=", 1) for line in conf_path.read_text().splitlines() if "=" in line)
    ports = {"slurmctld": int(conf["SlurmctldPort"]), "slurmd": int(conf["SlurmdPort"])}
    for program, port in ports.items():
        listening = [
            c.laddr
            for c in psutil.Process(running[program]).net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening, f"{program} listens on nothing"
        assert {(a.ip, a.port) for a in listening} == {("127.0.0.1", port)}, (program, listening)
    out = subprocess.run(
        ["srun", "-N1", "-n1", "echo", "bound"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "bound", out.stderr


def test_workers_are_tls_slurm_jobs_released_when_idle(slurm_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _cluster_settings(slurm_env)
    assert settings.kind == "slurm" and settings.adaptive and settings.minimum_jobs == 0
    with dask_client(settings, reuse=False) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert not _squeue()  # adaptive from zero: no job before there is work
        asked = time.monotonic()
        futures = client.map(_square, range(40))
        client.wait_for_workers(settings.n_workers, timeout=60)
        arrived = time.monotonic() - asked
        jobs = _job_ids(client)
        assert all(a.startswith("tls://127.0.0.1:") for a in jobs)  # TLS, on loopback
        assert set(jobs.values()) == _squeue()  # every worker is a queued SLURM job
        assert len(set(jobs.values())) == settings.n_workers
        assert client.gather(futures) == [x * x for x in range(40)]
        del futures

        # nothing of Dask listens beyond loopback: workers, nannies, their HTTP servers
        # and the scheduler's HTTP server (its TLS port is the address above)
        job_pids = {
            p for pair in client.run(lambda: (os.getpid(), os.getppid())).values() for p in pair
        }
        dashboard = client.scheduler_info()["services"]["dashboard"]
        listening = [
            c.laddr
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN
            and (c.pid in job_pids or (c.pid == os.getpid() and c.laddr.port == dashboard))
        ]
        assert len(listening) >= 2 * settings.n_workers + 1, listening
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening

        # a client without the cluster's certificates gets nowhere
        plain = address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            Client(plain, timeout=5, set_as_default=False)
        foreign = _load("tls").make_certs(tmp_path / "foreign")
        stranger = Security(
            require_encryption=True,
            tls_ca_file=foreign["RESISTOMICS_CLUSTER__TLS_CA_FILE"],
            tls_client_cert=foreign["RESISTOMICS_CLUSTER__TLS_CLIENT_CERT"],
            tls_client_key=foreign["RESISTOMICS_CLUSTER__TLS_CLIENT_KEY"],
        )
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=stranger, timeout=5, set_as_default=False)
        no_cert = Security(require_encryption=True, tls_ca_file=settings.tls_ca_file)
        with pytest.raises((OSError, TimeoutError, TypeError)):
            Client(address, security=no_cert, timeout=5, set_as_default=False)

        # idle: adaptive scaling gives the jobs back while the client is still open
        waited = _wait_for_empty_queue(RELEASE_WAIT)
        assert not client.scheduler_info()["workers"]
        print(
            f"{settings.n_workers} worker jobs up {arrived:.1f} s after the work came; released {waited:.1f} s after it ended"
        )


# ----------------------------------------------------------------------------- the fault
N_SUBJECTS, CELLS_PER_SAMPLE, N_GENES = 4, 500, 4000
CONTRAST = "phase:progression vs baseline"


@pytest.fixture(scope="module")
def two_workspaces(tmp_path_factory) -> Iterator[tuple[Path, Path]]:  # type: ignore[no-untyped-def]
    """Two identical data roots holding one published single-cell store ``sim/c``."""
    from resistomics.catalog import parse_sample_sheet
    from resistomics.pipeline import Workspace, ingest
    from resistomics.simulate import simulate_cohort

    tmp = tmp_path_factory.mktemp("fault")
    cohort = simulate_cohort(
        n_subjects=N_SUBJECTS, cells_per_sample=CELLS_PER_SAMPLE, n_genes=N_GENES, seed=5
    )
    sheet = tmp / "samples.tsv"
    cohort.samples.to_csv(sheet, sep="\t", index=False)
    first = tmp / "a"
    ws = Workspace.open(_workspace_settings(first, ClusterSettings(processes=False)))
    try:
        ws.catalog.register_study("sim", parse_sample_sheet(sheet))
        target = Path(ws.settings.resolved_landing_zone) / "sim" / "expression" / "c.h5ad"
        target.parent.mkdir(parents=True)
        cohort.to_anndata().write_h5ad(target)
        outcome = ingest(ws, str(target), study="sim")
        assert outcome.status == "published", outcome.message
    finally:
        ws.close()
    second = tmp / "b"
    shutil.copytree(first, second)
    yield first, second


def _workspace_settings(root: Path, cluster: ClusterSettings) -> Settings:
    return Settings(data_root=str(root), cluster=cluster)


def _de(root: Path, cluster: ClusterSettings) -> pd.DataFrame:
    from resistomics.modalities.expression import differential_expression
    from resistomics.pipeline import Workspace, parse_contrast

    ws = Workspace.open(_workspace_settings(root, cluster))
    try:
        result = differential_expression(ws, "sim/c", parse_contrast(CONTRAST), method="wilcoxon")
        return result.tables["de"]
    finally:
        ws.close()


def _progress(dask_scheduler: Any) -> dict[str, Any]:
    """Keys held per worker name and tasks not yet done, seen by the scheduler."""
    return {
        "held": {str(w.name): len(w.has_what) for w in dask_scheduler.workers.values()},
        "left": sum(
            1
            for t in dask_scheduler.tasks.values()
            if t.state in ("queued", "waiting", "processing", "no-worker")
        ),
        "done": sum(1 for t in dask_scheduler.tasks.values() if t.state == "memory"),
    }


def test_scancel_of_a_worker_job_mid_analysis_changes_nothing(  # type: ignore[no-untyped-def]
    slurm_env, two_workspaces, caplog
) -> None:
    reference_root, faulted_root = two_workspaces
    # the run without the fault: the same graph on this process's threads
    reference = _de(reference_root, ClusterSettings(processes=False, n_workers=1))

    # always two jobs (adaptive=false): the killed one is replaced, but only after the
    # scheduler gives up on it, so the survivor recomputes what the killed worker held
    settings = _cluster_settings(slurm_env, adaptive=False)
    with dask_client(settings, reuse=False) as client:
        client.wait_for_workers(settings.n_workers, timeout=60)
        jobs_by_name = {
            str(name): str(job.job_id)
            for name, job in client.cluster.workers.items()  # type: ignore[union-attr]
        }
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:  # dask.compute inside goes to the client above (the default client)
                outcome["table"] = _de(faulted_root, settings)
            except BaseException as exc:  # reported by the main thread
                outcome["error"] = exc

        analysis = threading.Thread(target=run)
        analysis.start()
        killed: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while analysis.is_alive() and time.monotonic() < deadline and not killed:
            seen = client.run_on_scheduler(_progress)
            holders = [n for n, held in seen["held"].items() if held > 0]
            if holders and seen["left"] >= 2:
                victim = max(holders, key=lambda n: seen["held"][n])
                subprocess.run(
                    ["scancel", "--signal=KILL", "--full", jobs_by_name[victim]],
                    check=True,
                    timeout=30,
                )
                killed = {"name": victim, "job": jobs_by_name[victim], **seen}
            time.sleep(0.05)
        analysis.join(timeout=180)
        assert not analysis.is_alive(), "the analysis did not finish after the fault"
        assert killed, "the analysis finished before a worker's job could be killed"
        if "error" in outcome:
            raise outcome["error"]
        survivors = {str(w["name"]) for w in client.scheduler_info()["workers"].values()}
        assert killed["name"] not in survivors
        assert killed["job"] not in _squeue()
        # the scheduler (in this process) saw results lost with the job and recomputed them
        lost = [r for r in caplog.records if "recomputed elsewhere" in r.getMessage()]
        assert lost, "the killed worker's results were not recomputed"
        # and the cluster is whole again: a new job in place of the killed one
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            queued, workers = _squeue(), client.scheduler_info()["workers"]
            if len(queued) == len(workers) == settings.n_workers:
                break
            time.sleep(0.5)
        assert len(queued) == len(workers) == settings.n_workers, (queued, list(workers))
        assert killed["job"] not in queued
        print(
            f"killed job {killed['job']} holding {killed['held'][killed['name']]} keys, "
            f"{killed['left']} tasks left, {killed['done']} done"
        )
    pd.testing.assert_frame_equal(outcome["table"], reference, check_exact=True)
