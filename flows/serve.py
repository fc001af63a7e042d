"""Deployments, triggers and schedules; ``python -m flows.serve`` runs them all.

=====================  ===========================================  ========================
deployment             runs on                                      parameters
=====================  ===========================================  ========================
ingest/on-file-landed  ``resistomics.file.landed``                  path, study, modality
analyse/on-publish     ``resistomics.dataset.published``,           dataset_ref, study
                       label ``resistomics.kind=source``
report/on-signature    ``resistomics.signature.published``          result_ref, study
landing-sweep/every-   cron ``*/15 * * * *``                        min_age_seconds
15-minutes
recompute/nightly      cron ``0 2 * * *`` (UTC)                     study (all studies)
garbage-collection/    cron ``0 3 * * *`` (UTC)                     older_than_hours
nightly
integrity-check/       cron ``0 4 * * *`` (UTC)                     verify_sources, sample_files
nightly
=====================  ===========================================  ========================

Triggers render flow parameters from the event's resource labels (see
:mod:`flows.events`). The Prefect server's triggers and automations do the matching;
nothing needs Prefect Cloud. ``serve`` polls the server for runs of these deployments
and starts each in a subprocess (``python -m prefect.engine``) with this process's
environment, so ``RESISTOMICS_*`` settings given to the server process reach every run.

Ingest runs at most ``RESISTOMICS_INGEST__CONCURRENCY`` at a time (the deployment's
concurrency limit; further runs wait in ``AwaitingConcurrencySlot``; default 1 with a
SQLite catalog, 4 with PostgreSQL). Concurrent ingests are safe: the catalog decides
and publishes under the study's lock, so two of the same bytes or the same dataset
make one version (see :mod:`resistomics.catalog`); the limit only sizes the load.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.types.entrypoint import EntrypointType

from flows.analyse import analyse_flow
from flows.events import (
    DATASET_PUBLISHED,
    FILE_LANDED,
    LABEL_DATASET,
    LABEL_KIND,
    LABEL_MODALITY,
    LABEL_PATH,
    LABEL_STUDY,
    SIGNATURE_PUBLISHED,
)
from flows.ingest import ingest_flow
from flows.maintenance import gc_flow, integrity_flow
from flows.recompute import recompute_flow
from flows.report import report_flow
from flows.sweep import sweep_flow
from resistomics.config import Settings, load_settings

__all__ = ["build_deployments", "main", "serve_all"]

SWEEP_CRON = "*/15 * * * *"
RECOMPUTE_CRON = "0 2 * * *"
GC_CRON = "0 3 * * *"
INTEGRITY_CRON = "0 4 * * *"
TAGS = ["resistomics"]


def _label(name: str) -> str:
    """A Jinja template that renders one label of the triggering event's resource."""
    return "{{ event.resource['" + name + "'] }}"


def _deployment(flow: Flow[..., Any], **options: Any) -> RunnerDeployment:
    # Module-path entrypoints (flows.ingest.ingest_flow): a run imports the flows
    # package, so its intra-package imports work wherever the runner starts it.
    deployment = flow.to_deployment(
        entrypoint_type=EntrypointType.MODULE_PATH, tags=TAGS, **options
    )
    if not isinstance(deployment, RunnerDeployment):  # only in an async caller
        raise TypeError("build_deployments() must be called from synchronous code")
    return deployment


def build_deployments(settings: Settings | None = None) -> list[RunnerDeployment]:
    """Every deployment of the platform, with its trigger or schedule.

    ``settings`` (default: from the environment) give the ingest concurrency limit.
    """
    settings = settings or load_settings()
    return [
        _deployment(
            ingest_flow,
            name="on-file-landed",
            description="Ingest a file announced in the landing zone.",
            triggers=[
                DeploymentEventTrigger(
                    name="ingest on resistomics.file.landed",
                    expect={FILE_LANDED},
                    match={"prefect.resource.id": "resistomics.file.*"},
                    parameters={
                        "path": _label(LABEL_PATH),
                        "study": _label(LABEL_STUDY),
                        "modality": _label(LABEL_MODALITY),
                    },
                )
            ],
            concurrency_limit=settings.ingest_concurrency,
        ),
        _deployment(
            analyse_flow,
            name="on-publish",
            description="Run the default analyses of a newly published source dataset's modality.",
            triggers=[
                DeploymentEventTrigger(
                    name="analyse on resistomics.dataset.published (source data)",
                    expect={DATASET_PUBLISHED},
                    match={
                        "prefect.resource.id": "resistomics.dataset.*",
                        LABEL_KIND: "source",
                    },
                    parameters={
                        "dataset_ref": _label(LABEL_DATASET),
                        "study": _label(LABEL_STUDY),
                    },
                )
            ],
        ),
        _deployment(
            report_flow,
            name="on-signature",
            description="Refresh the study report after a new signature result.",
            triggers=[
                DeploymentEventTrigger(
                    name="report on resistomics.signature.published",
                    expect={SIGNATURE_PUBLISHED},
                    match={"prefect.resource.id": "resistomics.dataset.*"},
                    parameters={
                        "result_ref": _label(LABEL_DATASET),
                        "study": _label(LABEL_STUDY),
                    },
                )
            ],
        ),
        _deployment(
            sweep_flow,
            name="every-15-minutes",
            description="Announce files in the landing zone that no event announced.",
            cron=SWEEP_CRON,
        ),
        _deployment(
            recompute_flow,
            name="nightly",
            description="Bring every source dataset's analysis results up to date.",
            cron=RECOMPUTE_CRON,
            concurrency_limit=1,
        ),
        _deployment(
            gc_flow,
            name="nightly",
            description="Remove abandoned staged versions and unreferenced directories.",
            cron=GC_CRON,
        ),
        _deployment(
            integrity_flow,
            name="nightly",
            description="Check that published data exists, opens and matches its digests.",
            cron=INTEGRITY_CRON,
        ),
    ]


def _make_flows_importable() -> None:
    """Put the folder holding ``flows/`` on the runs' PYTHONPATH.

    Runs start as ``python -m prefect.engine`` in the serving process's working
    directory; this makes ``import flows`` work there whatever that directory is.
    """
    root = str(Path(__file__).resolve().parent.parent)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


def serve_all(*, limit: int | None = None, only: Sequence[str] = ()) -> None:
    """Serve every deployment until interrupted (blocking).

    Parameters
    ----------
    limit
        Most flow runs at once in this process (Prefect's default is 5). Each run may
        start its own local Dask cluster, so size this to the machine.
    only
        Serve only the deployments of these flows (e.g. ``["ingest"]`` for a load test
        of ingest alone); default all.
    """
    _make_flows_importable()
    deployments = [d for d in build_deployments() if not only or d.flow_name in only]
    if not deployments:
        raise SystemExit(f"no deployment of the flows {', '.join(only)}")
    _stop_on_sigint()
    serve(*deployments, limit=limit)


def _stop_on_sigint() -> None:
    """Make SIGINT (Ctrl-C) stop serving even when this process inherited it ignored.

    A process started in the background by a non-interactive shell (``cmd &`` in a
    script, a CI runner, ``nohup``) inherits SIGINT set to ignore, and Python then leaves
    it ignored instead of raising KeyboardInterrupt; ``asyncio.run`` (inside Prefect's
    ``serve``) only turns SIGINT into a shutdown when the default handler is installed.
    Such a ``serve`` never stopped on SIGINT: measured, 7 of 7 runs of
    tests/flows/test_serve_cli.py started that way were still serving 90 s after it.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve",
        description="Serve the resistomics deployments against the Prefect server in PREFECT_API_URL.",
    )
    parser.add_argument("--limit", type=int, default=None, help="most flow runs at once")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FLOW",
        help="serve only this flow's deployments (repeatable), e.g. --only ingest",
    )
    args = parser.parse_args(argv)
    serve_all(limit=args.limit, only=args.only)


if __name__ == "__main__":
    main()
