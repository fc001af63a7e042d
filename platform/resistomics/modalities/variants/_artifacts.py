"""What a clonal run shows (Prefect-free; the analyse flow makes the artifacts)."""

from __future__ import annotations

import posixpath

import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.modalities._plugin import Artifact
from resistomics.publishing import Workspace
from resistomics.storage import read_table

__all__ = ["EMERGENT_COLUMNS", "clonal_artifacts", "flagged_clone_trajectories"]

#: Columns of the emergent-resistance artifact, all from the result's
#: ``emergent_resistance`` table (a missing one is a KeyError, not a silent drop).
EMERGENT_COLUMNS = (
    "subject_id",
    "sample_id",
    "gene",
    "protein_change",
    "baseline_vaf",
    "vaf",
    "vaf_change",
    "ccf",
    "pvalue_adj",
    "catalogue_therapy",
    "catalogue_level",
)


def flagged_clone_trajectories(flagged: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged clone: its mutations and its prevalence in time order."""
    rows = []
    for (subject, clone), c in flagged.groupby(["subject_id", "clone_id"], sort=True):
        c = c.sort_values(["timepoint", "sample_id"])
        rows.append(
            {
                "subject_id": subject,
                "clone_id": int(clone),
                "n_mutations": int(c["n_mutations"].iloc[0]),
                "resistance_changes": c["resistance_changes"].iloc[0],
                "prevalence": " -> ".join(
                    f"{p} {v:.2f}" for p, v in zip(c["phase"], c["prevalence"], strict=True)
                ),
            }
        )
    return pd.DataFrame(rows)


def clonal_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """Emergent resistance mutations per subject, resistant clones, and a summary."""
    folder = ws.root.to_path(result.uri)
    emergent = read_table(ws.root, posixpath.join(folder, "emergent_resistance.parquet"))
    clones = read_table(ws.root, posixpath.join(folder, "clones.parquet"))
    study = result.study
    dataset = result.dataset.removesuffix(".clonal")
    out = [
        Artifact(
            "table",
            ("clonal", study, dataset, "emergent-resistance"),
            f"Emergent catalogued resistance mutations per subject in {result.ref}",
            table=emergent[list(EMERGENT_COLUMNS)],
        )
    ]
    flagged = clones[clones["carries_resistance_mutation"]] if len(clones) else clones
    if len(flagged):
        out.append(
            Artifact(
                "table",
                ("clonal", study, dataset, "resistant-clones"),
                f"Clones carrying catalogued resistance mutations in {result.ref}",
                table=flagged_clone_trajectories(flagged),
            )
        )
    subjects = sorted(set(emergent["subject_id"])) if len(emergent) else []
    n_flagged = (
        flagged[["subject_id", "clone_id"]].drop_duplicates().shape[0] if len(flagged) else 0
    )
    markdown = (
        "\n".join(
            [
                f"# Clonal evolution: `{result.ref}`",
                "",
                f"- emergent catalogued resistance mutations: {len(emergent)} in {len(subjects)} subject(s)"
                + (f" ({', '.join(subjects)})" if subjects else ""),
                f"- clones carrying a catalogued resistance mutation: {n_flagged}",
                f"- tables: `{result.uri}` (changes, clone_mutations, clones, clone_selection, emergent_resistance)",
            ]
        )
        + "\n"
    )
    out.append(
        Artifact(
            "markdown",
            ("clonal", study, dataset),
            f"Clonal evolution of {result.ref}",
            markdown=markdown,
        )
    )
    return out
