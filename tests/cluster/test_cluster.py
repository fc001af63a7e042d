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
    assert old not in yaml.safe_dump(a).replace(a["metadata"]["name"], "")
    assert spec["metadata"]["name"] == old  # the input is not modified


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
