"""What every flow needs around the library: a workspace, artifact keys, retry policy."""

from __future__ import annotations

import contextlib
import math
import posixpath
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from uuid import UUID

import pandas as pd
from prefect import Task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run
from prefect.task_engine import TaskRunTimeoutError

from resistomics.config import load_settings
from resistomics.pipeline import Workspace

__all__ = [
    "artifact_key",
    "current_run_id",
    "ingest_run_name",
    "open_workspace",
    "retry_on_transient_errors",
    "significant",
    "table_rows",
    "tag_current_run",
]


@contextlib.contextmanager
def open_workspace() -> Iterator[Workspace]:
    """The workspace of the settings in this process's environment (``RESISTOMICS_*``).

    Each task is an entry point: it may run in another process than its flow (a
    Dask or process task runner), so it builds settings itself from the environment.
    """
    ws = Workspace.open(load_settings())
    try:
        yield ws
    finally:
        ws.close()


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) from free text.

    Runs that share a key form one artifact history in the UI, e.g. every ingest of
    ``demo/bulk`` under ``ingest-demo-bulk``.
    """
    text = "-".join(parts).lower()
    key = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]", "-", text)).strip("-")
    return key[:200].rstrip("-") or "resistomics"


def current_run_id() -> str | None:
    """The flow run ID to record as the producing run in the catalog, if in a run."""
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def ingest_run_name() -> str:
    """``<study>/<file name>`` as an ingest run's name (``flow_run_name``)."""
    parameters = flow_run.get_parameters()
    path = str(parameters.get("path", "")).rstrip("/")
    return f"{parameters.get('study')}/{posixpath.basename(path)}"


def tag_current_run(tag: str) -> None:
    """Add ``tag`` to the running flow run (the dashboard filters runs by tag)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(UUID(run_id)).tags
        if tag not in tags:
            client.update_flow_run(UUID(run_id), tags=[*tags, tag])


#: Significant figures of a float in a table artifact: enough to read an effect, and
#: an FDR of 4.9e-17 stays 4.9e-17 (rounding to decimals made it 0.0).
SIGNIFICANT_FIGURES = 4


def significant(value: float, *, digits: int = SIGNIFICANT_FIGURES) -> float:
    """``value`` rounded to ``digits`` significant figures (not decimal places)."""
    return float(f"{value:.{digits}g}")


def _plain(value: Any) -> Any:
    """A JSON-safe scalar for a table artifact cell."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if not math.isfinite(value) else significant(value)
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return str(value)


def table_rows(frame: pd.DataFrame, *, limit: int = 200) -> list[dict[str, Any]]:
    """The first ``limit`` rows of a small frame as JSON-safe records for an artifact."""
    head = frame.head(limit)
    return [{str(k): _plain(v) for k, v in rec.items()} for rec in head.to_dict("records")]


def retry_on_transient_errors(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry only what can succeed on a second try: I/O and connection failures.

    A bad file, an unknown study or a method that cannot use the data
    (``InputError``, ``CatalogError``, ``MethodInputError``) fails the same way every
    time, so those end the task at once. ``StorageError`` is an ``OSError`` and is
    retried, as are ``ConnectionError`` and ``TimeoutError``, but not a task that ran
    out of its own time (``TaskRunTimeoutError``: it would take as long again).
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError) and not isinstance(exc, TaskRunTimeoutError)
