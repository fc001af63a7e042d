"""Publishing computed results as catalog datasets with lineage."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from resistomics import __version__
from resistomics.catalog import VersionInfo
from resistomics.dataset_types import dataset_type
from resistomics.publishing._workspace import Workspace
from resistomics.storage import DataRoot, layout, read_table, write_manifest, write_table
from resistomics.validation import run_expectations, summarize_parts

__all__ = [
    "RESULT_LAYOUT",
    "ResultOutcome",
    "TableParts",
    "part_paths",
    "publish_result",
    "published_result",
    "result_digest",
    "result_table",
]

RESULT_LAYOUT = "result-tables@1"


@dataclass(frozen=True)
class TableParts:
    """A result table its computation writes as Parquet parts, so no process holds it.

    ``write(directory, metadata)`` writes the table as ``directory/part-NNNNN.parquet``
    (table order is the parts' name order; each part with ``metadata`` in its schema,
    e.g. from Dask tasks on the workers) and returns the number of rows and columns.
    :func:`publish_result` calls it once the version is staged, with
    ``<version>/<name>.parquet`` as the directory (read back as one table by
    :func:`result_table` and every Parquet reader), and validates the table part by part
    (:func:`resistomics.validation.summarize_parts`).
    """

    write: Callable[[str, dict[str, str]], tuple[int, int]]


def part_paths(root: DataRoot, directory: str) -> list[str]:
    """The parts of a parted table, in table order."""
    return sorted(
        p
        for p in root.fs.ls(directory, detail=False)
        if str(p).rsplit("/", 1)[-1].startswith("part-")
    )


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
    tables: Mapping[str, pd.DataFrame | TableParts],
    write_extra: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Stage, write, validate and publish a result dataset (Parquet tables + extras).

    The result is recorded as ``kind="result"`` of the ``modality`` that computed it, in
    the ``result-tables@1`` layout. A table given as :class:`TableParts` is computed
    and written part by part after staging and validated part by part (peak memory
    set by a part, not the table); it is not in the outcome's ``tables``.
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
        shape=list(first.shape) if isinstance(first, pd.DataFrame) else [],
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
    frames: dict[str, pd.DataFrame] = {}
    suites = dict(dt.expectations)
    for name, table in tables.items():
        path = posixpath.join(version_dir, f"{name}.parquet")
        if isinstance(table, pd.DataFrame):
            write_table(ws.root, path, table, metadata=lineage)
            frames[name] = table
            continue
        ws.root.fs.makedirs(path, exist_ok=True)
        shape = table.write(path, lineage)
        if table is first:
            ws.catalog.set_shape(staged.id, list(shape))
        frames[name], suites[name] = summarize_parts(
            [_part_reader(ws.root, p) for p in part_paths(ws.root, path)],
            dt.expectations.get(name, []),
        )
    if write_extra is not None:
        write_extra(version_dir)
    report = run_expectations(
        dataset_type=dt.name,
        dataset_type_version=dt.version,
        suites=suites,
        tables=frames,
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
        tables={n: t for n, t in tables.items() if isinstance(t, pd.DataFrame)},
        message=f"published {version.ref}",
    )


def _part_reader(root: DataRoot, path: str) -> Callable[[Sequence[str] | None], pd.DataFrame]:
    def read(columns: Sequence[str] | None) -> pd.DataFrame:
        return read_table(root, path, columns=None if columns is None else list(columns))

    return read


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
