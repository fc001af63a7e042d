"""The one place that builds Dask clients."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resistomics.cluster import _unique_cluster_spec
from resistomics.cluster import dask_client as build_client
from resistomics.config import ClusterSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_local_cluster_runs_worker_processes() -> None:
    settings = ClusterSettings(n_workers=2, processes=True, memory_limit="1GiB")
    with build_client(settings, reuse=False) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(pids) == 2 and __import__("os").getpid() not in pids
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_address_kind_needs_address() -> None:
    with pytest.raises(ValueError, match=r"cluster\.address"):
        ClusterSettings(kind="address")


def test_existing_client_is_reused(dask_client) -> None:  # type: ignore[no-untyped-def]
    with build_client(ClusterSettings()) as c:
        assert c is dask_client


def test_kubernetes_spec_gets_a_unique_name_everywhere() -> None:
    spec = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    a, b = _unique_cluster_spec(spec), _unique_cluster_spec(spec)
    old = spec["metadata"]["name"]
    assert a["metadata"]["name"] != b["metadata"]["name"]
    assert a["metadata"]["name"].startswith(old + "-")
    name = a["metadata"]["name"]
    dumped = yaml.safe_dump(a)
    assert f"{old}-scheduler" not in dumped.replace(f"{name}-scheduler", "")
    assert f"tls://{name}-scheduler:8786" in dumped  # the workers find their own scheduler
    others = {v for v in _strings(spec) if v.startswith(f"{old}-") and "scheduler" not in v}
    assert others <= set(_strings(a))  # e.g. the shared TLS Secret keeps its name
    left = {v for v in _strings(a) if v == old}
    assert not left
    assert spec["metadata"]["name"] == old  # the input is not modified


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_local_cluster_never_claims_the_default_dashboard_port() -> None:
    """distributed's "Port 8787 is already in use" warning never reaches a user: the
    scheduler's HTTP server takes a free port, whatever else runs on the machine."""
    import warnings

    settings = ClusterSettings(n_workers=1, processes=False, memory_limit="1GiB")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with build_client(settings, reuse=False) as client:
            port = client.scheduler_info()["services"].get("dashboard")
    assert port != 8787
    assert not [w for w in caught if "already in use" in str(w.message)]


# ----------------------------------------------------------------------------- TLS
def _certs(folder: Path) -> dict[str, str]:
    """The cluster TLS settings of a fresh CA + pairs from deploy/production/tls.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "production_tls", DEPLOY / "production" / "tls.py"
    )
    assert spec is not None and spec.loader is not None
    tls = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tls)
    env = tls.make_certs(folder)
    return {k.removeprefix("RESISTOMICS_CLUSTER__").lower(): v for k, v in env.items()}


def test_tls_settings_are_complete_or_refused(tmp_path: Path) -> None:
    certs = _certs(tmp_path)
    client_only = {k: v for k, v in certs.items() if "client" in k or "ca" in k}
    ClusterSettings(kind="address", address="tls://10.0.0.1:8786", **client_only)
    with pytest.raises(ValueError, match="tls_scheduler_cert"):
        ClusterSettings(kind="slurm", **client_only)
    with pytest.raises(ValueError, match="tls_ca_file is not"):
        ClusterSettings(
            kind="address", address="tls://h:1", tls_client_cert=certs["tls_client_cert"]
        )
    with pytest.raises(ValueError, match="is TLS"):
        ClusterSettings(kind="address", address="tls://h:1")
    with pytest.raises(ValueError, match="not tls://"):
        ClusterSettings(kind="address", address="tcp://h:1", **client_only)
    keys = sorted(p for p in tmp_path.glob("tls/*key.pem"))
    assert len(keys) == 4 and all(p.stat().st_mode & 0o777 == 0o600 for p in keys)
    assert _certs(tmp_path) == certs  # made once, then reused


@pytest.mark.integration
def test_tls_cluster_refuses_clients_without_its_certificates(tmp_path: Path) -> None:
    from distributed import Client
    from distributed.security import Security

    certs = _certs(tmp_path / "ours")
    # A worker process, not a thread of this one: once, in a clean-clone CI run under
    # load, the second client's task never finished with the worker in-process (not
    # reproduced in 8 runs alone); a timeout turns any such hang into a failure at once.
    settings = ClusterSettings(n_workers=1, processes=True, memory_limit="1GiB", **certs)
    with build_client(settings, reuse=False) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [1, 2, 3]).result(timeout=120) == 6
        # the same certificates through kind=address: a second client gets in
        as_address = {k: v for k, v in certs.items() if "client" in k or "ca" in k}
        other = ClusterSettings(kind="address", address=address, **as_address)
        with build_client(other, reuse=False) as second:
            assert second.submit(sum, [4, 5]).result(timeout=120) == 9
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout=3, set_as_default=False)
        foreign = _certs(tmp_path / "foreign")
        stranger = Security(
            require_encryption=True,
            tls_ca_file=foreign["tls_ca_file"],
            tls_client_cert=foreign["tls_client_cert"],
            tls_client_key=foreign["tls_client_key"],
        )
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=stranger, timeout=3, set_as_default=False)


@pytest.mark.integration
def test_slurm_job_script_follows_settings_and_the_profile(tmp_path: Path) -> None:
    """The job script dask-jobqueue would submit (no SLURM needed to render it)."""
    import sys

    import dask
    import dask_jobqueue  # noqa: F401  (loads its default config)

    from resistomics.cluster import _slurm_cluster, security

    profile = yaml.safe_load((DEPLOY / "slurm" / "jobqueue.yaml").read_text())
    settings = ClusterSettings(
        kind="slurm",
        slurm_queue="compute",
        slurm_walltime="03:00:00",
        threads_per_worker=2,
        memory_limit="6GiB",
        slurm_job_extra_directives=["--qos=long"],
        slurm_log_directory=str(tmp_path / "logs"),
        slurm_python=sys.executable,
        **_certs(tmp_path),
    )
    # as with DASK_CONFIG=deploy/slurm/jobqueue.yaml: the profile over dask-jobqueue's defaults
    slurm = dask.config.merge(dask.config.get("jobqueue.slurm"), profile["jobqueue"]["slurm"])
    with (
        dask.config.set({"jobqueue.slurm": slurm}),
        _slurm_cluster(settings, security(settings)) as cluster,
    ):
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
    lines = script.splitlines()
    for expected in ("-p compute", "--cpus-per-task=2", "--mem=6G", "-t 03:00:00"):
        assert f"#SBATCH {expected}" in lines
    for expected in ("--tmp=200G", "--export=ALL", "--qos=long"):  # profile's, then ours
        assert f"#SBATCH {expected}" in lines
    assert f"#SBATCH -o {tmp_path / 'logs'}/" in script
    command = lines[-1]
    assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker tls://127.0.0.1:")
    for expected in (
        "--protocol tls://",
        f"--tls-ca-file {settings.tls_ca_file}",
        f"--tls-cert {settings.tls_worker_cert}",
        f"--tls-key {settings.tls_worker_key}",
        "--host 127.0.0.1",
        "--dashboard-address 127.0.0.1:0",
        "--lifetime 110m",
        "--nthreads 2",
    ):
        assert expected in command
