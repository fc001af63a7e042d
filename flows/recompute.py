"""Nightly cohort recompute: bring every study's results up to date with its data.

For the newest published version of every source dataset (whatever its modality) runs
the flow its ``dataset.published`` event would have run, ``analyse`` (that modality's
default analyses from the registry), as a subflow. Results are content-addressed
(inputs, parameters, gene-set / catalogue version, code version), so a dataset whose
result is current costs a catalog lookup and comes back ``Unchanged``; a new code
release, a new catalogue version or an event that never arrived makes a new result,
published with lineage and announced like any other. Leaves a table artifact of what was
done per dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed, State

from flows._runtime import artifact_key, open_workspace
from flows.analyse import analyse_flow
from resistomics.catalog import VersionStatus
from resistomics.cluster import dask_client
from resistomics.modalities import modalities

__all__ = ["recompute_flow", "source_datasets"]


@dataclass(frozen=True)
class Recomputed:
    study: str
    dataset: str
    modality: str
    flow: str
    state: str
    message: str


@task(name="list-source-datasets")
def source_datasets(study: str | None) -> list[tuple[str, str, str]]:
    """(study, ref, modality) of the newest published version of every source dataset."""
    with open_workspace() as ws:
        published = ws.catalog.versions(study=study, status=VersionStatus.PUBLISHED)
    newest: dict[tuple[str, str], Any] = {}
    for v in published:
        if v.kind != "source" or v.modality not in modalities():
            continue
        key = (v.study, v.dataset)
        if key not in newest or v.number > newest[key].number:
            newest[key] = v
    return [(v.study, v.ref, v.modality) for _, v in sorted(newest.items())]


@flow(name="recompute", log_prints=False)
def recompute_flow(study: str | None = None) -> State:
    """Refresh the results of every source dataset (of one study, or of all studies).

    Returns Completed with the per-dataset table (``Unchanged`` when nothing needed
    recomputing), or Failed when any dataset failed (the others still ran).
    """
    logger = get_run_logger()
    done: list[Recomputed] = []
    sources = source_datasets(study)
    with open_workspace() as ws:
        settings = ws.settings.cluster
    # One cluster for the night: the subflows' tasks reuse this client.
    with dask_client(settings):
        for the_study, ref, modality in sources:
            sub = analyse_flow
            state = sub(ref, the_study, return_state=True)
            done.append(
                Recomputed(
                    study=the_study,
                    dataset=ref,
                    modality=modality,
                    flow=sub.name,
                    state=state.name or state.type.value,
                    message=state.message or "",
                )
            )
            logger.info("%s (%s): %s", ref, sub.name, state.name)
    rows = [asdict(r) for r in done]
    counts = {s: sum(r.state == s for r in done) for s in sorted({r.state for r in done})}
    summary = ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) or "no source datasets"
    create_table_artifact(
        table=rows or [{"study": study or "(all)", "dataset": "", "state": "nothing to do"}],
        key=artifact_key("recompute", study or "all-studies"),
        description=f"Nightly recompute: {summary}",
    )
    failed = [r for r in done if r.state == "Failed"]
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(done)} datasets failed: "
            + "; ".join(f"{r.dataset}: {r.message}" for r in failed),
            data=rows,
        )
    name = "Completed" if counts.get("Completed") else "Unchanged"
    return Completed(name=name, message=summary, data=rows)
