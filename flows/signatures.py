"""Signatures flow: score resistance programs in a published expression dataset.

Triggered by ``resistomics.dataset.published`` for expression datasets (see
:mod:`flows.serve`). Publishes ``<dataset>.signatures`` through the library (idempotent:
the same input, gene sets, parameters and code give the same result, found instead of
recomputed), emits ``resistomics.signature.published`` for a new result, and leaves
table artifacts of the top programs per sample and of the resistant-fraction shift.

Tasks pass refs only; the artifact task reads the small per-sample tables back from the
published Parquet files rather than receiving DataFrames.
"""

from __future__ import annotations

import posixpath
from typing import Any

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
from flows.events import emit_signature_published
from resistomics.cluster import dask_client
from resistomics.errors import InputError, MethodInputError
from resistomics.pipeline import score_signatures
from resistomics.storage import read_table

__all__ = ["signatures_flow", "top_programs"]

TOP_PER_SAMPLE = 3
"""Programs listed per sample in the artifact."""


@task(
    name="score-signatures",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_on_transient_errors,
)
def score_dataset(
    dataset_ref: str, study: str, gene_sets: str, run_id: str | None
) -> dict[str, str]:
    """Score the programs and publish the result; return its ref, status and message."""
    with open_workspace() as ws, dask_client(ws.settings.cluster):
        outcome = score_signatures(ws, dataset_ref, study=study, gene_sets=gene_sets, run_id=run_id)
    return {"status": outcome.status, "ref": outcome.version.ref, "message": outcome.message}


@task(name="check-modality")
def modality_of(dataset_ref: str, study: str) -> str:
    with open_workspace() as ws:
        return ws.catalog.resolve(dataset_ref, study=study).modality


@task(name="announce-result")
def announce(result_ref: str, study: str) -> None:
    """Emit ``resistomics.signature.published`` for a result (signatures or clonal)."""
    with open_workspace() as ws:
        result = ws.catalog.resolve(result_ref, study=study)
        inputs = [ws.catalog.get_version(i) for i in result.parent_ids]
    emit_signature_published(result, inputs=inputs)


def top_programs(sample_scores: pd.DataFrame, *, per_sample: int = TOP_PER_SAMPLE) -> pd.DataFrame:
    """The highest-scoring programs of each sample (``score_genes`` scores if present)."""
    methods = list(sample_scores["method"].unique())
    method = "score_genes" if "score_genes" in methods else methods[0]
    scores = sample_scores[sample_scores["method"] == method]
    top = (
        scores.sort_values(["sample_id", "mean_score"], ascending=[True, False])
        .groupby("sample_id", observed=True, sort=True)
        .head(per_sample)
    )
    design = [c for c in ("subject_id", "phase", "response", "timepoint", "treatment") if c in top]
    columns = ["sample_id", *design, "method", "gene_set", "mean_score", "n_cells"]
    return top[[c for c in columns if c in top.columns]].reset_index(drop=True)


@task(name="signature-artifacts")
def record_artifacts(result_ref: str, study: str, message: str) -> None:
    with open_workspace() as ws:
        result = ws.catalog.resolve(result_ref, study=study)
        inputs = [ws.catalog.get_version(i).ref for i in result.parent_ids]
        folder = ws.root.to_path(result.uri)
        sample_scores = read_table(ws.root, posixpath.join(folder, "sample_scores.parquet"))
        shift_path = posixpath.join(folder, "fraction_shift.parquet")
        shift = read_table(ws.root, shift_path) if ws.root.fs.exists(shift_path) else None
    dataset = result.dataset.removesuffix(".signatures")
    top = top_programs(sample_scores)
    create_table_artifact(
        table=table_rows(top, limit=500),
        key=artifact_key("signatures", study, dataset, "top-programs"),
        description=f"Top {TOP_PER_SAMPLE} programs per sample in {result.ref}",
    )
    if shift is not None and len(shift):
        create_table_artifact(
            table=table_rows(shift, limit=500),
            key=artifact_key("signatures", study, dataset, "resistant-fraction"),
            description=f"Resistant-cell fraction shift per program in {result.ref}",
        )
    params: dict[str, Any] = result.parameters
    create_markdown_artifact(
        markdown="\n".join(
            [
                f"# Signatures: `{result.ref}`",
                "",
                f"- input: {', '.join(f'`{r}`' for r in inputs)}",
                f"- gene sets: `{params.get('gene_sets')}` version `{params.get('gene_sets_version')}`",
                f"- methods: {', '.join(params.get('methods', []))}",
                f"- tables: `{result.uri}` (sample_scores, cell_scores, gene_sets"
                + (", fraction_shift)" if shift is not None else ")"),
                f"- code version: `{result.code_version}`",
                "",
                message,
            ]
        )
        + "\n",
        key=artifact_key("signatures", study, dataset),
        description=message,
    )


@flow(name="signatures", flow_run_name="{dataset_ref}", log_prints=False)
def signatures_flow(dataset_ref: str, study: str, gene_sets: str = "builtin") -> State:
    """Score resistance programs (built-in catalogue, or a GMT file) in one dataset.

    Parameters
    ----------
    dataset_ref
        ``study/dataset[@vN]`` or ``dataset[@vN]`` of a published expression dataset.
    study
        The study the dataset belongs to.
    gene_sets
        ``builtin`` for the versioned resistance-program catalogue, or a GMT path.

    Returns
    -------
    State
        Completed with result ``{"status", "ref", "message"}`` (named ``Unchanged``
        when the result already existed); Completed named ``Skipped`` when the
        dataset is not expression data; Failed with the one-line reason when the data
        cannot be scored (:class:`~resistomics.errors.MethodInputError`).
    """
    logger = get_run_logger()
    modality = modality_of(dataset_ref, study)
    if modality != "expression":
        msg = f"{dataset_ref} is {modality} data; signatures score expression datasets only"
        logger.info(msg)
        return Completed(name="Skipped", message=msg, data={"status": "skipped", "message": msg})
    try:
        scored = score_dataset(dataset_ref, study, gene_sets, current_run_id())
    except (MethodInputError, InputError) as exc:
        # The data cannot be scored this way (e.g. too few genes for control bins):
        # the same input fails the same way again, so no retry; one line says why.
        logger.error("not scored: %s", exc)
        return Failed(message=str(exc), data=exc)
    if scored["status"] == "published":
        announce(scored["ref"], study)
    record_artifacts(scored["ref"], study, scored["message"])
    logger.info(scored["message"])
    name = "Completed" if scored["status"] == "published" else "Unchanged"
    return Completed(name=name, message=scored["message"], data=scored)
