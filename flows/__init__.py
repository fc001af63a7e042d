"""Prefect flows, deployments, triggers and schedules of the resistomics platform.

Everything Prefect-specific lives here; each task is a few lines around a call into the
``resistomics`` library. The event chain::

    resistomics.file.landed ──> ingest ──> resistomics.dataset.published
                                       └─> resistomics.dataset.quarantined
    resistomics.dataset.published (kind source, any modality) ──> analyse
        (that modality's default analyses, from the registry)
                                       ──> resistomics.signature.published ──> report

plus schedules: landing-zone sweep (every 15 min), garbage collection and integrity
check (nightly). ``python -m flows.serve`` serves all deployments against the Prefect
server named by ``PREFECT_API_URL``.
"""
