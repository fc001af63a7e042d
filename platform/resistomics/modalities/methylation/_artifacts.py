"""What a methylation analysis run shows (Prefect-free; the analyse flow makes artifacts)."""

from __future__ import annotations

import posixpath

from resistomics.catalog import VersionInfo
from resistomics.modalities._plugin import Artifact
from resistomics.publishing import Workspace
from resistomics.storage import read_table

__all__ = ["CALL_COLUMNS", "QC_COLUMNS", "marker_artifacts", "region_artifacts"]

#: Columns of the marker-calls artifact (a missing one is a KeyError, not a silent drop).
CALL_COLUMNS = (
    "sample_id",
    "gene",
    "therapy",
    "effect",
    "mean_methylation",
    "n_cpgs",
    "threshold",
    "call",
    "reference",
)
QC_COLUMNS = ("sample_id", "n_sites_covered", "fraction_covered", "median_depth", "mean_depth")
FLAG_COLUMNS = (
    "subject_id",
    "sample_id",
    "gene",
    "therapy",
    "baseline_call",
    "call",
    "mean_change",
    "implication",
    "flag",
)


def marker_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """Per-sample QC, marker calls, flagged changes and a summary of a markers result."""
    folder = ws.root.to_path(result.uri)
    calls = read_table(ws.root, posixpath.join(folder, "calls.parquet"))
    flagged = read_table(ws.root, posixpath.join(folder, "flagged.parquet"))
    qc = read_table(ws.root, posixpath.join(folder, "qc.parquet"))
    study, dataset = result.study, result.dataset.removesuffix(".markers")
    out = [
        Artifact(
            "table",
            ("methylation", study, dataset, "qc"),
            f"Per-sample methylation QC of {result.ref} (sites covered, median depth)",
            table=qc[list(QC_COLUMNS)],
        ),
        Artifact(
            "table",
            ("methylation", study, dataset, "marker-calls"),
            f"Catalogued methylation-marker calls per sample in {result.ref}",
            table=calls[list(CALL_COLUMNS)],
        ),
    ]
    if len(flagged):
        out.append(
            Artifact(
                "table",
                ("methylation", study, dataset, "marker-changes"),
                f"Marker methylation gained or lost under treatment in {result.ref}",
                table=flagged[list(FLAG_COLUMNS)],
            )
        )
    methylated = calls[calls["call"] == "methylated"]
    lines = [
        f"# Methylation markers: `{result.ref}`",
        "",
        f"- catalogue: `{result.parameters.get('catalogue')}` version "
        f"`{result.parameters.get('catalogue_version')}` ({result.parameters.get('genome')})",
        f"- samples: {calls['sample_id'].nunique()}; methylated calls: {len(methylated)} "
        f"of {len(calls)}; not covered: {int((calls['call'] == 'not-covered').sum())}",
        f"- changes flagged under treatment: {len(flagged)}",
        *[f"  - {f}" for f in flagged["flag"].head(20)],
        f"- tables: `{result.uri}` (calls, changes, flagged, qc)",
    ]
    out.append(
        Artifact(
            "markdown",
            ("methylation", study, dataset, "markers"),
            f"Methylation markers of {result.ref}",
            markdown="\n".join(lines) + "\n",
        )
    )
    return out


def region_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The top regions (by p-value when tested) of a regions result."""
    folder = ws.root.to_path(result.uri)
    regions = read_table(ws.root, posixpath.join(folder, "regions.parquet"))
    columns = ["region_id", "contig", "start", "end", "n_sites", "n_samples_covered"]
    if regions["pval"].notna().any():
        columns += ["mean_a", "mean_b", "diff", "pval", "pval_adj"]
    return [
        Artifact(
            "table",
            ("methylation", result.study, result.dataset, "top-regions"),
            f"Top regions of {result.ref}",
            table=regions[columns].head(100),
        )
    ]
