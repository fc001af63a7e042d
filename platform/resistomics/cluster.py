"""The one place that builds a Dask client.

Local cluster by default (worker processes on this machine); a scheduler address, a
Kubernetes ``DaskCluster`` (dask-kubernetes operator) or SLURM jobs (dask-jobqueue) by
configuration. Everything else asks this module for a client.

With ``cluster.tls_ca_file`` set, every connection is ``tls://`` with the configured
certificates and ``require_encryption``: a plain-TCP peer, or one whose certificate is
not signed by the CA, cannot connect (``distributed.Security``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster
from distributed.security import Security

from resistomics.config import ClusterSettings
from resistomics.errors import ClusterConfigError

__all__ = ["dask_client", "parallelism", "security"]


def _existing_client() -> Client | None:
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


def parallelism() -> int:
    """Tasks the current Dask client can run at once (its workers' threads), else CPUs."""
    client = _existing_client()
    if client is not None:
        workers = client.scheduler_info().get("workers", {})
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
        if threads > 0:
            return threads
    return os.cpu_count() or 1


def security(settings: ClusterSettings) -> Security | None:
    """The ``distributed.Security`` of the configured TLS certificates, None without TLS.

    Encryption is required: a ``tcp://`` address is refused rather than used in clear.
    The roles the settings do not name (a client-only configuration) are left empty.
    """
    if not settings.tls:
        return None
    for path in (
        settings.tls_ca_file,
        settings.tls_client_cert,
        settings.tls_client_key,
        settings.tls_scheduler_cert,
        settings.tls_scheduler_key,
        settings.tls_worker_cert,
        settings.tls_worker_key,
    ):
        if path is not None and not Path(path).is_file():
            raise ClusterConfigError(f"cluster TLS file {path} does not exist")
    return Security(
        require_encryption=True,
        tls_ca_file=settings.tls_ca_file,
        tls_client_cert=settings.tls_client_cert,
        tls_client_key=settings.tls_client_key,
        tls_scheduler_cert=settings.tls_scheduler_cert,
        tls_scheduler_key=settings.tls_scheduler_key,
        tls_worker_cert=settings.tls_worker_cert,
        tls_worker_key=settings.tls_worker_key,
    )


def _slurm_cluster(settings: ClusterSettings, sec: Security | None) -> Any:
    """A ``SLURMCluster`` from the settings over the Dask config's ``jobqueue.slurm``.

    The scheduler runs in this process and listens on ``scheduler_host`` (127.0.0.1 by
    default: workers on this machine, which then listen on it too) or on
    ``interface``; its HTTP server takes a free port beside it. The jobs run this process's Python unless ``slurm_python`` or the Dask config
    says otherwise, so scheduler and workers unpickle the same code.
    """
    import dask
    from dask_jobqueue import SLURMCluster

    scheduler_options = dict(dask.config.get("jobqueue.slurm.scheduler-options", None) or {})
    scheduler_options["dashboard"] = settings.dashboard
    kwargs: dict[str, Any] = {}
    if settings.interface:
        kwargs["interface"] = settings.interface
        scheduler_options.pop("host", None)
        scheduler_options.setdefault("dashboard_address", ":0")
    elif "interface" not in scheduler_options:
        host = settings.scheduler_host
        scheduler_options["host"] = host
        # its HTTP server beside it on a free port (":0" would be every interface)
        scheduler_options.setdefault("dashboard_address", f"{host}:0")
        if host in ("127.0.0.1", "localhost"):
            # workers of a loopback scheduler run on this machine: they stay on it too
            configured = dask.config.get("jobqueue.slurm.worker-extra-args", None) or []
            kwargs["worker_extra_args"] = [
                *configured,
                *("--host", host, "--dashboard-address", f"{host}:0"),
            ]
    python = settings.slurm_python or dask.config.get("jobqueue.slurm.python", None)
    if settings.slurm_log_directory:
        Path(settings.slurm_log_directory).mkdir(parents=True, exist_ok=True)
        kwargs["log_directory"] = settings.slurm_log_directory
    if settings.slurm_job_extra_directives:
        configured = dask.config.get("jobqueue.slurm.job-extra-directives", None) or []
        kwargs["job_extra_directives"] = [*configured, *settings.slurm_job_extra_directives]
    if sec is not None:
        kwargs["security"] = sec
        kwargs["protocol"] = "tls://"
    return SLURMCluster(
        queue=settings.slurm_queue,
        account=settings.slurm_account,
        cores=settings.threads_per_worker,
        processes=1,
        memory=settings.memory_limit,
        walltime=settings.slurm_walltime,
        python=python or sys.executable,
        scheduler_options=scheduler_options,
        **kwargs,
    )


def _unique_cluster_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``DaskCluster`` spec renamed ``<name>-<random>``, selectors included.

    Each run gets its own cluster: two runs sharing one name would share one cluster,
    and the first to finish would delete it under the other. Besides values equal to
    the name, the operator's scheduler Service ``<name>-scheduler`` is renamed inside
    strings (a worker's ``tls://<name>-scheduler:8786`` argument); other names that
    merely start with it (a shared Secret ``<name>-tls``) are kept.
    """
    old = spec["metadata"]["name"]
    new = f"{old}-{uuid.uuid4().hex[:8]}"
    service = re.compile(rf"(?<![\w-]){re.escape(old)}-scheduler(?![\w-])")

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        if node == old:
            return new
        if isinstance(node, str):
            return service.sub(f"{new}-scheduler", node)
        return node

    out: dict[str, Any] = rename(copy.deepcopy(spec))
    return out


@contextlib.contextmanager
def dask_client(settings: ClusterSettings, *, reuse: bool = True) -> Iterator[Client]:
    """A Dask client for the configured cluster, closed (with its cluster) on exit.

    Parameters
    ----------
    settings
        The ``cluster`` section of :class:`resistomics.config.Settings`.
    reuse
        Use the client already active in this process (inside a ``DaskTaskRunner``
        task, or a test's cluster) instead of building a new one.
    """
    if reuse and (client := _existing_client()) is not None:
        yield client
        return
    sec = security(settings)
    if settings.kind == "local":
        tls: dict[str, Any] = (
            {"security": sec, "protocol": "tls://", "host": "127.0.0.1"} if sec else {}
        )
        cluster = LocalCluster(
            n_workers=settings.n_workers,
            threads_per_worker=settings.threads_per_worker,
            memory_limit=settings.memory_limit,
            processes=settings.processes,
            # Always a free port on loopback: with None, distributed still serves HTTP on
            # 8787 and warns "Port 8787 is already in use" whenever another cluster
            # runs; ":0" would listen on every interface.
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": settings.dashboard},
            silence_logs=logging.WARNING,
            **tls,
        )
        with cluster, Client(cluster, security=sec) as client:
            yield client
    elif settings.kind == "address":
        with Client(settings.address, security=sec) as client:
            yield client
    elif settings.kind == "kubernetes":
        try:
            from dask_kubernetes.operator import KubeCluster
        except ImportError as exc:
            raise ClusterConfigError(
                "cluster.kind=kubernetes needs the 'kubernetes' extra: pip install resistomics[kubernetes]"
            ) from exc
        import yaml

        if not settings.kubernetes_cluster_spec:
            raise ClusterConfigError(
                "cluster.kind=kubernetes needs cluster.kubernetes_cluster_spec"
            )
        spec = _unique_cluster_spec(
            yaml.safe_load(Path(settings.kubernetes_cluster_spec).read_text())
        )
        with KubeCluster(custom_cluster_spec=spec) as cluster:
            cluster.scale(settings.n_workers)
            with Client(cluster, security=sec) as client:
                yield client
    elif settings.kind == "slurm":
        try:
            import dask_jobqueue  # noqa: F401
        except ImportError as exc:
            raise ClusterConfigError(
                "cluster.kind=slurm needs the 'slurm' extra: pip install resistomics[slurm]"
            ) from exc
        with _slurm_cluster(settings, sec) as cluster:
            # Jobs are asked for while tasks wait and released once idle: an analysis
            # holds no allocation before or after it computes. A fixed size is adaptive
            # too (minimum = maximum): unlike scale(), Adaptive replaces a job that died
            # (scancel, node failure, --lifetime) once the scheduler has given up on it.
            low = settings.minimum_jobs if settings.adaptive else settings.n_workers
            cluster.adapt(
                minimum_jobs=min(low, settings.n_workers), maximum_jobs=settings.n_workers
            )
            with Client(cluster, security=sec) as client:
                yield client
    else:  # pragma: no cover - pydantic restricts the values
        raise ClusterConfigError(f"unknown cluster kind {settings.kind!r}")
