"""The one place that builds a Dask client.

Local cluster by default (worker processes on this machine); a scheduler address, a
Kubernetes ``DaskCluster`` (dask-kubernetes operator) or a SLURM allocation
(dask-jobqueue) by configuration. Everything else asks this module for a client.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from resistomics.config import ClusterSettings
from resistomics.errors import ClusterConfigError

__all__ = ["dask_client", "parallelism"]


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


def _unique_cluster_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``DaskCluster`` spec renamed ``<name>-<random>``, selectors included.

    Each run gets its own cluster: two runs sharing one name would share one cluster,
    and the first to finish would delete it under the other.
    """
    old = spec["metadata"]["name"]
    new = f"{old}-{uuid.uuid4().hex[:8]}"

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        return new if node == old else node

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
    if settings.kind == "local":
        cluster = LocalCluster(
            n_workers=settings.n_workers,
            threads_per_worker=settings.threads_per_worker,
            memory_limit=settings.memory_limit,
            processes=settings.processes,
            # Always a free port: with None, distributed still serves HTTP on 8787 and
            # warns "Port 8787 is already in use" whenever another cluster runs.
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": settings.dashboard},
            silence_logs=logging.WARNING,
        )
        with cluster, Client(cluster) as client:
            yield client
    elif settings.kind == "address":
        with Client(settings.address) as client:
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
            with Client(cluster) as client:
                yield client
    elif settings.kind == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as exc:
            raise ClusterConfigError(
                "cluster.kind=slurm needs the 'slurm' extra: pip install resistomics[slurm]"
            ) from exc
        with SLURMCluster(
            queue=settings.slurm_queue,
            account=settings.slurm_account,
            cores=settings.threads_per_worker,
            memory=settings.memory_limit,
            walltime=settings.slurm_walltime,
        ) as cluster:
            cluster.scale(jobs=settings.n_workers)
            with Client(cluster) as client:
                yield client
    else:  # pragma: no cover - pydantic restricts the values
        raise ClusterConfigError(f"unknown cluster kind {settings.kind!r}")
