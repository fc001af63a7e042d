"""Shared fixtures: temporary workspaces, the real T47D study, a real Dask cluster."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared_data import GENESETS, SHARED_DATA, T47D

__all__ = ["GENESETS", "SHARED_DATA", "T47D"]

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test on the session's Prefect server is an integration test (`make test-fast`
    # leaves it out) whether or not its module says so.
    for item in items:
        if "prefect_api" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    if not T47D.exists():
        skip = pytest.mark.skip(reason=f"shared data not found at {SHARED_DATA}")
        for item in items:
            if "t47d" in item.name or "shared_data" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings for an isolated workspace in a temporary folder (threaded Dask)."""
    from resistomics.config import ClusterSettings, Settings

    return Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
    )


@pytest.fixture
def workspace(settings):  # type: ignore[no-untyped-def]
    from resistomics.pipeline import Workspace

    ws = Workspace.open(settings)
    yield ws
    ws.close()


def land(
    ws, src: Path | str, study: str, name: str | None = None, modality: str = "expression"
) -> str:  # type: ignore[no-untyped-def]
    """Copy a file or directory into the workspace's landing zone; return its path."""
    src = Path(src)
    target = Path(ws.settings.resolved_landing_zone) / study / modality / (name or src.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy(src, target)
    return str(target)


@pytest.fixture(name="land")
def land_fixture():  # type: ignore[no-untyped-def]
    """The :func:`land` helper: ``land(ws, src, study, name=None, modality="expression")``."""
    return land


@pytest.fixture
def t47d_study(workspace):  # type: ignore[no-untyped-def]
    """The workspace with the T47D design registered as study 't47d'."""
    from resistomics.catalog import parse_sample_sheet

    workspace.catalog.register_study("t47d", parse_sample_sheet(T47D / "samples.tsv"))
    return workspace


@pytest.fixture(scope="session")
def t47d_published(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A session-wide workspace with T47D counts ingested and published (read-only use)."""
    from resistomics.catalog import parse_sample_sheet
    from resistomics.config import ClusterSettings, Settings
    from resistomics.pipeline import Workspace, ingest

    root = tmp_path_factory.mktemp("t47d")
    ws = Workspace.open(
        Settings(data_root=str(root), cluster=ClusterSettings(processes=False, n_workers=1))
    )
    ws.catalog.register_study("t47d", parse_sample_sheet(T47D / "samples.tsv"))
    path = land(ws, T47D / "counts.tsv.gz", "t47d")
    outcome = ingest(ws, path, study="t47d")
    assert outcome.status == "published", outcome.message
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[object]:
    """A real Dask cluster: a scheduler and two worker processes."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="2GiB",
    ) as cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster):  # type: ignore[no-untyped-def]
    from distributed import Client

    with Client(dask_cluster) as client:
        yield client
