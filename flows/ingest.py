"""Ingest flow: one landed file -> staged, validated -> published or quarantined.

Triggered by ``resistomics.file.landed`` (see :mod:`flows.serve`); also callable
directly. How a run ends:

======================  ============================  =================================
library outcome         flow run state                event
======================  ============================  =================================
published               Completed                     ``resistomics.dataset.published``
unchanged (same bytes)  Completed, named Unchanged    none (nothing new exists)
quarantined             Completed, named Quarantined  ``resistomics.dataset.quarantined``
                        and tagged ``quarantined``
file not taken          Failed, one-line message      none
file already gone       Completed, named Skipped      none
ingest ran out of time  Failed, one-line message;     ``resistomics.dataset.quarantined``
                        the file is quarantined
out of time after the   Completed, the message says   ``resistomics.dataset.published``
publication committed   so
======================  ============================  =================================

The ingest task has a timeout (``RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS``, default
6 h; Prefect interrupts a task running in the flow's main thread with an alarm): a file
that keeps a reader busy for hours (a pathological but bounded file, a stuck network
file system) must not hold the ingest concurrency slot, and every ingest behind it,
forever. The run fails (``[ingest-timeout]``, not retried: it would take as long again)
and the file goes to quarantine with that reason, so the sweep does not announce it again.

A quarantined file is a *successful* run of the platform: the file was read, judged,
moved to quarantine with its report, and nothing bad was published. Marking the run
Failed would page whoever watches for broken infrastructure every time a core delivers a
bad file, and Prefect would offer to retry a run that will fail the same way. So the run
completes under the state name ``Quarantined`` (visible in the run list) with the run tag
``quarantined`` (the dashboard's tag filter finds every quarantine),
carries the reason as its state message, leaves a validation artifact, and emits
``resistomics.dataset.quarantined`` for anyone who wants to be notified (an automation
on that event can send the message to the data owner).

A file that cannot be taken at all (outside the landing zone, unknown study, no such
file) is a configuration problem of the sender: the run fails with the one-line error.
Only I/O failures are retried (see :func:`flows._runtime.retry_on_transient_errors`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State
from prefect.task_engine import TaskRunTimeoutError

from flows._runtime import (
    artifact_key,
    current_run_id,
    ingest_run_name,
    open_workspace,
    retry_on_transient_errors,
    tag_current_run,
)
from flows.events import emit_dataset_published, emit_dataset_quarantined
from resistomics.catalog import VersionStatus
from resistomics.cluster import dask_client
from resistomics.config import load_settings
from resistomics.errors import DatasetNotFoundError, InputError
from resistomics.pipeline import (
    IngestOutcome,
    dataset_name_for,
    ingest,
    ingest_timeout_error,
    published_by_run,
    quarantine_unread,
)

__all__ = ["expectation_rows", "ingest_flow"]


@task(
    name="ingest-file",
    retries=2,
    retry_delay_seconds=[10, 60],
    retry_condition_fn=retry_on_transient_errors,
)
def ingest_file(
    path: str, study: str, modality: str | None, dataset: str | None, run_id: str | None
) -> IngestOutcome:
    """Read, stage, validate and publish or quarantine one landed file."""
    with open_workspace() as ws, dask_client(ws.settings.cluster):
        return ingest(ws, path, study=study, modality=modality, dataset=dataset, run_id=run_id)


@task(name="announce-ingest")
def announce(outcome: IngestOutcome, modality: str) -> None:
    """Emit the event that drives the next step (nothing for an unchanged file)."""
    if (
        outcome.status == "published"
        and outcome.version is not None
        # superseded at once by a newer version published first: nothing to analyse
        and outcome.version.status is VersionStatus.PUBLISHED
    ):
        emit_dataset_published(outcome.version, message=outcome.message)
    elif outcome.status == "quarantined":
        emit_dataset_quarantined(
            study=outcome.study,
            dataset=outcome.dataset,
            modality=modality,
            path=outcome.path,
            message=outcome.message,
            quarantine_uri=outcome.quarantine_uri,
            failures=[r["rule"] for r in expectation_rows(outcome.report) if r["result"] != "pass"],
        )


def expectation_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per expectation (or one row for a file that could not be read)."""
    if "expectations" not in report:
        if not report:
            return []
        return [
            {
                "table": "file",
                "rule": report.get("rule", "read"),
                "result": "FAIL",
                "failing": None,
                "checked": None,
                "meaning": report.get("message", ""),
                "examples": report.get("location", ""),
            }
        ]
    rows = []
    for e in report["expectations"]:
        result = "pass" if e["success"] else ("error" if e.get("errored") else "FAIL")
        rows.append(
            {
                "table": e["table"],
                "rule": e["rule"],
                "result": result,
                "failing": e.get("unexpected_count"),
                "checked": e.get("element_count"),
                "meaning": e.get("meaning", ""),
                "examples": ", ".join(str(x) for x in e.get("examples", [])[:5]),
            }
        )
    return rows


def _summary_markdown(outcome: IngestOutcome, modality: str) -> str:
    title = {
        "published": f"Published `{outcome.version.ref}`" if outcome.version else "Published",
        "unchanged": "Unchanged: these bytes are already published",
        "quarantined": f"Quarantined `{outcome.study}/{outcome.dataset}`",
    }[outcome.status]
    lines = [
        f"# Ingest: {title}",
        "",
        f"- file: `{outcome.path}`",
        f"- study: `{outcome.study}`, modality: `{modality}`, dataset: `{outcome.dataset}`",
    ]
    if outcome.version is not None:
        v = outcome.version
        shape = " x ".join(str(n) for n in v.shape) or "unknown"
        lines += [
            f"- version: `{v.ref}` ({v.status.value}), dataset type `{v.dataset_type}`",
            f"- shape: {shape}",
            f"- location: `{v.uri}`",
            f"- content digest: `{v.digest}`",
        ]
    rows = expectation_rows(outcome.report)
    if rows:
        passed = sum(r["result"] == "pass" for r in rows)
        lines.append(f"- validation: {passed}/{len(rows)} expectations passed")
    lines += ["", outcome.message]
    if outcome.status == "quarantined":
        lines += [
            "",
            "## What to do",
            "",
            f"The file and its report (`report.md`, `report.json`) are in `{outcome.quarantine_uri}`. "
            "Nothing was published. Fix the file and copy it into the landing zone again.",
            "",
            "| table | rule | result | failing | examples |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['table']} | {r['rule']} | {r['result']} | {r['failing'] if r['failing'] is not None else ''} "
            f"| {str(r['examples']).replace('|', '/')} |"
            for r in rows
            if r["result"] != "pass"
        ]
    return "\n".join(lines) + "\n"


@task(name="ingest-artifacts")
def record_artifacts(outcome: IngestOutcome, modality: str) -> None:
    """The validation table and a markdown summary, keyed by study and dataset."""
    key = artifact_key("ingest", outcome.study, outcome.dataset)
    rows = expectation_rows(outcome.report)
    if rows:
        create_table_artifact(
            table=rows,
            key=artifact_key("validation", outcome.study, outcome.dataset),
            description=f"Expectations checked for {outcome.path} ({outcome.status})",
        )
    create_markdown_artifact(
        markdown=_summary_markdown(outcome, modality),
        key=key,
        description=f"{outcome.status}: {outcome.path}",
    )


@flow(name="ingest", flow_run_name=ingest_run_name, log_prints=False)
def ingest_flow(
    path: str, study: str, modality: str | None = None, dataset: str | None = None
) -> State:
    """Ingest one landed file or directory into a study.

    Parameters
    ----------
    path
        The file or directory inside the landing zone (``<landing>/<study>/<modality>/``).
    study
        A registered study.
    modality
        The registered modality whose readers apply (default: the landing-zone folder
        the file is in, ``<landing>/<study>/<modality>/``).
    dataset
        Dataset name; by default the file name without its format extensions.

    Returns
    -------
    State
        Completed (named ``Unchanged``, ``Quarantined`` or ``Skipped`` where that
        applies) with the outcome message, or Failed with the one-line reason the file
        was not taken. A completed state's result is a small summary dict:
        ``status``, ``ref``, ``dataset``, ``message``, ``quarantine_uri``; a failed
        one's is the error (a direct call raises it).
    """
    logger = get_run_logger()
    timeout = load_settings().limits.ingest_timeout_seconds
    try:
        outcome = ingest_file.with_options(timeout_seconds=timeout)(
            path, study, modality, dataset, current_run_id()
        )
    except TaskRunTimeoutError:
        return _timed_out(path, study, modality, dataset, timeout)
    except InputError as exc:
        if exc.rule == "file-exists":
            # Already ingested and archived by an earlier run (a sweep re-announced
            # it, or the event was delivered twice): nothing to do.
            msg = f"{path} is no longer in the landing zone (already processed or moved)"
            logger.info(msg)
            return Completed(
                name="Skipped", message=msg, data={"status": "skipped", "message": msg}
            )
        return _not_taken(path, study, dataset, exc, exc.one_line())
    except DatasetNotFoundError as exc:
        return _not_taken(path, study, dataset, exc, str(exc))

    announce(outcome, outcome.modality)
    record_artifacts(outcome, outcome.modality)
    logger.info(outcome.message)
    summary = {
        "status": outcome.status,
        "ref": outcome.version.ref if outcome.version is not None else None,
        "dataset": outcome.dataset,
        "message": outcome.message,
        "quarantine_uri": outcome.quarantine_uri,
    }
    if outcome.status == "quarantined":
        tag_current_run("quarantined")
    name = {"published": "Completed", "unchanged": "Unchanged", "quarantined": "Quarantined"}
    return Completed(name=name[outcome.status], message=outcome.message, data=summary)


@task(name="quarantine-timed-out")
def quarantine_timed_out(
    path: str, study: str, modality: str | None, dataset: str | None, timeout: float | None
) -> IngestOutcome | None:
    """Quarantine a file whose ingest ran out of time (its claim was given back), unless
    the time ran out after its publication committed: then the outcome is ``published``."""
    error = ingest_timeout_error(path, timeout)
    with open_workspace() as ws:
        published = published_by_run(
            ws, path, study=study, run_id=current_run_id(), timeout=timeout
        )
        if published is not None:
            return published
        return quarantine_unread(
            ws,
            path,
            error,
            study=study,
            modality=modality,
            dataset=dataset,
            run_id=current_run_id(),
        )


def _timed_out(
    path: str, study: str, modality: str | None, dataset: str | None, timeout: float | None
) -> State:
    outcome = quarantine_timed_out(path, study, modality, dataset, timeout)
    if outcome is None:
        message = f"{path}: [ingest-timeout] the ingest did not finish within {timeout:g} s"
        return _not_taken(path, study, dataset, TimeoutError(message), message)
    announce(outcome, outcome.modality)
    record_artifacts(outcome, outcome.modality)
    if outcome.status == "published":
        get_run_logger().warning(outcome.message)
        summary = {
            "status": outcome.status,
            "ref": outcome.version.ref if outcome.version is not None else None,
            "dataset": outcome.dataset,
            "message": outcome.message,
            "quarantine_uri": None,
        }
        return Completed(message=outcome.message, data=summary)
    tag_current_run("quarantined")
    return _not_taken(path, study, dataset, TimeoutError(outcome.message), outcome.message)


def _not_taken(path: str, study: str, dataset: str | None, exc: Exception, message: str) -> State:
    get_run_logger().error(message)
    create_markdown_artifact(
        markdown=f"# Ingest: file not taken\n\n- file: `{path}`\n- study: `{study}`\n\n{message}\n",
        key=artifact_key("ingest", study, dataset or dataset_name_for(path)),
        description=f"not taken: {path}",
    )
    # The exception as the state's data: a direct call of the flow re-raises it.
    return Failed(message=message, data=exc)
