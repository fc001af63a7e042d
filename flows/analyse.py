"""Analyse flow: run a modality's default analyses on a newly published source dataset.

Triggered by ``resistomics.dataset.published`` for any source dataset (see
:mod:`flows.serve`). Which analyses run comes from the modality registry: expression
datasets get their gene-program scores (``signatures``), variant calls their clonal
evolution (``clonal``), a plugin modality whatever it declares; an analysis declared
per contrast runs once per contrast registered for the study, one that consumes
another's result after it, on that result. Each analysis publishes
its result through the library (idempotent: same input, parameters and code find the
published result), a new result is announced with ``resistomics.signature.published``,
and the analysis's own artifact descriptions become Prefect artifacts.

Tasks pass refs only; artifacts are built from the published result, not from frames
handed between tasks.
"""

from __future__ import annotations

from typing import Any

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
from resistomics.errors import (
    AnalysisNotApplicableError,
    ContrastNotApplicableError,
    InputError,
    MethodInputError,
)
from resistomics.modalities import analysis_for_result
from resistomics.pipeline import AnalysisStep, analysis_plan, run_step

__all__ = ["analyse_flow", "analyses_to_run"]


@task(name="list-analyses")
def analyses_to_run(dataset_ref: str, study: str, requested: list[str] | None) -> dict[str, Any]:
    """The dataset's kind and modality, the analysis steps to run on it (one per
    registered contrast for a per-contrast analysis, a consumer after its input) and why
    a declared analysis does not run."""
    with open_workspace() as ws:
        version = ws.catalog.resolve(dataset_ref, study=study)
        if version.kind != "source":
            return {"kind": str(version.kind), "modality": version.modality, "steps": []}
        plan = analysis_plan(ws, version.ref, study=study, names=requested)
        steps = [
            {"analysis": s.analysis, "contrast": s.contrast, "consumes": s.consumes, "key": s.key}
            for s in plan.steps
        ]
        return {"kind": "source", "modality": version.modality, "steps": steps, "notes": plan.notes}


@task(
    name="run-analysis",
    task_run_name="{step[key]}",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_on_transient_errors,
)
def run_analysis(
    dataset_ref: str, study: str, step: dict[str, Any], input_ref: str | None, run_id: str | None
) -> dict[str, str]:
    """Compute and publish one analysis step; return its ref, status and message."""
    planned = AnalysisStep(step["analysis"], step["contrast"], step["consumes"])
    with open_workspace() as ws, dask_client(ws.settings.cluster):
        done = run_step(ws, dataset_ref, planned, input_ref=input_ref, study=study, run_id=run_id)
    outcome = done.outcome
    return {
        "analysis": step["analysis"],
        "status": outcome.status,
        "ref": outcome.version.ref,
        "message": outcome.message,
    }


@task(name="announce-result")
def announce(result_ref: str, study: str) -> None:
    """Emit ``resistomics.signature.published`` for a new result."""
    with open_workspace() as ws:
        result = ws.catalog.resolve(result_ref, study=study)
        inputs = [ws.catalog.get_version(i) for i in result.parent_ids]
    emit_signature_published(result, inputs=inputs)


@task(name="analysis-artifacts")
def record_artifacts(result_ref: str, study: str, message: str) -> int:
    """The analysis's artifacts of its result; returns how many were made."""
    with open_workspace() as ws:
        result = ws.catalog.resolve(result_ref, study=study)
        _, analysis = analysis_for_result(result.dataset_type)
        artifacts = list(analysis.artifacts(ws, result)) if analysis.artifacts else []
    for a in artifacts:
        key = artifact_key(*a.key_parts)
        if a.kind == "table" and a.table is not None:
            create_table_artifact(
                table=table_rows(a.table, limit=500), key=key, description=a.description
            )
        elif a.markdown is not None:
            create_markdown_artifact(
                markdown=a.markdown + "\n" + message + "\n", key=key, description=message
            )
    return len(artifacts)


@flow(
    name="analyse",
    flow_run_name="{dataset_ref}",
    log_prints=False,
)
def analyse_flow(dataset_ref: str, study: str, analyses: list[str] | None = None) -> State:
    """Run the default analyses of a source dataset's modality (or the ``analyses`` named).

    Parameters
    ----------
    dataset_ref
        ``study/dataset[@vN]`` or ``dataset[@vN]`` of a published source dataset.
    study
        The study the dataset belongs to.
    analyses
        Names of the modality's analyses to run (default: its default analyses). A
        per-contrast analysis runs once per contrast registered for the study, an
        analysis that consumes another's result after each run of it
        (:func:`resistomics.pipeline.analysis_plan`).

    Returns
    -------
    State
        Completed with ``{"status", "message", "results": {step: {status, ref,
        message}}, "notes"}`` (step ``dml [case:SLE vs HC]`` for a per-contrast one;
        notes say why a declared analysis did not run, e.g. no registered contrast), named ``Unchanged`` when every result already existed; Completed
        named ``Skipped`` for a result dataset or a modality without default analyses;
        Failed with the one-line reasons when an analysis cannot use the data
        (:class:`~resistomics.errors.MethodInputError`; the others still ran).
    """
    logger = get_run_logger()
    plan = analyses_to_run(dataset_ref, study, analyses)
    notes: list[str] = plan.get("notes", [])
    for note in notes:
        logger.info(note)
    if not plan["steps"]:
        if plan["kind"] != "source":
            msg = f"{dataset_ref} is a {plan['kind']} dataset; analyses run on source datasets"
        elif notes:
            msg = f"{dataset_ref}: no analysis to run; " + "; ".join(notes)
        else:
            msg = f"{dataset_ref}: the {plan['modality']} modality has no default analyses"
        logger.info(msg)
        return Completed(name="Skipped", message=msg, data={"status": "skipped", "message": msg})
    results: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    for step in plan["steps"]:
        key, consumes = step["key"], step["consumes"]
        if consumes is not None and consumes not in results:
            notes.append(f"{key} not run: its input {consumes} did not run")
            continue
        input_ref = results[consumes]["ref"] if consumes is not None else None
        try:
            done = run_analysis(dataset_ref, study, step, input_ref, current_run_id())
        except ContrastNotApplicableError as exc:
            if step["contrast"] is None:
                raise
            # A contrast registered for the study whose column or arms this dataset's
            # samples lack (the study's other modalities may have them): not this
            # dataset's analysis, so a note rather than a failure.
            notes.append(f"{key} not run: the contrast does not apply to {dataset_ref} ({exc})")
            logger.info(notes[-1])
            continue
        except AnalysisNotApplicableError as exc:
            # A default analysis this dataset cannot have (no cell-type labels): a note.
            notes.append(f"{key} not run: {exc}")
            logger.info(notes[-1])
            continue
        except (MethodInputError, InputError) as exc:
            # The data cannot be analysed this way: the same input fails the same way
            # again, so no retry; one line says why.
            logger.error("%s not run: %s", key, exc)
            failures.append(f"{key}: {exc}")
            continue
        if done["status"] == "published":
            announce(done["ref"], study)
        record_artifacts(done["ref"], study, done["message"])
        logger.info(done["message"])
        results[key] = done
    message = "; ".join([r["message"] for r in results.values()] + failures + notes)
    if failures:
        return Failed(
            message=message, data={"status": "failed", "message": message, "results": results}
        )
    published = any(r["status"] == "published" for r in results.values())
    status = "published" if published else "unchanged"
    data = {"status": status, "message": message, "results": results, "notes": notes}
    return Completed(name="Completed" if published else "Unchanged", message=message, data=data)
