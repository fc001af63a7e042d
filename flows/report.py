"""Report flow: a markdown summary of a study after a new signature result.

Triggered by ``resistomics.signature.published``. The artifact key is per study
(``study-report-<study>``), so the Prefect UI keeps the history of a study's report.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows._runtime import artifact_key, open_workspace
from resistomics.catalog import VersionInfo, VersionStatus
from resistomics.errors import UnknownNameError
from resistomics.modalities import analysis_for_result
from resistomics.pipeline import Workspace

__all__ = ["report_flow", "study_report"]

REPORT_ROWS = 20
"""Rows of each analysis table shown in the report."""


def _cell(value: object) -> str:
    return str(value).replace("|", "/").replace("\n", " ")


def _table(header: list[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return out


def _design_section(ws: Workspace, study: str) -> list[str]:
    samples = ws.catalog.samples(study)
    if samples.empty:
        return ["No samples registered."]
    lines = [
        f"{len(samples)} samples from {samples['subject_id'].nunique()} subjects.",
        "",
    ]
    phase = samples["phase"].fillna("unknown")
    response = samples["response"].fillna("unknown")
    counts = pd.crosstab(phase, response)
    lines += _table(
        ["phase \\ response", *counts.columns.astype(str)],
        [[idx, *row.tolist()] for idx, row in counts.iterrows()],
    )
    return lines


def _datasets_section(versions: list[VersionInfo]) -> list[str]:
    published = [v for v in versions if v.status == VersionStatus.PUBLISHED]
    if not published:
        return ["No published datasets."]
    history = Counter(v.dataset for v in versions)
    rows = [
        [
            f"`{v.ref}`",
            v.modality,
            v.dataset_type,
            " x ".join(str(n) for n in v.shape),
            history[v.dataset],
            v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else "",
            f"`{v.uri}`",
        ]
        for v in published
    ]
    return _table(["version", "modality", "type", "shape", "versions", "created", "location"], rows)


def _quarantine_section(ws: Workspace, study: str) -> list[str]:
    """Every quarantined delivery, from the quarantine folders (files that could not
    even be read have no catalog version, so the folders are the complete record)."""
    fs = ws.root.fs
    base = posixpath.dirname(ws.root.quarantine_path(study))
    if not fs.exists(base):
        return ["None."]
    rows = []
    for folder in sorted(fs.ls(base, detail=False)):
        report_path = posixpath.join(folder, "report.json")
        if not fs.exists(report_path):
            continue
        report = ws.root.read_json(report_path)
        files = [
            posixpath.basename(p)
            for p in fs.ls(folder, detail=False)
            if not posixpath.basename(p).startswith("report.")
        ]
        if report.get("stage") == "read":
            failing = [str(report.get("rule", "read"))]
        else:
            failing = [e["rule"] for e in report.get("expectations", []) if not e["success"]]
        modified = fs.modified(report_path)
        rows.append(
            [
                ", ".join(files),
                report.get("stage", ""),
                ", ".join(failing),
                f"{modified:%Y-%m-%d %H:%M}",
                f"`{ws.root.to_url(folder)}`",
            ]
        )
    if not rows:
        return ["None."]
    return _table(["file", "stage", "failed rules", "quarantined", "location"], rows)


def _result_section(ws: Workspace, result: VersionInfo) -> list[str]:
    """Where the result came from and where its tables are (any modality)."""
    parents = [ws.catalog.get_version(i).ref for i in result.parent_ids]
    return [
        f"- result: `{result.ref}` ({result.dataset_type}) from "
        + ", ".join(f"`{p}`" for p in parents),
        f"- tables: `{result.uri}`",
    ]


def _analysis_section(ws: Workspace, result: VersionInfo) -> list[str]:
    """The tables the result's analysis shows (from the modality registry), top rows."""
    try:
        _, analysis = analysis_for_result(result.dataset_type)
    except UnknownNameError:
        return []
    if analysis.artifacts is None:
        return []
    lines: list[str] = []
    for a in analysis.artifacts(ws, result):
        if a.kind != "table" or a.table is None or not len(a.table):
            continue
        head = a.table.head(REPORT_ROWS)
        lines += ["", f"{a.description} (first {len(head)} of {len(a.table)}):", ""]
        lines += _table([str(c) for c in head.columns], head.to_numpy().tolist())
    return lines


def study_report(ws: Workspace, study: str, result_ref: str) -> str:
    """The markdown report of a study, featuring one result (any modality's analysis)."""
    versions = ws.catalog.versions(study=study)
    result = ws.catalog.resolve(result_ref, study=study)
    others = [
        v
        for v in versions
        if v.status == VersionStatus.PUBLISHED and v.kind == "result" and v.id != result.id
    ]
    lines = [
        f"# Study `{study}`",
        "",
        f"Report for `{result.ref}`, generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Design",
        "",
        *_design_section(ws, study),
        "",
        "## Published datasets",
        "",
        *_datasets_section(versions),
        "",
        "## Quarantined",
        "",
        *_quarantine_section(ws, study),
        "",
        "## Latest result",
        "",
        *_result_section(ws, result),
        *_analysis_section(ws, result),
    ]
    if others:
        lines += ["", "## Other results", ""]
        lines += [f"- `{v.ref}` ({v.dataset_type}): `{v.uri}`" for v in others]
    return "\n".join(lines) + "\n"


@task(name="study-report")
def write_report(result_ref: str, study: str) -> str:
    with open_workspace() as ws:
        markdown = study_report(ws, study, result_ref)
    create_markdown_artifact(
        markdown=markdown,
        key=artifact_key("study-report", study),
        description=f"Study {study} after {result_ref}",
    )
    return markdown


@flow(name="report", flow_run_name="{result_ref}", log_prints=False)
def report_flow(result_ref: str, study: str) -> str:
    """Summarise a study (design, datasets, quarantine, latest results) as markdown.

    Parameters
    ----------
    result_ref
        The signature result that triggered the report (``study/dataset@vN``).
    study
        The study to summarise.

    Returns
    -------
    str
        The markdown (also stored as the artifact ``study-report-<study>``).
    """
    return write_report(result_ref, study)
