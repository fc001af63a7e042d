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

import pytest
from prefect.client.schemas.objects import StateType

from flows.ingest import ingest_flow
from resistomics.catalog import VersionStatus
from resistomics.pipeline import Workspace

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
