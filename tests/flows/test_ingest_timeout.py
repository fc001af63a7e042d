"""An ingest that runs out of time fails its run with one line and quarantines the file.

The timeout is ``RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS`` on the ingest task: a file
that keeps a reader busy must not hold the ingest slot (and every ingest behind it)
forever, and must not be retried or announced again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.objects import StateType

from flows.ingest import ingest_flow
from resistomics.catalog import Catalog, VersionStatus
from resistomics.pipeline import Workspace, check_integrity

Land = Callable[..., str]


def test_an_ingest_past_its_timeout_fails_and_quarantines_the_file(
    workspace: Workspace, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = land("bulk.tsv")
    before = workspace.catalog.snapshot()
    # no ingest (Dask client, staging, Great Expectations) finishes in 0.3 s
    monkeypatch.setenv("RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS", "0.3")

    started = time.monotonic()
    state = ingest_flow(path, "trial", return_state=True)

    # failed at the first timeout, not retried (10 s + 60 s of retry delays)
    assert time.monotonic() - started < 30

    assert state.type == StateType.FAILED
    message = state.message or ""
    assert "\n" not in message
    assert f"{path}: [ingest-timeout] the ingest did not finish within 0.3 s" in message
    assert "; quarantined, report at " in message
    assert not Path(path).exists()  # not left to be announced (and timed out) again
    qdir = Path(message.rsplit("report at ", 1)[1])
    assert (qdir / "bulk.tsv").is_file()
    assert json.loads((qdir / "report.json").read_text())["rule"] == "ingest-timeout"
    # nothing published, and what the interrupted run staged is gone
    assert workspace.catalog.snapshot() == before
    assert not workspace.catalog.versions(study="trial", status=VersionStatus.STAGED)
    datasets = Path(workspace.settings.data_root) / "datasets"
    assert not datasets.exists() or not any(datasets.rglob("v-*"))


def test_a_timeout_after_the_publication_committed_completes_the_run_as_published(
    workspace: Workspace, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's time limit (Prefect's own, 60 s) runs out while the task is held just
    after the publish transaction committed: the run completes, the version stays
    published with its files, and the file is archived, not quarantined."""
    path = land("bulk.tsv")
    limit = 60.0
    monkeypatch.setenv("RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS", f"{limit:g}")
    publish = Catalog.publish_version
    held: list[float] = []

    def committed_then_stuck(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        published = publish(self, *args, **kwargs)
        held.append(time.monotonic() - started)
        # short sleeps: Prefect interrupts a task in a worker thread between bytecodes
        while time.monotonic() - started < 3 * limit:
            time.sleep(0.05)
        return published

    monkeypatch.setattr(Catalog, "publish_version", committed_then_stuck)
    started = time.monotonic()
    state = ingest_flow(path, "trial", return_state=True)

    assert len(held) == 1 and held[0] < limit, held  # published within the limit, then held
    assert time.monotonic() - started < 2 * limit  # interrupted by the limit, not released
    assert state.type == StateType.COMPLETED, state.message
    assert "passed after the publication committed" in (state.message or "")
    (v,) = workspace.catalog.versions(study="trial")
    assert v.status is VersionStatus.PUBLISHED and v.ref in (state.message or "")
    assert Path(workspace.root.to_path(v.uri)).is_dir()
    assert [c for c in check_integrity(workspace) if c.result == "problem"] == []
    assert not Path(path).exists()
    root = Path(workspace.settings.data_root)
    assert [p.name for p in (root / "archive").rglob("bulk.tsv")] == ["bulk.tsv"]
    assert not (root / "quarantine").exists() or not any((root / "quarantine").rglob("bulk.tsv"))
