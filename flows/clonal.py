"""Clonal-evolution flow: run on a newly published variant-call dataset.

Triggered by ``resistomics.dataset.published`` for variants datasets (see
:mod:`flows.serve`). Publishes ``<dataset>.clonal`` through the library (idempotent),
emits ``resistomics.signature.published`` for a new result, and leaves a table artifact
of the emergent catalogued resistance mutations per subject and a summary.
"""

from __future__ import annotations

import posixpath

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows._runtime import (
    artifact_key,
    current_run_id,
    open_workspace,
    retry_on_transient_errors,
    table_rows,
)
from flows.signatures import announce, modality_of
from resistomics.cluster import dask_client
from resistomics.errors import InputError, MethodInputError
from resistomics.pipeline import clonal_evolution
from resistomics.storage import read_table

__all__ = ["clonal_flow"]

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


@task(
    name="clonal-evolution",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_on_transient_errors,
)
def run_clonal(dataset_ref: str, study: str, run_id: str | None) -> dict[str, str]:
    """Compute and publish the clonal analysis; return its ref, status and message."""
    with open_workspace() as ws, dask_client(ws.settings.cluster):
        outcome = clonal_evolution(ws, dataset_ref, study=study, run_id=run_id)
    return {"status": outcome.status, "ref": outcome.version.ref, "message": outcome.message}


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


@task(name="clonal-artifacts")
def record_artifacts(result_ref: str, study: str, message: str) -> int:
    """Table of emergent resistance mutations per subject, and a summary; returns its size."""
    with open_workspace() as ws:
        result = ws.catalog.resolve(result_ref, study=study)
        folder = ws.root.to_path(result.uri)
        emergent = read_table(ws.root, posixpath.join(folder, "emergent_resistance.parquet"))
        clones = read_table(ws.root, posixpath.join(folder, "clones.parquet"))
    dataset = result.dataset.removesuffix(".clonal")
    create_table_artifact(
        table=table_rows(emergent[list(EMERGENT_COLUMNS)], limit=500),
        key=artifact_key("clonal", study, dataset, "emergent-resistance"),
        description=f"Emergent catalogued resistance mutations per subject in {result.ref}",
    )
    flagged = clones[clones["carries_resistance_mutation"]] if len(clones) else clones
    if len(flagged):
        create_table_artifact(
            table=table_rows(flagged_clone_trajectories(flagged), limit=500),
            key=artifact_key("clonal", study, dataset, "resistant-clones"),
            description=f"Clones carrying catalogued resistance mutations in {result.ref}",
        )
    subjects = sorted(set(emergent["subject_id"])) if len(emergent) else []
    create_markdown_artifact(
        markdown="\n".join(
            [
                f"# Clonal evolution: `{result.ref}`",
                "",
                f"- emergent catalogued resistance mutations: {len(emergent)} in {len(subjects)} subject(s)"
                + (f" ({', '.join(subjects)})" if subjects else ""),
                f"- clones carrying a catalogued resistance mutation: "
                f"{flagged[['subject_id', 'clone_id']].drop_duplicates().shape[0] if len(flagged) else 0}",
                f"- tables: `{result.uri}` (changes, clone_mutations, clones, clone_selection, emergent_resistance)",
                "",
                message,
            ]
        )
        + "\n",
        key=artifact_key("clonal", study, dataset),
        description=message,
    )
    return len(emergent)


@flow(name="clonal", flow_run_name="{dataset_ref}", log_prints=False)
def clonal_flow(dataset_ref: str, study: str) -> State:
    """Per-subject VAF changes, clones and emergent resistance mutations of one dataset.

    Returns Completed (named ``Unchanged`` when the result already existed), Completed
    named ``Skipped`` for non-variant data, or Failed with the one-line reason.
    """
    logger = get_run_logger()
    modality = modality_of(dataset_ref, study)
    if modality != "variants":
        msg = f"{dataset_ref} is {modality} data; clonal evolution needs variant calls"
        return Completed(name="Skipped", message=msg, data={"status": "skipped", "message": msg})
    try:
        done = run_clonal(dataset_ref, study, current_run_id())
    except (MethodInputError, InputError) as exc:
        logger.error("not analysed: %s", exc)
        return Failed(message=str(exc), data=exc)
    if done["status"] == "published":
        announce(done["ref"], study)
    record_artifacts(done["ref"], study, done["message"])
    logger.info(done["message"])
    name = "Completed" if done["status"] == "published" else "Unchanged"
    return Completed(name=name, message=done["message"], data=done)
