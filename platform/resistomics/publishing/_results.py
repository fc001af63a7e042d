"""Publishing computed results as catalog datasets with lineage."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from resistomics import __version__
from resistomics.catalog import VersionInfo
from resistomics.dataset_types import dataset_type
from resistomics.publishing._workspace import Workspace
from resistomics.storage import layout, read_table, write_manifest, write_table
from resistomics.validation import run_expectations

__all__ = [
    "RESULT_LAYOUT",
    "ResultOutcome",
    "publish_result",
    "published_result",
    "result_digest",
    "result_table",
]

RESULT_LAYOUT = "result-tables@1"


@dataclass(frozen=True)
class ResultOutcome:
    status: str  # "published" | "unchanged"
    version: VersionInfo
    tables: dict[str, pd.DataFrame]
    message: str


def result_digest(parents: list[VersionInfo], dtype: str, parameters: Mapping[str, Any]) -> str:
    """Identity of a result: its inputs' digests, type, parameters and code version.

    The same computation on the same data gives the same digest, so a re-triggered
    flow finds the published result instead of making a duplicate version.
    """
    doc = {
        "parents": sorted(p.digest for p in parents),
        "type": dtype,
        "type_version": dataset_type(dtype).version,
        "parameters": parameters,
        "code": __version__,
    }
    raw = json.dumps(doc, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def publish_result(
    ws: Workspace,
    *,
    modality: str,
    parents: list[VersionInfo],
    study: str,
    dataset: str,
    dtype: str,
    parameters: dict[str, Any],
    digest: str,
    tables: Mapping[str, pd.DataFrame],
    write_extra: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Stage, write, validate and publish a result dataset (Parquet tables + extras).

    The result is recorded as ``kind="result"`` of the ``modality`` that computed it, in
    the ``result-tables@1`` layout.
    """
    spec = layout(RESULT_LAYOUT)
    version_dir = ws.root.new_version_path(study, dataset)
    first = tables[next(iter(tables))]
    dt = dataset_type(dtype)
    staged = ws.catalog.stage_version(
        study=study,
        dataset=dataset,
        modality=modality,
        dataset_type=dtype,
        kind="result",
        uri=ws.root.relative_uri(version_dir),
        format=spec.format,
        layout=spec.name,
        layout_version=spec.version,
        digest=digest,
        schema_version=dt.version,
        shape=list(first.shape),
        code_version=__version__,
        run_id=run_id,
        parameters=parameters,
        parents=[p.id for p in parents],
    )
    lineage = {
        "resistomics.parents": json.dumps([p.ref for p in parents]),
        "resistomics.parameters": json.dumps(parameters, default=str),
        "resistomics.code_version": __version__,
        "resistomics.dataset_type": f"{dtype}@{dt.version}",
    }
    for name, frame in tables.items():
        write_table(
            ws.root, posixpath.join(version_dir, f"{name}.parquet"), frame, metadata=lineage
        )
    if write_extra is not None:
        write_extra(version_dir)
    report = run_expectations(
        dataset_type=dt.name,
        dataset_type_version=dt.version,
        suites=dt.expectations,
        tables=dict(tables),
        params={},
    )
    if not report.success:
        ws.catalog.quarantine_version(staged.id, report.as_dict(), staged.uri)
        raise RuntimeError(
            f"result {study}/{dataset} failed its own expectations: "
            + "; ".join(o.line() for o in report.failures)
        )
    manifest = write_manifest(ws.root, ws.root.to_path(version_dir))
    version = ws.catalog.publish_version(staged.id, report.as_dict(), manifest_digest=manifest)
    if version.id != staged.id:  # the same computation was published meanwhile
        ws.root.remove(version_dir)
        return ResultOutcome("unchanged", version, {}, f"{version.ref} is already up to date")
    return ResultOutcome(
        status="published",
        version=version,
        tables=dict(tables),
        message=f"published {version.ref}",
    )


def published_result(
    ws: Workspace, version: VersionInfo, dtype: str, parameters: dict[str, Any]
) -> tuple[str, ResultOutcome | None]:
    """The result's digest, and the outcome to return if that result is already published."""
    digest = result_digest([version], dtype, parameters)
    existing = ws.catalog.find_published_by_digest(version.study, digest)
    if existing is None:
        return digest, None
    return digest, ResultOutcome("unchanged", existing, {}, f"{existing.ref} is already up to date")


def result_table(ws: Workspace, result: VersionInfo, name: str) -> pd.DataFrame:
    """Table ``name`` of a published result (``<version>/<name>.parquet``)."""
    return read_table(ws.root, posixpath.join(ws.root.to_path(result.uri), f"{name}.parquet"))
