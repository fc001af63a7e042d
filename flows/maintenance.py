"""Maintenance flows: garbage collection and integrity check (nightly schedules).

A garbage collection that finds work completes normally (finding a crashed write is
what it is for). An integrity check that finds a problem ends Failed, so the nightly
run turns red in the UI and any "flow run failed" notification fires; the artifact
lists what is wrong.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows._runtime import artifact_key, open_workspace, retry_on_transient_errors
from resistomics.errors import ResistomicsError
from resistomics.pipeline import IntegrityCheck, check_integrity, collect_garbage

__all__ = ["IntegrityProblemsError", "gc_flow", "integrity_flow"]


class IntegrityProblemsError(ResistomicsError):
    """The integrity check found stored data that is missing, unreadable or altered."""

    def __init__(self, problems: list[IntegrityCheck]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.ref}: [{first.check}] {first.detail}{more}")


@task(
    name="collect-garbage",
    retries=1,
    retry_delay_seconds=60,
    retry_condition_fn=retry_on_transient_errors,
)
def run_gc(older_than_hours: float, dry_run: bool) -> list[dict[str, Any]]:
    with open_workspace() as ws:
        found = collect_garbage(ws, older_than=timedelta(hours=older_than_hours), dry_run=dry_run)
    return [asdict(f) for f in found]


@flow(name="garbage-collection", log_prints=False)
def gc_flow(older_than_hours: float = 24, dry_run: bool = False) -> list[dict[str, Any]]:
    """Remove staged versions and unreferenced version directories older than a cutoff.

    Fails at once, removing nothing, when the catalog and the data root disagree about
    more than ``RESISTOMICS_GC_MAX_DISAGREEMENT`` directories (a moved or wrong root).

    Parameters
    ----------
    older_than_hours
        Leave anything younger (an ingest may still be writing it).
    dry_run
        List what would go without removing it.

    Returns
    -------
    list of dict
        One record per removed item: kind, path, ref, age_hours, removed.
    """
    rows = run_gc(older_than_hours, dry_run)
    verb = "would remove" if dry_run else "removed"
    if rows:
        create_table_artifact(
            table=rows,
            key=artifact_key("garbage-collection"),
            description=f"{verb} {len(rows)} item(s) older than {older_than_hours} h",
        )
    else:
        create_markdown_artifact(
            markdown=f"# Garbage collection\n\nNothing older than {older_than_hours} h to remove.\n",
            key=artifact_key("garbage-collection"),
            description="nothing to remove",
        )
    get_run_logger().info("%s %d item(s)", verb, len(rows))
    return rows


@task(
    name="check-integrity",
    retries=1,
    retry_delay_seconds=60,
    retry_condition_fn=retry_on_transient_errors,
)
def run_integrity(verify_sources: bool, sample_files: int | None) -> list[IntegrityCheck]:
    with open_workspace() as ws:
        return check_integrity(ws, verify_sources=verify_sources, sample=sample_files)


@flow(name="integrity-check", log_prints=False)
def integrity_flow(verify_sources: bool = True, sample_files: int | None = 16) -> State:
    """Check that every published version exists, opens and matches its file digests.

    Parameters
    ----------
    verify_sources
        Re-hash every archived landed file against the catalog's content digests
        (reads all archived bytes once).
    sample_files
        Re-hash this many files per version, drawn at random (the nightly default);
        ``None`` re-hashes every stored file (complete check, on demand). Missing,
        resized and extra files are found either way.

    Returns
    -------
    State
        Completed with the list of check records, or Failed with
        :class:`IntegrityProblemsError` when any check found a problem.
    """
    checks = run_integrity(verify_sources, sample_files)
    problems = [c for c in checks if c.result == "problem"]
    warnings = [c for c in checks if c.result == "warning"]
    rows = [asdict(c) for c in sorted(checks, key=lambda c: (c.result == "ok", c.ref, c.check))]
    if rows:
        create_table_artifact(
            table=rows[:1000],
            key=artifact_key("integrity-check"),
            description=f"{len(problems)} problem(s), {len(warnings)} warning(s) in {len(checks)} checks",
        )
    summary = [
        "# Integrity check",
        "",
        f"{len(checks)} checks: {len(problems)} problem(s), {len(warnings)} warning(s).",
    ]
    if problems or warnings:
        summary += ["", "| version | check | result | detail |", "|---|---|---|---|"]
        summary += [
            f"| `{c.ref}` | {c.check} | {c.result} | {c.detail.replace('|', '/')} |"
            for c in [*problems, *warnings]
        ]
    create_markdown_artifact(
        markdown="\n".join(summary) + "\n",
        key=artifact_key("integrity-check-summary"),
        description=f"{len(problems)} problem(s)",
    )
    if problems:
        err = IntegrityProblemsError(problems)
        get_run_logger().error(str(err))
        return Failed(message=str(err), data=err)
    message = f"{len(checks)} checks passed" + (f", {len(warnings)} warning(s)" if warnings else "")
    return Completed(message=message, data=rows)
