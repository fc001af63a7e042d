"""The platform's Prefect events: names, resources and the helpers that emit them.

Every event's resource carries labels that triggers match on and render into flow
parameters:

=========================  ==================================================
label                      value
=========================  ==================================================
``resistomics.study``      study name
``resistomics.modality``   a registered modality: ``expression``, ``variants``, ...
``resistomics.kind``       ``source`` (landed data) or ``result`` (dataset events)
``resistomics.path``       the landed file (file events, dataset events)
``resistomics.dataset``    the version ref ``study/dataset@vN`` (dataset events)
=========================  ==================================================

Resource IDs: ``resistomics.file.<path>`` for files and
``resistomics.dataset.<study>/<dataset>`` for datasets (signature results are datasets
too: ``resistomics.dataset.<study>/<dataset>.signatures``).
"""

from __future__ import annotations

import posixpath
from typing import Any

from prefect.events import Event, emit_event

from resistomics.catalog import VersionInfo

__all__ = [
    "DATASET_PUBLISHED",
    "DATASET_QUARANTINED",
    "FILE_LANDED",
    "LABEL_DATASET",
    "LABEL_KIND",
    "LABEL_MODALITY",
    "LABEL_PATH",
    "LABEL_STUDY",
    "SIGNATURE_PUBLISHED",
    "dataset_resource_id",
    "emit_dataset_published",
    "emit_dataset_quarantined",
    "emit_file_landed",
    "emit_signature_published",
    "file_resource_id",
]

FILE_LANDED = "resistomics.file.landed"
DATASET_PUBLISHED = "resistomics.dataset.published"
DATASET_QUARANTINED = "resistomics.dataset.quarantined"
SIGNATURE_PUBLISHED = "resistomics.signature.published"

LABEL_STUDY = "resistomics.study"
LABEL_MODALITY = "resistomics.modality"
LABEL_PATH = "resistomics.path"
LABEL_DATASET = "resistomics.dataset"
LABEL_KIND = "resistomics.kind"


def file_resource_id(path: str) -> str:
    return f"resistomics.file.{path}"


def dataset_resource_id(study: str, dataset: str) -> str:
    return f"resistomics.dataset.{study}/{dataset}"


def _dataset_resource(version: VersionInfo, *, role: str | None = None) -> dict[str, str]:
    resource = {
        "prefect.resource.id": dataset_resource_id(version.study, version.dataset),
        "prefect.resource.name": version.ref,
        LABEL_STUDY: version.study,
        LABEL_MODALITY: version.modality,
        LABEL_DATASET: version.ref,
        LABEL_KIND: str(version.kind),
        "resistomics.dataset_type": version.dataset_type,
        "resistomics.uri": version.uri,
    }
    if version.source_uri:
        resource[LABEL_PATH] = version.source_uri
    if role is not None:
        resource["prefect.resource.role"] = role
    return resource


def emit_file_landed(
    path: str, *, study: str, modality: str, detected_by: str = "sweep", **details: Any
) -> Event | None:
    """Announce a file (or directory) in ``<landing>/<study>/<modality>/``.

    Triggers the ingest deployment. Emitting it twice for the same bytes is safe:
    ingest recognises content it already published and makes no second version.
    """
    return emit_event(
        event=FILE_LANDED,
        resource={
            "prefect.resource.id": file_resource_id(path),
            "prefect.resource.name": posixpath.basename(path.rstrip("/")),
            LABEL_STUDY: study,
            LABEL_MODALITY: modality,
            LABEL_PATH: path,
        },
        payload={"detected_by": detected_by, **details},
    )


def emit_dataset_published(version: VersionInfo, *, message: str = "") -> Event | None:
    """Announce a newly published version (triggers the analyse deployment for source data)."""
    return emit_event(
        event=DATASET_PUBLISHED,
        resource=_dataset_resource(version),
        payload={
            "ref": version.ref,
            "version": version.number,
            "uri": version.uri,
            "dataset_type": version.dataset_type,
            "shape": list(version.shape),
            "digest": version.digest,
            "source": version.source_uri,
            "message": message,
        },
    )


def emit_dataset_quarantined(
    *,
    study: str,
    dataset: str,
    modality: str,
    path: str,
    message: str,
    quarantine_uri: str | None,
    failures: list[str],
) -> Event | None:
    """Announce a landed file that failed reading or validation and was quarantined."""
    return emit_event(
        event=DATASET_QUARANTINED,
        resource={
            "prefect.resource.id": dataset_resource_id(study, dataset),
            "prefect.resource.name": f"{study}/{dataset}",
            LABEL_STUDY: study,
            LABEL_MODALITY: modality,
            LABEL_PATH: path,
        },
        payload={
            "message": message,
            "quarantine_uri": quarantine_uri,
            "failures": failures,
        },
    )


def emit_signature_published(result: VersionInfo, *, inputs: list[VersionInfo]) -> Event | None:
    """Announce a published signature result (triggers the study report).

    The input datasets are attached as related resources with role ``input``.
    """
    return emit_event(
        event=SIGNATURE_PUBLISHED,
        resource=_dataset_resource(result),
        related=[_dataset_resource(v, role="input") for v in inputs],
        payload={
            "ref": result.ref,
            "uri": result.uri,
            "dataset_type": result.dataset_type,
            "inputs": [v.ref for v in inputs],
            "parameters": result.parameters,
        },
    )
