"""Pseudonymised subject IDs, end to end through the real flows: a study registered with
distinctive raw patient IDs, expression and variant calls ingested, every default
analysis and the report run on the session's Prefect server; then every file under the
data root (paths, bytes, Parquet values, Zarr string arrays), the catalog, the Prefect
artifacts, events, flow runs, logs and result storage fetched back, and the captured
output are scanned for the raw IDs. With ``--pseudonymise`` none may be found; without
it the same scan finds them in paths, catalog, Parquet, Zarr and artifacts (so the scan
can fail)."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterTimestamp,
)
from prefect.events.filters import EventFilter, EventOccurredFilter
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_HOME
from typer.testing import CliRunner

from flows.analyse import analyse_flow
from flows.ingest import ingest_flow
from flows.report import report_flow
from resistomics.catalog import SubjectPseudonyms
from resistomics.cli import app
from resistomics.config import load_settings
from resistomics.pipeline import Workspace
from trial_variants import variants_maf

STUDY = "trial"  # the name trial_variants writes for
SAMPLES = [f"S{i}" for i in range(8)]  # what the `land` fixture's counts table holds
# Distinctive raw patient identifiers, as a hospital would have them.
RAW_IDS = ["MRN-QZX0417-KAPPA", "MRN-WVY2281-SIGMA", "MRN-JKT5590-OMEGA", "MRN-PLH7713-DELTA"]


def _forms(raw: str) -> list[str]:
    """The raw ID as it could appear: as is, and as an artifact key or a file name
    would mangle it (lowercase, non-alphanumerics as dashes, or removed)."""
    low = raw.casefold()
    return sorted({low, re.sub(r"[^0-9a-z]+", "-", low), re.sub(r"[^0-9a-z]+", "", low)})


def _hits(where: str, text: str) -> list[str]:
    low = text.casefold()
    return [f"{where}: {raw}" for raw in RAW_IDS if any(f in low for f in _forms(raw))]


def _zarr_strings(array_dir: Path) -> str:
    """The values of a Zarr string array (compressed chunks are not readable as bytes)."""
    meta = json.loads((array_dir / "zarr.json").read_text())
    if meta.get("node_type") != "array" or str(meta.get("data_type")) not in {
        "string",
        "str",
        "bytes",
        "variable_length_utf8",
    }:
        return ""
    values = np.asarray(zarr.open_array(str(array_dir), mode="r")[...])
    return "\n".join(map(str, values.ravel().tolist()))


def _parquet_strings(path: Path) -> str:
    """Every string value and the schema metadata of a Parquet file."""
    table = pq.read_table(path)
    parts = [str(table.schema.metadata or {})]
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            parts += [v for v in column.to_pylist() if v is not None]
    return "\n".join(parts)


def scan_root(root: Path) -> list[str]:
    """Raw IDs in the data root: every path, every file's bytes, Parquet and Zarr
    values, and the SQLite catalog's rows."""
    found: list[str] = []
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        found += _hits(f"path {rel}", rel)
        if p.is_symlink() or not p.is_file():
            continue
        found += _hits(f"bytes {rel}", p.read_bytes().decode("latin-1"))
        if p.suffix == ".parquet":
            found += _hits(f"parquet {rel}", _parquet_strings(p))
        elif p.name == "zarr.json":
            found += _hits(f"zarr {rel}", _zarr_strings(p.parent))
    catalog = root / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:
        found += _hits("catalog rows", "\n".join(conn.iterdump()))
    return found


def scan_prefect(since: datetime) -> list[str]:
    """Raw IDs in what the Prefect server holds from this test: artifacts, events,
    flow runs (parameters, state messages) and logs; and in its result storage."""
    found: list[str] = []
    EventsWorker.drain_all()  # what this process emitted reaches the server
    APILogWorker.drain_all()
    with get_client(sync_client=True) as client:
        artifacts = [
            a for a in client.read_artifacts() if a.created is not None and a.created >= since
        ]
        assert artifacts, "no artifacts were made"
        for a in artifacts:
            found += _hits(f"artifact {a.key}", a.model_dump_json())
        deadline = time.monotonic() + 30
        while True:  # the server stores events asynchronously
            page = client.read_events(
                filter=EventFilter(occurred=EventOccurredFilter(since=since)), limit=50
            )
            if any(e.event.startswith("resistomics.signature") for e in page.events):
                break
            assert time.monotonic() < deadline, "the analyses' events did not arrive"
            time.sleep(0.5)
        events = list(page.events)
        while page.next_page is not None:
            page = client.read_events_page(str(page.next_page))
            events += page.events
        assert any(e.event.startswith("resistomics.") for e in events), "no events were sent"
        for e in events:
            found += _hits(f"event {e.event}", e.model_dump_json())
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
        )
        for r in runs:
            found += _hits(f"flow run {r.name}", r.model_dump_json())
        offset, logs = 0, []
        while True:
            batch = client.read_logs(
                LogFilter(timestamp=LogFilterTimestamp(after_=since)), limit=200, offset=offset
            )
            logs += batch
            offset += len(batch)
            if len(batch) < 200:
                break
        assert logs, "no logs reached the server"
        found += _hits("server logs", "\n".join(log.message for log in logs))
    storage = Path(str(PREFECT_HOME.value())) / "storage"
    for p in storage.rglob("*") if storage.exists() else []:
        if p.is_file() and p.stat().st_mtime >= since.timestamp():
            found += _hits(f"prefect result {p.name}", p.read_bytes().decode("latin-1"))
    return found


@pytest.fixture(params=[False, True], ids=["raw-ids", "pseudonymised"])
def pseudonymise(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def registration(
    resistomics_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pseudonymise: bool,
) -> str:
    """Study ``trial`` registered through the CLI with the raw IDs (S0..S7, four
    subjects, baseline/progression, resistant/sensitive arms); the key and the mapping
    live in a custodian folder outside the data root."""
    monkeypatch.setenv("RESISTOMICS_PRIVACY__KEY_FILE", str(tmp_path / "custodian" / "key"))
    sheet = tmp_path / "samples.tsv"
    lines = ["sample_id\tsubject_id\tphase\tresponse\ttimepoint"]
    for i, s in enumerate(SAMPLES):
        phase, day = ("baseline", 0) if i % 2 == 0 else ("progression", 120)
        response = "resistant" if i < 4 else "sensitive"
        lines.append(f"{s}\t{RAW_IDS[i // 2]}\t{phase}\t{response}\t{day}")
    sheet.write_text("\n".join(lines) + "\n")
    args = ["study", "register", str(sheet), "--study", STUDY]
    result = CliRunner().invoke(app, args + (["--pseudonymise"] if pseudonymise else []))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def workspace(registration: str) -> Iterator[Workspace]:
    ws = Workspace.open(load_settings())
    try:
        yield ws
    finally:
        ws.close()


def test_no_raw_subject_id_leaves_registration_when_pseudonymised(
    workspace: Workspace,
    registration: str,
    land: Callable[..., str],
    pseudonymise: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    since = datetime.now(UTC)
    # flow and task logs (INFO and up) reach the server, and every log caplog
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="prefect")
    counts = ingest_flow(land("bulk.tsv"), STUDY)
    assert counts["status"] == "published", counts["message"]
    calls = ingest_flow(variants_maf(workspace), STUDY, modality="variants")
    assert calls["status"] == "published", calls["message"]
    results = []
    for ref in (counts["ref"], calls["ref"]):
        state = analyse_flow(ref, STUDY, return_state=True)
        assert state.name == "Completed", state.message
        results += [r["ref"] for r in state.result()["results"].values()]
    assert len(results) == 2
    for ref in results:
        assert "# Study" in report_flow(ref, STUDY)

    subjects = set(workspace.catalog.samples(STUDY)["subject_id"])
    root = workspace.settings.local_root
    partitions = {p.name for p in root.rglob("subject_id=*")}
    assert partitions == {f"subject_id={s}" for s in subjects}, partitions
    out, err = capfd.readouterr()
    printed = "\n".join([registration, out, err] + [r.getMessage() for r in caplog.records])
    found = scan_root(root) + scan_prefect(since) + _hits("captured output", printed)

    custodian = tmp_path / "custodian"
    if not pseudonymise:
        assert subjects == set(RAW_IDS)
        kinds = {hit.split(" ", 1)[0] for hit in found}
        # the scan does find raw IDs where the platform puts subject IDs
        assert {"path", "parquet", "zarr", "catalog", "artifact"} <= kinds, sorted(kinds)
        assert not custodian.exists()
        return
    assert found == [], "\n".join(found[:20])
    assert all(SubjectPseudonyms.is_pseudonym(s) for s in subjects), subjects
    assert len(subjects) == len(RAW_IDS)
    for name in ("key", "subject-pseudonyms.tsv"):
        assert stat.S_IMODE((custodian / name).stat().st_mode) == 0o600
    pseudonyms = SubjectPseudonyms.open(
        custodian / "key", custodian / "subject-pseudonyms.tsv", data_paths=[root]
    )
    assert pseudonyms.mapping() == {pseudonyms.pseudonym(r): r for r in RAW_IDS}
    assert set(pseudonyms.mapping()) == subjects
    assert os.environ["RESISTOMICS_DATA_ROOT"] == str(root)
